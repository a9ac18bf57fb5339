//! The real `git`, for tests that set up and inspect repositories.
//!
//! Owns the two helpers every git-facing test needs: running `git -C DIR ...`
//! synchronously (panicking with git's stderr when it fails, since a set-up step
//! failing is a broken test) and giving a repository a committer identity.

use std::path::Path;
use std::process::Command;

/// Runs `git -C dir args...` and returns its trimmed stdout; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sets a committer identity (and no signing) in the repository at `dir`.
pub fn identify(dir: &Path) {
    git(dir, &["config", "user.name", "freshet test"]);
    git(dir, &["config", "user.email", "test@freshet.invalid"]);
    git(dir, &["config", "commit.gpgsign", "false"]);
}
