//! Following the rollouts of the other kinds end to end on the API test bed with
//! the real registry, each judged by the kind's own status (issue 12, item 1): a
//! StatefulSet rolled out to a good digest and found healthy from its update and
//! current revisions and ready replicas; a DaemonSet rolled to a crash-looping
//! digest and rolled back; a CronJob whose next Job's pods crash-loop, rolled back
//! so that the Job after it runs the last good digest. Every scenario checks what
//! the pods run from their `imageID`.

mod common;

use common::*;
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_cluster::{PassOptions, Refresher, Status};
use freshet_testbed::kubectl::kubectl;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::{PushedImage, Pusher};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "kinds";
const ROLLOUT: &str = "freshet.io/rollout";
const HOLD: &str = "freshet.io/hold";

fn follow() -> PassOptions {
    PassOptions {
        follow_rollouts: true,
        ..PassOptions::default()
    }
}

/// A pod template: one container `app` on `image`, pulling `Always`, on amd64.
fn template(app: &str, image: &str, restart: Option<&str>) -> Value {
    let mut spec = json!({
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}],
    });
    if let Some(r) = restart {
        spec["restartPolicy"] = json!(r);
    }
    json!({"metadata": {"labels": {"app": app}}, "spec": spec})
}

fn annotations() -> Value {
    json!({"freshet.io/policy": "digest"})
}

/// The live pods matching `selector`: (waiting reason, imageID) per container.
async fn pods(client: &kube::Client, selector: &str) -> Vec<(Option<String>, String)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default().labels(selector))
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

/// Waits until `count` pods match `selector`, none waits, and all run `digest`.
async fn wait_running(client: &kube::Client, selector: &str, count: usize, digest: &str) {
    wait_for(
        &format!("{count} pods of {selector} running {digest}"),
        || async {
            let p = pods(client, selector).await;
            (p.len() == count && p.iter().all(|(r, id)| r.is_none() && id.ends_with(digest)))
                .then_some(())
        },
    )
    .await;
}

/// Waits until a pod matching `selector` waits with `reason` on `digest`.
async fn wait_waiting(client: &kube::Client, selector: &str, reason: &str) {
    wait_for(&format!("a pod of {selector} in {reason}"), || async {
        pods(client, selector)
            .await
            .iter()
            .any(|(r, _)| r.as_deref() == Some(reason))
            .then_some(())
    })
    .await;
}

struct Bed {
    _registry: RegistryServer,
    pusher: Pusher,
    api_fx: fixtures::RepoFixture,
    cluster: TestCluster,
    client: kube::Client,
    image: String,
    good: String,
    bad: PushedImage,
}

/// The registry with team/api (and a crash-looping digest of it, not yet tagged),
/// and a test bed on which that digest crashes.
async fn bed() -> Bed {
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
            &stable.spec.clone().generation("bad"),
        )
        .await
        .expect("bad image");
    crypto();
    let cluster = TestCluster::start(ClusterOptions::default().crash_image(&bad.digest))
        .await
        .expect("cluster starts");
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Bed {
        image: format!("{}/team/api:stable", registry.host()),
        _registry: registry,
        pusher,
        api_fx,
        cluster,
        client,
        good,
        bad,
    }
}

async fn run(r: &Refresher, when: &str) -> freshet_cluster::PassReport {
    r.run_once_at(at(when)).await.expect("a pass")
}

#[tokio::test]
async fn a_stateful_set_rollout_is_followed_to_healthy_by_its_revisions() {
    let mut b = bed().await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db", "annotations": annotations()},
        "spec": {"replicas": 2, "serviceName": "db",
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": template("db", &b.image, None)}
    }))
    .unwrap();
    let api: Api<StatefulSet> = Api::namespaced(b.client.clone(), NS);
    api.create(&PostParams::default(), &sts).await.unwrap();
    let refresher = refresher(&b.client, follow());
    run(&refresher, "2026-11-28T10:00:00Z").await;
    wait_running(&b.client, "app=db", 2, &b.good).await;

    let next = fixtures::move_tag(&b.pusher, &mut b.api_fx, "stable", "2")
        .await
        .unwrap();
    let r = run(&refresher, "2026-11-28T10:15:00Z").await;
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    let record = api.get("db").await.unwrap().metadata.annotations.unwrap()[ROLLOUT].clone();
    assert!(record.contains(&next.digest), "{record}");
    wait_running(&b.client, "app=db", 2, &next.digest).await;
    // Healthy by the StatefulSet's own status: every replica updated and ready.
    wait_for("the StatefulSet's revisions to converge", || async {
        let s = api.get("db").await.ok()?.status?;
        (s.current_revision.is_some()
            && s.current_revision == s.update_revision
            && s.ready_replicas == Some(2)
            && s.updated_replicas == Some(2))
        .then_some(())
    })
    .await;
    let r = run(&refresher, "2026-11-28T10:16:00Z").await;
    assert_eq!(r.workloads[0].status, Status::Recorded, "healthy: {r:#?}");
    let annotations = api.get("db").await.unwrap().metadata.annotations.unwrap();
    assert!(!annotations.contains_key(ROLLOUT), "the record is removed");
    wait_running(&b.client, "app=db", 2, &next.digest).await;
}

#[tokio::test]
async fn a_daemon_set_on_a_crash_looping_digest_is_rolled_back() {
    let b = bed().await;
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent", "annotations": annotations()},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": template("agent", &b.image, None)}
    }))
    .unwrap();
    let api: Api<DaemonSet> = Api::namespaced(b.client.clone(), NS);
    api.create(&PostParams::default(), &ds).await.unwrap();
    let refresher = refresher(&b.client, follow());
    run(&refresher, "2026-11-28T10:00:00Z").await;
    // Two amd64 nodes on the test bed.
    wait_running(&b.client, "app=agent", 2, &b.good).await;

    b.pusher.tag(&b.bad, "stable").await.unwrap();
    let r = run(&refresher, "2026-11-28T10:15:00Z").await;
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    wait_waiting(&b.client, "app=agent", "CrashLoopBackOff").await;
    let r = run(&refresher, "2026-11-28T10:16:00Z").await;
    assert_eq!(r.workloads[0].status, Status::RolledBack, "{r:#?}");
    let ds = api.get("agent").await.unwrap();
    let image = ds.spec.template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(image, format!("{}@{}", b.image, b.good));
    let annotations = ds.metadata.annotations.unwrap();
    assert!(annotations[HOLD].contains(&b.bad.digest));
    assert!(!annotations.contains_key(ROLLOUT));
    wait_running(&b.client, "app=agent", 2, &b.good).await;
}

#[tokio::test]
async fn a_cron_jobs_next_job_crash_looping_is_rolled_back_and_the_job_after_runs_good() {
    let b = bed().await;
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "nightly", "annotations": annotations()},
        // Once a year: the Jobs here are started by hand, from the CronJob.
        "spec": {"schedule": "0 0 1 1 *",
                 "jobTemplate": {"spec": {"backoffLimit": 6,
                     "template": template("nightly", &b.image, Some("OnFailure"))}}}
    }))
    .unwrap();
    let api: Api<CronJob> = Api::namespaced(b.client.clone(), NS);
    api.create(&PostParams::default(), &cj).await.unwrap();
    let kc = b.cluster.kubeconfig_path().to_str().unwrap().to_owned();
    let job_from_cronjob = |name: &'static str| {
        let kc = kc.clone();
        async move {
            kubectl(
                &[
                    "--kubeconfig",
                    &kc,
                    "-n",
                    NS,
                    "create",
                    "job",
                    name,
                    "--from=cronjob/nightly",
                ],
                None,
            )
            .await
        }
    };
    let refresher = refresher(&b.client, follow());
    run(&refresher, "2026-11-28T10:00:00Z").await;

    b.pusher.tag(&b.bad, "stable").await.unwrap();
    let r = run(&refresher, "2026-11-28T10:15:00Z").await;
    assert_eq!(r.workloads[0].status, Status::Refreshed, "{r:#?}");
    let record = api
        .get("nightly")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()[ROLLOUT]
        .clone();
    assert!(record.contains(&b.bad.digest), "{record}");
    // Until the next Job starts, the rollout is still being followed.
    let r = run(&refresher, "2026-11-28T10:15:30Z").await;
    assert_eq!(r.workloads[0].status, Status::Following, "{r:#?}");

    // The next Job's pods crash-loop on the bad digest: rolled back.
    job_from_cronjob("nightly-next").await;
    wait_waiting(&b.client, "job-name=nightly-next", "CrashLoopBackOff").await;
    let r = run(&refresher, "2026-11-28T10:16:00Z").await;
    assert_eq!(r.workloads[0].status, Status::RolledBack, "{r:#?}");
    let cj = api.get("nightly").await.unwrap();
    let image = cj
        .spec
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(image, format!("{}@{}", b.image, b.good));
    assert!(cj.metadata.annotations.unwrap()[HOLD].contains(&b.bad.digest));

    // The Job after the rollback runs the last good digest to completion.
    job_from_cronjob("nightly-after").await;
    wait_for(
        "the Job after the rollback to complete on the good digest",
        || async {
            let p = pods(&b.client, "job-name=nightly-after").await;
            (!p.is_empty() && p.iter().all(|(r, id)| r.is_none() && id.ends_with(&b.good)))
                .then_some(())
        },
    )
    .await;
}
