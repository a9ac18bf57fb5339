//! The rollout-safety metrics of `run --once --metrics-file`, end to end with the
//! built binary, the API test bed (whose kubelet crash-loops one digest) and the
//! real registry: a pass that starts one rollout and queues another (pacing: one
//! per 6 h), then a pass that rolls the crash-looping rollout back and holds its
//! digest while the other stays queued. The textfile says so after each pass.

mod common;

use std::path::Path;
use std::process::Output;

use common::{admin, deploy};
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use freshet_testbed::wait::wait_for;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

async fn freshet(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(args)
        .env_remove("FRESHET_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env("HOME", "/nonexistent-home")
        .output()
        .await
        .expect("run freshet")
}

/// The value of the sample `name` (no labels) in a Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

/// Whether a pod of `app` waits in `CrashLoopBackOff`.
async fn crash_looping(client: &kube::Client, app: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods list");
    list.items
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .any(|r| r == "CrashLoopBackOff")
}

/// Runs freshet with `args` and returns its exit code, the rollbacks, holds and
/// queue length from the metrics file, and the JSON report.
async fn run(args: &[&str], metrics_file: &Path) -> (Option<i32>, [f64; 3], String) {
    let out = freshet(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = std::fs::read_to_string(metrics_file)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let figures = [
        "freshet_rollbacks_total",
        "freshet_holds",
        "freshet_rollout_queue_length",
    ]
    .map(|name| sample(&text, name).unwrap_or_else(|| panic!("{name} in {text}")));
    (out.status.code(), figures, stdout)
}

#[tokio::test]
async fn the_metrics_file_counts_rollbacks_holds_and_queued_rollouts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let stable = api_fx.image("stable").clone();
    let bad = pusher
        .push(
            &stable.repo,
            "candidate",
            &stable.spec.clone().generation("bad"),
        )
        .await
        .unwrap();
    let cluster = TestCluster::start(ClusterOptions::default().crash_image(&bad.digest))
        .await
        .unwrap();
    let client = admin(&cluster).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "freshet"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let policy = json!({"freshet.io/policy": "digest"});
    deploy(&client, "a-rolls", &image, policy.clone()).await;
    deploy(&client, "b-waits", &image, policy).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("freshet.yaml");
    std::fs::write(&config, "pacing: {max: 1, per: 6h}\n").unwrap();
    let metrics_file = dir.path().join("freshet.prom");
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    let args = [
        "run",
        "--once",
        "--kubeconfig",
        &kubeconfig,
        "--config",
        config.to_str().unwrap(),
        "--metrics-file",
        metrics_file.to_str().unwrap(),
        "--output",
        "json",
    ];
    // Baselines: no rollout, nothing held or queued.
    let (code, figures, out) = run(&args, &metrics_file).await;
    assert_eq!((code, figures), (Some(0), [0.0, 0.0, 0.0]), "{out}");

    // The tag moves to a crash-looping digest: one slot, so one rolls, one waits.
    pusher.tag(&bad, "stable").await.unwrap();
    let (code, figures, out) = run(&args, &metrics_file).await;
    assert_eq!((code, figures), (Some(0), [0.0, 0.0, 1.0]), "{out}");
    wait_for("a-rolls crash-looping", || async {
        crash_looping(&client, "a-rolls").await.then_some(())
    })
    .await;

    // The rollout is judged failed (once the Deployment's status shows the new
    // revision: until then a pass reports it still following) and rolled back, exit
    // 1, its digest held; the other still waits for the budget.
    let (code, figures, out) = wait_for("a pass that rolls a-rolls back", || async {
        let r = run(&args, &metrics_file).await;
        (!r.2.contains("\"following\"")).then_some(r)
    })
    .await;
    assert!(out.contains("\"rolled-back\""), "{out}");
    assert_eq!((code, figures), (Some(1), [1.0, 1.0, 1.0]), "{out}");
}
