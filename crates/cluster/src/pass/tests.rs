//! The conflict loop and Event series against the test bed: a workload read before
//! someone else wrote it gets a 409, is read again, planned again and patched; a
//! failure repeated over two passes is one Event object with a series.

use std::collections::BTreeMap;

use freshet_apiserver::images::FakeResolver;
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_core::Digest;
use freshet_core::policy::Facts;
use freshet_core::refresh::WorkloadKind;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::*;
use crate::PullSecret;
use crate::clock::FixedClock;
use crate::workloads;

const IMAGE: &str = "registry.example/team/api:stable";

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

async fn setup(image: &str, annotations: serde_json::Value) -> (TestCluster, kube::Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster =
        TestCluster::start(ClusterOptions::default().resolver(Arc::new(FakeResolver::default())))
            .await
            .unwrap();
    let kc: kube::config::Kubeconfig = serde_json::from_value(cluster.admin_kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": image, "imagePullPolicy": "Always"}]}}}
    }))
    .unwrap();
    workloads::api(&client, WorkloadKind::Deployment, Some("default"))
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    (cluster, client)
}

fn facts(digest: &str) -> ImageFacts {
    let mut f = Facts::default();
    f.digests
        .insert("stable".into(), Ok(Digest::parse(digest).unwrap()));
    BTreeMap::from([(IMAGE.to_owned(), f)])
}

async fn someone_else_writes(client: &kube::Client) {
    let patch = json!({"metadata": {"labels": {"touched": "yes"}}});
    workloads::api(client, WorkloadKind::Deployment, Some("default"))
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn refresher(client: &kube::Client, retries: u32) -> Refresher {
    Refresher::new(
        client.clone(),
        Arc::new(|_: &[PullSecret], _: &freshet_registry::SharedTokens| {
            Ok(freshet_registry::Client::anonymous()?)
        }),
        PassOptions {
            conflict_retries: retries,
            ..PassOptions::default()
        },
    )
}

#[tokio::test]
async fn a_conflict_is_read_again_planned_again_and_retried() {
    let old = format!("sha256:{}", "1".repeat(64));
    let new = format!("sha256:{}", "2".repeat(64));
    let refreshed = json!({IMAGE: {"digest": old, "at": "2026-11-23T09:00:00Z"}}).to_string();
    let (_cluster, client) = setup(
        IMAGE,
        json!({"freshet.io/policy": "digest", "freshet.io/refreshed": refreshed}),
    )
    .await;
    let stale = workloads::get(&client, WorkloadKind::Deployment, "default", "web")
        .await
        .unwrap();
    someone_else_writes(&client).await;
    let r = refresher(&client, 3);
    let enrollment = r.gatherer().enroll(&stale).unwrap().unwrap();
    let report = r
        .refresh(
            stale,
            enrollment,
            &facts(&new),
            None,
            at("2026-11-23T10:00:00Z"),
        )
        .await;
    assert_eq!(report.status, Status::Refreshed, "{report:#?}");
    assert!(report.written);
    let now = workloads::get(&client, WorkloadKind::Deployment, "default", "web")
        .await
        .unwrap();
    assert!(
        now.workload
            .annotations
            .get("freshet.io/refreshed")
            .unwrap()
            .contains(&new),
        "{now:?}"
    );
    assert_eq!(
        now.labels.get("touched").map(String::as_str),
        Some("yes"),
        "the other writer's field is kept"
    );
}

#[tokio::test]
async fn conflicts_beyond_the_retry_budget_fail_the_workload() {
    let (_cluster, client) = setup(IMAGE, json!({"freshet.io/policy": "digest"})).await;
    let stale = workloads::get(&client, WorkloadKind::Deployment, "default", "web")
        .await
        .unwrap();
    someone_else_writes(&client).await;
    let r = refresher(&client, 0);
    let enrollment = r.gatherer().enroll(&stale).unwrap().unwrap();
    let report = r
        .refresh(
            stale,
            enrollment,
            &facts(&format!("sha256:{}", "3".repeat(64))),
            None,
            at("2026-11-23T10:00:00Z"),
        )
        .await;
    assert_eq!(report.status, Status::Failed, "{report:#?}");
    assert!(!report.written);
    let error = report.error.as_deref().unwrap();
    assert!(
        error.starts_with("patch failed: ") && (error.contains("409") || error.contains("onflict")),
        "{report:?}"
    );
}

/// Regression: every pass used to create a new Event object for the same failure.
#[tokio::test]
async fn the_same_failure_in_two_passes_is_one_event_with_a_series() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    // Nobody listens there: every resolve fails the same way.
    let image = format!("127.0.0.1:{port}/team/gone:1");
    let (_cluster, client) = setup(
        &image,
        json!({"freshet.io/policy": "digest", "freshet.io/failure-threshold": "1"}),
    )
    .await;
    let base = refresher(&client, 5);
    let mut event_times = Vec::new();
    for (pass, now) in [(1, "2026-11-23T10:00:00Z"), (2, "2026-11-23T10:02:00Z")] {
        let r = base.clone().with_clock(Arc::new(FixedClock(at(now))));
        let report = r.run_once().await.unwrap();
        event_times.push(now);
        assert_eq!(
            report.workloads[0].status,
            Status::Escalated,
            "pass {pass}: {report:#?}"
        );
        assert_eq!(report.at.to_string(), now, "the clock's time");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let failed: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(crate::events::FAILED))
        .collect();
    assert_eq!(failed.len(), 1, "one object: {failed:#?}");
    let event = &failed[0];
    assert_eq!(
        event.series.as_ref().map(|s| s.count),
        Some(2),
        "{event:#?}"
    );
    // Both times are the injected clock's, not the wall clock's.
    let time = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>| {
        t.map(|t| t.0.to_string())
    };
    assert_eq!(
        time(event.event_time.as_ref()).as_deref(),
        Some(event_times[0]),
        "{event:#?}"
    );
    assert_eq!(
        time(event.series.as_ref().map(|s| &s.last_observed_time)).as_deref(),
        Some(event_times[1]),
        "{event:#?}"
    );
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.reporting_controller.as_deref(), Some("freshet"));
    let regarding = event.regarding.as_ref().unwrap();
    assert_eq!(
        (regarding.kind.as_deref(), regarding.name.as_deref()),
        (Some("Deployment"), Some("web"))
    );
    assert!(
        event
            .note
            .as_deref()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{event:#?}"
    );
}

/// Regression: a repeat after the series window is a new Event, decided by the
/// injected clock (never the wall clock).
#[tokio::test]
async fn a_repeat_after_the_series_window_is_a_new_event() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let image = format!("127.0.0.1:{port}/team/gone:1");
    let (_cluster, client) = setup(
        &image,
        json!({"freshet.io/policy": "digest", "freshet.io/failure-threshold": "1"}),
    )
    .await;
    let base = refresher(&client, 5);
    for now in ["2026-11-23T10:00:00Z", "2026-11-23T10:07:00Z"] {
        let r = base.clone().with_clock(Arc::new(FixedClock(at(now))));
        r.run_once().await.unwrap();
    }
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut times: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(crate::events::FAILED))
        .inspect(|e| assert!(e.series.is_none(), "{e:#?}"))
        .filter_map(|e| e.event_time.map(|t| t.0.to_string()))
        .collect();
    times.sort();
    assert_eq!(times, ["2026-11-23T10:00:00Z", "2026-11-23T10:07:00Z"]);
}

#[test]
fn equal_enrollments_share_one_copy_and_distinct_ones_stay_apart() {
    let enroll = |policy: &str| {
        let a: freshet_core::Labels = [("freshet.io/policy".to_owned(), policy.to_owned())]
            .into_iter()
            .collect();
        freshet_core::refresh::from_annotations(&a)
            .unwrap()
            .unwrap()
    };
    let mut shared = Enrollments::default();
    let (a, b) = (
        shared.share(enroll("digest")),
        shared.share(enroll("digest")),
    );
    assert!(Arc::ptr_eq(&a, &b), "one copy for equal enrollments");
    let minor = shared.share(enroll("minor"));
    assert!(!Arc::ptr_eq(&a, &minor) && *minor == enroll("minor"));
    // Past the distinct ones kept, every enrollment is still its own value.
    for i in 0..(Enrollments::KEPT * 2) {
        let e = enroll(&format!("regexp:^v{i}$"));
        assert_eq!(*shared.share(e.clone()), e);
    }
    assert_eq!(*shared.share(enroll("digest")), enroll("digest"));
}
