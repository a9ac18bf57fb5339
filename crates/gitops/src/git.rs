//! A thin wrapper over the system `git`.
//!
//! Owns running `git` through `tokio::process` in one working tree: committing exactly the
//! files freshet wrote with a templated message ([`Git::commit`], [`render_message`]),
//! and pushing with fetch, rebase and retry when the remote moved ([`Git::push`]). On any
//! failure it puts the index (and an interrupted rebase) back and says what state the
//! tree, index and remote are in.
//!
//! Must not put credentials on the command line or in URLs: git reads them from the
//! environment (`GIT_ASKPASS`, a credential helper, `GIT_CONFIG_*`), and
//! `GIT_TERMINAL_PROMPT=0` stops it from ever waiting on a prompt. Error messages are
//! scrubbed of `user:password@` in URLs before they are returned.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use freshet_core::files::Update;
use tokio::io::AsyncWriteExt as _;

/// The commit message template `apply --commit` uses when none is given.
pub const DEFAULT_MESSAGE: &str = "freshet: update {count} image reference(s)\n\n{updates}\n";

/// How many times `push` tries before giving up on a remote that keeps moving.
pub const DEFAULT_PUSH_ATTEMPTS: u32 = 4;

/// Why a git step failed, and what state it left.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` could not be started.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// A git command exited non-zero.
    #[error("git {command} failed ({status}): {output}")]
    Failed {
        /// The subcommand and its arguments (never credentials).
        command: String,
        /// The exit status.
        status: String,
        /// git's stderr and stdout, with URL credentials scrubbed.
        output: String,
    },
    /// The commit failed; the files are written but not committed, and the index is as
    /// it was before.
    #[error(
        "commit failed; the files are written but not committed, and the index was restored: {0}"
    )]
    Commit(#[source] Box<GitError>),
    /// Rebasing onto the remote conflicted; the rebase was aborted, so the local branch
    /// still holds the commit, unpushed, and the remote is unchanged.
    #[error(
        "rebase onto {remote}/{branch} conflicted; rebase aborted, local commit {commit} kept but not pushed, remote unchanged: {source}"
    )]
    RebaseConflict {
        /// The remote.
        remote: String,
        /// The branch.
        branch: String,
        /// The local commit.
        commit: String,
        /// The rebase failure.
        #[source]
        source: Box<GitError>,
    },
    /// The push was rejected every time; the local commit is kept, rebased on the last
    /// fetched remote state, and the remote is unchanged.
    #[error(
        "push to {remote} {branch} was rejected {attempts} times; local commit kept, remote unchanged"
    )]
    GaveUp {
        /// The remote.
        remote: String,
        /// The branch.
        branch: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl GitError {
    /// Whether trying again later may succeed (a rejected or failed push, as opposed to a
    /// conflict or a broken repository).
    pub fn is_transient(&self) -> bool {
        match self {
            GitError::GaveUp { .. } => true,
            GitError::Failed { command, .. } => {
                command.starts_with("push") || command.starts_with("fetch")
            }
            _ => false,
        }
    }
}

/// How a push went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// Push attempts made (1 when the remote had not moved).
    pub attempts: u32,
    /// The commit that was pushed.
    pub commit: String,
}

/// Removes `user:password@` from URLs in git's output.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str("***@");
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Renders a commit message: `{count}` is the number of updates, `{updates}` one line
/// per update (`- file:line old -> new`), `{files}` the changed files, comma-separated.
pub fn render_message(template: &str, updates: &[Update]) -> String {
    let lines: Vec<String> = updates
        .iter()
        .map(|u| format!("- {}:{} {} -> {}", u.file, u.line, u.current, u.new))
        .collect();
    let mut files: Vec<&str> = updates.iter().map(|u| u.file.as_str()).collect();
    files.dedup();
    template
        .replace("{count}", &updates.len().to_string())
        .replace("{updates}", &lines.join("\n"))
        .replace("{files}", &files.join(", "))
}

/// A token for pushing over HTTPS. It reaches git only through the environment of the
/// git process (as an `http.extraHeader` set with `GIT_CONFIG_*` variables), never argv
/// or a URL; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct GitToken(String);

impl GitToken {
    /// Wraps a token (e.g. read from `FRESHET_GIT_TOKEN` at the command line's edge).
    pub fn new(token: impl Into<String>) -> Self {
        GitToken(token.into())
    }

    /// The `Authorization` header git sends: Basic with the user `x-access-token`, which
    /// GitHub, GitLab and Gitea accept for tokens.
    fn header(&self) -> String {
        use base64::Engine as _;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", self.0));
        format!("Authorization: Basic {basic}")
    }
}

impl std::fmt::Debug for GitToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GitToken(***)")
    }
}

impl std::fmt::Display for GitToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// An environment variable for git; the value is hidden from `Debug` because it may be
/// a credential.
#[derive(Clone)]
struct EnvVar(OsString, OsString);

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.0.to_string_lossy())
    }
}

/// A git working tree.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    remote: String,
    env: Vec<EnvVar>,
    push_attempts: u32,
}

impl Git {
    /// A working tree at `dir`, pushing to `origin`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Git {
            dir: dir.into(),
            remote: "origin".into(),
            env: Vec::new(),
            push_attempts: DEFAULT_PUSH_ATTEMPTS,
        }
    }

    /// Uses another remote name.
    pub fn remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = remote.into();
        self
    }

    /// Sets an environment variable for every git command (e.g. `GIT_ASKPASS`). This is
    /// the only way credentials reach git.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push(EnvVar(key.into(), value.into()));
        self
    }

    /// Authenticates HTTPS pushes and fetches with a token, passed to git as
    /// `http.extraHeader` through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/
    /// `GIT_CONFIG_VALUE_0` in its environment. Replaces any `GIT_CONFIG_COUNT` the
    /// caller's environment set.
    pub fn token(self, token: &GitToken) -> Self {
        self.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", token.header())
    }

    /// The working tree holding `path` (a file or directory inside it).
    pub async fn discover(path: &Path) -> Result<Git, GitError> {
        let dir = if path.is_dir() {
            path.to_owned()
        } else {
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned()
        };
        let top = Git::new(dir)
            .run(&["rev-parse", "--show-toplevel"], None)
            .await?;
        Ok(Git::new(top.trim()))
    }

    /// How many push attempts to make before giving up.
    pub fn push_attempts(mut self, attempts: u32) -> Self {
        self.push_attempts = attempts.max(1);
        self
    }

    /// The working tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, GitError> {
        let mut command = tokio::process::Command::new("git");
        command
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .envs(self.env.iter().map(|EnvVar(k, v)| (k, v)))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(GitError::Spawn)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(GitError::Spawn)?;
            drop(stdin);
        }
        let output = child.wait_with_output().await.map_err(GitError::Spawn)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            tracing::debug!(command = %args.join(" "), "git ok");
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(GitError::Failed {
            command: scrub(&args.join(" ")),
            status: output.status.to_string(),
            output: scrub(
                format!(
                    "{}{}",
                    stderr.trim(),
                    if stdout.trim().is_empty() {
                        String::new()
                    } else {
                        format!("\n{}", stdout.trim())
                    }
                )
                .trim(),
            ),
        })
    }

    /// The commit `HEAD` points to.
    pub async fn head(&self) -> Result<String, GitError> {
        Ok(self
            .run(&["rev-parse", "HEAD"], None)
            .await?
            .trim()
            .to_owned())
    }

    /// The checked-out branch.
    pub async fn current_branch(&self) -> Result<String, GitError> {
        Ok(self
            .run(&["symbolic-ref", "--short", "HEAD"], None)
            .await?
            .trim()
            .to_owned())
    }

    /// Switches to `branch`, creating it from `HEAD` if it does not exist. Uncommitted
    /// changes are carried along (git refuses if they would be overwritten).
    pub async fn switch_branch(&self, branch: &str) -> Result<(), GitError> {
        let exists = self
            .run(
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{branch}"),
                ],
                None,
            )
            .await
            .is_ok();
        if exists {
            self.run(&["switch", "--quiet", branch], None).await?;
        } else {
            self.run(&["switch", "--quiet", "-c", branch], None).await?;
        }
        Ok(())
    }

    /// Commits exactly `files` (paths in the working tree) with `message`, leaving any
    /// other staged change alone. Returns the new commit.
    pub async fn commit(&self, files: &[PathBuf], message: &str) -> Result<String, GitError> {
        let paths: Vec<String> = files.iter().map(|p| pathspec(p)).collect();
        let mut args: Vec<&str> = vec!["commit", "--quiet", "--file=-", "--only", "--"];
        args.extend(paths.iter().map(String::as_str));
        if let Err(e) = self.run(&args, Some(message)).await {
            // `--only` stages into a temporary index; make sure our paths are not left staged.
            let mut reset: Vec<&str> = vec!["reset", "--quiet", "--"];
            reset.extend(paths.iter().map(String::as_str));
            let _ = self.run(&reset, None).await;
            return Err(GitError::Commit(Box::new(e)));
        }
        self.head().await
    }

    /// Those of `files` with staged or unstaged changes, or unknown to git, as given.
    pub async fn dirty(&self, files: &[PathBuf]) -> Result<Vec<PathBuf>, GitError> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let specs: Vec<String> = files.iter().map(|p| pathspec(p)).collect();
        let mut args: Vec<&str> =
            vec!["status", "--porcelain", "-z", "--untracked-files=all", "--"];
        args.extend(specs.iter().map(String::as_str));
        let out = self.run(&args, None).await?;
        let top = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let changed: Vec<PathBuf> = out
            .split('\0')
            .filter(|entry| entry.len() > 3)
            .map(|entry| top.join(&entry[3..]))
            .collect();
        Ok(files
            .iter()
            .zip(&specs)
            .filter(|(_, spec)| changed.iter().any(|c| Path::new(spec.as_str()) == c))
            .map(|(f, _)| f.clone())
            .collect())
    }

    /// Pushes `HEAD` to `branch` on the remote. When the remote moved, fetches it,
    /// rebases onto it and tries again, up to the configured number of attempts.
    pub async fn push(&self, branch: &str) -> Result<PushOutcome, GitError> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        for attempt in 1..=self.push_attempts {
            match self
                .run(&["push", "--porcelain", &self.remote, &refspec], None)
                .await
            {
                Ok(_) => {
                    return Ok(PushOutcome {
                        attempts: attempt,
                        commit: self.head().await?,
                    });
                }
                Err(GitError::Failed { output, .. }) if is_rejection(&output) => {
                    tracing::info!(attempt, branch, "push rejected; fetching and rebasing");
                    if attempt == self.push_attempts {
                        break;
                    }
                    self.run(&["fetch", "--quiet", &self.remote, branch], None)
                        .await?;
                    let commit = self.head().await?;
                    if let Err(e) = self.run(&["rebase", "--quiet", "FETCH_HEAD"], None).await {
                        let _ = self.run(&["rebase", "--abort"], None).await;
                        return Err(GitError::RebaseConflict {
                            remote: self.remote.clone(),
                            branch: branch.to_owned(),
                            commit,
                            source: Box::new(e),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(GitError::GaveUp {
            remote: self.remote.clone(),
            branch: branch.to_owned(),
            attempts: self.push_attempts,
        })
    }
}

/// A path as git should see it: absolute (canonical when it exists), since git runs
/// with `-C` in the working tree rather than in the caller's directory.
fn pathspec(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_owned())
    });
    absolute.to_string_lossy().into_owned()
}

/// Whether git's output says the remote moved under us.
fn is_rejection(output: &str) -> bool {
    [
        "[rejected]",
        "non-fast-forward",
        "fetch first",
        "cannot lock ref",
        "failed to update ref",
    ]
    .iter()
    .any(|needle| output.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_reaches_git_through_the_environment_only() {
        let dir = tempfile::tempdir().unwrap();
        let token = GitToken::new("s3cret-token");
        let git = Git::new(dir.path()).token(&token);
        let header = git
            .run(&["config", "--get", "http.extraHeader"], None)
            .await
            .unwrap();
        // base64("x-access-token:s3cret-token")
        assert_eq!(
            header.trim(),
            "Authorization: Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0LXRva2Vu"
        );
        let shown = format!("{git:?} {token:?} {token}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("eC1hY2Nlc3M"), "{shown}");
    }

    #[test]
    fn scrub_removes_url_credentials() {
        assert_eq!(
            scrub("fatal: unable to access 'https://user:tok3n@example.com/o/r.git/': 403"),
            "fatal: unable to access 'https://***@example.com/o/r.git/': 403"
        );
        assert_eq!(scrub("https://example.com/x"), "https://example.com/x");
        assert_eq!(scrub("no url"), "no url");
    }

    #[test]
    fn messages_list_old_and_new_refs() {
        let u = Update {
            file: "deploy/app.yaml".into(),
            line: 7,
            current: "nginx:1.25.3".into(),
            new: "nginx:1.25.5".into(),
            policy: "semver:patch".into(),
            reason: "r".into(),
            edits: vec![],
        };
        assert_eq!(
            render_message(DEFAULT_MESSAGE, &[u.clone(), u]),
            "freshet: update 2 image reference(s)\n\n- deploy/app.yaml:7 nginx:1.25.3 -> nginx:1.25.5\n- deploy/app.yaml:7 nginx:1.25.3 -> nginx:1.25.5\n"
        );
        assert_eq!(render_message("bump {files}", &[]), "bump ");
    }
}
