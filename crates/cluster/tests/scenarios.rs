//! The seed situations of the cluster refresh, end to end: the API test bed over
//! HTTPS through the real kube client, real registries, real tag moves.

mod common;

use common::*;
use freshet_cluster::{Outcome, PassOptions, Status};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};

const NS: &str = "team";

/// Scenario 1: two deployments on floating tags restart when their tags move, a
/// third image's digest goes into an env var of the first, the audit annotations
/// and events say what happened, and a run with nothing new writes nothing.
#[tokio::test]
async fn floating_tags_restart_set_env_follows_a_third_image_and_a_second_run_writes_nothing() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let mut alpine_fx = fixtures::seed_alpine(&pusher).await.expect("seed alpine");
    let mut multi_fx = fixtures::seed_multi(&pusher).await.expect("seed multi");
    let host = registry.host();
    let api_image = format!("{host}/team/api:stable");
    let alpine_image = format!("{host}/library/alpine:latest");
    let multi_image = format!("{host}/team/multi:latest");

    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    namespace(&client, "other").await;
    Deploy::test("web")
        .container("web", &api_image)
        .container("sidecar", "busybox:1")
        .annotate("freshet.io/policy", "digest")
        .annotate("freshet.io/containers", "web")
        .annotate(
            "freshet.io/set-env",
            &format!("web/WORKER_IMAGE_DIGEST={multi_image}"),
        )
        .create(&client, NS)
        .await;
    Deploy::test("worker")
        .container("worker", &alpine_image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    Deploy::test("typo")
        .container("app", &alpine_image)
        .annotate("freshet.io/policy", "sometimes")
        .create(&client, "other")
        .await;
    Deploy::test("bystander")
        .container("app", &alpine_image)
        .create(&client, NS)
        .await;
    // A workload with invalid annotations fails the run loudly, with a Warning
    // event on it, and blocks nothing else.
    let only_other = PassOptions {
        namespaces: Some(vec!["other".into()]),
        ..PassOptions::default()
    };
    let typo = refresher(&client, only_other)
        .run_once_at(at("2026-11-23T09:00:00Z"))
        .await
        .unwrap();
    assert_eq!(typo.outcome(), Outcome::Failed);
    let failed: Vec<&str> = typo
        .workloads
        .iter()
        .filter(|w| w.status == Status::Failed)
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(failed, ["typo"]);
    let warning = events(&client, "other", "typo").await;
    assert_eq!(warning.len(), 1);
    assert_eq!(warning[0].type_.as_deref(), Some("Warning"));
    assert!(warning[0].message.as_deref().unwrap().contains("sometimes"));
    deployments(&client, "other")
        .delete("typo", &Default::default())
        .await
        .unwrap();

    let refresher = refresher(&client, PassOptions::default());
    let deploys = deployments(&client, NS);

    // First sight: baselines recorded, the env var set, nothing restarted.
    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(first.outcome(), Outcome::Ok, "{first:#?}");
    assert_eq!(first.images, 3, "each unique image asked once");
    assert_eq!(first.workloads.len(), 2, "the bystander is not enrolled");
    let web = deploys.get("web").await.unwrap();
    assert_eq!(
        env(&web, "web", "WORKER_IMAGE_DIGEST").as_deref(),
        Some(multi_fx.digest("latest"))
    );
    assert_eq!(
        env(&web, "web", "KEEP").as_deref(),
        Some("me"),
        "other env kept"
    );
    assert_eq!(restarted_at(&web), None, "set-env adds no restart");
    assert_eq!(
        refreshed_digest(&web, &api_image).as_deref(),
        Some(api_fx.digest("stable"))
    );
    let worker = deploys.get("worker").await.unwrap();
    assert_eq!(restarted_at(&worker), None, "a baseline restarts nothing");
    assert_eq!(
        refreshed_digest(&worker, &alpine_image).as_deref(),
        Some(alpine_fx.digest("latest"))
    );

    // The tags move.
    let old_api = api_fx.digest("stable").to_owned();
    let old_alpine = alpine_fx.digest("latest").to_owned();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    fixtures::move_tag(&pusher, &mut alpine_fx, "latest", "2")
        .await
        .unwrap();
    fixtures::move_tag(&pusher, &mut multi_fx, "latest", "2")
        .await
        .unwrap();

    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(second.outcome(), Outcome::Ok, "{second:#?}");
    assert!(
        second
            .workloads
            .iter()
            .all(|w| w.status == Status::Refreshed && w.written),
        "{second:#?}"
    );
    let web = deploys.get("web").await.unwrap();
    assert_eq!(restarted_at(&web).as_deref(), Some("2026-11-23T10:15:00Z"));
    assert_eq!(
        env(&web, "web", "WORKER_IMAGE_DIGEST").as_deref(),
        Some(multi_fx.digest("latest"))
    );
    let web_spec = web.spec.template.spec.as_ref().unwrap();
    assert_eq!(
        web_spec.containers[0].image.as_deref(),
        Some(api_image.as_str()),
        "image string stays"
    );
    assert_eq!(web_spec.containers[1].image.as_deref(), Some("busybox:1"));
    let audit: serde_json::Value =
        serde_json::from_str(&annotation(&web, "freshet.io/refreshed").unwrap()).unwrap();
    assert_eq!(audit[&api_image]["digest"], api_fx.digest("stable"));
    assert_eq!(audit[&api_image]["at"], "2026-11-23T10:15:00Z");
    assert_eq!(audit[&multi_image]["digest"], multi_fx.digest("latest"));
    let worker = deploys.get("worker").await.unwrap();
    assert_eq!(
        restarted_at(&worker).as_deref(),
        Some("2026-11-23T10:15:00Z")
    );
    assert_eq!(
        refreshed_digest(&worker, &alpine_image).as_deref(),
        Some(alpine_fx.digest("latest"))
    );

    // An ImageRefreshed event names the old and new digests.
    let worker_events = events(&client, NS, "worker").await;
    let refreshed = worker_events
        .iter()
        .find(|e| e.reason.as_deref() == Some("ImageRefreshed"))
        .expect("an ImageRefreshed event");
    assert_eq!(refreshed.type_.as_deref(), Some("Normal"));
    let message = refreshed.message.as_deref().unwrap();
    assert!(
        message.contains(&old_alpine) && message.contains(alpine_fx.digest("latest")),
        "{message}"
    );
    let web_events = events(&client, NS, "web").await;
    assert!(
        web_events
            .iter()
            .any(|e| e.message.as_deref().is_some_and(|m| m.contains(&old_api))),
        "{web_events:?}"
    );

    // Nothing new: zero writes, the spec generation and annotations stay.
    let before: Vec<_> = ["web", "worker"].iter().map(|n| deploys.get(n)).collect();
    let before = futures_join(before).await;
    let third = refresher
        .run_once_at(at("2026-11-23T10:30:00Z"))
        .await
        .unwrap();
    assert_eq!(third.writes(), 0, "{third:#?}");
    assert!(third.workloads.iter().all(|w| w.status == Status::Current));
    for d in before {
        let now = deploys
            .get(d.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(now.metadata.generation, d.metadata.generation);
        // (The deployment controller may still add its revision annotation.)
        let freshet = |d: &k8s_openapi::api::apps::v1::Deployment| {
            let mut a = d.metadata.annotations.clone().unwrap_or_default();
            a.retain(|k, _| k.starts_with("freshet.io/"));
            (a, restarted_at(d))
        };
        assert_eq!(freshet(&now), freshet(&d));
    }
}

async fn futures_join<T, E: std::fmt::Debug>(
    futures: Vec<impl std::future::Future<Output = Result<T, E>>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await.unwrap());
    }
    out
}

/// Scenario 2: one registry is unreachable while another works. Runs 1 and 2 warn
/// and succeed while the other image still refreshes; run 3 escalates with the
/// error annotation and a Warning event; the registry's return clears the streak.
#[tokio::test]
async fn an_unreachable_registry_warns_then_escalates_and_never_blocks_the_other() {
    let good = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let good_pusher = Pusher::new(&good).expect("pusher");
    let mut api_fx = fixtures::seed_api(&good_pusher).await.expect("seed api");
    let mut bad = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let bad_pusher = Pusher::new(&bad).expect("pusher");
    fixtures::seed_alpine(&bad_pusher)
        .await
        .expect("seed alpine");
    let good_image = format!("{}/team/api:stable", good.host());
    let bad_image = format!("{}/library/alpine:latest", bad.host());

    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("good")
        .container("app", &good_image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    Deploy::test("bad")
        .container("app", &bad_image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    let refresher = refresher(&client, PassOptions::default());
    let deploys = deployments(&client, NS);
    let baseline = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(baseline.outcome(), Outcome::Ok, "{baseline:#?}");

    bad.stop().await;
    for (run, at) in [(1u32, "2026-11-23T10:15:00Z"), (2, "2026-11-23T10:30:00Z")] {
        fixtures::move_tag(&good_pusher, &mut api_fx, "stable", &format!("{}", run + 1))
            .await
            .unwrap();
        let report = refresher.run_once_at(common::at(at)).await.unwrap();
        assert_eq!(report.outcome(), Outcome::Ok, "run {run}: {report:#?}");
        let good_report = report.workloads.iter().find(|w| w.name == "good").unwrap();
        assert_eq!(
            good_report.status,
            Status::Refreshed,
            "run {run}: the other registry is not blocked"
        );
        let bad_report = report.workloads.iter().find(|w| w.name == "bad").unwrap();
        assert_eq!(bad_report.transient.len(), 1, "run {run}: {bad_report:#?}");
        assert_eq!(bad_report.transient[0].count, run);
        assert!(
            bad_report.transient[0].message.contains(&bad.host()),
            "the error names the host: {}",
            bad_report.transient[0].message
        );
        let good_now = deploys.get("good").await.unwrap();
        assert_eq!(restarted_at(&good_now).as_deref(), Some(at));
        assert_eq!(
            refreshed_digest(&good_now, &good_image).as_deref(),
            Some(api_fx.digest("stable"))
        );
        let bad_now = deploys.get("bad").await.unwrap();
        let streak: serde_json::Value = serde_json::from_str(
            &annotation(&bad_now, "freshet.io/refresh-consecutive-failures").unwrap(),
        )
        .unwrap();
        assert_eq!(streak[&bad_image], run);
        assert_eq!(annotation(&bad_now, "freshet.io/refresh-last-error"), None);
    }
    assert!(
        events(&client, NS, "bad")
            .await
            .iter()
            .all(|e| e.type_.as_deref() != Some("Warning")),
        "no Warning below the threshold"
    );

    let third = refresher
        .run_once_at(at("2026-11-23T10:45:00Z"))
        .await
        .unwrap();
    assert_eq!(third.outcome(), Outcome::Escalated, "{third:#?}");
    let bad_now = deploys.get("bad").await.unwrap();
    let last_error = annotation(&bad_now, "freshet.io/refresh-last-error").expect("last error");
    assert!(
        last_error.contains(&bad.host()) && last_error.contains("3 failures"),
        "{last_error}"
    );
    let warning = events(&client, NS, "bad")
        .await
        .into_iter()
        .find(|e| e.type_.as_deref() == Some("Warning"))
        .expect("a Warning event");
    assert_eq!(warning.reason.as_deref(), Some("ImageRefreshFailed"));
    assert!(warning.message.as_deref().unwrap().contains(&bad.host()));
    assert_eq!(restarted_at(&bad_now), None);

    bad.restart().await.expect("registry restarts");
    let fourth = refresher
        .run_once_at(at("2026-11-23T11:00:00Z"))
        .await
        .unwrap();
    assert_eq!(fourth.outcome(), Outcome::Ok, "{fourth:#?}");
    let bad_now = deploys.get("bad").await.unwrap();
    assert_eq!(
        annotation(&bad_now, "freshet.io/refresh-consecutive-failures"),
        None
    );
    assert_eq!(annotation(&bad_now, "freshet.io/refresh-last-error"), None);
    assert_eq!(restarted_at(&bad_now), None, "the tag did not move");
}

/// Scenario 4: Keel-annotated workloads behave as Keel documents. `force` with
/// `matchTag` watches the tag's digest (the image string stays); `minor` moves to
/// the highest release of the same major version and never to a pre-release.
#[tokio::test]
async fn keel_force_with_match_tag_watches_the_digest_and_minor_moves_within_the_major() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let host = registry.host();
    let pinned = format!("{host}/team/api:1.0.0");

    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("forced")
        .container("app", &pinned)
        .annotate("keel.sh/policy", "force")
        .annotate("keel.sh/matchTag", "true")
        .annotate("keel.sh/trigger", "poll")
        .create(&client, NS)
        .await;
    Deploy::test("minor")
        .container("app", &pinned)
        .annotate("keel.sh/policy", "minor")
        .create(&client, NS)
        .await;
    let refresher = refresher(&client, PassOptions::default());
    let deploys = deployments(&client, NS);

    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(first.outcome(), Outcome::Ok, "{first:#?}");
    let image_of = |d: &k8s_openapi::api::apps::v1::Deployment| {
        d.spec.template.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    let minor = deploys.get("minor").await.unwrap();
    // 1.0.0 -> the highest 1.x release: 2.0.0 (major) and 1.2.0-rc.1 (pre-release)
    // are out of bounds, and v1.3.0 has another shape (the `v` prefix), as in Keel.
    let moved = image_of(&minor);
    assert_eq!(moved, format!("{host}/team/api:1.1.0"));
    assert_eq!(restarted_at(&minor), None, "set-image rolls out by itself");
    let audit: serde_json::Value =
        serde_json::from_str(&annotation(&minor, "freshet.io/refreshed").unwrap()).unwrap();
    assert_eq!(
        audit,
        serde_json::json!({moved.as_str(): {"digest": api_fx.digest("1.1.0"), "at": "2026-11-23T10:00:00Z"}}),
        "the audit record names the new tag's digest"
    );
    let forced = deploys.get("forced").await.unwrap();
    assert_eq!(image_of(&forced), pinned, "force+matchTag keeps the tag");
    assert_eq!(
        refreshed_digest(&forced, &pinned).as_deref(),
        Some(api_fx.digest("1.0.0")),
        "first sight records a baseline"
    );
    assert_eq!(restarted_at(&forced), None);

    fixtures::move_tag(&pusher, &mut api_fx, "1.0.0", "2")
        .await
        .unwrap();
    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(second.outcome(), Outcome::Ok, "{second:#?}");
    let forced = deploys.get("forced").await.unwrap();
    assert_eq!(image_of(&forced), pinned);
    assert_eq!(
        restarted_at(&forced).as_deref(),
        Some("2026-11-23T10:15:00Z")
    );
    assert_eq!(
        refreshed_digest(&forced, &pinned).as_deref(),
        Some(api_fx.digest("1.0.0"))
    );
    let minor_after = deploys.get("minor").await.unwrap();
    assert_eq!(
        image_of(&minor_after),
        moved,
        "already on the newest allowed"
    );
}

/// Scenario 5: a multi-arch tag moves; after the restart the DaemonSet's pod on the
/// arm64 test-bed node runs the new image, and that node fetched the new index's
/// arm64 manifest (amd64 nodes the amd64 one).
#[tokio::test]
async fn a_multi_arch_tag_restarts_the_arm64_node_onto_the_new_arm64_image() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, PostParams};

    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut multi_fx = fixtures::seed_multi(&pusher).await.expect("seed multi");
    let image = format!("{}/team/multi:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    let ds: DaemonSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "agent", "annotations": {"freshet.io/policy": "digest"}},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": image, "imagePullPolicy": "Always"}]}
            }
        }
    }))
    .unwrap();
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
    daemonsets
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let arm_pod = |digest: String| {
        let pods = pods.clone();
        let repo = image.trim_end_matches(":latest").to_owned();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=agent"))
                .await
                .ok()?;
            list.items.into_iter().find(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("testbed-node-3")
                    && p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|c| c.first())
                        .is_some_and(|c| c.image_id == format!("{repo}@{digest}"))
            })
        }
    };
    let old_digest = multi_fx.digest("latest").to_owned();
    let old_pod = wait_for("the arm64 pod on the first image", || {
        arm_pod(old_digest.clone())
    })
    .await;
    let refresher = refresher(&client, PassOptions::default());
    refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();

    let old_arm = multi_fx
        .platform_digest("latest", "linux/arm64/v8")
        .to_owned();
    fixtures::move_tag(&pusher, &mut multi_fx, "latest", "2")
        .await
        .unwrap();
    let new_arm = multi_fx
        .platform_digest("latest", "linux/arm64/v8")
        .to_owned();
    assert_ne!(old_arm, new_arm);
    let report = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(report.workloads[0].status, Status::Refreshed, "{report:#?}");
    assert_eq!(report.workloads[0].kind, "DaemonSet");

    let new_digest = multi_fx.digest("latest").to_owned();
    let new_pod = wait_for("the arm64 pod on the new image", || {
        arm_pod(new_digest.clone())
    })
    .await;
    assert_ne!(new_pod.metadata.uid, old_pod.metadata.uid, "a new pod");
    // What the arm64 node actually fetched: its last pull of the tag is the new
    // index's arm64 manifest (before the restart, the old one). The amd64 nodes
    // fetched the amd64 manifest of the same index.
    let pulls = cluster.pulls();
    let on = |node: &str| {
        pulls
            .iter()
            .filter(|p| p.node == node && p.image == image)
            .map(|p| (p.pulled.digest.clone(), p.pulled.platform_digest.clone()))
            .collect::<Vec<_>>()
    };
    let arm = on("testbed-node-3");
    assert_eq!(
        arm.first(),
        Some(&(old_digest.clone(), old_arm)),
        "{pulls:#?}"
    );
    assert_eq!(
        arm.last(),
        Some(&(new_digest.clone(), new_arm.clone())),
        "{pulls:#?}"
    );
    let new_amd = multi_fx.platform_digest("latest", "linux/amd64").to_owned();
    assert_ne!(new_amd, new_arm);
    // The amd64 nodes' new pods may still be pulling: wait for node 1's.
    let want = (new_digest, new_amd);
    wait_for("the amd64 node's pull of the new index", || async {
        cluster
            .pulls()
            .iter()
            .rev()
            .find(|p| p.node == "testbed-node-1" && p.image == image)
            .filter(|p| (p.pulled.digest.clone(), p.pulled.platform_digest.clone()) == want)
            .map(drop)
    })
    .await;
}

/// Scenario 3 (in part): only allowlisted namespaces change, and freshet's own
/// workload is never touched even when enrolled.
#[tokio::test]
async fn only_allowlisted_namespaces_change_and_freshet_never_touches_itself() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    for ns in ["dev", "prod", "freshet"] {
        namespace(&client, ns).await;
        let name = if ns == "freshet" { "freshet" } else { "app" };
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .create(&client, ns)
            .await;
    }
    let options = |namespaces: &[&str]| PassOptions {
        namespaces: Some(namespaces.iter().map(|s| s.to_string()).collect()),
        skip: [freshet_cluster::WorkloadId {
            namespace: "freshet".into(),
            name: "freshet".into(),
        }]
        .into(),
        ..PassOptions::default()
    };
    let phase1 = refresher(&client, options(&["dev", "freshet"]));
    phase1
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let report = phase1
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    let statuses: Vec<(&str, Status)> = report
        .workloads
        .iter()
        .map(|w| (w.namespace.as_str(), w.status))
        .collect();
    assert_eq!(
        statuses,
        [("dev", Status::Refreshed), ("freshet", Status::Skipped)]
    );
    let get = |ns: &'static str, name: &'static str| {
        let client = client.clone();
        async move { deployments(&client, ns).get(name).await.unwrap() }
    };
    assert!(restarted_at(&get("dev", "app").await).is_some());
    let prod = get("prod", "app").await;
    assert_eq!(
        annotation(&prod, "freshet.io/refreshed"),
        None,
        "prod is not in the phase yet"
    );
    let own = get("freshet", "freshet").await;
    assert_eq!(annotation(&own, "freshet.io/refreshed"), None);
    assert_eq!(restarted_at(&own), None);

    // The phase grows to prod: its first sight records a baseline only.
    let phase2 = refresher(&client, options(&["dev", "prod", "freshet"]));
    let report = phase2
        .run_once_at(at("2026-11-23T10:30:00Z"))
        .await
        .unwrap();
    let prod_report = report
        .workloads
        .iter()
        .find(|w| w.namespace == "prod")
        .unwrap();
    assert_eq!(prod_report.status, Status::Recorded);
    assert_eq!(restarted_at(&get("prod", "app").await), None);
}

/// Scenario 3 with a config file: the phase is a namespace allowlist that grows,
/// rules enroll by label selector and image pattern, annotations override rules, and
/// freshet's own deployment is never touched.
#[tokio::test]
async fn config_rules_enroll_by_phase_selector_and_image_and_annotations_override() {
    use freshet_core::refresh::config::ClusterConfig;
    use std::sync::Arc;

    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    for ns in ["dev", "prod"] {
        namespace(&client, ns).await;
        // No freshet annotation: enrolled by the rule only.
        Deploy::test("web")
            .container("app", &image)
            .create(&client, ns)
            .await;
        // Opted out by annotation, whatever the rules say.
        Deploy::test("frozen")
            .container("app", &image)
            .annotate("freshet.io/policy", "never")
            .create(&client, ns)
            .await;
    }
    let phase = |namespaces: &str| {
        let text = format!(
            "namespaces: [{namespaces}]\nrules:\n  - images: [\"*/team/api\"]\n    policy: digest\n    threshold: 2\n"
        );
        PassOptions {
            config: Arc::new(ClusterConfig::parse(&text).expect("config parses")),
            ..PassOptions::default()
        }
    };
    let dev_only = refresher(&client, phase("dev"));
    let first = dev_only
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    let names: Vec<(&str, &str, Status)> = first
        .workloads
        .iter()
        .map(|w| (w.namespace.as_str(), w.name.as_str(), w.status))
        .collect();
    assert_eq!(names, [("dev", "web", Status::Recorded)]);
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    dev_only
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    let get = |ns: &'static str, name: &'static str| {
        let client = client.clone();
        async move { deployments(&client, ns).get(name).await.unwrap() }
    };
    assert_eq!(
        restarted_at(&get("dev", "web").await).as_deref(),
        Some("2026-11-23T10:15:00Z")
    );
    assert_eq!(restarted_at(&get("dev", "frozen").await), None);
    assert_eq!(
        annotation(&get("prod", "web").await, "freshet.io/refreshed"),
        None
    );

    let both = refresher(&client, phase("dev, prod"));
    let grown = both.run_once_at(at("2026-11-23T10:30:00Z")).await.unwrap();
    let names: Vec<(&str, &str, Status)> = grown
        .workloads
        .iter()
        .map(|w| (w.namespace.as_str(), w.name.as_str(), w.status))
        .collect();
    assert_eq!(
        names,
        [
            ("dev", "web", Status::Current),
            ("prod", "web", Status::Recorded)
        ]
    );
    assert_eq!(
        restarted_at(&get("prod", "web").await),
        None,
        "a baseline first"
    );
}

/// The other kinds: a StatefulSet's init container and a CronJob's job template
/// restart when their tags move; the patch lands on each kind's pod template.
#[tokio::test]
async fn statefulset_init_containers_and_cronjob_templates_restart() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::batch::v1::CronJob;
    use kube::api::{Api, PostParams};

    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    let pod = serde_json::json!({
        "metadata": {"labels": {"app": "x"}},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "migrate", "image": image, "imagePullPolicy": "Always"}],
            "containers": [{"name": "main", "image": "busybox:1"}]
        }
    });
    let annotations =
        serde_json::json!({"freshet.io/policy": "digest", "freshet.io/containers": "migrate"});
    let mut sts_pod = pod.clone();
    sts_pod["spec"]["restartPolicy"] = "Always".into();
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db", "annotations": annotations},
        "spec": {"replicas": 0, "serviceName": "db", "selector": {"matchLabels": {"app": "x"}}, "template": sts_pod}
    }))
    .unwrap();
    let cron: CronJob = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "nightly", "annotations": annotations},
        "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": pod}}}
    }))
    .unwrap();
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let crons: Api<CronJob> = Api::namespaced(client.clone(), NS);
    stss.create(&PostParams::default(), &sts).await.unwrap();
    crons.create(&PostParams::default(), &cron).await.unwrap();

    let refresher = refresher(&client, PassOptions::default());
    refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let report = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    let kinds: Vec<(&str, Status)> = report
        .workloads
        .iter()
        .map(|w| (w.kind, w.status))
        .collect();
    assert_eq!(
        kinds,
        [
            ("CronJob", Status::Refreshed),
            ("StatefulSet", Status::Refreshed)
        ],
        "{report:#?}"
    );
    assert_eq!(report.workloads[1].changes[0].containers, ["migrate"]);
    let restarted = |annotations: Option<&std::collections::BTreeMap<String, String>>| {
        annotations.and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned())
    };
    let sts = stss.get("db").await.unwrap();
    assert_eq!(
        restarted(sts.spec.template.metadata.unwrap().annotations.as_ref()).as_deref(),
        Some("2026-11-23T10:15:00Z")
    );
    let cron = crons.get("nightly").await.unwrap();
    let template = cron.spec.job_template.spec.unwrap().template;
    assert_eq!(
        restarted(template.metadata.unwrap().annotations.as_ref()).as_deref(),
        Some("2026-11-23T10:15:00Z")
    );
    assert_eq!(
        template.spec.unwrap().init_containers.unwrap()[0]
            .image
            .as_deref(),
        Some(image.as_str()),
        "the image string stays"
    );
}

/// Two runs at once cannot corrupt anything: whichever patches second meets the
/// resourceVersion precondition, reads again, finds the refresh done and writes
/// nothing. Each workload is restarted exactly once.
#[tokio::test]
async fn two_runs_at_once_restart_each_workload_exactly_once() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    for name in ["a", "b", "c"] {
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .create(&client, NS)
            .await;
    }
    let one = refresher(&client, PassOptions::default());
    let two = refresher(&client, PassOptions::default());
    one.run_once_at(at("2026-11-23T10:00:00Z")).await.unwrap();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let (r1, r2) = tokio::join!(
        one.run_once_at(at("2026-11-23T10:15:00Z")),
        two.run_once_at(at("2026-11-23T10:15:01Z"))
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.writes() + r2.writes(), 3, "{r1:#?}\n{r2:#?}");
    for name in ["a", "b", "c"] {
        let d = deployments(&client, NS).get(name).await.unwrap();
        assert_eq!(
            refreshed_digest(&d, &image).as_deref(),
            Some(api_fx.digest("stable"))
        );
        assert!(restarted_at(&d).is_some());
        let events = events(&client, NS, name).await;
        let refreshes = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("ImageRefreshed"))
            .count();
        assert_eq!(refreshes, 1, "{name}: one refresh, one event");
    }
}

/// Schedules gate a pass: `freshet.io/schedule`, Keel's `pollSchedule` and a rule's
/// schedule make a workload due only when they fired within the pass's window; a
/// workload that is not due is neither resolved nor written, and says when it is due.
#[tokio::test]
async fn schedules_make_workloads_due_only_when_they_fire_in_the_window() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    for (name, key, schedule) in [
        ("nightly", "freshet.io/schedule", "0 3 * * *"),
        ("hourly", "keel.sh/pollSchedule", "@every 1h"),
    ] {
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .annotate(key, schedule)
            .create(&client, NS)
            .await;
    }
    namespace(&client, "team-ruled").await;
    Deploy::test("ruled")
        .container("app", &image)
        .create(&client, "team-ruled")
        .await;
    Deploy::test("always")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, NS)
        .await;
    let config = freshet_core::refresh::config::ClusterConfig::parse(
        "rules:\n  - namespaces: [team-ruled]\n    policy: digest\n    schedule: \"30 * * * *\"\n",
    )
    .unwrap();
    let refresher = refresher(
        &client,
        PassOptions {
            interval: Some(std::time::Duration::from_secs(15 * 60)),
            config: std::sync::Arc::new(config),
            ..PassOptions::default()
        },
    );
    let deploys = deployments(&client, NS);
    let status_of = |report: &freshet_cluster::PassReport, name: &str| {
        let w = report
            .workloads
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("{name} in {report:#?}"));
        (w.status, w.next_due.map(|t| t.to_string()))
    };

    // 10:00: the hourly instant is in (09:45, 10:00]; 03:00 and :30 are not.
    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(status_of(&first, "hourly").0, Status::Recorded);
    assert_eq!(status_of(&first, "always").0, Status::Recorded);
    assert_eq!(
        status_of(&first, "nightly"),
        (Status::NotDue, Some("2026-11-24T03:00:00Z".into()))
    );
    assert_eq!(
        status_of(&first, "ruled"),
        (Status::NotDue, Some("2026-11-23T10:30:00Z".into()))
    );
    assert_eq!(first.images, 1);
    let nightly = deploys.get("nightly").await.unwrap();
    assert_eq!(
        annotation(&nightly, "freshet.io/refreshed"),
        None,
        "not due: not written"
    );

    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    // 10:15: no schedule fired in (10:00, 10:15]; only `always` looks.
    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(status_of(&second, "always").0, Status::Refreshed);
    assert_eq!(status_of(&second, "hourly").0, Status::NotDue);
    assert_eq!(status_of(&second, "ruled").0, Status::NotDue);
    assert_eq!(restarted_at(&deploys.get("hourly").await.unwrap()), None);
    // 10:30: the rule's schedule fires; its first look records a baseline.
    let third = refresher
        .run_once_at(at("2026-11-23T10:30:00Z"))
        .await
        .unwrap();
    assert_eq!(status_of(&third, "ruled").0, Status::Recorded);
    assert_eq!(status_of(&third, "always").0, Status::Current);
    // 11:00: the hourly workload sees the moved tag and restarts.
    let fourth = refresher
        .run_once_at(at("2026-11-23T11:00:00Z"))
        .await
        .unwrap();
    assert_eq!(status_of(&fourth, "hourly").0, Status::Refreshed);
    assert_eq!(
        restarted_at(&deploys.get("hourly").await.unwrap()).as_deref(),
        Some("2026-11-23T11:00:00Z")
    );
    // 03:05 the next day: the nightly one is due.
    let nightly_run = refresher
        .run_once_at(at("2026-11-24T03:05:00Z"))
        .await
        .unwrap();
    assert_eq!(status_of(&nightly_run, "nightly").0, Status::Recorded);
    // Without an interval (a manual run, --ignore-schedules) everything is due.
    let manual = common::refresher(&client, PassOptions::default())
        .run_once_at(at("2026-11-24T03:07:00Z"))
        .await
        .unwrap();
    assert!(
        manual.workloads.iter().all(|w| w.status != Status::NotDue),
        "{manual:#?}"
    );
    // The worklist names each schedule and when it fires next.
    let rows = refresher.status().await.unwrap();
    let nightly = rows.iter().find(|r| r.name == "nightly").unwrap();
    assert_eq!(nightly.schedule.as_deref(), Some("0 3 * * *"));
    assert!(
        nightly
            .next_due
            .is_some_and(|n| n.to_string().ends_with("T03:00:00Z")),
        "{nightly:?}"
    );
    let always = rows.iter().find(|r| r.name == "always").unwrap();
    assert_eq!((always.schedule.as_deref(), always.next_due), (None, None));
}
