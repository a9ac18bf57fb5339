//! The docker credential helper protocol: `docker-credential-<name> get`.
//!
//! Owns running one helper: the server address on stdin, `{"Username","Secret"}` on
//! stdout, killed after a timeout, its failure described only by a shape that
//! cannot carry a secret (exit status and how much it printed; never the text). A
//! helper binary that is not installed is named as missing. It must not read config
//! files or decide which helper applies: that is the `credentials` module's.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::secret::{Credential, Secret};

/// Why a helper gave no credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelperError {
    /// The helper binary is not installed.
    #[error("{program} is not installed (not found on PATH)")]
    Missing { program: String },
    /// The helper did not answer in time and was killed.
    #[error("{program} did not answer within {after:?} and was stopped")]
    Timeout { program: String, after: Duration },
    /// The helper could not be started or talked to.
    #[error("{program} could not be run: {kind}")]
    Spawn { program: String, kind: String },
    /// The helper failed. Its output is described, never quoted.
    #[error(
        "{program} exited with {status} (printed {stdout_bytes} bytes on stdout and {stderr_bytes} on stderr, not shown as they may hold secrets)"
    )]
    Failed {
        program: String,
        status: String,
        stdout_bytes: usize,
        stderr_bytes: usize,
    },
    /// The helper answered something that is not `{"Username","Secret"}`.
    #[error("{program} answered something that is not a credential ({bytes} bytes)")]
    Malformed { program: String, bytes: usize },
}

/// What a helper said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Found(Credential),
    /// The protocol's "credentials not found" answer.
    NotFound,
}

/// The protocol's answer for "no credentials for this server" (docker-credential-
/// helpers' `ErrCredentialsNotFound`), compared whole.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// How to run helpers.
#[derive(Debug, Clone)]
pub(crate) struct HelperRunner {
    pub(crate) timeout: Duration,
    /// Directories searched for `docker-credential-*` (`None`: the `PATH`).
    pub(crate) search_path: Option<Vec<PathBuf>>,
}

impl Default for HelperRunner {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            search_path: None,
        }
    }
}

impl HelperRunner {
    fn program(&self, helper: &str) -> (String, PathBuf) {
        let name = format!("docker-credential-{helper}");
        let path = match &self.search_path {
            Some(dirs) => dirs
                .iter()
                .map(|d| d.join(&name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from("/nonexistent").join(&name)),
            None => PathBuf::from(&name),
        };
        (name, path)
    }

    /// Runs `docker-credential-<helper> get` for `server`.
    pub(crate) async fn get(&self, helper: &str, server: &str) -> Result<Answer, HelperError> {
        let (program, path) = self.program(helper);
        let mut child = tokio::process::Command::new(&path)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => HelperError::Missing {
                    program: program.clone(),
                },
                kind => HelperError::Spawn {
                    program: program.clone(),
                    kind: kind.to_string(),
                },
            })?;
        let talk = async {
            if let Some(mut stdin) = child.stdin.take() {
                // A helper that exits without reading stdin is judged by its answer.
                let _ = stdin.write_all(server.as_bytes()).await;
            }
            child.wait_with_output().await
        };
        let output = match tokio::time::timeout(self.timeout, talk).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(HelperError::Spawn {
                    program,
                    kind: e.kind().to_string(),
                });
            }
            // Dropping the child (kill_on_drop) stops the helper.
            Err(_) => {
                return Err(HelperError::Timeout {
                    program,
                    after: self.timeout,
                });
            }
        };
        interpret(&program, output.status, &output.stdout, &output.stderr)
    }
}

/// Reads a helper's exit status and output.
fn interpret(
    program: &str,
    status: std::process::ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Answer, HelperError> {
    if !status.success() {
        if String::from_utf8_lossy(stdout).trim() == NOT_FOUND {
            return Ok(Answer::NotFound);
        }
        return Err(HelperError::Failed {
            program: program.to_owned(),
            status: status
                .code()
                .map_or("a signal".into(), |c| format!("status {c}")),
            stdout_bytes: stdout.len(),
            stderr_bytes: stderr.len(),
        });
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Response {
        username: String,
        secret: String,
    }
    let r: Response = serde_json::from_slice(stdout).map_err(|_| HelperError::Malformed {
        program: program.to_owned(),
        bytes: stdout.len(),
    })?;
    Ok(Answer::Found(if r.username == "<token>" {
        Credential::IdentityToken(Secret::new(r.secret))
    } else {
        Credential::Basic {
            username: r.username,
            password: Secret::new(r.secret),
        }
    }))
}

/// Fuzzing entry point, not an API: a helper's answer, given its exit code and output.
#[doc(hidden)]
#[cfg(unix)]
pub fn fuzz_interpret(
    code: u8,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Option<Credential>, HelperError> {
    use std::os::unix::process::ExitStatusExt as _;
    let status = std::process::ExitStatus::from_raw(i32::from(code) << 8);
    interpret("docker-credential-fuzz", status, stdout, stderr).map(|a| match a {
        Answer::Found(c) => Some(c),
        Answer::NotFound => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;

    fn helper(dir: &std::path::Path, name: &str, script: &str) {
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn runner(dir: &std::path::Path, timeout: Duration) -> HelperRunner {
        HelperRunner {
            timeout,
            search_path: Some(vec![dir.to_owned()]),
        }
    }

    #[test]
    fn failures_are_described_by_shape_never_by_text() {
        let exit1 = std::process::ExitStatus::from_raw(1 << 8);
        let err =
            interpret("docker-credential-x", exit1, b"", b"token=hunter2 expired").unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("status 1") && shown.contains("21 on stderr"),
            "{shown}"
        );
        assert_eq!(
            interpret(
                "h",
                exit1,
                b"credentials not found in native keychain\n",
                b""
            ),
            Ok(Answer::NotFound)
        );
        let ok = std::process::ExitStatus::from_raw(0);
        assert_eq!(
            interpret("h", ok, br#"{"Username":"<token>","Secret":"r"}"#, b""),
            Ok(Answer::Found(Credential::IdentityToken(Secret::new("r"))))
        );
        assert!(matches!(
            interpret("h", ok, b"secret-but-not-json", b""),
            Err(HelperError::Malformed { bytes: 19, .. })
        ));
    }

    #[tokio::test]
    async fn a_helper_that_never_answers_is_killed_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        helper(dir.path(), "hang", "exec sleep 1000");
        let err = runner(dir.path(), Duration::from_millis(200))
            .get("hang", "r.example")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            HelperError::Timeout {
                program: "docker-credential-hang".into(),
                after: Duration::from_millis(200)
            }
        );
        assert!(
            err.to_string().contains("200ms"),
            "states the real timeout: {err}"
        );
    }

    #[tokio::test]
    async fn a_missing_helper_binary_is_named_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = runner(dir.path(), Duration::from_secs(5))
            .get("gone", "r.example")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            HelperError::Missing {
                program: "docker-credential-gone".into()
            }
        );
        assert!(err.to_string().contains("not installed"), "{err}");
    }

    #[tokio::test]
    async fn a_working_helper_answers_for_the_server_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        helper(
            dir.path(),
            "echo",
            r#"read server; printf '{"Username":"u-%s","Secret":"s"}' "$server""#,
        );
        let got = runner(dir.path(), Duration::from_secs(10))
            .get("echo", "r.example")
            .await
            .unwrap();
        assert_eq!(got, Answer::Found(Credential::basic("u-r.example", "s")));
    }
}
