//! `freshet-apiserver serve` as a person runs it: start the binary, point the
//! real kubectl at the kubeconfig it writes, create a Deployment from the
//! local registry and watch it roll out with real digests.

use std::process::Stdio;
use std::time::Duration;

use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

async fn kubectl(kubeconfig: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    let kubeconfig = kubeconfig.to_str().expect("utf-8 path");
    let args: Vec<&str> = ["--kubeconfig", kubeconfig]
        .iter()
        .chain(args)
        .copied()
        .collect();
    freshet_testbed::kubectl::kubectl(&args, stdin).await
}

#[tokio::test]
async fn serve_runs_until_killed_and_kubectl_rolls_out_a_deployment_with_real_digests() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let alpine = fixtures::seed_alpine(&pusher).await.expect("alpine");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut server = Command::new(env!("CARGO_BIN_EXE_freshet-apiserver"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--nodes",
            "amd64,arm64",
            "--write-kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("freshet-apiserver starts");
    let stdout = server.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the server reports in time")
        .expect("stdout readable")
        .expect("a line");
    assert!(
        first.starts_with("freshet test bed serving https://127.0.0.1:"),
        "{first}"
    );

    let nodes = kubectl(&kubeconfig, &["get", "nodes", "-o", "name"], None).await;
    assert_eq!(
        nodes.lines().collect::<Vec<_>>(),
        ["node/testbed-node-1", "node/testbed-node-2"]
    );
    let image = format!("{}/library/alpine:3.19.1", registry.host());
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: demo}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: demo}}}}\n  template:\n    metadata: {{labels: {{app: demo}}}}\n    spec:\n      containers: [{{name: app, image: \"{image}\"}}]\n"
    );
    kubectl(&kubeconfig, &["apply", "-f", "-"], Some(&manifest)).await;
    let status = kubectl(
        &kubeconfig,
        &["rollout", "status", "deployment/demo", "--timeout=60s"],
        None,
    )
    .await;
    assert!(status.contains("successfully rolled out"), "{status}");
    let ids = kubectl(
        &kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            "app=demo",
            "-o",
            "jsonpath={.items[*].status.containerStatuses[0].imageID}",
        ],
        None,
    )
    .await;
    let want = format!(
        "{}/library/alpine@{}",
        registry.host(),
        alpine.digest("3.19.1")
    );
    assert_eq!(
        ids.split_whitespace().collect::<Vec<_>>(),
        [want.as_str(), want.as_str()]
    );

    server.kill().await.expect("kill the server");
}
