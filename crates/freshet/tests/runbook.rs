//! The runbook commands as users run them: the built binary against the API test
//! bed (its kubelet pulling from the real registry) and the real registry, with the
//! real `kubectl` confirming each result: `rollback` (dry run, a digest the registry
//! lacks, bad input, the real thing with the pods back on the good digest),
//! `release`, `pin` (and a pass that then holds updates back), `hold` and `approve`;
//! `rollback --to-revision`; and `run --once --wait` following its rollouts.

mod common;

use std::process::Output;

use common::{admin, deploy};
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::kubectl::kubectl;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use freshet_testbed::wait::wait_for;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

async fn freshet(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(args)
        .env_remove("FRESHET_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env("HOME", "/nonexistent-home")
        .env("USER", "runbook-test")
        .output()
        .await
        .expect("run freshet")
}

/// [`freshet`], run again (a few times) when a command found the workload changed
/// since it read it, as its message says to: the test bed's controllers write the
/// Deployment's status while a rollout settles, which changes its resourceVersion.
async fn freshet_settled(args: &[&str]) -> Output {
    let mut out = freshet(args).await;
    for _ in 0..5 {
        if out.status.success()
            || !String::from_utf8_lossy(&out.stderr).contains("changed since it was read")
        {
            break;
        }
        out = freshet(args).await;
    }
    out
}

fn ok(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What kubectl says about deployment `app`: `jsonpath` applied.
async fn get(kubeconfig: &str, jsonpath: &str) -> String {
    kubectl(
        &[
            "--kubeconfig",
            kubeconfig,
            "get",
            "deployment",
            "app",
            "-n",
            "default",
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
        None,
    )
    .await
}

async fn image(kubeconfig: &str) -> String {
    get(kubeconfig, "{.spec.template.spec.containers[0].image}").await
}

async fn annotation(kubeconfig: &str, key: &str) -> String {
    let escaped = key.replace('.', "\\.");
    get(kubeconfig, &format!("{{.metadata.annotations.{escaped}}}")).await
}

/// Waits until every pod of `app` runs `digest` (from the pods' `imageID`).
async fn pods_run(client: &kube::Client, digest: &str) {
    pods_run_one_of(client, &[digest]).await;
}

/// Waits until every pod of `app` runs the same one of `digests`; returns it.
async fn pods_run_one_of(client: &kube::Client, digests: &[&str]) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(
        &format!("the pods of app to run one of {digests:?}"),
        || {
            let pods = pods.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels("app=app"))
                    .await
                    .ok()?;
                let ids: Vec<String> = list
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .flat_map(|p| p.status.clone()?.container_statuses)
                    .flatten()
                    .map(|s| s.image_id)
                    .collect();
                digests
                    .iter()
                    .find(|d| !ids.is_empty() && ids.iter().all(|id| id.ends_with(*d)))
                    .map(|d| (*d).to_owned())
            }
        },
    )
    .await
}

#[tokio::test]
async fn each_runbook_command_does_what_kubectl_then_shows() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let good = api_fx.digest("stable").to_owned();
    let floating = format!("{}/team/api:stable", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    deploy(
        &client,
        "app",
        &floating,
        json!({"freshet.io/policy": "digest"}),
    )
    .await;
    pods_run(&client, &good).await;
    // A bad image is pushed under the tag and the pods restart onto it.
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let bad = api_fx.digest("stable").to_owned();
    kubectl(
        &["--kubeconfig", &kc, "rollout", "restart", "deployment/app"],
        None,
    )
    .await;
    pods_run(&client, &bad).await;
    let cmd =
        |name: &'static str| vec![name, "deployment/default/app", "--kubeconfig", kc.as_str()];

    // Bad input and a digest the registry does not have: refused, nothing written.
    let out = freshet(&[
        "rollback",
        "deployment/app",
        "--to",
        &good,
        "--kubeconfig",
        &kc,
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("KIND/NAMESPACE/NAME"),
        "{}",
        stderr(&out)
    );
    let out = freshet(&[&cmd("rollback")[..], &["--to", "latest"]].concat()).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let missing = format!("sha256:{}", "0".repeat(64));
    let out = freshet(&[&cmd("rollback")[..], &["--to", &missing]].concat()).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("registry has no"), "{}", stderr(&out));
    let out =
        freshet(&[&cmd("rollback")[..], &["--to", &good, "--container", "web"]].concat()).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("its containers: app"),
        "{}",
        stderr(&out)
    );
    // A dry run says what it would write and writes nothing.
    let dry = ok(&freshet_settled(
        &[
            &cmd("rollback")[..],
            &["--to", &good, "--dry-run", "-o", "json"],
        ]
        .concat(),
    )
    .await);
    assert_eq!(
        (dry["dry_run"].clone(), dry["written"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(dry["changes"][0]["to"], format!("{floating}@{good}"));
    assert_eq!(image(&kc).await, floating);
    assert_eq!(annotation(&kc, "freshet.io/hold").await, "");

    // pin: what runs (the bad digest, from imageID) is pinned and tracking stops
    // (a pass first records the digest it has seen).
    ok(&freshet_settled(&["run", "--once", "--kubeconfig", &kc]).await);
    let p = ok(&freshet_settled(&[&cmd("pin")[..], &["-o", "json"]].concat()).await);
    assert_eq!(p["changes"][0]["to"], format!("{floating}@{bad}"));
    assert_eq!(image(&kc).await, format!("{floating}@{bad}"));
    assert!(annotation(&kc, "freshet.io/pin").await.contains("\"app\""));
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "3")
        .await
        .unwrap();
    let run = ok(&freshet_settled(&["run", "--once", "--kubeconfig", &kc, "-o", "json"]).await);
    let app = &run["workloads"][0];
    assert_eq!(app["changes"], json!([]), "{run}");
    assert!(
        app["warnings"]
            .to_string()
            .contains("pinned by `freshet pin`"),
        "{run}"
    );
    assert_eq!(image(&kc).await, format!("{floating}@{bad}"));
    ok(&freshet_settled(&cmd("release")).await);
    assert_eq!(image(&kc).await, floating);
    assert_eq!(annotation(&kc, "freshet.io/pin").await, "");
    // Released, the template names the tag again (the template of the restart
    // above, so its ReplicaSet comes back): its new pods run what the tag names now
    // (3), or the bad digest a node still has under that tag (imagePullPolicy
    // IfNotPresent), as a real kubelet does. Whichever they settle on is what the
    // rollback below holds; waiting for it keeps the rollback from racing the rollout.
    let third = api_fx.digest("stable").to_owned();
    let ran = pods_run_one_of(&client, &[&third, &bad]).await;

    // rollback: pinned to the good digest, the digest the pods ran held.
    let r = ok(
        &freshet_settled(&[&cmd("rollback")[..], &["--to", &good, "-o", "json"]].concat()).await,
    );
    assert_eq!(r["written"], true);
    assert_eq!(image(&kc).await, format!("{floating}@{good}"));
    let hold: Value = serde_json::from_str(&annotation(&kc, "freshet.io/hold").await).unwrap();
    let repo = format!("{}/team/api", registry.host());
    assert!(hold[&repo]["digests"].to_string().contains(&ran), "{hold}");
    assert_eq!(hold[&repo]["floating"]["app"], floating.as_str());
    let events = kubectl(
        &["--kubeconfig", &kc, "get", "events", "-n", "default"],
        None,
    )
    .await;
    assert!(events.contains("RolledBack"), "{events}");

    // release: back on the floating tag, no hold; then nothing is left to release.
    ok(&freshet_settled(&cmd("release")).await);
    assert_eq!(image(&kc).await, floating);
    assert_eq!(annotation(&kc, "freshet.io/hold").await, "");
    let out = freshet(&cmd("release")).await;
    assert_eq!(out.status.code(), Some(2), "nothing left: {}", stderr(&out));

    // hold: the digest lands in freshet.io/hold.
    ok(&freshet_settled(&[&cmd("hold")[..], &[&good]].concat()).await);
    assert!(annotation(&kc, "freshet.io/hold").await.contains(&good));
    ok(&freshet_settled(&cmd("release")).await);
    assert_eq!(annotation(&kc, "freshet.io/hold").await, "");

    // approve: refused while nothing asks, then counted.
    let out = freshet(&cmd("approve")).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("asks for no approvals"),
        "{}",
        stderr(&out)
    );
    kubectl(
        &[
            "--kubeconfig",
            &kc,
            "annotate",
            "deployment/app",
            "keel.sh/approvals=1",
        ],
        None,
    )
    .await;
    let waiting = ok(&freshet_settled(&["run", "--once", "--kubeconfig", &kc, "-o", "json"]).await);
    assert!(
        waiting.to_string().contains("waiting for approval"),
        "{waiting}"
    );
    let a =
        ok(&freshet_settled(&[&cmd("approve")[..], &["--by", "ana", "-o", "json"]].concat()).await);
    assert_eq!(a["written"], true);
    let request: Value =
        serde_json::from_str(&annotation(&kc, "freshet.io/approval").await).unwrap();
    assert_eq!(request["approvedBy"], json!(["ana"]));
    let rolled = ok(&freshet_settled(&["run", "--once", "--kubeconfig", &kc, "-o", "json"]).await);
    assert_eq!(rolled["workloads"][0]["status"], "refreshed", "{rolled}");
    assert_eq!(annotation(&kc, "freshet.io/approval").await, "");
    let events = kubectl(
        &["--kubeconfig", &kc, "get", "events", "-n", "default"],
        None,
    )
    .await;
    for reason in [
        "ImagePinned",
        "DigestHeld",
        "HoldReleased",
        "UpdateApproved",
        "AwaitingApproval",
    ] {
        assert!(events.contains(reason), "{reason}: {events}");
    }
}

/// Waits until every pod of deployment `app` runs `digest` (from `imageID`).
async fn app_pods_run(client: &kube::Client, app: &str, digest: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("the pods of {app} to run {digest}"), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .ok()?;
            let ids: Vec<(String, bool)> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .flat_map(|p| p.status.clone()?.container_statuses)
                .flatten()
                .map(|s| (s.image_id, s.state.and_then(|s| s.waiting).is_none()))
                .collect();
            (!ids.is_empty() && ids.iter().all(|(id, ok)| *ok && id.ends_with(digest)))
                .then_some(())
        }
    })
    .await;
}

/// What kubectl says about deployment `name`: `jsonpath` applied.
async fn get_of(kubeconfig: &str, name: &str, jsonpath: &str) -> String {
    kubectl(
        &[
            "--kubeconfig",
            kubeconfig,
            "get",
            "deployment",
            name,
            "-n",
            "default",
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
        None,
    )
    .await
}

/// `run --once --wait` follows the rollouts it started within the run (bounded by
/// --health-timeout): a good digest ends `refreshed` with its record removed, a
/// crash-looping one is rolled back in the same run (exit 1); kubectl shows the
/// templates and the pods run what the report says (from their imageID).
#[tokio::test]
async fn run_once_wait_follows_its_rollouts_to_healthy_or_rolled_back() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let mut multi_fx = fixtures::seed_multi(&pusher).await.unwrap();
    let good = api_fx.digest("stable").to_owned();
    let stable = api_fx.image("stable").clone();
    let bad = pusher
        .push(
            &stable.repo,
            "candidate",
            &stable.spec.clone().generation("crash"),
        )
        .await
        .unwrap();
    let api = format!("{}/team/api:stable", registry.host());
    let multi = format!("{}/team/multi:latest", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default().crash_image(&bad.digest))
        .await
        .unwrap();
    let client = admin(&cluster).await;
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    deploy(
        &client,
        "crashy",
        &api,
        json!({"freshet.io/policy": "digest"}),
    )
    .await;
    deploy(
        &client,
        "fine",
        &multi,
        json!({"freshet.io/policy": "digest"}),
    )
    .await;
    ok(&freshet(&["run", "--once", "--kubeconfig", &kc]).await);
    app_pods_run(&client, "crashy", &good).await;
    app_pods_run(&client, "fine", multi_fx.digest("latest")).await;

    pusher.tag(&bad, "stable").await.unwrap();
    let next = fixtures::move_tag(&pusher, &mut multi_fx, "latest", "2")
        .await
        .unwrap();
    let out = freshet(&[
        "run",
        "--once",
        "--wait",
        "--health-timeout",
        "60s",
        "--kubeconfig",
        &kc,
        "-o",
        "json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "a rollback: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |name: &str| {
        report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .map(|w| w["status"].clone())
            .unwrap()
    };
    assert_eq!(status("fine"), "refreshed", "{report}");
    assert_eq!(status("crashy"), "rolled-back", "{report}");
    // The record of the healthy rollout is gone, the rolled-back one pinned.
    assert_eq!(
        get_of(&kc, "fine", "{.metadata.annotations.freshet\\.io/rollout}").await,
        ""
    );
    assert_eq!(
        get_of(&kc, "crashy", "{.spec.template.spec.containers[0].image}").await,
        format!("{api}@{good}")
    );
    assert!(
        get_of(&kc, "crashy", "{.metadata.annotations.freshet\\.io/hold}")
            .await
            .contains(&bad.digest)
    );
    app_pods_run(&client, "fine", &next.digest).await;
    app_pods_run(&client, "crashy", &good).await;
}

/// `rollback --to-revision N` takes revision N's digest from the Deployment's
/// ReplicaSets, pins it and holds what runs now; kubectl confirms the template and
/// the hold, and the pods run revision N's digest again. A revision that does not
/// exist is refused (exit 2) before any write.
#[tokio::test]
async fn rollback_to_revision_restores_that_revisions_digest() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let first = api_fx.digest("stable").to_owned();
    let floating = format!("{}/team/api:stable", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kc = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    // Revision 1 names its digest; revision 2 another one, set with kubectl.
    deploy(&client, "app", &format!("{floating}@{first}"), json!({})).await;
    pods_run(&client, &first).await;
    let second = fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap()
        .digest;
    kubectl(
        &[
            "--kubeconfig",
            &kc,
            "set",
            "image",
            "deployment/app",
            &format!("app={floating}@{second}"),
        ],
        None,
    )
    .await;
    pods_run(&client, &second).await;
    let history = kubectl(
        &["--kubeconfig", &kc, "rollout", "history", "deployment/app"],
        None,
    )
    .await;
    assert!(history.contains('2'), "{history}");

    let out = freshet(&[
        "rollback",
        "deployment/default/app",
        "--to-revision",
        "9",
        "--kubeconfig",
        &kc,
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(image(&kc).await, format!("{floating}@{second}"));

    let r = ok(&freshet(&[
        "rollback",
        "deployment/default/app",
        "--to-revision",
        "1",
        "--kubeconfig",
        &kc,
        "-o",
        "json",
    ])
    .await);
    assert_eq!(r["written"], true, "{r}");
    assert_eq!(image(&kc).await, format!("{floating}@{first}"));
    let hold: Value = serde_json::from_str(&annotation(&kc, "freshet.io/hold").await).unwrap();
    let repo = format!("{}/team/api", registry.host());
    assert!(
        hold[&repo]["digests"].to_string().contains(&second),
        "{hold}"
    );
    let events = kubectl(
        &["--kubeconfig", &kc, "get", "events", "-n", "default"],
        None,
    )
    .await;
    assert!(events.contains("RolledBack"), "{events}");
    pods_run(&client, &first).await;
}
