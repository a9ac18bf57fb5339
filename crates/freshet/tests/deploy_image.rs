//! `deploy/` with the real image: `kubectl apply -k deploy/` (the CronJob mode) and
//! the controller overlay, applied to the API test bed through a kustomize overlay
//! that points the pinned image at the test registry (as a user pins a mirror). The
//! test bed's kubelet pulls that image from the real registry, on amd64 nodes only.
//! Then the CronJob's pod is run for real: its arguments, from the image's root
//! filesystem under `chroot` as the non-root user, with its ServiceAccount's token and
//! its config file; it finds its own CronJob and refreshes a workload.
//!
//! These live with the binary's tests (not in crates/cluster/tests/deploy.rs) because
//! the image is built from the binary under test.

mod common;
mod image_support;

use std::path::Path;

use common::admin;
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::kubectl::kubectl;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use freshet_testbed::wait::wait_for;
use image_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

async fn pods(client: &kube::Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The `imageID`s of a pod's containers, once every one is set.
fn image_ids(pod: &Pod) -> Option<Vec<String>> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let ids: Vec<String> = statuses
        .iter()
        .map(|s| s.image_id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    (!ids.is_empty() && ids.len() == statuses.len()).then_some(ids)
}

/// The `kubernetes.io/arch` label of the node `pod` runs on.
async fn node_arch(client: &kube::Client, pod: &Pod) -> String {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .expect("scheduled");
    let node = Api::<Node>::all(client.clone())
        .get(&node)
        .await
        .expect("node");
    node.metadata.labels.unwrap_or_default()["kubernetes.io/arch"].clone()
}

struct Setup {
    image: Image,
    registry: RegistryServer,
    cluster: TestCluster,
    kubeconfig: String,
    admin: kube::Client,
    pinned: String,
    dir: tempfile::TempDir,
}

async fn setup(base: &Path) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let image = image();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let repository = format!("{}/freshet", registry.host());
    let pinned = push(&image, &repository);
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    let admin = admin(&cluster).await;
    let dir = tempfile::tempdir().unwrap();
    let overlay = overlay(dir.path(), base, &repository, &image.digest);
    let rendered = kubectl(&["kustomize", overlay.to_str().unwrap()], None).await;
    assert!(rendered.contains(&format!("image: {pinned}")), "{rendered}");
    kubectl(
        &[
            "--kubeconfig",
            &kubeconfig,
            "apply",
            "-k",
            overlay.to_str().unwrap(),
        ],
        None,
    )
    .await;
    Setup {
        image,
        registry,
        cluster,
        kubeconfig,
        admin,
        pinned,
        dir,
    }
}

#[tokio::test]
async fn apply_k_deploy_installs_the_cronjob_whose_pulled_image_refreshes_as_its_service_account() {
    let s = setup(&repo_root().join("deploy")).await;
    let pusher = Pusher::new(&s.registry).expect("pusher");
    let mut api = fixtures::seed_api(&pusher).await.expect("seed api");
    let app_image = format!("{}/team/api:stable", s.registry.host());
    common::deploy(
        &s.admin,
        "web",
        &app_image,
        json!({"freshet.io/policy": "digest"}),
    )
    .await;

    // A Job from the CronJob, as `kubectl create job --from` does; the kubelet pulls
    // the pinned image from the registry.
    kubectl(
        &[
            "--kubeconfig",
            &s.kubeconfig,
            "-n",
            "freshet",
            "create",
            "job",
            "--from=cronjob/freshet",
            "freshet-manual",
        ],
        None,
    )
    .await;
    let pod = wait_for("the Job's pod to pull the image", || async {
        let pod = pods(&s.admin, "freshet", "job-name=freshet-manual")
            .await
            .into_iter()
            .next()?;
        image_ids(&pod).map(|ids| (pod, ids))
    })
    .await;
    let (pod, ids) = pod;
    assert_eq!(
        ids,
        [s.pinned.as_str()],
        "containerd reports repo@index digest"
    );
    assert_eq!(node_arch(&s.admin, &pod).await, "amd64");
    let pulled = s.cluster.pulls();
    assert!(
        pulled
            .iter()
            .any(|p| p.image == s.pinned && p.pulled.digest == s.image.digest),
        "{pulled:?}"
    );

    // Run that pod for real: the image's root filesystem, the pod's arguments, its
    // config file where the ConfigMap is mounted, its ServiceAccount's token.
    let root = s.image.unpack("amd64", s.dir.path());
    let config: ConfigMap = Api::namespaced(s.admin.clone(), "freshet")
        .get("freshet-config")
        .await
        .unwrap();
    std::fs::create_dir_all(root.join("etc/freshet")).unwrap();
    std::fs::write(
        root.join("etc/freshet/freshet.yaml"),
        &config.data.unwrap()["freshet.yaml"],
    )
    .unwrap();
    let sa = s.cluster.service_account_kubeconfig("freshet", "freshet");
    s.cluster
        .write_kubeconfig(&root.join("tmp/kubeconfig"), &sa)
        .unwrap();
    if is_root() {
        // Private to the pod's user, as the kubelet mounts a token.
        std::os::unix::fs::chown(root.join("tmp/kubeconfig"), Some(UID), Some(UID)).unwrap();
    }
    let spec: Value = serde_json::to_value(pod.spec.as_ref().unwrap()).unwrap();
    let container = &spec["containers"][0];
    let mut args: Vec<String> = vec![format!("/{BIN}")];
    args.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    args.extend([
        "--kubeconfig=/tmp/kubeconfig".into(),
        "--output=json".into(),
    ]);
    let pod_name = pod.metadata.name.clone().unwrap();
    let env = [
        ("POD_NAMESPACE", "freshet"),
        ("POD_NAME", pod_name.as_str()),
        ("HOME", "/home/nonroot"),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    // The test bed serves from this test's runtime: wait for freshet without blocking it.
    let run = async |label: &str| {
        let out = tokio::process::Command::from(chroot(&root, &argv, &env))
            .output()
            .await
            .expect("chroot runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{label}: {stderr}");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        (report, stderr)
    };
    let (first, log) = run("first pass").await;
    assert!(
        log.contains("freshet's own workload") && log.contains("\"name\":\"freshet\""),
        "it found its own CronJob through its pod and Job: {log}"
    );
    let web = |r: &Value| {
        r["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "web")
            .cloned()
            .unwrap_or_else(|| panic!("web in {r}"))
    };
    assert_eq!(web(&first)["status"], "recorded", "{first}");
    fixtures::move_tag(&pusher, &mut api, "stable", "2")
        .await
        .unwrap();
    let (second, _) = run("second pass").await;
    assert_eq!(web(&second)["status"], "refreshed", "{second}");
    let d: Deployment = Api::namespaced(s.admin.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let audit = d.metadata.annotations.unwrap()["freshet.io/refreshed"].clone();
    assert!(audit.contains(api.digest("stable")), "{audit}");
}

#[tokio::test]
async fn the_controller_overlay_runs_two_replicas_of_the_pinned_image_on_amd64_nodes() {
    let s = setup(&repo_root().join("deploy/overlays/controller")).await;
    let running = wait_for("both replicas pulled and running", || async {
        let pods = pods(&s.admin, "freshet", "app.kubernetes.io/name=freshet").await;
        let ready: Vec<Pod> = pods
            .into_iter()
            .filter(|p| {
                image_ids(p).is_some()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .collect();
        (ready.len() == 2).then_some(ready)
    })
    .await;
    for pod in &running {
        assert_eq!(image_ids(pod).unwrap(), [s.pinned.as_str()]);
        assert_eq!(node_arch(&s.admin, pod).await, "amd64", "kept off arm64");
    }
    let pulls = s.cluster.pulls();
    assert!(
        pulls
            .iter()
            .filter(|p| p.image == s.pinned)
            .all(|p| p.pulled.digest == s.image.digest),
        "{pulls:?}"
    );
}
