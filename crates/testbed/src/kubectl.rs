//! The real `kubectl`, for tests that prove things through an independent client.
//!
//! Owns running `/usr/bin/kubectl` (or `$FRESHET_TEST_KUBECTL`) with optional stdin
//! and returning its stdout, panicking with kubectl's stderr when it fails: in a test
//! a failing kubectl step is a failed test.

/// The kubectl to run: `$FRESHET_TEST_KUBECTL`, else `/usr/bin/kubectl`.
pub fn binary() -> String {
    std::env::var("FRESHET_TEST_KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into())
}

/// Runs kubectl with `args` (prefix `--kubeconfig FILE` yourself when needed),
/// feeding `stdin`; returns stdout, panics when kubectl fails.
pub async fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("stdin");
    }
    drop(input);
    let out = child.wait_with_output().await.expect("kubectl finishes");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
