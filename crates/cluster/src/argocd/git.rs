//! The `git` write-back: one commit per repository and branch per pass, batched across
//! the Applications that write there, through freshet's Git engine
//! ([`freshet_gitops::Git`]).
//!
//! Owns grouping the pass's Git jobs by repository, checkout branch and push branch;
//! making one clone per group in a temporary directory that is removed afterwards;
//! reading each job's target file (the parameter-override file, a Helm values file, or
//! the kustomization in a directory), asking the core for its byte-minimal edit
//! ([`freshet_core::argocd::gitfile`]) and writing it inside the clone
//! ([`freshet_gitops::write_within`]); committing the group's files once and pushing
//! with the engine's fetch, rebase and retry when the remote moved. After a push the
//! Applications' audit annotations are recorded (a patch of freshet's own annotations
//! only). Credentials: the `username` and `password` of the Secret that
//! `git:secret:<namespace>/<name>` names ([`super::creds`]; Applications with
//! different Secrets are never in one group), else [`super::ArgoOptions::git_token`]
//! (`FRESHET_GIT_TOKEN`), else git's own helpers; sent as an HTTP header through
//! git's environment, never in a URL, an argument or a log. A job whose file cannot be edited
//! (missing target, a key the file lacks) fails alone: nothing is written for it, and
//! the rest of its group is still committed. Must not decide what changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use freshet_core::argocd::PREFIX;
use freshet_core::argocd::Write;
use freshet_core::argocd::gitfile::{
    FileChange, helm_values_file, kustomization_file, override_file,
};
use freshet_core::argocd::source::GitPlace;
use freshet_core::argocd::writeback::{GitCreds, Method, Target};
use freshet_gitops::{Git, GitError, GitToken, resolve_within, write_within};

use super::creds;
use super::list::App;
use super::plan::{AppPlan, Prepared};
use super::write;
use crate::errors::error_chain;
use crate::pass::Refresher;
use crate::report::{ChangeReport, Status, WorkloadReport};

/// One Application's share of a Git write-back.
#[derive(Debug)]
pub struct GitJob {
    /// The Application.
    pub app: App,
    /// Its configuration and source.
    pub prepared: Prepared,
    /// What the pass decided for it.
    pub plan: AppPlan,
    /// Where it commits.
    pub place: GitPlace,
    /// The branch pushed to (the checkout branch, or `git-branch`'s rendered
    /// template); `None`: the remote's default branch.
    pub push_to: Option<String>,
    /// Its report so far.
    pub report: WorkloadReport,
}

/// Why a group's commit failed.
#[derive(Debug, thiserror::Error)]
pub enum GitWriteError {
    /// The temporary directory for the clone could not be made.
    #[error("making a directory for the clone failed")]
    Workdir(#[source] std::io::Error),
    /// A git step failed.
    #[error(transparent)]
    Git(#[from] GitError),
}

/// A group of jobs committed together: the repository, the checkout branch, the
/// branch pushed to, and the Secret of `git:secret:<namespace>/<name>` (`None`:
/// `FRESHET_GIT_TOKEN` or git's own helpers).
type GroupKey = (
    String,
    Option<String>,
    Option<String>,
    Option<(String, String)>,
);

/// What one job became in its group.
type Edited = Result<Option<FileChange>, String>;

/// The kustomization file in `dir` of the clone (`kustomization.yaml`, `.yml` or
/// `Kustomization`), or the first name when there is none.
fn kustomization_in(root: &Path, dir: &str) -> String {
    let join = |name: &str| {
        if dir == "." {
            name.to_owned()
        } else {
            format!("{dir}/{name}")
        }
    };
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|n| join(n))
        .find(|p| root.join(p).is_file())
        .unwrap_or_else(|| join("kustomization.yaml"))
}

/// Reads the job's target in the clone and computes its edit (the file's text as it is
/// now, so jobs editing one file see each other's edits).
fn edit(root: &Path, job: &GitJob) -> Edited {
    let writes: Vec<Write<'_>> = job
        .plan
        .updates
        .iter()
        .map(|u| Write {
            image: &job.prepared.config.images[u.index],
            new: &u.new,
        })
        .collect();
    if writes.is_empty() {
        return Ok(None);
    }
    let target = &job.prepared.config.write_back.target;
    let path = match target {
        Target::Kustomization { .. } => kustomization_in(root, &job.place.target),
        _ => job.place.target.clone(),
    };
    let full = root.join(&path);
    let text = if full.symlink_metadata().is_err() {
        None
    } else {
        let resolved = resolve_within(root, &full).map_err(|e| error_chain(&e))?;
        Some(
            freshet_gitops::read_text_bounded(&resolved)
                .map_err(|e| format!("reading {path} failed: {e}"))?,
        )
    };
    let result = match target {
        Target::Overrides { .. } => {
            override_file(&path, text.as_deref(), job.prepared.source.kind, &writes)
        }
        Target::HelmValues { .. } => helm_values_file(&path, text.as_deref(), &writes),
        Target::Kustomization { .. } => kustomization_file(&path, text.as_deref(), &writes),
    };
    result
        .map_err(|e| format!("annotation argocd-image-updater.argoproj.io/write-back-target: {e}"))
}

/// Writes `rel` in the clone at `root`: an existing file through
/// [`write_within`] (never through a link out of the clone), a new one (the override
/// file) in its directory, which must exist inside the clone (a fresh clone of this
/// pass: no reader can see a half-written file).
fn write_file(root: &Path, rel: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let full = root.join(rel);
    if full.symlink_metadata().is_ok() {
        return write_within(root, &full, bytes).map_err(|e| error_chain(&e));
    }
    let missing = |e: std::io::Error| format!("{rel}: its directory is not in the repository: {e}");
    let parent = std::fs::canonicalize(full.parent().unwrap_or(root)).map_err(missing)?;
    let top = std::fs::canonicalize(root).map_err(missing)?;
    let name = full.file_name().filter(|_| parent.starts_with(&top));
    let Some(name) = name else {
        return Err(format!("{rel} is outside the repository"));
    };
    let target = parent.join(name);
    std::fs::write(&target, bytes).map_err(|e| format!("writing {rel} failed: {e}"))?;
    Ok(target)
}

/// The commit message: Image Updater's first line, and one line per change.
fn message(jobs: &[&GitJob], edited: &[Edited]) -> String {
    let apps: Vec<&str> = jobs
        .iter()
        .zip(edited)
        .filter(|(_, e)| matches!(e, Ok(Some(_))))
        .map(|(j, _)| j.app.name.as_str())
        .collect();
    let mut m = format!("build: automatic update of {}\n\n", apps.join(", "));
    for (j, e) in jobs.iter().zip(edited) {
        if let Ok(Some(_)) = e {
            for u in &j.plan.updates {
                m.push_str(&format!(
                    "{}: updates image {} from {} to {}\n",
                    j.app.name, u.new.name, u.from, u.to
                ));
            }
        }
    }
    m
}

impl Refresher {
    /// Performs the pass's Git jobs: one commit per repository and branch.
    pub(crate) async fn argocd_git(&self, jobs: Vec<GitJob>) -> Vec<WorkloadReport> {
        let mut groups: BTreeMap<GroupKey, Vec<GitJob>> = BTreeMap::new();
        let mut reports = Vec::new();
        for job in jobs {
            if job.plan.updates.is_empty() || self.options().dry_run {
                reports.push(self.git_record(job, None).await);
                continue;
            }
            let secret = match &job.prepared.config.write_back.method {
                Method::Git {
                    creds: GitCreds::Secret { namespace, name },
                } => Some((namespace.clone(), name.clone())),
                _ => None,
            };
            let key = (
                job.place.repository.clone(),
                job.place.checkout.clone(),
                job.push_to.clone(),
                secret,
            );
            groups.entry(key).or_default().push(job);
        }
        for ((repo, checkout, push_to, secret), group) in groups {
            let refs: Vec<&GitJob> = group.iter().collect();
            let token = match &secret {
                None => Ok(self.options().argocd.git_token.clone()),
                Some((namespace, name)) => self.git_secret(namespace, name, &repo).await.map(Some),
            };
            let token = match token {
                Ok(t) => t,
                Err(message) => {
                    tracing::error!(repository = %freshet_gitops::redact::relay(&repo, &[], 256), error = %message, "git write-back not attempted");
                    for job in group {
                        reports.push(self.git_failed(job, message.clone()).await);
                    }
                    continue;
                }
            };
            let outcome = self
                .commit_group(
                    &repo,
                    (checkout.as_deref(), push_to.as_deref()),
                    token.as_ref(),
                    &refs,
                )
                .await;
            match outcome {
                Ok((edited, commit)) => {
                    for (job, e) in group.into_iter().zip(edited) {
                        reports.push(match e {
                            Ok(change) => self.git_record(job, Some((change, &commit))).await,
                            Err(message) => self.git_failed(job, message).await,
                        });
                    }
                }
                Err(e) => {
                    let message = error_chain(&e);
                    tracing::error!(repository = %freshet_gitops::redact::relay(&repo, &[], 256), error = %message, "git write-back failed");
                    for job in group {
                        reports.push(self.git_failed(job, message.clone()).await);
                    }
                }
            }
        }
        reports
    }

    /// The Git credentials of `git:secret:<namespace>/<name>` for `repo`; the error
    /// names the setting, the Secret and the fix, never the Secret's contents.
    async fn git_secret(
        &self,
        namespace: &str,
        name: &str,
        repo: &str,
    ) -> Result<GitToken, String> {
        if !creds::valid_name(namespace) || !creds::valid_name(name) {
            return Err(format!(
                "write-back-method git:secret:{}/{} (annotation {PREFIX}write-back-method, or its ImageUpdater's writeBackConfig.method): not a Secret's <namespace>/<name>; fix the setting",
                namespace.escape_debug(),
                name.escape_debug()
            ));
        }
        let result = match creds::secret_data(self.kube(), namespace, name).await {
            Ok(data) => creds::git_token(&data, (namespace, name), repo),
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            format!(
                "write-back-method git:secret:{namespace}/{name} (annotation {PREFIX}write-back-method, or its ImageUpdater's writeBackConfig.method): {}; nothing is committed until it is fixed",
                error_chain(&e)
            )
        })
    }

    /// Clones `repo` at `checkout`, edits, commits and pushes one group to `push_to`
    /// with `token` (git's own helpers when `None`); per job its edit (or error), and
    /// the commit made (`None` when nothing changed).
    async fn commit_group(
        &self,
        repo: &str,
        (checkout, push_to): (Option<&str>, Option<&str>),
        token: Option<&GitToken>,
        jobs: &[&GitJob],
    ) -> Result<(Vec<Edited>, Option<String>), GitWriteError> {
        let options = &self.options().argocd;
        let mut builder = tempfile::Builder::new();
        builder.prefix("freshet-argocd-");
        let tmp = match &options.workdir {
            Some(dir) => builder.tempdir_in(dir),
            None => builder.tempdir(),
        }
        .map_err(GitWriteError::Workdir)?;
        let (name, email) = &options.author;
        let mut base = Git::new(tmp.path())
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email);
        if let Some(token) = token {
            base = base.token(token);
        }
        let root: PathBuf = tmp.path().join("repo");
        let git = base.clone_into(repo, &root, checkout).await?;
        let branch = match push_to {
            Some(b) => {
                if Some(b) != checkout {
                    git.switch_branch(b).await?;
                }
                b.to_owned()
            }
            None => git.current_branch().await?,
        };
        let mut edited = Vec::with_capacity(jobs.len());
        let mut files = Vec::new();
        let mut created = Vec::new();
        for job in jobs {
            let e = edit(&root, job).and_then(|change| {
                if let Some(c) = &change {
                    if c.create {
                        created.push(root.join(&c.path));
                    }
                    let full = write_file(&root, &c.path, c.text.as_bytes())?;
                    if !files.contains(&full) {
                        files.push(full);
                    }
                }
                Ok(change)
            });
            edited.push(e);
        }
        if files.is_empty() {
            return Ok((edited, None));
        }
        git.add(&created).await?;
        git.commit(&files, &message(jobs, &edited)).await?;
        let pushed = git.push(&branch).await?;
        tracing::info!(branch = %branch, attempts = pushed.attempts, commit = %pushed.commit, files = files.len(), "git write-back pushed");
        Ok((
            edited,
            Some(format!("commit {} on {branch}", short(&pushed.commit))),
        ))
    }

    /// Records a job's outcome: its changes, the audit annotations, its Events.
    async fn git_record(
        &self,
        job: GitJob,
        done: Option<(Option<FileChange>, &Option<String>)>,
    ) -> WorkloadReport {
        let GitJob {
            app,
            plan,
            mut report,
            ..
        } = job;
        let written = match &done {
            Some((Some(change), Some(commit))) => {
                report.changes = change
                    .changes
                    .iter()
                    .map(|c| ChangeReport {
                        action: "git-commit",
                        containers: vec![format!("{}:{}", change.path, c.field)],
                        image: plan
                            .updates
                            .iter()
                            .map(|u| u.image.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        var: None,
                        from: c.old.clone().unwrap_or_default(),
                        to: c.new.clone(),
                    })
                    .collect();
                Some(commit.clone())
            }
            _ => None,
        };
        if written.is_none() && report.status == Status::Refreshed && done.is_some() {
            report.status = Status::Current;
        }
        if self.options().dry_run {
            return report;
        }
        let mut annotations = plan.annotations.clone();
        if written.is_none() {
            annotations.remove(freshet_core::refresh::audit::REFRESHED);
        }
        if let Some(body) = write::with_annotations(None, &annotations) {
            match write::patch(self.kube(), &app, &body).await {
                Ok(()) => report.written = true,
                Err(e) => report.warnings.push(format!(
                    "recording the audit annotations failed: {}",
                    error_chain(&e)
                )),
            }
        }
        let events = self.writer().events();
        let shown = match &written {
            Some(_) => plan.clone(),
            None => AppPlan {
                updates: Vec::new(),
                ..plan.clone()
            },
        };
        write::announce(events, &app, &shown, written.as_deref().unwrap_or("git")).await;
        write::warn(events, &app, &report.warnings, None).await;
        if written.is_some() {
            report.written = true;
        }
        report
    }

    async fn git_failed(&self, job: GitJob, message: String) -> WorkloadReport {
        let mut r = job.report;
        r.status = Status::Failed;
        r.error = Some(message);
        self.argocd_report_failed((job.app, r)).await
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
