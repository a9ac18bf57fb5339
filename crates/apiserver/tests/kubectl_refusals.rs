//! The kubectl interop suite, second part: the test bed fails where a real API
//! server fails, and reports pulls the way a real kubelet does. Every check
//! drives the test bed through the real kubectl (`/usr/bin/kubectl`, or
//! `$FRESHET_TEST_KUBECTL`) and asserts its exit status and what it prints.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{fake_cluster, kubectl, kubectl_output, wait_for};
use freshet_apiserver::images::MapResolver;
use freshet_apiserver::{ClusterOptions, TestCluster};

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
"#;

/// Runs kubectl, asserts it exits non-zero, and returns stderr.
async fn refused(kc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = kubectl_output(kc, args, stdin).await;
    assert!(!ok, "kubectl {args:?} succeeded: {out}");
    err
}

fn assert_says(err: &str, want: &str) {
    assert!(err.contains(want), "kubectl said:\n{err}\nwanted:\n{want}");
}

async fn replicas(kc: &Path) -> String {
    kubectl(
        kc,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    )
    .await
}

#[tokio::test]
async fn writes_that_do_not_decode_are_refused_with_a_real_servers_status() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    let (ok, _, err) = kubectl_output(kc, &["apply", "-f", "-"], Some(DEPLOYMENT)).await;
    assert!(ok, "{err}");

    // A JSON merge patch goes through Go's JSON decoder: 422 on the patch.
    let err = refused(
        kc,
        &[
            "patch",
            "deployment",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":"three"}}"#,
        ],
        None,
    )
    .await;
    assert_says(&err, "The request is invalid");
    assert_says(
        &err,
        "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
    );
    // A strategic merge patch (kubectl's default) goes through the
    // unstructured converter, which quotes the patch as Go prints it.
    let err = refused(
        kc,
        &[
            "patch",
            "deployment",
            "web",
            "-p",
            r#"{"spec":{"replicas":"three"}}"#,
        ],
        None,
    )
    .await;
    assert_says(
        &err,
        r#"patch: Invalid value: "map[spec:map[replicas:three]]": unrecognized type: int32"#,
    );
    // An annotation value must be a string.
    let err = refused(
        kc,
        &[
            "patch",
            "deployment",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"annotations":{"a":{"b":1}}}}"#,
        ],
        None,
    )
    .await;
    assert_says(
        &err,
        "json: cannot unmarshal object into Go struct field ObjectMeta.metadata.annotations of type string",
    );
    // A create goes through the same decoder, and is a 400 BadRequest.
    let bad = DEPLOYMENT
        .replace("name: web\n", "name: web2\n")
        .replace("replicas: 2", "replicas: three");
    let err = refused(kc, &["create", "-f", "-"], Some(&bad)).await;
    assert_says(&err, "Error from server (BadRequest)");
    assert_says(
        &err,
        "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
    );
    // A server-side apply goes through structured-merge-diff: a 500.
    let err = refused(
        kc,
        &["apply", "--server-side", "-f", "-"],
        Some(&DEPLOYMENT.replace("replicas: 2", "replicas: three")),
    )
    .await;
    assert_says(
        &err,
        "Error from server: failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.replicas: expected numeric (int or float), got string",
    );
    // None of them changed anything.
    assert_eq!(replicas(kc).await, "2");
    let err = refused(kc, &["get", "deployment", "web2"], None).await;
    assert_says(&err, "NotFound");
}

#[tokio::test]
async fn labels_annotations_and_names_are_validated_as_a_real_server_does() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    kubectl_output(kc, &["apply", "-f", "-"], Some(DEPLOYMENT)).await;

    let err = refused(
        kc,
        &[
            "patch",
            "deployment",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"bad value!"}}}"#,
        ],
        None,
    )
    .await;
    assert_says(
        &err,
        r#"The Deployment "web" is invalid: metadata.labels: Invalid value: "bad value!": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#,
    );
    let long = "a".repeat(64);
    let err = refused(
        kc,
        &[
            "patch",
            "deployment",
            "web",
            "--type",
            "merge",
            "-p",
            &format!(
                r#"{{"spec":{{"template":{{"metadata":{{"labels":{{"tier":"{long}"}}}}}}}}}}"#
            ),
        ],
        None,
    )
    .await;
    assert_says(
        &err,
        &format!(
            r#"spec.template.metadata.labels: Invalid value: "{long}": must be no more than 63 characters"#
        ),
    );
    let err = refused(kc, &["annotate", "deployment", "web", "bad key!=x"], None).await;
    assert_says(
        &err,
        r#"metadata.annotations: Invalid value: "bad key!": name part must consist of alphanumeric characters"#,
    );
    let err = refused(
        kc,
        &["create", "-f", "-"],
        Some(&DEPLOYMENT.replace("name: web\n", "name: Web_1\n")),
    )
    .await;
    assert_says(
        &err,
        r#"The Deployment "Web_1" is invalid: metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"#,
    );
    let labels = kubectl(
        kc,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.labels}",
        ],
    )
    .await;
    assert_eq!(labels, r#"{"app":"web"}"#);
}

#[tokio::test]
async fn events_are_validated_as_a_real_server_does() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    kubectl(kc, &["create", "namespace", "apps"]).await;

    // core/v1 without eventTime: the involved object's namespace must match.
    let core = r#"
apiVersion: v1
kind: Event
metadata: {name: e1, namespace: apps}
involvedObject: {kind: Deployment, name: web, namespace: other}
reason: Tested
message: hello
type: Normal
"#;
    let err = refused(kc, &["create", "-f", "-"], Some(core)).await;
    assert_says(
        &err,
        r#"The Event "e1" is invalid: involvedObject.namespace: Invalid value: "other": does not match event.namespace"#,
    );
    let (ok, out, err) = kubectl_output(
        kc,
        &["create", "-f", "-"],
        Some(&core.replace("namespace: other", "namespace: apps")),
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "event/e1 created");

    // events.k8s.io/v1 with eventTime: the reporting fields are required,
    // and a regarding object without a namespace is refused outside default.
    let v1 = r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: e2, namespace: apps}
eventTime: "2026-01-01T00:00:00.000000Z"
regarding: {kind: Deployment, name: web}
reason: Tested
note: hello
type: Normal
"#;
    let err = refused(kc, &["create", "-f", "-"], Some(v1)).await;
    for want in [
        r#"The Event "e2" is invalid"#,
        r#"involvedObject.namespace: Invalid value: "": does not match event.namespace"#,
        "reportingController: Required value",
        "reportingInstance: Required value",
        "action: Required value",
    ] {
        assert_says(&err, want);
    }
    let good = v1
        .replace("{kind: Deployment, name: web}", "{kind: Deployment, name: web, namespace: apps}")
        .replace(
            "reason: Tested\n",
            "reason: Tested\nreportingController: freshet.io/controller\nreportingInstance: freshet-0\naction: Refresh\n",
        );
    let (ok, out, err) = kubectl_output(kc, &["create", "-f", "-"], Some(&good)).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "event.events.k8s.io/e2 created");
    let reasons = kubectl(
        kc,
        &[
            "get",
            "events",
            "-n",
            "apps",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    )
    .await;
    assert_eq!(reasons, "Tested Tested");
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn pod(name: &str, node: &str, containers: &[(&str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  containers:\n"
    );
    for (c, image) in containers {
        out.push_str(&format!(
            "  - {{name: {c}, image: \"{image}\", imagePullPolicy: IfNotPresent}}\n"
        ));
    }
    out
}

async fn jsonpath(kc: &Path, what: &str, path: &str) -> String {
    let (_, out, _) =
        kubectl_output(kc, &["get", what, "-o", &format!("jsonpath={path}")], None).await;
    out
}

async fn event_notes(kc: &Path, pod: &str, reason: &str) -> String {
    let selector = format!("involvedObject.name={pod},reason={reason}");
    kubectl(
        kc,
        &[
            "get",
            "events",
            "--field-selector",
            &selector,
            "-o",
            "jsonpath={.items[*].message}",
        ],
    )
    .await
}

#[tokio::test]
async fn image_ids_and_cached_images_are_reported_as_a_kubelet_reports_them() {
    let (cluster, _) = fake_cluster().await;
    let kc = cluster.kubeconfig_path();
    // `repo:tag@digest`: containerd reports `repo@digest`, without the tag.
    let pinned = format!("registry.test/team/api:1.0.0@{DIGEST}");
    let (ok, _, err) = kubectl_output(
        kc,
        &["apply", "-f", "-"],
        Some(&pod("pinned", "testbed-node-1", &[("api", &pinned)])),
    )
    .await;
    assert!(ok, "{err}");
    wait_for("pinned to run", || async {
        let id = jsonpath(kc, "pod/pinned", "{.status.containerStatuses[0].imageID}").await;
        (!id.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        jsonpath(kc, "pod/pinned", "{.status.containerStatuses[0].imageID}").await,
        format!("registry.test/team/api@{DIGEST}")
    );

    // The second pod on the node finds the image there: no pull, and its
    // `Pulled` event says so.
    let image = "registry.test/team/web:2.0.0";
    for name in ["first", "second"] {
        let (ok, _, err) = kubectl_output(
            kc,
            &["apply", "-f", "-"],
            Some(&pod(name, "testbed-node-2", &[("web", image)])),
        )
        .await;
        assert!(ok, "{err}");
        wait_for(&format!("{name} to run"), || async {
            let phase = jsonpath(kc, &format!("pod/{name}"), "{.status.phase}").await;
            (phase == "Running").then_some(())
        })
        .await;
    }
    assert_eq!(
        event_notes(kc, "first", "Pulled").await,
        format!("Successfully pulled image \"{image}\"")
    );
    assert_eq!(
        event_notes(kc, "second", "Pulled").await,
        format!("Container image \"{image}\" already present on machine")
    );
    assert_eq!(event_notes(kc, "second", "Pulling").await, "");
    assert_eq!(
        event_notes(kc, "first", "Pulling").await,
        format!("Pulling image \"{image}\"")
    );
}

#[tokio::test]
async fn a_failed_pull_does_not_stop_the_pods_other_containers() {
    let resolver = Arc::new(MapResolver::new());
    for platform in ["linux/amd64", "linux/arm64"] {
        resolver.set("registry.test/team/ok:1", platform, DIGEST);
    }
    let cluster = TestCluster::start(ClusterOptions::default().resolver(resolver.clone()))
        .await
        .expect("cluster starts");
    let kc = cluster.kubeconfig_path();
    let manifest = pod(
        "mixed",
        "testbed-node-1",
        &[
            ("ok", "registry.test/team/ok:1"),
            ("missing", "registry.test/team/missing:1"),
        ],
    );
    let (ok, _, err) = kubectl_output(kc, &["apply", "-f", "-"], Some(&manifest)).await;
    assert!(ok, "{err}");
    wait_for("ok to run while missing fails", || async {
        let running = jsonpath(
            kc,
            "pod/mixed",
            r#"{.status.containerStatuses[?(@.name=="ok")].state.running.startedAt}"#,
        )
        .await;
        let waiting = jsonpath(
            kc,
            "pod/mixed",
            r#"{.status.containerStatuses[?(@.name=="missing")].state.waiting.reason}"#,
        )
        .await;
        (!running.is_empty() && matches!(waiting.as_str(), "ErrImagePull" | "ImagePullBackOff"))
            .then_some(())
    })
    .await;
    assert_eq!(
        jsonpath(kc, "pod/mixed", "{.status.phase}").await,
        "Pending"
    );
    assert_eq!(
        jsonpath(
            kc,
            "pod/mixed",
            r#"{.status.containerStatuses[?(@.name=="ok")].imageID}"#
        )
        .await,
        format!("registry.test/team/ok@{DIGEST}")
    );
    let table = kubectl(kc, &["get", "pod", "mixed", "--no-headers"]).await;
    let columns: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(columns[1], "1/2", "{table}");
    assert!(
        matches!(columns[2], "ErrImagePull" | "ImagePullBackOff"),
        "{table}"
    );
    assert_eq!(
        event_notes(kc, "mixed", "Started").await,
        "Started container ok"
    );
    assert!(
        event_notes(kc, "mixed", "Failed")
            .await
            .contains("Failed to pull image \"registry.test/team/missing:1\""),
    );

    // Once the image exists, the retry starts the missing container only.
    let started = jsonpath(
        kc,
        "pod/mixed",
        r#"{.status.containerStatuses[?(@.name=="ok")].state.running.startedAt}"#,
    )
    .await;
    for platform in ["linux/amd64", "linux/arm64"] {
        resolver.set("registry.test/team/missing:1", platform, DIGEST);
    }
    wait_for("mixed to run", || async {
        (jsonpath(kc, "pod/mixed", "{.status.phase}").await == "Running").then_some(())
    })
    .await;
    let table = kubectl(kc, &["get", "pod", "mixed", "--no-headers"]).await;
    assert_eq!(table.split_whitespace().nth(1), Some("2/2"), "{table}");
    assert_eq!(
        jsonpath(
            kc,
            "pod/mixed",
            r#"{.status.containerStatuses[?(@.name=="ok")].state.running.startedAt}"#,
        )
        .await,
        started
    );
    let started_notes = event_notes(kc, "mixed", "Started").await;
    assert_eq!(
        started_notes.matches("Started container ok").count(),
        1,
        "{started_notes}"
    );
    assert!(
        started_notes.contains("Started container missing"),
        "{started_notes}"
    );
}
