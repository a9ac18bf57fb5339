//! Fidelity proven with the real kubectl: every check here drives the test bed
//! only through `/usr/bin/kubectl` (or `$FRESHET_TEST_KUBECTL`, to run the
//! suite with a second version) and expects what a real cluster answers.

mod common;

use std::path::Path;

use common::{fake_cluster, kubectl, kubectl_fails, kubectl_output, wait_for};
use freshet_apiserver::{ClusterOptions, TestCluster};
use serde_json::Value;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: api
        image: registry.test/team/api:1.0.0
        env:
        - {name: A, value: "1"}
      - name: sidecar
        image: registry.test/team/side:1
"#;

async fn apply(kc: &Path, manifest: &str) -> String {
    let (ok, out, err) = kubectl_output(kc, &["apply", "-f", "-"], Some(manifest)).await;
    assert!(ok, "kubectl apply failed: {err}");
    out
}

async fn get_json(kc: &Path, what: &str) -> Value {
    let out = kubectl(kc, &["get", what, "-o", "json"]).await;
    serde_json::from_str(&out).expect("kubectl prints JSON")
}

/// Waits until `kubectl get what -o jsonpath=path` prints `want`.
async fn wait_jsonpath(kc: &Path, what: &str, path: &str, want: &str) {
    let jsonpath = format!("jsonpath={path}");
    wait_for(&format!("{what} {path} = {want}"), || {
        let jsonpath = jsonpath.clone();
        async move {
            let (ok, out, _) = kubectl_output(kc, &["get", what, "-o", &jsonpath], None).await;
            (ok && out.trim() == want).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn apply_creates_then_updates_and_get_prints_json_yaml_and_selects_labels() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    assert_eq!(
        apply(kc, DEPLOYMENT).await.trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        apply(kc, &DEPLOYMENT.replace("replicas: 2", "replicas: 3"))
            .await
            .trim(),
        "deployment.apps/web configured"
    );
    assert_eq!(
        apply(kc, &DEPLOYMENT.replace("replicas: 2", "replicas: 3"))
            .await
            .trim(),
        "deployment.apps/web unchanged"
    );
    let d = get_json(kc, "deployment/web").await;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let yaml = kubectl(kc, &["get", "deployment", "web", "-o", "yaml"]).await;
    assert!(yaml.contains("replicas: 3"), "{yaml}");
    assert!(yaml.contains("kind: Deployment"), "{yaml}");
    assert_eq!(
        kubectl(kc, &["get", "deploy", "-l", "app=web", "-o", "name"])
            .await
            .trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        kubectl(kc, &["get", "deploy", "-l", "app=other", "-o", "name"])
            .await
            .trim(),
        ""
    );
    // The server prints tables like a real cluster.
    let table = kubectl(kc, &["get", "deploy"]).await;
    assert!(
        table.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );
    let err = kubectl_fails(kc, &["get", "deploy", "nope"]).await;
    assert!(
        err.contains(r#"Error from server (NotFound): deployments.apps "nope" not found"#),
        "{err}"
    );
}

#[tokio::test]
async fn annotate_and_label() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    apply(kc, DEPLOYMENT).await;
    assert_eq!(
        kubectl(kc, &["annotate", "deploy", "web", "freshet.dev/note=hi"])
            .await
            .trim(),
        "deployment.apps/web annotated"
    );
    assert_eq!(
        kubectl(kc, &["label", "deploy", "web", "tier=front"])
            .await
            .trim(),
        "deployment.apps/web labeled"
    );
    let err = kubectl_fails(kc, &["label", "deploy", "web", "tier=back"]).await;
    assert!(err.contains("already has a value (front)"), "{err}");
    kubectl(kc, &["label", "deploy", "web", "tier=back", "--overwrite"]).await;
    let d = get_json(kc, "deploy/web").await;
    assert_eq!(d["metadata"]["annotations"]["freshet.dev/note"], "hi");
    assert_eq!(d["metadata"]["labels"]["tier"], "back");
    assert_eq!(
        d["metadata"]["generation"], 1,
        "metadata changes keep the generation"
    );
    assert_eq!(
        kubectl(kc, &["get", "deploy", "-l", "tier=back", "-o", "name"])
            .await
            .trim(),
        "deployment.apps/web"
    );
    kubectl(kc, &["label", "deploy", "web", "tier-"]).await;
    assert!(
        get_json(kc, "deploy/web").await["metadata"]["labels"]
            .get("tier")
            .is_none()
    );
}

#[tokio::test]
async fn set_image_and_set_env_patch_one_container() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    apply(kc, DEPLOYMENT).await;
    kubectl(
        kc,
        &[
            "set",
            "image",
            "deployment/web",
            "api=registry.test/team/api:1.0.1",
        ],
    )
    .await;
    kubectl(
        kc,
        &["set", "env", "deployment/web", "-c", "api", "FOO=bar"],
    )
    .await;
    let d = get_json(kc, "deploy/web").await;
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "registry.test/team/api:1.0.1");
    assert_eq!(
        containers[0]["env"],
        serde_json::json!([{"name": "A", "value": "1"}, {"name": "FOO", "value": "bar"}])
    );
    assert_eq!(containers[1]["image"], "registry.test/team/side:1");
    assert!(containers[1].get("env").is_none());
    assert_eq!(d["metadata"]["generation"], 3);
    kubectl(kc, &["set", "env", "deployment/web", "-c", "api", "A-"]).await;
    let d = get_json(kc, "deploy/web").await;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        serde_json::json!([{"name": "FOO", "value": "bar"}])
    );
}

#[tokio::test]
async fn rollout_restart_status_history_and_undo() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    apply(kc, DEPLOYMENT).await;
    kubectl(
        kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    wait_jsonpath(
        kc,
        "deploy/web",
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        "1",
    )
    .await;

    kubectl(
        kc,
        &[
            "set",
            "image",
            "deployment/web",
            "api=registry.test/team/api:1.0.1",
        ],
    )
    .await;
    let status = kubectl(
        kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(status.contains("successfully rolled out"), "{status}");
    wait_jsonpath(
        kc,
        "deploy/web",
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        "2",
    )
    .await;

    assert_eq!(
        kubectl(kc, &["rollout", "restart", "deployment/web"])
            .await
            .trim(),
        "deployment.apps/web restarted"
    );
    let d = get_json(kc, "deploy/web").await;
    let restarted =
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .expect("restartedAt");
    assert!(
        restarted.ends_with('Z') || restarted.contains('+'),
        "{restarted}"
    );
    kubectl(
        kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    wait_jsonpath(
        kc,
        "deploy/web",
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        "3",
    )
    .await;

    let history = kubectl(kc, &["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"], "{history}");
    let rev2 = kubectl(
        kc,
        &["rollout", "history", "deployment/web", "--revision=2"],
    )
    .await;
    assert!(rev2.contains("registry.test/team/api:1.0.1"), "{rev2}");

    // Undo goes back to revision 2's template (without restartedAt) as revision 4.
    assert_eq!(
        kubectl(kc, &["rollout", "undo", "deployment/web"])
            .await
            .trim(),
        "deployment.apps/web rolled back"
    );
    wait_jsonpath(
        kc,
        "deploy/web",
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        "4",
    )
    .await;
    let d = get_json(kc, "deploy/web").await;
    assert!(
        d["spec"]["template"]["metadata"]
            .get("annotations")
            .is_none(),
        "{d}"
    );
    kubectl(
        kc,
        &["rollout", "undo", "deployment/web", "--to-revision=1"],
    )
    .await;
    wait_jsonpath(
        kc,
        "deploy/web",
        "{.spec.template.spec.containers[0].image}",
        "registry.test/team/api:1.0.0",
    )
    .await;
    kubectl(
        kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    let history = kubectl(kc, &["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["3", "4", "5"], "{history}");
}

#[tokio::test]
async fn scale_delete_and_events() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    apply(kc, DEPLOYMENT).await;
    assert_eq!(
        kubectl(kc, &["scale", "deployment/web", "--replicas=3"])
            .await
            .trim(),
        "deployment.apps/web scaled"
    );
    wait_jsonpath(kc, "deploy/web", "{.status.readyReplicas}", "3").await;
    let pods = kubectl(kc, &["get", "pods", "-l", "app=web", "-o", "name"]).await;
    assert_eq!(pods.lines().count(), 3, "{pods}");
    let events = kubectl(kc, &["get", "events"]).await;
    assert!(events.contains("ScalingReplicaSet"), "{events}");
    assert!(events.contains("Scaled up replica set web-"), "{events}");
    let events_v1 = kubectl(kc, &["get", "events.v1.events.k8s.io", "-o", "json"]).await;
    assert!(events_v1.contains("\"regarding\""), "{events_v1}");
    // kubectl 1.37 adds " from default namespace".
    let deleted = kubectl(kc, &["delete", "deployment", "web"]).await;
    assert!(
        deleted.starts_with("deployment.apps \"web\" deleted"),
        "{deleted}"
    );
    wait_for("the pods to go", || async {
        let (ok, out, _) = kubectl_output(kc, &["get", "pods,rs", "-o", "name"], None).await;
        (ok && out.trim().is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn get_watch_streams_changes() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    kubectl(kc, &["create", "configmap", "first", "--from-literal=a=b"]).await;
    let mut child = tokio::process::Command::new(common::kubectl_path())
        .arg("--kubeconfig")
        .arg(kc)
        .args(["get", "configmaps", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl -w runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("configmap/first")
    );
    kubectl(kc, &["create", "configmap", "second", "--from-literal=a=b"]).await;
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("configmap/second")
    );
    child.kill().await.expect("kill kubectl -w");
}

#[tokio::test]
async fn plain_http_needs_no_credentials() {
    let resolver = std::sync::Arc::new(freshet_apiserver::images::FakeResolver::default());
    let cluster = TestCluster::start(ClusterOptions::default().plain_http().resolver(resolver))
        .await
        .expect("cluster starts");
    assert!(cluster.url().starts_with("http://"));
    let kc = cluster.kubeconfig_path();
    let nodes = kubectl(
        kc,
        &[
            "get",
            "nodes",
            "-l",
            "kubernetes.io/arch=arm64",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(nodes.trim(), "node/testbed-node-3");
    kubectl(kc, &["create", "namespace", "apps"]).await;
    assert_eq!(
        kubectl(kc, &["get", "ns", "apps", "-o", "name"])
            .await
            .trim(),
        "namespace/apps"
    );
}

#[tokio::test]
async fn create_cronjob_then_job_from_it_runs_to_completion() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    let out = kubectl(
        kc,
        &[
            "create",
            "cronjob",
            "nightly",
            "--image=registry.test/team/api:1.0.0",
            "--schedule=0 3 * * *",
            "--",
            "echo",
            "hi",
        ],
    )
    .await;
    assert_eq!(out.trim(), "cronjob.batch/nightly created");
    let cj = get_json(kc, "cronjob/nightly").await;
    assert_eq!(cj["spec"]["schedule"], "0 3 * * *");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    let out = kubectl(kc, &["create", "job", "manual-1", "--from=cronjob/nightly"]).await;
    assert_eq!(out.trim(), "job.batch/manual-1 created");
    let job = get_json(kc, "job/manual-1").await;
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "nightly");
    let waited = kubectl(
        kc,
        &[
            "wait",
            "--for=condition=complete",
            "job/manual-1",
            "--timeout=60s",
        ],
    )
    .await;
    assert_eq!(waited.trim(), "job.batch/manual-1 condition met");
}

#[tokio::test]
async fn typed_create_commands_send_protobuf_that_the_server_decodes() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    for args in [
        vec!["create", "namespace", "apps"],
        vec![
            "create",
            "configmap",
            "cfg",
            "-n",
            "apps",
            "--from-literal=k=v",
        ],
        vec![
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "apps",
            "--from-literal=k=v",
        ],
        vec!["create", "serviceaccount", "freshet", "-n", "apps"],
        vec![
            "create",
            "deployment",
            "api",
            "-n",
            "apps",
            "--image=registry.test/team/api:1.0.0",
            "--replicas=2",
            "--port=8080",
        ],
        vec![
            "create",
            "role",
            "r",
            "-n",
            "apps",
            "--verb=get,patch",
            "--resource=deployments.apps",
        ],
        vec![
            "create",
            "rolebinding",
            "rb",
            "-n",
            "apps",
            "--role=r",
            "--serviceaccount=apps:freshet",
        ],
    ] {
        kubectl(kc, &args).await;
    }
    assert_eq!(
        kubectl(
            kc,
            &["get", "cm", "cfg", "-n", "apps", "-o", "jsonpath={.data.k}"]
        )
        .await,
        "v"
    );
    assert_eq!(
        kubectl(
            kc,
            &[
                "get",
                "secret",
                "s",
                "-n",
                "apps",
                "-o",
                "jsonpath={.data.k}"
            ]
        )
        .await,
        "dg=="
    );
    let d: Value = serde_json::from_str(
        &kubectl(kc, &["get", "deploy", "api", "-n", "apps", "-o", "json"]).await,
    )
    .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    let rb: Value = serde_json::from_str(
        &kubectl(
            kc,
            &["get", "rolebinding", "rb", "-n", "apps", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        rb["subjects"][0],
        serde_json::json!({"kind": "ServiceAccount", "name": "freshet", "namespace": "apps"})
    );
    kubectl(
        kc,
        &[
            "rollout",
            "status",
            "deployment/api",
            "-n",
            "apps",
            "--timeout=60s",
        ],
    )
    .await;
}

#[tokio::test]
async fn server_side_dry_run_and_server_side_apply() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    let out = kubectl(
        kc,
        &[
            "create",
            "deployment",
            "dry",
            "--image=registry.test/a:1",
            "--dry-run=server",
            "-o",
            "name",
        ],
    )
    .await;
    assert_eq!(out.trim(), "deployment.apps/dry");
    let err = kubectl_fails(kc, &["get", "deployment", "dry"]).await;
    assert!(err.contains("NotFound"), "{err}");
    let (ok, out, err) =
        kubectl_output(kc, &["apply", "--server-side", "-f", "-"], Some(DEPLOYMENT)).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    kubectl(
        kc,
        &[
            "scale",
            "deployment/web",
            "--replicas=5",
            "--dry-run=server",
        ],
    )
    .await;
    kubectl(kc, &["delete", "deployment/web", "--dry-run=server"]).await;
    let d = get_json(kc, "deployment/web").await;
    assert_eq!(d["spec"]["replicas"], 2);
    // `kubectl diff` is a server-side dry-run apply.
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 4");
    let (ok, out, err) = kubectl_output(kc, &["diff", "-f", "-"], Some(&changed)).await;
    assert!(
        !ok,
        "kubectl diff exits 1 when there are differences: {err}"
    );
    assert!(
        out.contains("-  replicas: 2") && out.contains("+  replicas: 4"),
        "{out}"
    );
    assert_eq!(get_json(kc, "deployment/web").await["spec"]["replicas"], 2);

    // Managed fields: a scale takes .spec.replicas from the applier, so the
    // next apply conflicts until it forces.
    kubectl(kc, &["scale", "deployment/web", "--replicas=5"]).await;
    let (ok, _, err) =
        kubectl_output(kc, &["apply", "--server-side", "-f", "-"], Some(DEPLOYMENT)).await;
    assert!(!ok);
    assert!(
        err.contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas"#
        ),
        "{err}"
    );
    let (ok, _, err) = kubectl_output(
        kc,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(DEPLOYMENT),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(get_json(kc, "deployment/web").await["spec"]["replicas"], 2);
}

const APPLICATION: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: preview
  annotations:
    argocd-image-updater.argoproj.io/image-list: backend=registry.test/team/backend:preview
spec:
  project: default
  source:
    repoURL: https://git.example/team/chart
    path: chart
    helm:
      parameters:
      - {name: image.tag, value: sha-1234567}
  destination: {server: https://kubernetes.default.svc, namespace: preview}
"#;

#[tokio::test]
async fn the_application_crd_is_served_and_applications_take_merge_and_json_patches_and_watch() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    let crds = kubectl(kc, &["get", "crd", "-o", "name"]).await;
    assert!(
        crds.lines()
            .any(|l| l == "customresourcedefinition.apiextensions.k8s.io/applications.argoproj.io"),
        "{crds}"
    );
    let kind = kubectl(
        kc,
        &[
            "get",
            "crd",
            "applications.argoproj.io",
            "-o",
            "jsonpath={.spec.names.kind}",
        ],
    )
    .await;
    assert_eq!(kind, "Application");
    apply(kc, APPLICATION).await;
    let rv = kubectl(
        kc,
        &[
            "get",
            "application",
            "preview",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    )
    .await;

    let mut child = tokio::process::Command::new(common::kubectl_path())
        .arg("--kubeconfig")
        .arg(kc)
        .args(["get", "applications", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl -w runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("application.argoproj.io/preview")
    );

    // A merge patch replaces the parameter list; a JSON patch edits one entry.
    kubectl(
        kc,
        &[
            "patch", "application", "preview", "--type", "merge", "-p",
            r#"{"spec":{"source":{"helm":{"parameters":[{"name":"image.tag","value":"sha256:aaaa"}]}}}}"#,
        ],
    )
    .await;
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("application.argoproj.io/preview")
    );
    kubectl(
        kc,
        &[
            "patch", "application", "preview", "--type", "json", "-p",
            r#"[{"op":"test","path":"/spec/source/helm/parameters/0/value","value":"sha256:aaaa"},{"op":"replace","path":"/spec/source/helm/parameters/0/value","value":"sha256:bbbb"}]"#,
        ],
    )
    .await;
    let value = kubectl(
        kc,
        &[
            "get",
            "application",
            "preview",
            "-o",
            "jsonpath={.spec.source.helm.parameters[0].value}",
        ],
    )
    .await;
    assert_eq!(value, "sha256:bbbb");
    // A JSON patch whose test fails, and a strategic merge patch, are refused.
    let err = kubectl_fails(
        kc,
        &[
            "patch", "application", "preview", "--type", "json", "-p",
            r#"[{"op":"test","path":"/spec/source/helm/parameters/0/value","value":"sha256:aaaa"}]"#,
        ],
    )
    .await;
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
    let err = kubectl_fails(
        kc,
        &[
            "patch",
            "application",
            "preview",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{}}"#,
        ],
    )
    .await;
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "{err}"
    );
    // An update naming an old resourceVersion is a conflict.
    let stale = APPLICATION.replace(
        "  name: preview\n",
        &format!("  name: preview\n  resourceVersion: \"{rv}\"\n"),
    );
    let (ok, _, err) = kubectl_output(kc, &["replace", "-f", "-"], Some(&stale)).await;
    assert!(!ok && err.contains("the object has been modified"), "{err}");
    child.kill().await.expect("kill kubectl -w");
}
