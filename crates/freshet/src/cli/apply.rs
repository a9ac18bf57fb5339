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
    let token = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .map(GitToken::new);

    // The repository, and the branch to work on, before anything is written.
    let git = if commit {
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
        if let Some(token) = &token {
            git = git.token(token);
        }
        if let Some(branch) = &branch {
            git.switch_branch(branch).await.with_context(|| {
                format!("cannot switch to branch {branch}; nothing was written")
            })?;
        }
        Some(git)
    } else {
        None
    };

    let source = RegistryFacts::new(client);
    let options = PlanOptions { all, root: None };
    let mut report = freshet_gitops::plan(&paths, &options, &source).await;
    print_warnings(&report);

    // With --commit, a file with changes of its own would drag them into the commit.
    if let Some(git) = &git {
        let planned: Vec<PathBuf> = report.files.iter().map(|f| f.path.clone()).collect();
        let dirty = git
            .dirty(&planned)
            .await
            .context("cannot check the files for uncommitted changes; nothing was written")?;
        if !dirty.is_empty() {
            let names: Vec<String> = dirty.iter().map(|p| report_name(&report, p)).collect();
            report.files.retain(|f| !dirty.contains(&f.path));
            for file in names {
                report.updates.retain(|u| u.file != file);
                report.errors.push(PlanError::new(
                    &file,
                    0,
                    "has uncommitted changes; commit or stash them first (left untouched)",
                ));
            }
        }
    }

    let applied = freshet_gitops::apply(&report);
    report.errors.extend(applied.errors.iter().cloned());
    let written_names: Vec<String> = report
        .files
        .iter()
        .filter(|f| applied.written.contains(&f.path))
        .map(|f| f.display.clone())
        .collect();
    let written_updates: Vec<Update> = report
        .updates
        .iter()
        .filter(|u| written_names.contains(&u.file))
        .cloned()
        .collect();

    let mut made = None;
    let mut pushed = false;
    if let Some(git) = &git
        && !applied.written.is_empty()
    {
        // `\n` in a template given on the command line means a newline.
        let template = message
            .as_deref()
            .map_or(DEFAULT_MESSAGE.to_owned(), |m| m.replace("\\n", "\n"));
        let text = render_message(&template, &written_updates);
        match git.commit(&applied.written, &text).await {
            Ok(sha) => {
                made = Some(sha.clone());
                if push {
                    let target = match &branch {
                        Some(b) => Ok(b.clone()),
                        None => git.current_branch().await,
                    };
                    let outcome = match target {
                        Ok(b) => git.push(&b).await,
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(outcome) => {
                            made = Some(outcome.commit);
                            pushed = true;
                        }
                        Err(e) => {
                            // Say where things stand: the commit exists locally only.
                            let sha = git.head().await.unwrap_or_else(|_| sha.clone());
                            let mut error = git_error(git, e);
                            error.message = format!(
                                "committed {sha} locally but did not push: {}",
                                error.message
                            );
                            made = Some(sha);
                            report.errors.push(error);
                        }
                    }
                }
            }
            Err(e) => report.errors.push(git_error(git, e)),
        }
    }

    report.updates = written_updates;
    match output {
        OutputFormat::Json => print_json(&ApplyJson {
            updates: &report.updates,
            errors: &report.errors,
            skipped: &report.skipped,
            written: written_names.clone(),
            commit: made.clone(),
            pushed,
        })?,
        OutputFormat::Text => {
            let mut text = text_report_applied(&report);
            if let Some(sha) = &made {
                text.push_str(&format!(
                    "committed {sha}{}\n",
                    if pushed { ", pushed" } else { "" }
                ));
            }
            print_text(&text)?;
        }
    }
    Ok(if report.errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
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
