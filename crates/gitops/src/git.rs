//! A thin wrapper over the system `git`.
//!
//! Owns running `git` through `tokio::process` in one working tree: committing exactly the
//! files freshet wrote ([`Git::commit`]), and pushing with fetch, rebase and retry when
//! the remote moved ([`Git::push`]). On any failure it puts the index (and an
//! interrupted rebase) back and says what state the tree, index and remote are in.
//!
//! Every git process is bounded: it is killed when it runs longer than the configured
//! timeout ([`Git::timeout`], [`DEFAULT_TIMEOUT`]), and its output is read up to a cap.
//! Killing git does not reach the helpers it started (`git-remote-http`, `ssh`); git is
//! also told to drop an HTTP transfer that stalls for as long as the timeout, so those
//! end on their own.
//!
//! Must not put credentials on the command line or in URLs: git reads them from the
//! environment (`GIT_ASKPASS`, a credential helper, `GIT_CONFIG_*`), and
//! `GIT_TERMINAL_PROMPT=0` stops it from ever waiting on a prompt. Must not relay any
//! of git's output, a remote URL or an argument unless it went through
//! [`crate::redact`]: credentials scrubbed, control characters escaped, length bounded.
//! Must not let a `--remote` or branch value reach git as an option ([`crate::remote`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::redact::{self, RELAYED_MAX_BYTES};
use crate::remote::{self, RemoteError};

pub use crate::message::{DEFAULT_MESSAGE, render_message};

/// How many times `push` tries before giving up on a remote that keeps moving.
pub const DEFAULT_PUSH_ATTEMPTS: u32 = 4;

/// How long one git process may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The range [`Git::timeout`] clamps to.
pub const TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));

/// The most bytes of git's standard output freshet reads (`status` of many files).
const STDOUT_MAX_BYTES: usize = 16 << 20;

/// How much of git's standard error is kept: this many bytes of its start and of its end.
const STDERR_KEEP_BYTES: usize = 8 << 10;

/// Why a git step failed, and what state it left.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` could not be started, or its pipes failed.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// A git command exited non-zero.
    #[error("git {command} failed ({status}): {output}")]
    Failed {
        /// The subcommand and its arguments, scrubbed.
        command: String,
        /// The exit status.
        status: String,
        /// git's stderr and stdout, scrubbed, escaped and bounded.
        output: String,
    },
    /// A git command ran longer than the timeout and was killed.
    #[error("git {command} did not finish within {timeout:?} and was killed")]
    TimedOut {
        /// The subcommand and its arguments, scrubbed.
        command: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// A git command printed more than freshet reads.
    #[error("git {command} printed more than {limit} bytes; its output was not used")]
    OutputTooLarge {
        /// The subcommand and its arguments, scrubbed.
        command: String,
        /// The cap.
        limit: usize,
    },
    /// The remote, the branch or the token's destination was refused before git ran.
    #[error(transparent)]
    Refused(#[from] RemoteError),
    /// The apply journal (`crate::journal`) could not be written, read or removed.
    #[error("cannot write, read or remove the apply journal in the git directory: {0}")]
    Journal(#[source] std::io::Error),
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
        /// The remote, scrubbed.
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
        /// The remote, scrubbed.
        remote: String,
        /// The branch.
        branch: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl GitError {
    /// Whether trying again later may succeed (a rejected, failed or timed-out push or
    /// fetch, as opposed to a conflict, a refusal or a broken repository).
    pub fn is_transient(&self) -> bool {
        match self {
            GitError::GaveUp { .. } | GitError::TimedOut { .. } => true,
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

/// A token (or a user name and password) for pushing over HTTPS. It reaches git only
/// through the environment of the git process (as an `http.extraHeader` set with
/// `GIT_CONFIG_*` variables), never argv or a URL; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct GitToken {
    user: String,
    secret: String,
}

impl GitToken {
    /// Wraps a token (e.g. read from `FRESHET_GIT_TOKEN` at the command line's edge),
    /// sent with the user `x-access-token`, which GitHub, GitLab and Gitea accept for
    /// tokens.
    pub fn new(token: impl Into<String>) -> Self {
        GitToken {
            user: "x-access-token".into(),
            secret: token.into(),
        }
    }

    /// A user name and password (or token), as an Argo CD repository Secret holds
    /// them (`username`, `password`).
    pub fn basic_auth(user: impl Into<String>, password: impl Into<String>) -> Self {
        GitToken {
            user: user.into(),
            secret: password.into(),
        }
    }

    /// The `Authorization` header value git sends: Basic with the user and secret.
    fn basic(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.secret))
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

/// A name and a value for git (an environment variable or a config entry); the value is
/// hidden from `Debug` because it may be a credential.
#[derive(Clone)]
struct Hidden(OsString, OsString);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=***", self.0.to_string_lossy())
    }
}

/// A git working tree.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    remote: String,
    env: Vec<Hidden>,
    /// Config entries passed as `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`.
    config: Vec<Hidden>,
    /// Strings scrubbed from everything relayed (the token and its header); the name
    /// part is unused.
    secrets: Vec<Hidden>,
    token: bool,
    push_attempts: u32,
    timeout: Duration,
}

impl Git {
    /// A working tree at `dir`, pushing to `origin`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Git {
            dir: dir.into(),
            remote: "origin".into(),
            env: Vec::new(),
            config: Vec::new(),
            secrets: Vec::new(),
            token: false,
            push_attempts: DEFAULT_PUSH_ATTEMPTS,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Uses another remote: a name or a URL. It is checked ([`remote::validate_remote`])
    /// before every push; call [`Git::check_push`] to check it before writing anything.
    pub fn remote(mut self, remote: impl Into<String>) -> Self {
        self.remote = remote.into();
        self
    }

    /// Sets an environment variable for every git command (e.g. `GIT_ASKPASS`). This is
    /// the only way credentials reach git.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push(Hidden(key.into(), value.into()));
        self
    }

    /// Authenticates HTTPS pushes and fetches with a token, passed to git as
    /// `http.extraHeader` through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/
    /// `GIT_CONFIG_VALUE_n` in its environment (appended to any entries the caller's
    /// environment already has). [`Git::push`] refuses to send it over plain `http://`
    /// except to a loopback address.
    pub fn token(mut self, token: &GitToken) -> Self {
        let basic = token.basic();
        self.config.push(Hidden(
            "http.extraHeader".into(),
            format!("Authorization: Basic {basic}").into(),
        ));
        self.secrets
            .push(Hidden(OsString::new(), token.secret.clone().into()));
        self.secrets.push(Hidden(OsString::new(), basic.into()));
        self.token = true;
        self
    }

    /// How long one git process may run before it is killed, clamped to
    /// [`TIMEOUT_RANGE`]. The default is [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(TIMEOUT_RANGE.0, TIMEOUT_RANGE.1);
        self
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
        self.push_attempts = attempts.clamp(1, 100);
        self
    }

    /// Clones `url` into `into` (which must not exist yet), checking out `branch` (the
    /// remote's default branch when `None`), with this value's settings (environment,
    /// token, timeout); returns the [`Git`] of the clone. The URL and branch are
    /// validated first, so neither reaches git as an option.
    pub async fn clone_into(
        &self,
        url: &str,
        into: &Path,
        branch: Option<&str>,
    ) -> Result<Git, GitError> {
        remote::validate_remote(url)?;
        if self.token {
            remote::token_destination(url)?;
        }
        let into_text = into.to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec!["clone", "--quiet", "--no-tags"];
        if let Some(b) = branch {
            remote::validate_branch(b)?;
            args.extend(["--branch", b]);
        }
        args.extend(["--", url, &into_text]);
        self.run(&args, None).await?;
        let mut git = self.clone();
        git.dir = into.to_owned();
        Ok(git)
    }

    /// The working tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `text` scrubbed of URL credentials and of this tree's secrets, escaped, bounded.
    fn relay(&self, text: &str, max_bytes: usize) -> String {
        let secrets: Vec<&str> = self
            .secrets
            .iter()
            .filter_map(|Hidden(_, v)| v.to_str())
            .collect();
        redact::relay(text, &secrets, max_bytes)
    }

    /// The remote as it may be shown.
    fn shown_remote(&self) -> String {
        self.relay(&self.remote, 256)
    }

    /// The `GIT_CONFIG_*` variables: the caller's inherited entries are kept, freshet's
    /// come after them.
    fn config_env(&self) -> Vec<(OsString, OsString)> {
        let inherited: usize = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .filter(|n| *n <= 1000)
            .unwrap_or(0);
        let stall = self.timeout.as_secs().max(1).to_string();
        let ours = self.config.iter().cloned().chain([
            Hidden("http.lowSpeedLimit".into(), "1".into()),
            Hidden("http.lowSpeedTime".into(), stall.into()),
        ]);
        let mut vars = Vec::new();
        let mut count = inherited;
        for Hidden(key, value) in ours {
            vars.push((format!("GIT_CONFIG_KEY_{count}").into(), key));
            vars.push((format!("GIT_CONFIG_VALUE_{count}").into(), value));
            count += 1;
        }
        vars.push(("GIT_CONFIG_COUNT".into(), count.to_string().into()));
        vars
    }

    /// Runs `git -C dir args…`, feeding `input` on stdin, killed after the timeout.
    async fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, GitError> {
        let shown = || self.relay(&args.join(" "), 512);
        let mut command = tokio::process::Command::new("git");
        command
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_LITERAL_PATHSPECS", "1")
            .envs(self.env.iter().map(|Hidden(k, v)| (k, v)))
            .envs(self.config_env())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(GitError::Spawn)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = tokio::time::timeout(self.timeout, async {
            let feed = async {
                if let (Some(text), Some(mut stdin)) = (input, stdin) {
                    // git may exit without reading (a failing hook); its status says why.
                    let _ = stdin.write_all(text.as_bytes()).await;
                }
            };
            let ((), out, err, status) = tokio::join!(
                feed,
                capture(stdout, STDOUT_MAX_BYTES, 0),
                capture(stderr, STDERR_KEEP_BYTES, STDERR_KEEP_BYTES),
                child.wait()
            );
            (out, err, status)
        })
        .await;
        let Ok((out, err, status)) = finished else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            tracing::warn!(command = %shown(), timeout = ?self.timeout, "git timed out; killed");
            return Err(GitError::TimedOut {
                command: shown(),
                timeout: self.timeout,
            });
        };
        let status = status.map_err(GitError::Spawn)?;
        if out.dropped > 0 {
            return Err(GitError::OutputTooLarge {
                command: shown(),
                limit: STDOUT_MAX_BYTES,
            });
        }
        let stdout = out.text();
        if status.success() {
            tracing::debug!(command = %shown(), "git ok");
            return Ok(stdout);
        }
        let (ours, theirs) = split_remote_lines(&err.text());
        let output = format!("{ours}\n{}\n{theirs}", stdout.trim());
        Err(GitError::Failed {
            command: shown(),
            status: status.to_string(),
            output: self.relay(output.trim(), RELAYED_MAX_BYTES),
        })
    }

    /// [`Git::run`] without stdin, for sibling modules.
    pub(crate) async fn run_checked(&self, args: &[&str]) -> Result<String, GitError> {
        self.run(args, None).await
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
        remote::validate_branch(branch)?;
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

    /// Adds new `files` to the index (a file freshet creates, such as Argo CD's
    /// parameter-override file), so that [`Git::commit`] can commit it.
    pub async fn add(&self, files: &[PathBuf]) -> Result<(), GitError> {
        if files.is_empty() {
            return Ok(());
        }
        let paths: Vec<String> = files.iter().map(|p| pathspec(p)).collect();
        let mut args: Vec<&str> = vec!["add", "--"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args, None).await.map(|_| ())
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

    /// Checks, without changing anything, that a push to `branch` may be attempted: the
    /// remote and branch are valid ([`crate::remote`]), and with a token, none of the
    /// remote's push or fetch URLs is plain `http://` to a host other than loopback (a
    /// loopback one is allowed with a warning). The command line should call this
    /// before writing any file; [`Git::push`] calls it again.
    pub async fn check_push(&self, branch: &str) -> Result<(), GitError> {
        remote::validate_remote(&self.remote)?;
        remote::validate_branch(branch)?;
        if self.token {
            for url in self.remote_urls().await? {
                if remote::token_destination(&url)? {
                    tracing::warn!(
                        url = %self.relay(&url, 256),
                        "sending FRESHET_GIT_TOKEN over plain http (allowed only for loopback addresses)"
                    );
                }
            }
        }
        Ok(())
    }

    /// Every URL git would push to or fetch from for the remote (after `insteadOf`
    /// rewriting); the remote itself when it is not a configured remote's name.
    async fn remote_urls(&self) -> Result<Vec<String>, GitError> {
        let mut urls = Vec::new();
        for args in [
            ["remote", "get-url", "--all", "--push", "--"].as_slice(),
            ["remote", "get-url", "--all", "--"].as_slice(),
        ] {
            let mut args = args.to_vec();
            args.push(&self.remote);
            match self.run(&args, None).await {
                Ok(out) => urls.extend(out.lines().map(str::to_owned)),
                Err(GitError::Failed { .. }) => urls.push(self.remote.clone()),
                Err(e) => return Err(e),
            }
        }
        urls.dedup();
        Ok(urls)
    }

    /// Pushes `HEAD` to `branch` on the remote. When the remote moved, fetches it,
    /// rebases onto it and tries again, up to the configured number of attempts.
    pub async fn push(&self, branch: &str) -> Result<PushOutcome, GitError> {
        self.check_push(branch).await?;
        let refspec = format!("HEAD:refs/heads/{branch}");
        let fetch_spec = format!("refs/heads/{branch}");
        for attempt in 1..=self.push_attempts {
            match self
                .run(&["push", "--porcelain", "--", &self.remote, &refspec], None)
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
                    self.run(&["fetch", "--quiet", "--", &self.remote, &fetch_spec], None)
                        .await?;
                    let commit = self.head().await?;
                    if let Err(e) = self.run(&["rebase", "--quiet", "FETCH_HEAD"], None).await {
                        let _ = self.run(&["rebase", "--abort"], None).await;
                        return Err(GitError::RebaseConflict {
                            remote: self.shown_remote(),
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
            remote: self.shown_remote(),
            branch: branch.to_owned(),
            attempts: self.push_attempts,
        })
    }
}

/// What was read from one of git's pipes: the first bytes, the last bytes, and how many
/// in between were dropped.
#[derive(Default)]
struct Captured {
    head: Vec<u8>,
    tail: Vec<u8>,
    dropped: u64,
}

impl Captured {
    /// The text read; where bytes were dropped, the partial lines on either side of the
    /// cut are dropped too (so a URL cut in half cannot escape scrubbing) and a marker
    /// says how much is missing.
    fn text(&self) -> String {
        if self.dropped == 0 {
            let mut all = self.head.clone();
            all.extend_from_slice(&self.tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        let head = String::from_utf8_lossy(&self.head);
        let tail = String::from_utf8_lossy(&self.tail);
        let head = head.rsplit_once('\n').map_or("", |(h, _)| h);
        let tail = tail.split_once('\n').map_or("", |(_, t)| t);
        format!("{head}\n[… {} bytes not shown …]\n{tail}", self.dropped)
    }
}

/// Reads `pipe` to its end, keeping the first `head_cap` and the last `tail_cap` bytes.
async fn capture<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    head_cap: usize,
    tail_cap: usize,
) -> Captured {
    let mut captured = Captured::default();
    let Some(mut pipe) = pipe else {
        return captured;
    };
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let take = (head_cap - captured.head.len()).min(n);
        captured.head.extend_from_slice(&buf[..take]);
        captured.tail.extend_from_slice(&buf[take..n]);
        if captured.tail.len() > tail_cap {
            let cut = captured.tail.len() - tail_cap;
            captured.tail.drain(..cut);
            captured.dropped += cut as u64;
        }
    }
    captured
}

/// git's own lines and the lines a remote sent (`remote: …`), apart: a message puts
/// the remote's last, so a chatty or hostile remote cannot push git's diagnosis out of
/// a bounded message.
fn split_remote_lines(stderr: &str) -> (String, String) {
    let (theirs, ours): (Vec<&str>, Vec<&str>) = stderr
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .partition(|l| l.starts_with("remote:"));
    (ours.join("\n"), theirs.join("\n"))
}

/// A path as git should see it: absolute (canonical when it exists), since git runs
/// with `-C` in the working tree rather than in the caller's directory. Paths are
/// literal (`GIT_LITERAL_PATHSPECS`): a file named `*.yaml` matches only itself.
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

    #[tokio::test]
    async fn a_failure_never_relays_the_token_even_when_git_prints_it() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path()).token(&GitToken::new("s3cret-token"));
        // git echoes the unknown subcommand, which holds the token.
        let err = git
            .run(&["s3cret-token-eC1hY2Nlc3MtdG9rZW46czNjcmV0LXRva2Vu"], None)
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret-token"), "{err}");
        assert!(
            !err.contains("eC1hY2Nlc3MtdG9rZW46czNjcmV0LXRva2Vu"),
            "{err}"
        );
    }

    #[test]
    fn a_capture_cut_in_the_middle_drops_the_partial_lines() {
        let captured = Captured {
            head: b"fatal: one\nhttp://user:pa".to_vec(),
            tail: b"ss@host/r\nlast line".to_vec(),
            dropped: 99,
        };
        assert_eq!(
            captured.text(),
            "fatal: one\n[… 99 bytes not shown …]\nlast line"
        );
    }

    #[test]
    fn git_lines_come_before_the_remote_lines() {
        assert_eq!(
            split_remote_lines("remote: junk\nremote: more\nerror: failed to push\n\n"),
            (
                "error: failed to push".to_owned(),
                "remote: junk\nremote: more".to_owned()
            )
        );
    }

    #[test]
    fn timeouts_are_clamped() {
        let git = Git::new(".").timeout(Duration::ZERO);
        assert_eq!(git.timeout, TIMEOUT_RANGE.0);
        let git = Git::new(".").timeout(Duration::from_secs(u64::MAX));
        assert_eq!(git.timeout, TIMEOUT_RANGE.1);
    }
}
