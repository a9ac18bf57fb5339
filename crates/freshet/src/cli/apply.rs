//! `freshet apply`: write planned updates to files, and optionally commit and push them.
//!
//! Owns the command's flags and the order of its side effects: check out `--branch`
//! first, plan, refuse before writing if a file to change has uncommitted changes (with
//! `--commit`), write each file atomically, make one commit for the run, push with
//! fetch, rebase and retry. A failure at any step stops the later ones and is reported
//! with the state it left (files written or not, commit made or not, remote unchanged).
//!
//! Credentials: a token in `FRESHET_GIT_TOKEN` is handed to git through its environment
//! as an HTTP header; otherwise git uses its own credential helpers. Never argv or URLs.
//!
//! Exit codes: 0 when everything planned was written (and committed and pushed, if
//! asked); 1 when anything failed, a registry lookup included: what could be planned is
//! still written.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use freshet_core::files::{PlanError, Update};
use freshet_gitops::{DEFAULT_MESSAGE, Git, GitToken, PlanOptions, PlanReport, render_message};
use serde::Serialize;

use super::output::{OutputFormat, print_json, print_text};
use super::plan::{RegistryFacts, print_warnings, text_report};
use super::progress::Progress;
use super::{EXIT_FAILURE, EXIT_OK, Failure, RegistryArgs};

/// The environment variable holding a token for pushing over HTTPS.
pub const TOKEN_ENV: &str = "FRESHET_GIT_TOKEN";

/// Arguments of `freshet apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Track every reference found, with `freshet.yaml`'s defaultPolicy.
    #[arg(long)]
    all: bool,
    /// Make one git commit for the run holding exactly the files written.
    #[arg(long)]
    commit: bool,
    /// Push the commit (fetching, rebasing and retrying when the remote moved).
    /// Credentials come from git's helpers or FRESHET_GIT_TOKEN, never the command line.
    #[arg(long, requires = "commit")]
    push: bool,
    /// Commit on this branch (created from HEAD if missing) and push to it.
    #[arg(long, value_name = "B", requires = "commit")]
    branch: Option<String>,
    /// Commit message template: {count} updates, {updates} one `- file:line old -> new`
    /// line each, {files} the changed files; `\n` is a newline.
    #[arg(long, value_name = "TEMPLATE", requires = "commit")]
    message: Option<String>,
    /// The git remote to push to.
    #[arg(long, default_value = "origin", requires = "push")]
    remote: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Files and directories to update (directories recursively, honouring .gitignore).
    #[arg(value_name = "PATH", default_value = ".")]
    paths: Vec<PathBuf>,
}

/// The JSON report of `apply`: the plan's shape plus what happened.
#[derive(Debug, Serialize)]
struct ApplyJson<'a> {
    updates: &'a [Update],
    errors: &'a [PlanError],
    skipped: &'a [freshet_gitops::Skipped],
    written: Vec<String>,
    commit: Option<String>,
    pushed: bool,
}

/// Runs `freshet apply`.
pub async fn run(args: ApplyArgs) -> Result<u8, Failure> {
    let ApplyArgs {
        all,
        commit,
        push,
        branch,
        message,
        remote,
        output,
        registry,
        paths,
    } = args;
    let client = registry.client().map_err(Failure::usage)?;
    // `\n` in a template given on the command line means a newline.
    let template = message
        .as_deref()
        .map_or(DEFAULT_MESSAGE.to_owned(), |m| m.replace("\\n", "\n"));

    // The repository, and the branch to work on, before anything is written.
    let git = if commit {
        let git = open_repository(&paths, remote, branch.as_deref()).await?;
        // A run killed between writing and committing left a record: finish it first.
        git.journal_recover()
            .await
            .context("cannot finish an interrupted earlier run; nothing was written")?;
        if push {
            // A bad remote, or a token bound for plain http, is refused before writing.
            let target = match &branch {
                Some(b) => b.clone(),
                None => git
                    .current_branch()
                    .await
                    .context("--push: cannot tell the current branch; nothing was written")?,
            };
            git.check_push(&target)
                .await
                .context("--push: nothing was written")?;
        }
        Some(git)
    } else {
        None
    };

    let progress = Progress::spinner(Progress::wanted(output), "scanning files");
    let source = RegistryFacts::new(client).with_progress(progress.clone());
    let options = PlanOptions { all, root: None };
    let mut report = freshet_gitops::plan(&paths, &options, &source).await;
    progress.finish();
    print_warnings(&report);

    if let Some(git) = &git {
        drop_dirty(git, &mut report).await?;
        journal_begin(git, &report, &template).await?;
    }

    let applied = freshet_gitops::apply(&report);
    report.errors.extend(applied.errors.iter().cloned());
    let written_names: Vec<String> = report
        .files
        .iter()
        .filter(|f| applied.written.contains(&f.path))
        .map(|f| f.display.clone())
        .collect();
    report.updates.retain(|u| written_names.contains(&u.file));

    let mut outcome = Committed::default();
    if let Some(git) = &git {
        if !applied.written.is_empty() {
            let text = render_message(&template, &report.updates);
            let target = if push { Some(branch.as_deref()) } else { None };
            outcome = commit_and_push(git, &applied.written, &text, target, &mut report).await;
        }
        if outcome.commit.is_some() || applied.written.is_empty() {
            git.journal_end()
                .await
                .context("cannot remove the run's record from .git")?;
        }
    }
    print_applied(output, &report, written_names, &outcome)?;
    Ok(if report.errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}

/// The repository the first path is in, with the remote, the token from
/// [`TOKEN_ENV`] and `branch` checked out (created from HEAD if missing).
async fn open_repository(
    paths: &[PathBuf],
    remote: String,
    branch: Option<&str>,
) -> Result<Git, Failure> {
    let first = paths.first().cloned().unwrap_or_else(|| PathBuf::from("."));
    let mut git = Git::discover(&first)
        .await
        .with_context(|| {
            format!(
                "--commit: {} is not inside a git working tree",
                first.display()
            )
        })
        .map_err(Failure::usage)?
        .remote(remote);
    if let Some(token) = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .map(GitToken::new)
    {
        git = git.token(&token);
    }
    if let Some(branch) = branch {
        git.switch_branch(branch)
            .await
            .with_context(|| format!("cannot switch to branch {branch}; nothing was written"))?;
    }
    Ok(git)
}

/// With --commit, a file with changes of its own would drag them into the commit:
/// such files are left untouched and reported.
async fn drop_dirty(git: &Git, report: &mut PlanReport) -> Result<(), Failure> {
    let planned: Vec<PathBuf> = report.files.iter().map(|f| f.path.clone()).collect();
    let dirty = git
        .dirty(&planned)
        .await
        .context("cannot check the files for uncommitted changes; nothing was written")?;
    if dirty.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = dirty.iter().map(|p| report_name(report, p)).collect();
    report.files.retain(|f| !dirty.contains(&f.path));
    for file in names {
        report.updates.retain(|u| u.file != file);
        report.errors.push(PlanError::new(
            &file,
            0,
            "has uncommitted changes; commit or stash them first (left untouched)",
        ));
    }
    Ok(())
}

/// Records the files about to be written and their new bytes in `.git`, so that a run
/// killed before its commit is finished by the next one (see `freshet_gitops::journal`).
async fn journal_begin(git: &Git, report: &PlanReport, template: &str) -> Result<(), Failure> {
    let planned: Vec<(PathBuf, Vec<u8>)> = report
        .files
        .iter()
        .filter_map(|f| {
            freshet_core::files::apply_edits(&f.display, &f.original, &f.edits)
                .ok()
                .map(|new| (f.path.clone(), new.into_bytes()))
        })
        .collect();
    git.journal_begin(&planned, &render_message(template, &report.updates))
        .await
        .context("cannot record the run before writing; nothing was written")?;
    Ok(())
}

/// What `apply --commit` made: the commit, and whether it reached the remote.
#[derive(Debug, Default)]
struct Committed {
    commit: Option<String>,
    pushed: bool,
}

/// One commit of `files`; with `push` (`Some(branch or current)`), a push that
/// fetches, rebases and retries. Failures are added to the report, saying where things
/// stand (a local commit that was not pushed).
async fn commit_and_push(
    git: &Git,
    files: &[PathBuf],
    text: &str,
    push: Option<Option<&str>>,
    report: &mut PlanReport,
) -> Committed {
    let sha = match git.commit(files, text).await {
        Ok(sha) => sha,
        Err(e) => {
            report.errors.push(git_error(git, e));
            return Committed::default();
        }
    };
    let Some(branch) = push else {
        return Committed {
            commit: Some(sha),
            pushed: false,
        };
    };
    let target = match branch {
        Some(b) => Ok(b.to_owned()),
        None => git.current_branch().await,
    };
    let outcome = match target {
        Ok(b) => git.push(&b).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(outcome) => Committed {
            commit: Some(outcome.commit),
            pushed: true,
        },
        Err(e) => {
            // Say where things stand: the commit exists locally only.
            let sha = git.head().await.unwrap_or(sha);
            let mut error = git_error(git, e);
            error.message = format!(
                "committed {sha} locally but did not push: {}",
                error.message
            );
            report.errors.push(error);
            Committed {
                commit: Some(sha),
                pushed: false,
            }
        }
    }
}

/// Prints the report of what was written, committed and pushed.
fn print_applied(
    output: OutputFormat,
    report: &PlanReport,
    written: Vec<String>,
    outcome: &Committed,
) -> Result<(), Failure> {
    match output {
        OutputFormat::Json => print_json(&ApplyJson {
            updates: &report.updates,
            errors: &report.errors,
            skipped: &report.skipped,
            written,
            commit: outcome.commit.clone(),
            pushed: outcome.pushed,
        })?,
        OutputFormat::Text => {
            let mut text = text_report_applied(report);
            if let Some(sha) = &outcome.commit {
                text.push_str(&format!(
                    "committed {sha}{}\n",
                    if outcome.pushed { ", pushed" } else { "" }
                ));
            }
            print_text(&text)?;
        }
    }
    Ok(())
}

/// The text form of what was written.
fn text_report_applied(report: &PlanReport) -> String {
    text_report(report).replace("update(s) pending", "update(s) written")
}

/// The name a report uses for a file on disk.
fn report_name(report: &PlanReport, path: &std::path::Path) -> String {
    report
        .files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.display.clone())
        .unwrap_or_else(|| path.display().to_string())
}

fn git_error(git: &Git, e: freshet_gitops::GitError) -> PlanError {
    PlanError::new(&git.dir().display().to_string(), 0, e.to_string())
}
