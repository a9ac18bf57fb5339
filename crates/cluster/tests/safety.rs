//! The rollback runbook, end to end on the API test bed with the real registry:
//! a crash-looping digest rolled back, held and released; an `ErrImagePull`
//! rollout rolled back; the pacing budget and maintenance windows with an injected
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
    let d = deploys.get("web").await.unwrap();
    assert_eq!(image_of(&d), format!("{image}@{good}"));
    assert_eq!(annotation(&d, ROLLOUT), None, "the record is gone");
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

/// Scenario 3: the tag moves to an image without the arm64 node's platform. The
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

/// Options that follow rollouts, as the CLI's.
fn follow() -> PassOptions {
    PassOptions {
        follow_rollouts: true,
        ..PassOptions::default()
    }
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
    assert_eq!(state.matches("2026-11-28T11:00:00Z").count(), 5, "{state}");

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
        state.matches("2026-11-28T10:15:00Z").count() <= 2,
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
