//! The rollback runbook, end to end on the API test bed with the real registry:
//! a crash-looping digest rolled back, held and released; a rollback the API
//! refused counted in the failure streak; the queue order kept across runs; an `ErrImagePull`
//! rollout (the test bed's pull-fail list) rolled back and held; an image without
//! the node's platform refused before any rollout; the pacing budget and maintenance windows with an injected
//! time; two runs racing for one rollback and one budget slot.

mod common;

use std::sync::Arc;

use common::*;
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_cluster::{PassOptions, Status};
use freshet_core::refresh::config::ClusterConfig;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::{ImageSpec, Platform, Pusher};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};

const NS: &str = "team";
const ROLLOUT: &str = "freshet.io/rollout";
const HOLD: &str = "freshet.io/hold";

async fn cluster_crashing(digest: &str) -> TestCluster {
    crypto();
    TestCluster::start(ClusterOptions::default().crash_image(digest))
        .await
        .expect("cluster starts")
}

/// The pods of deployment `app` and what each runs: (waiting reason, imageID).
async fn pods_of(client: &kube::Client, app: &str) -> Vec<(Option<String>, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods list")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .flat_map(|p| {
            p.status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default()
        })
        .map(|c| {
            (
                c.state.and_then(|s| s.waiting).and_then(|w| w.reason),
                c.image_id,
            )
        })
        .collect()
}

/// Waits until a pod of `app` waits with `reason`.
async fn wait_waiting(client: &kube::Client, app: &str, reason: &str) {
    wait_for(&format!("a pod of {app} in {reason}"), || async {
        pods_of(client, app)
            .await
            .iter()
            .any(|(r, _)| r.as_deref() == Some(reason))
            .then_some(())
    })
    .await;
}

/// Waits until every pod of `app` runs `digest` (from its imageID) and none waits.
async fn wait_running(client: &kube::Client, app: &str, digest: &str) {
    wait_for(&format!("the pods of {app} running {digest}"), || async {
        let pods = pods_of(client, app).await;
        (!pods.is_empty()
            && pods
                .iter()
                .all(|(r, id)| r.is_none() && id.ends_with(digest)))
        .then_some(())
    })
    .await;
}

fn image_of(d: &k8s_openapi::api::apps::v1::Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap()
}

fn reasons(events: &[k8s_openapi::api::core::v1::Event], reason: &str) -> usize {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count()
}

/// Scenarios 1 and 2: a floating tag moves to a crash-looping digest; freshet
/// restarts, judges the rollout failed from the pods, pins the last good digest in
/// one patch, holds the bad one (a Warning Event `RolledBack`), and the pods run the
/// last good digest again. The held digest is not retried; the next good digest
/// lifts the hold, puts the tag back to floating and rolls out.
#[tokio::test]
async fn a_crash_looping_digest_is_rolled_back_held_and_released_by_the_next_good_digest() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let good = api_fx.digest("stable").to_owned();
    let stable = api_fx.image("stable").clone();
    let bad = pusher
        .push(
            &stable.repo,
            "candidate",
            &stable.spec.clone().generation("bad"),
        )
        .await
        .expect("bad image");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster_crashing(&bad.digest).await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("web")
        .container("web", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    let refresher = refresher(&client, follow());
    let deploys = deployments(&client, NS);
    refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    wait_running(&client, "web", &good).await;

    // The tag moves to the bad digest: freshet restarts and records the rollout.
    pusher.tag(&bad, "stable").await.unwrap();
    let r = refresher
        .run_once_at(at("2026-11-28T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    let d = deploys.get("web").await.unwrap();
    let record = annotation(&d, ROLLOUT).expect("the rollout is recorded");
    assert!(record.contains(&bad.digest), "{record}");
    wait_waiting(&client, "web", "CrashLoopBackOff").await;

    // The next pass judges it failed from the pods and rolls back in one patch.
    let r = refresher
        .run_once_at(at("2026-11-28T10:16:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::RolledBack, "{r:#?}");
    // The failed rollout counts in the failure streak (one of three), in the same patch.
    assert_eq!(r.workloads[0].transient.len(), 1, "{r:#?}");
    assert_eq!(r.workloads[0].transient[0].count, 1);
    let d = deploys.get("web").await.unwrap();
    assert_eq!(image_of(&d), format!("{image}@{good}"));
    assert_eq!(annotation(&d, ROLLOUT), None, "the record is gone");
    assert!(
        annotation(&d, "freshet.io/refresh-consecutive-failures").is_some_and(|f| f.contains(":1")),
        "{d:#?}"
    );
    let hold = annotation(&d, HOLD).expect("the bad digest is held");
    assert!(hold.contains(&bad.digest), "{hold}");
    let ev = events(&client, NS, "web").await;
    assert_eq!(reasons(&ev, "RolledBack"), 1);
    assert!(ev.iter().any(|e| {
        e.reason.as_deref() == Some("RolledBack")
            && e.type_.as_deref() == Some("Warning")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("CrashLoopBackOff"))
    }));
    wait_running(&client, "web", &good).await;

    // The tag still names the held digest: nothing is retried.
    let r = refresher
        .run_once_at(at("2026-11-28T10:30:00Z"))
        .await
        .unwrap();
    assert_eq!(r.writes(), 0, "{r:#?}");
    assert_eq!(
        image_of(&deploys.get("web").await.unwrap()),
        format!("{image}@{good}")
    );

    // A newer good digest lifts the hold: back to the floating tag, rolled out.
    let next = fixtures::move_tag(&pusher, &mut api_fx, "stable", "3")
        .await
        .unwrap();
    let r = refresher
        .run_once_at(at("2026-11-28T10:45:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    let d = deploys.get("web").await.unwrap();
    assert_eq!(image_of(&d), image, "floating again");
    assert_eq!(annotation(&d, HOLD), None, "the hold is lifted");
    assert!(annotation(&d, ROLLOUT).is_some_and(|r| r.contains(&next.digest)));
    wait_running(&client, "web", &next.digest).await;
    wait_rolled_out(&client, NS, "web").await;
    let r = refresher
        .run_once_at(at("2026-11-28T10:46:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::Recorded, "healthy: {r:#?}");
    assert_eq!(
        annotation(&deploys.get("web").await.unwrap(), ROLLOUT),
        None
    );
}

/// Scenario 3: the tag moves to a digest whose pulls fail (the test bed's
/// pull-fail list: a registry error, not a missing platform, which the platform
/// guard refuses before any write). freshet restarts, the new pods wait in
/// `ErrImagePull`/`ImagePullBackOff`, the next pass judges the rollout failed from
/// them and rolls back in one patch, holds the bad digest, and the pods run the
/// last good digest again (checked from their imageID).
#[tokio::test]
async fn an_err_image_pull_rollout_is_rolled_back_and_held() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let good = api_fx.digest("stable").to_owned();
    let stable = api_fx.image("stable").clone();
    let bad = pusher
        .push(
            &stable.repo,
            "candidate",
            &stable.spec.clone().generation("unpullable"),
        )
        .await
        .expect("bad image");
    let image = format!("{}/team/api:stable", registry.host());
    crypto();
    let cluster = TestCluster::start(ClusterOptions::default().pull_fail_image(&bad.digest))
        .await
        .expect("cluster starts");
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("pull")
        .container("pull", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    let refresher = refresher(&client, follow());
    let deploys = deployments(&client, NS);
    refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    wait_running(&client, "pull", &good).await;

    pusher.tag(&bad, "stable").await.unwrap();
    let r = refresher
        .run_once_at(at("2026-11-28T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    assert!(
        annotation(&deploys.get("pull").await.unwrap(), ROLLOUT)
            .is_some_and(|r| r.contains(&bad.digest))
    );
    wait_for("a pod of pull failing its pull", || async {
        pods_of(&client, "pull")
            .await
            .iter()
            .any(|(r, _)| matches!(r.as_deref(), Some("ErrImagePull" | "ImagePullBackOff")))
            .then_some(())
    })
    .await;

    let r = refresher
        .run_once_at(at("2026-11-28T10:16:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::RolledBack, "{r:#?}");
    let error = r.workloads[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("ErrImagePull") || error.contains("ImagePullBackOff"),
        "{error}"
    );
    let d = deploys.get("pull").await.unwrap();
    assert_eq!(image_of(&d), format!("{image}@{good}"));
    assert_eq!(annotation(&d, ROLLOUT), None);
    assert!(annotation(&d, HOLD).is_some_and(|h| h.contains(&bad.digest)));
    assert_eq!(reasons(&events(&client, NS, "pull").await, "RolledBack"), 1);
    wait_running(&client, "pull", &good).await;

    // Held: the next pass does not roll the unpullable digest again.
    let r = refresher
        .run_once_at(at("2026-11-28T10:30:00Z"))
        .await
        .unwrap();
    assert_eq!(r.writes(), 0, "{r:#?}");
    wait_running(&client, "pull", &good).await;
}

/// Scenario 3b: the tag moves to an image without the arm64 node's platform. The
/// platform guard refuses it before any write, so no rollout fails with
/// `ErrImagePull` and nothing needs rolling back (the judge's ErrImagePull rule is
/// table-tested in `freshet_core::safety::health`).
#[tokio::test]
async fn an_image_without_the_nodes_platform_never_starts_a_rollout() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let multi_fx = fixtures::seed_multi(&pusher).await.expect("seed multi");
    let good = multi_fx.digest("latest").to_owned();
    let image = format!("{}/team/multi:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("arm")
        .container("arm", &image)
        .node("testbed-node-3")
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    let refresher = refresher(&client, follow());
    refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    wait_running(&client, "arm", &good).await;
    pusher
        .push(
            &multi_fx.image("latest").repo,
            "latest",
            &ImageSpec::oci_index("team/multi:amd64-only", vec![Platform::linux_amd64()]),
        )
        .await
        .unwrap();
    let r = refresher
        .run_once_at(at("2026-11-28T10:15:00Z"))
        .await
        .unwrap();
    // Before the "what runs" guard, this rollout started and its pods failed with
    // ErrImagePull; now it never starts: no patch, no rollout record, a platform
    // streak, and the pods keep running the good digest.
    let w = &r.workloads[0];
    assert!(w.changes.is_empty(), "{r:#?}");
    assert!(
        w.transient
            .iter()
            .chain(&w.escalations)
            .any(|s| s.message.contains("platform:") && s.message.contains("linux/arm64")),
        "{r:#?}"
    );
    let d = deployments(&client, NS).get("arm").await.unwrap();
    assert_eq!(annotation(&d, ROLLOUT), None);
    assert_eq!(image_of(&d), image, "the template is untouched");
    wait_running(&client, "arm", &good).await;
}

/// Regression: a rollback the API refused (here a policy webhook denying the
/// last good digest) was only reported; now it counts in the failure streak like
/// any failure, escalates at the threshold, and the record stays for the next try.
#[tokio::test]
async fn a_refused_rollback_counts_in_the_failure_streak_and_escalates() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let good = api_fx.digest("stable").to_owned();
    let stable = api_fx.image("stable").clone();
    let bad = pusher
        .push(
            &stable.repo,
            "candidate",
            &stable.spec.clone().generation("refused"),
        )
        .await
        .expect("bad image");
    let image = format!("{}/team/api:stable", registry.host());
    crypto();
    let cluster = TestCluster::start(
        ClusterOptions::default()
            .crash_image(&bad.digest)
            .deny_image(format!("@{good}")),
    )
    .await
    .expect("cluster starts");
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("denied")
        .container("denied", &image)
        .annotate("freshet.io/policy", "digest")
        .annotate("freshet.io/failure-threshold", "2")
        .create(&client, NS)
        .await;
    let refresher = refresher(&client, follow());
    let deploys = deployments(&client, NS);
    refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    wait_running(&client, "denied", &good).await;
    pusher.tag(&bad, "stable").await.unwrap();
    let r = refresher
        .run_once_at(at("2026-11-28T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    wait_waiting(&client, "denied", "CrashLoopBackOff").await;

    // The rollback is refused: failure 1 of 2, a warning, the record kept.
    let r = refresher
        .run_once_at(at("2026-11-28T10:16:00Z"))
        .await
        .unwrap();
    let w = &r.workloads[0];
    assert_eq!(w.status, Status::Failed, "{r:#?}");
    let error = w.error.clone().unwrap_or_default();
    assert!(
        error.contains("rollback was refused") && error.contains("denied the request"),
        "{error}"
    );
    assert_eq!(w.transient.len(), 1, "{r:#?}");
    assert_eq!(w.transient[0].count, 1);
    let d = deploys.get("denied").await.unwrap();
    assert_eq!(image_of(&d), image, "nothing restored");
    assert!(annotation(&d, ROLLOUT).is_some(), "the record stays");
    assert!(
        annotation(&d, "freshet.io/refresh-consecutive-failures").is_some_and(|f| f.contains(":1")),
        "{d:#?}"
    );
    assert_eq!(
        reasons(&events(&client, NS, "denied").await, "RollbackFailed"),
        1
    );

    // Refused again: the streak reaches its threshold and escalates.
    let r = refresher
        .run_once_at(at("2026-11-28T10:17:00Z"))
        .await
        .unwrap();
    let w = &r.workloads[0];
    assert_eq!(w.status, Status::Escalated, "{r:#?}");
    assert_eq!(w.escalations[0].count, 2);
    let d = deploys.get("denied").await.unwrap();
    assert!(
        annotation(&d, "freshet.io/refresh-last-error")
            .is_some_and(|e| e.contains("2 failures in a row")),
        "{d:#?}"
    );
    // The pods: the new revision still crashes on the bad digest; nothing of the
    // good digest's pin reached them.
    let pods = pods_of(&client, "denied").await;
    assert!(
        pods.iter()
            .any(|(r, id)| r.as_deref() == Some("CrashLoopBackOff") && id.ends_with(&bad.digest)),
        "{pods:?}"
    );
    assert_eq!(image_of(&d), image);
}

/// Regression: the queue order after the rule was "the longest-waiting", but each
/// one-shot run saw every workload as waiting since that run, so the order fell back
/// to the workload's name. The time a workload started waiting is kept in the
/// pacing state: across runs (new refreshers, time injected), the one that waited
/// longest rolls first.
#[tokio::test]
async fn the_longest_waiting_rolls_first_across_one_shot_runs() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let mut multi_fx = fixtures::seed_multi(&pusher).await.expect("seed multi");
    let api = format!("{}/team/api:stable", registry.host());
    let multi = format!("{}/team/multi:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    namespace(&client, "freshet").await;
    for (name, image) in [("a", &api), ("z", &api), ("b", &multi)] {
        Deploy::test(name)
            .container("app", image)
            .annotate("freshet.io/policy", "digest")
            .create(&client, NS)
            .await;
    }
    let run = |when: &'static str| {
        let options = PassOptions {
            config: config("pacing: {max: 1, per: 1h}"),
            ..follow()
        };
        let r = refresher(&client, options);
        async move { r.run_once_at(at(when)).await.unwrap() }
    };
    let status = |r: &freshet_cluster::PassReport, name: &str| {
        let w = r.workloads.iter().find(|w| w.name == name).unwrap();
        (w.status, w.next_due.map(|t| t.to_string()))
    };
    run("2026-11-28T10:00:00Z").await;

    // 11:00: team/api moves; `a` takes the one slot, `z` starts waiting.
    let api_next = fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let r = run("2026-11-28T11:00:00Z").await;
    assert_eq!(status(&r, "a").0, Status::Refreshed, "{r:#?}");
    assert_eq!(status(&r, "z").0, Status::Queued, "{r:#?}");
    // Rolled out before the next (injected) time passes its deadline.
    wait_rolled_out(&client, NS, "a").await;

    // 11:30: team/multi moves; `b` waits too, behind `z` (by name it would lead).
    let multi_next = fixtures::move_tag(&pusher, &mut multi_fx, "latest", "2")
        .await
        .unwrap();
    let r = run("2026-11-28T11:30:00Z").await;
    assert_eq!(
        status(&r, "z"),
        (Status::Queued, Some("2026-11-28T12:00:00Z".into())),
        "{r:#?}"
    );
    assert_eq!(
        status(&r, "b"),
        (Status::Queued, Some("2026-11-28T13:00:00Z".into())),
        "{r:#?}"
    );
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), "freshet");
    let state = cm.get("freshet-pacing").await.unwrap().data.unwrap()["state"].clone();
    assert!(
        state.contains("\"Deployment/team/z\":\"2026-11-28T11:00:00Z\""),
        "{state}"
    );

    // 12:00, a new run: `z` rolls, `b` still waits, its time kept.
    let r = run("2026-11-28T12:00:00Z").await;
    assert_eq!(status(&r, "z").0, Status::Refreshed, "{r:#?}");
    assert_eq!(status(&r, "b").0, Status::Queued, "{r:#?}");
    wait_rolled_out(&client, NS, "z").await;
    let state = cm.get("freshet-pacing").await.unwrap().data.unwrap()["state"].clone();
    assert!(!state.contains("team/z"), "{state}");
    assert!(state.contains("2026-11-28T11:30:00Z"), "{state}");
    wait_running(&client, "z", &api_next.digest).await;
    wait_running(&client, "a", &api_next.digest).await;
    let r = run("2026-11-28T13:00:00Z").await;
    assert_eq!(status(&r, "b").0, Status::Refreshed, "{r:#?}");
    wait_running(&client, "b", &multi_next.digest).await;
}

/// Options that follow rollouts, as the CLI's.
fn follow() -> PassOptions {
    PassOptions {
        follow_rollouts: true,
        ..PassOptions::default()
    }
}

/// The slots spent at `at` in the pacing state `state` (every scope).
fn slots(state: &str, at: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(state).expect("the state is JSON");
    v["slots"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|s| s.as_array())
        .flatten()
        .filter(|s| s.as_str() == Some(at))
        .count()
}

fn config(text: &str) -> Arc<ClusterConfig> {
    Arc::new(ClusterConfig::parse(text).expect("config parses"))
}

/// Scenario 4: pacing 5 per 6 h over 20 due workloads, time injected: exactly 5
/// roll, the other 15 are queued with their due times, the state is in the
/// ConfigMap; 6 h later the next 5 roll.
#[tokio::test]
async fn pacing_five_per_six_hours_rolls_exactly_five_of_twenty() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    namespace(&client, "freshet").await;
    for i in 0..20 {
        Deploy::test(&format!("w{i:02}"))
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .create(&client, NS)
            .await;
    }
    let options = PassOptions {
        config: config("pacing: {max: 5, per: 6h}"),
        ..follow()
    };
    let refresher = refresher(&client, options);
    let first = refresher
        .run_once_at(at("2026-11-28T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(first.writes(), 20, "baselines spend no slot");
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let r = refresher
        .run_once_at(at("2026-11-28T11:00:00Z"))
        .await
        .unwrap();
    let rolled: Vec<&str> = r
        .workloads
        .iter()
        .filter(|w| w.status == Status::Refreshed)
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(rolled, ["w00", "w01", "w02", "w03", "w04"], "{r:#?}");
    let queued: Vec<_> = r
        .workloads
        .iter()
        .filter(|w| w.status == Status::Queued)
        .collect();
    assert_eq!(queued.len(), 15);
    let due = |name: &str| {
        queued
            .iter()
            .find(|w| w.name == name)
            .and_then(|w| w.next_due)
            .map(|t| t.to_string())
    };
    assert_eq!(due("w05").as_deref(), Some("2026-11-28T17:00:00Z"));
    assert_eq!(due("w10").as_deref(), Some("2026-11-28T23:00:00Z"));
    assert_eq!(due("w19").as_deref(), Some("2026-11-29T05:00:00Z"));
    assert!(queued[0].warnings[0].contains("pacing budget"));
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), "freshet");
    let state = cm.get("freshet-pacing").await.unwrap().data.unwrap()["state"].clone();
    assert_eq!(slots(&state, "2026-11-28T11:00:00Z"), 5, "{state}");

    // An hour later: still no slot.
    let r = refresher
        .run_once_at(at("2026-11-28T12:00:00Z"))
        .await
        .unwrap();
    let refreshed = |r: &freshet_cluster::PassReport| {
        r.workloads
            .iter()
            .filter(|w| w.status == Status::Refreshed)
            .count()
    };
    assert_eq!(refreshed(&r), 0, "{r:#?}");
    // Six hours after the first slots: the next five.
    let r = refresher
        .run_once_at(at("2026-11-28T17:00:00Z"))
        .await
        .unwrap();
    assert_eq!(refreshed(&r), 5, "{r:#?}");
}

/// Scenario 5: a rule's maintenance window: outside it the rollout stays queued
/// and says when the window opens; inside, it rolls.
#[tokio::test]
async fn a_closed_window_queues_until_it_opens() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("web")
        .container("web", &image)
        .create(&client, NS)
        .await;
    let options = PassOptions {
        config: config(
            "rules:\n  - policy: digest\n    windows: [\"Mon-Fri 02:00-05:00 Europe/Berlin\"]\n",
        ),
        ..follow()
    };
    let refresher = refresher(&client, options);
    // Baselines start no rollout, so they are recorded whatever the window.
    refresher
        .run_once_at(at("2026-11-27T12:00:00Z"))
        .await
        .unwrap();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    // Friday 13:00 in Berlin: closed; the next window opens Monday 02:00 CET.
    let r = refresher
        .run_once_at(at("2026-11-27T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::Queued, "{r:#?}");
    assert_eq!(
        r.workloads[0].next_due.map(|t| t.to_string()).as_deref(),
        Some("2026-11-30T01:00:00Z")
    );
    assert!(r.workloads[0].warnings[0].contains("maintenance window"));
    assert_eq!(
        restarted_at(&deployments(&client, NS).get("web").await.unwrap()),
        None
    );
    // Monday 03:00 in Berlin: open.
    let r = refresher
        .run_once_at(at("2026-11-30T02:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    assert!(restarted_at(&deployments(&client, NS).get("web").await.unwrap()).is_some());
}

/// Bad input: two runs at once never both spend one budget slot, and never both
/// roll back one workload.
#[tokio::test]
async fn two_runs_racing_never_share_a_slot_or_a_rollback() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let stable = api_fx.image("stable").clone();
    let bad = pusher
        .push(
            &stable.repo,
            "candidate",
            &stable.spec.clone().generation("bad"),
        )
        .await
        .expect("bad image");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster_crashing(&bad.digest).await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    namespace(&client, "freshet").await;
    for name in ["a", "b", "c", "d"] {
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .create(&client, NS)
            .await;
    }
    let options = || PassOptions {
        config: config("pacing: {max: 2, per: 1h}"),
        ..follow()
    };
    let one = refresher(&client, options());
    let two = refresher(&client, options());
    one.run_once_at(at("2026-11-28T10:00:00Z")).await.unwrap();
    // The first pods run the good digest before the tag moves (else they could
    // pull the bad one themselves, outside any rollout freshet follows).
    for name in ["a", "b", "c", "d"] {
        wait_running(&client, name, api_fx.digest("stable")).await;
    }
    pusher.tag(&bad, "stable").await.unwrap();
    let (r1, r2) = tokio::join!(
        one.run_once_at(at("2026-11-28T10:15:00Z")),
        two.run_once_at(at("2026-11-28T10:15:00Z"))
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let rolled = |r: &freshet_cluster::PassReport| {
        r.workloads
            .iter()
            .filter(|w| w.status == Status::Refreshed && w.written)
            .count()
    };
    assert_eq!(
        rolled(&r1) + rolled(&r2),
        2,
        "one budget of 2: {r1:#?}\n{r2:#?}"
    );
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), "freshet");
    let state = cm.get("freshet-pacing").await.unwrap().data.unwrap()["state"].clone();
    assert!(
        slots(&state, "2026-11-28T10:15:00Z") <= 2,
        "never more slots than the budget: {state}"
    );
    let rolling: Vec<String> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|n| restarted_at_blocking(&r1, &r2, n))
        .map(str::to_owned)
        .collect();
    assert_eq!(rolling.len(), 2, "{rolling:?}");
    wait_waiting(&client, &rolling[0], "CrashLoopBackOff").await;
    let (r1, r2) = tokio::join!(
        one.run_once_at(at("2026-11-28T10:16:00Z")),
        two.run_once_at(at("2026-11-28T10:16:00Z"))
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    for name in &rolling {
        let rolled_back = [&r1, &r2]
            .iter()
            .flat_map(|r| &r.workloads)
            .filter(|w| &w.name == name && w.status == Status::RolledBack)
            .count();
        assert!(rolled_back <= 1, "{name}: {r1:#?}\n{r2:#?}");
        let events = reasons(&events(&client, NS, name).await, "RolledBack");
        assert_eq!(events, rolled_back, "{name}: one rollback, one Event");
        if name == &rolling[0] {
            assert_eq!(rolled_back, 1, "{name}: {r1:#?}\n{r2:#?}");
        }
    }
}

/// Whether either report refreshed `name`.
fn restarted_at_blocking(
    r1: &freshet_cluster::PassReport,
    r2: &freshet_cluster::PassReport,
    name: &str,
) -> bool {
    [r1, r2]
        .iter()
        .flat_map(|r| &r.workloads)
        .any(|w| w.name == name && w.status == Status::Refreshed && w.written)
}
