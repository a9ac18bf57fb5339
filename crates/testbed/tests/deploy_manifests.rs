//! `deploy/`: the kustomize base and CronJob overlay build with `kubectl kustomize`,
//! apply to the API test bed with `kubectl apply`, and give freshet's ServiceAccount
//! exactly the access it needs (checked with `kubectl auth can-i` against the test
//! bed's RBAC).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use freshet_apiserver::{ClusterOptions, TestCluster};

const KUBECTL: &str = "/usr/bin/kubectl";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or_default())
        .expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("kubectl finishes")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn cronjob_overlay_builds_applies_and_grants_least_privilege() {
    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let overlay = deploy_dir().join("overlays/cronjob");

    let built = tokio::task::spawn_blocking(move || {
        let out = Command::new(KUBECTL)
            .args(["kustomize"])
            .arg(&overlay)
            .output()
            .expect("kubectl kustomize runs");
        ok(&out, "kubectl kustomize deploy/overlays/cronjob")
    })
    .await
    .unwrap();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "CronJob",
    ] {
        assert!(
            built.contains(&format!("kind: {kind}\n")),
            "{kind} missing:\n{built}"
        );
    }

    let check = tokio::task::spawn_blocking(move || {
        ok(
            &kubectl(&kubeconfig, &["apply", "-f", "-"], Some(built.as_bytes())),
            "kubectl apply",
        );
        let cronjob = ok(
            &kubectl(
                &kubeconfig,
                &["get", "cronjob", "-n", "freshet", "freshet", "-o", "json"],
                None,
            ),
            "get cronjob",
        );
        let cronjob: serde_json::Value = serde_json::from_str(&cronjob).unwrap();
        assert_eq!(cronjob["spec"]["schedule"], "*/15 * * * *");
        let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "freshet");
        assert_eq!(pod["containers"][0]["args"][0], "run");
        assert_eq!(pod["containers"][0]["args"][1], "--once");

        let sa = "system:serviceaccount:freshet:freshet";
        let can = |verb: &str, resource: &str, ns: &str| -> bool {
            let out = kubectl(
                &kubeconfig,
                &["auth", "can-i", verb, resource, "-n", ns, "--as", sa],
                None,
            );
            String::from_utf8_lossy(&out.stdout).trim() == "yes"
        };
        let allowed = [
            ("get", "deployments.apps"),
            ("list", "statefulsets.apps"),
            ("patch", "daemonsets.apps"),
            ("patch", "cronjobs.batch"),
            ("create", "events"),
            ("create", "events.events.k8s.io"),
        ];
        for (verb, resource) in allowed {
            assert!(can(verb, resource, "team"), "{sa} should {verb} {resource}");
        }
        let denied = [
            ("delete", "deployments.apps"),
            ("create", "deployments.apps"),
            ("update", "deployments.apps"),
            ("get", "secrets"),
            ("list", "pods"),
            ("patch", "jobs.batch"),
            ("delete", "events"),
        ];
        for (verb, resource) in denied {
            assert!(
                !can(verb, resource, "team"),
                "{sa} must not {verb} {resource}"
            );
        }
    })
    .await;
    check.unwrap();
}
