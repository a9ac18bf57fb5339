//! The runbook end to end on the API test bed with the real registry: approvals
//! reached and expired (the time injected, no sleeps), Keel's `force` on `:16`,
//! Keel settings given as labels, the warning for Keel settings freshet ignores, and
//! two concurrent rollbacks of one workload (exactly one wins).

mod common;

use std::sync::Arc;

use common::*;
use freshet_cluster::commands::{Command, CommandError, Commander, RollbackTo};
use freshet_cluster::{FixedClock, PassOptions, Status};
use freshet_core::Digest;
use freshet_core::notify::EventKind;
use freshet_core::refresh::config::ClusterConfig;
use freshet_core::safety::command::Target;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::PostParams;
use serde_json::json;

const NS: &str = "gate";

fn commander(client: &kube::Client, when: &str) -> Commander {
    Commander::new(client.clone(), registry_factory(), "test")
        .with_clock(Arc::new(FixedClock(at(when))))
}

fn target(name: &str) -> Target {
    Target::parse(&format!("deployment/{NS}/{name}")).unwrap()
}

/// Creates a Deployment with metadata `labels` (Keel settings as labels).
async fn labelled(client: &kube::Client, name: &str, image: &str, labels: serde_json::Value) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"}, "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}}
        }
    }))
    .unwrap();
    deployments(client, NS)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
}

#[tokio::test]
async fn approvals_are_reached_and_expire_with_the_time_injected() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    for (name, deadline) in [("gated", "24"), ("late", "1")] {
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .annotate("keel.sh/approvals", "2")
            .annotate("keel.sh/approvalDeadline", deadline)
            .create(&client, NS)
            .await;
    }
    let refresher = refresher(&client, PassOptions::default());
    refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let moved = api_fx.digest("stable").to_owned();

    // The update is found: nothing rolls, a request is written, the report says why.
    let asked = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    for w in &asked.workloads {
        assert!(w.changes.is_empty(), "{w:#?}");
        assert!(
            w.warnings
                .iter()
                .any(|m| m.contains("waiting for approval") && m.contains("0 of 2")),
            "{w:#?}"
        );
    }
    let asking = |r: &freshet_cluster::PassReport, name: &str| -> Vec<String> {
        r.workloads
            .iter()
            .filter(|w| w.name == name)
            .flat_map(|w| &w.notices)
            .filter(|n| n.kind == EventKind::ApprovalNeeded)
            .filter_map(|n| n.to.clone())
            .collect()
    };
    for name in ["gated", "late"] {
        assert_eq!(
            asking(&asked, name),
            [format!("{image}@{moved}")],
            "one approval-needed notification per workload: {asked:#?}"
        );
    }
    // Regression: the notification fired on every pass while the update waited.
    let again = refresher
        .run_once_at(at("2026-11-23T10:15:30Z"))
        .await
        .unwrap();
    for name in ["gated", "late"] {
        let w = again.workloads.iter().find(|w| w.name == name).unwrap();
        assert!(
            w.warnings
                .iter()
                .any(|m| m.contains("waiting for approval")),
            "{w:#?}"
        );
        assert_eq!(asking(&again, name), Vec::<String>::new(), "sent once");
    }
    let gated = deployments(&client, NS).get("gated").await.unwrap();
    assert_eq!(restarted_at(&gated), None);
    let request = annotation(&gated, "freshet.io/approval").expect("a request");
    assert!(request.contains(&moved), "{request}");
    let rows = refresher
        .clone()
        .with_clock(Arc::new(FixedClock(at("2026-11-23T10:16:00Z"))))
        .status()
        .await
        .unwrap();
    assert!(
        rows.iter().all(|r| r
            .warnings
            .iter()
            .any(|w| w.contains("waiting for approval"))),
        "{rows:#?}"
    );
    let waiting = events(&client, NS, "gated").await;
    assert!(
        waiting
            .iter()
            .any(|e| e.reason.as_deref() == Some("AwaitingApproval"))
    );

    // Nothing to approve for a workload that asks for none; two approvals roll it.
    let approve = |by: &str| Command::Approve { by: by.into() };
    let c = commander(&client, "2026-11-23T10:20:00Z");
    for by in ["ana", "ana", "bo"] {
        c.run(&target("gated"), approve(by), false).await.unwrap();
    }
    let rolled = refresher
        .run_once_at(at("2026-11-23T10:30:00Z"))
        .await
        .unwrap();
    let gated_report = rolled.workloads.iter().find(|w| w.name == "gated").unwrap();
    assert_eq!(gated_report.status, Status::Refreshed, "{gated_report:#?}");
    let gated = deployments(&client, NS).get("gated").await.unwrap();
    assert_eq!(
        restarted_at(&gated).as_deref(),
        Some("2026-11-23T10:30:00Z")
    );
    assert_eq!(
        annotation(&gated, "freshet.io/approval"),
        None,
        "request removed"
    );
    assert_eq!(
        refreshed_digest(&gated, &image).as_deref(),
        Some(moved.as_str())
    );

    // `late` had a one-hour deadline: after it, the update does not roll, and a vote
    // is refused.
    let expired = refresher
        .run_once_at(at("2026-11-23T11:20:00Z"))
        .await
        .unwrap();
    let late = expired.workloads.iter().find(|w| w.name == "late").unwrap();
    assert!(late.changes.is_empty());
    assert!(
        late.warnings.iter().any(|m| m.contains("expired")),
        "{late:#?}"
    );
    let late_now = deployments(&client, NS).get("late").await.unwrap();
    assert_eq!(restarted_at(&late_now), None);
    let e = commander(&client, "2026-11-23T11:20:00Z")
        .run(&target("late"), approve("ana"), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    assert!(
        events(&client, NS, "late")
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("ApprovalExpired"))
    );

    // A new target digest asks again, and notifies again (once).
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "3")
        .await
        .unwrap();
    let newer = api_fx.digest("stable").to_owned();
    let asked = refresher
        .run_once_at(at("2026-11-23T11:30:00Z"))
        .await
        .unwrap();
    assert_eq!(
        asking(&asked, "late"),
        [format!("{image}@{newer}")],
        "{asked:#?}"
    );
    let again = refresher
        .run_once_at(at("2026-11-23T11:31:00Z"))
        .await
        .unwrap();
    assert_eq!(asking(&again, "late"), Vec::<String>::new());
}

#[tokio::test]
async fn force_on_a_major_tag_keeps_it_and_a_never_label_stops_a_rule() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let spec = |tag: &str| {
        freshet_testbed::registry::image::ImageSpec::docker_v2(format!("team/pg:{tag}"))
    };
    let sixteen = pusher.push("team/pg", "16", &spec("16")).await.unwrap();
    pusher.push("team/pg", "17", &spec("17")).await.unwrap();
    let image = format!("{}/team/pg:16", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("pg")
        .container("app", &image)
        .annotate("keel.sh/policy", "force")
        .annotate("keel.sh/notify", "#ops")
        .create(&client, NS)
        .await;
    labelled(
        &client,
        "opted-out",
        &image,
        json!({"app": "x", "keel.sh/policy": "never"}),
    )
    .await;
    labelled(
        &client,
        "by-label",
        &image,
        json!({"keel.sh/policy": "force"}),
    )
    .await;
    let config = ClusterConfig::parse("rules:\n  - policy: digest\n    selector: app=x\n").unwrap();
    let options = PassOptions {
        config: Arc::new(config),
        ..PassOptions::default()
    };
    let refresher = refresher(&client, options);
    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    let names: Vec<&str> = first.workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["by-label", "pg"], "the never label stops the rule");
    let pg = first.workloads.iter().find(|w| w.name == "pg").unwrap();
    assert!(
        pg.warnings.iter().any(|m| m.contains("keel.sh/notify")),
        "an ignored Keel key is a warning: {pg:#?}"
    );
    assert!(events(&client, NS, "pg").await.iter().any(|e| {
        e.reason.as_deref() == Some("KeelSettingsIgnored")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("keel.sh/notify"))
    }));

    let moved = pusher.move_tag(&sixteen, "2").await.unwrap();
    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    for name in ["pg", "by-label"] {
        let w = second.workloads.iter().find(|w| w.name == name).unwrap();
        assert_eq!(w.status, Status::Refreshed, "{w:#?}");
        let d = deployments(&client, NS).get(name).await.unwrap();
        let c = &d.spec.template.spec.unwrap().containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some(image.as_str()),
            "the tag string stays :16"
        );
    }
    let pg = deployments(&client, NS).get("pg").await.unwrap();
    assert_eq!(
        refreshed_digest(&pg, &image).as_deref(),
        Some(moved.digest.as_str())
    );
    let out = deployments(&client, NS).get("opted-out").await.unwrap();
    assert_eq!(
        annotation(&out, "freshet.io/refreshed"),
        None,
        "never: untouched"
    );
}

#[tokio::test]
async fn two_concurrent_rollbacks_of_one_workload_exactly_one_wins() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let good = api_fx.digest("stable").to_owned();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("api")
        .container("app", &image)
        .create(&client, NS)
        .await;
    // Settled first: the deployment controller's own status writes would make
    // both patches conflict.
    wait_rolled_out(&client, NS, "api").await;
    let c = commander(&client, "2026-11-23T10:00:00Z");
    let rollback = Command::Rollback {
        container: None,
        to: RollbackTo::Digest(Digest::parse(&good).unwrap()),
    };
    // Both decide on the same read, then write at once.
    let a = c.prepare(&target("api"), rollback.clone()).await.unwrap();
    let b = c.prepare(&target("api"), rollback).await.unwrap();
    let (ra, rb) = tokio::join!(c.apply(a), c.apply(b));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{ra:?} {rb:?}");
    let lost = if ra.is_err() { ra } else { rb }.unwrap_err();
    assert!(matches!(lost, CommandError::Conflict { .. }), "{lost:?}");
    assert!(lost.to_string().contains("nothing was written"), "{lost}");
    let d = deployments(&client, NS).get("api").await.unwrap();
    let c0 = &d.spec.template.spec.unwrap().containers[0];
    assert_eq!(
        c0.image.as_deref(),
        Some(format!("{image}@{good}").as_str())
    );
    let rolled: Vec<_> = events(&client, NS, "api")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RolledBack"))
        .collect();
    assert_eq!(rolled.len(), 1, "one Event for the one winner");
}
