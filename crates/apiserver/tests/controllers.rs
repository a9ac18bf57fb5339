//! The simulated controllers and kubelet, seen through the `kube` client:
//! Deployment → ReplicaSet → Pod with hashes, revisions and status
//! conditions, crash loops and progress deadlines, StatefulSets, DaemonSets
//! and scheduling by node labels.

mod common;

use std::sync::Arc;

use common::{admin, kubectl_output, wait_for};
use freshet_apiserver::images::FakeResolver;
use freshet_apiserver::{ClusterOptions, TestCluster};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const CRASHING: &str = "registry.test/team/api:crash";

async fn cluster() -> TestCluster {
    TestCluster::start(
        ClusterOptions::default()
            .resolver(Arc::new(FakeResolver::default()))
            .crash_image(CRASHING),
    )
    .await
    .expect("cluster starts")
}

fn deployment(name: &str, image: &str, extra_spec: Value) -> Deployment {
    let mut d = json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "api", "image": image}]}}
        }
    });
    if let (Some(spec), Some(extra)) = (d["spec"].as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(d).expect("deployment")
}

fn condition(d: &Deployment, ctype: &str) -> Option<(String, String)> {
    let v = serde_json::to_value(d).ok()?;
    let c = v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ctype)?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str().unwrap_or("").to_string(),
    ))
}

fn set_image(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "api"}], "containers": [{"name": "api", "image": image}]}}}})
}

#[tokio::test]
async fn deployment_rollout_moves_replicas_between_hashed_revisioned_replica_sets() {
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    deploys
        .create(
            &PostParams::default(),
            &deployment("web", "registry.test/team/api:1.0.0", json!({})),
        )
        .await
        .unwrap();

    let d = wait_for("the first rollout", || async {
        let d = deploys.get("web").await.ok()?;
        let s = d.status.clone()?;
        (s.available_replicas == Some(2)
            && s.updated_replicas == Some(2)
            && condition(&d, "Progressing").is_some_and(|c| c.1 == "NewReplicaSetAvailable"))
        .then_some(d)
    })
    .await;
    assert_eq!(d.status.as_ref().unwrap().observed_generation, Some(1));
    assert_eq!(
        condition(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let first = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(first.len(), 1);
    let rs1 = &first[0];
    let hash = rs1.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs1.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs1.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    let owner = &rs1.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Deployment", Some(true))
    );
    let hashed = pods
        .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
        .await
        .unwrap();
    assert_eq!(hashed.items.len(), 2);

    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(set_image("registry.test/team/api:1.0.1")),
        )
        .await
        .unwrap();
    wait_for("the second rollout", || async {
        let d = deploys.get("web").await.ok()?;
        let s = d.status.clone()?;
        (s.observed_generation == Some(2)
            && s.updated_replicas == Some(2)
            && s.replicas == Some(2)
            && s.available_replicas == Some(2))
        .then_some(())
    })
    .await;
    let all = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 2);
    let rs2 = all
        .iter()
        .find(|r| r.metadata.name != rs1.metadata.name)
        .unwrap();
    assert_eq!(
        rs2.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        serde_json::to_value(rs2).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.test/team/api:1.0.1"
    );
    let old = rss
        .get(rs1.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(old.spec.replicas, Some(0));
    let running = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert!(
        running
            .iter()
            .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref()
                == Some("registry.test/team/api:1.0.1"))
    );
    for p in running {
        let id = &p.status.unwrap().container_statuses.unwrap()[0].image_id;
        assert!(id.starts_with("registry.test/team/api@sha256:"), "{id}");
    }
}

#[tokio::test]
async fn crash_listed_images_crash_loop_and_the_rollout_exceeds_its_deadline() {
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    deploys
        .create(
            &PostParams::default(),
            &deployment(
                "web",
                "registry.test/team/api:1.0.0",
                json!({"progressDeadlineSeconds": 1}),
            ),
        )
        .await
        .unwrap();
    wait_for("the first rollout", || async {
        deploys
            .get("web")
            .await
            .ok()?
            .status?
            .available_replicas
            .filter(|n| *n == 2)
    })
    .await;
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(set_image(CRASHING)),
        )
        .await
        .unwrap();

    let restarts = wait_for("a crash-looping pod restarting", || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        l.items.iter().find_map(|p| {
            let cs = &p.status.as_ref()?.container_statuses.as_ref()?[0];
            let waiting = cs.state.as_ref()?.waiting.as_ref()?;
            (waiting.reason.as_deref() == Some("CrashLoopBackOff") && cs.restart_count >= 3)
                .then_some(cs.restart_count)
        })
    })
    .await;
    assert!(restarts >= 3);
    let d = wait_for("ProgressDeadlineExceeded", || async {
        let d = deploys.get("web").await.ok()?;
        (condition(&d, "Progressing") == Some(("False".into(), "ProgressDeadlineExceeded".into())))
            .then_some(d)
    })
    .await;
    // The old ReplicaSet keeps the Deployment available.
    assert_eq!(d.status.as_ref().unwrap().available_replicas, Some(2));
    assert_eq!(condition(&d, "Available").unwrap().0, "True");

    let (ok, _, err) = kubectl_output(
        cluster.kubeconfig_path(),
        &["rollout", "status", "deployment/web", "--timeout=30s"],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
}

#[tokio::test]
async fn statefulset_pods_are_ordinal_and_roll_by_controller_revision() {
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "registry.test/db:1"}]}}}
    }))
    .unwrap();
    sets.create(&PostParams::default(), &sts).await.unwrap();
    let first = wait_for("two ready replicas", || async {
        let s = sets.get("db").await.ok()?.status?;
        (s.ready_replicas == Some(2)).then_some(s)
    })
    .await;
    let names: Vec<String> = pods
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names, ["db-0", "db-1"]);
    sets.patch("db", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "registry.test/db:2"}]}}}}))).await.unwrap();
    let second = wait_for("the update to finish", || async {
        let s = sets.get("db").await.ok()?.status?;
        (s.updated_replicas == Some(2)
            && s.ready_replicas == Some(2)
            && s.update_revision != first.update_revision
            && s.current_revision == s.update_revision)
            .then_some(s)
    })
    .await;
    let revs = revisions
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items;
    assert_eq!(revs.len(), 2);
    assert!(
        revs.iter()
            .any(|r| r.metadata.name == second.update_revision && r.revision == Some(2))
    );
    for p in pods
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items
    {
        assert_eq!(
            p.metadata.labels.unwrap()["controller-revision-hash"],
            second.update_revision.clone().unwrap()
        );
    }
    // kubectl rolls a StatefulSet back from its ControllerRevisions.
    let (ok, _, err) = kubectl_output(
        cluster.kubeconfig_path(),
        &["rollout", "undo", "statefulset/db"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    wait_for("the rollback", || async {
        let v = serde_json::to_value(sets.get("db").await.ok()?).ok()?;
        (v["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.test/db:1")
            .then_some(())
    })
    .await;
    let (ok, out, err) = kubectl_output(
        cluster.kubeconfig_path(),
        &["rollout", "status", "statefulset/db", "--timeout=60s"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("complete"), "{out}");
}

#[tokio::test]
async fn daemonsets_run_one_pod_per_matching_node() {
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    let sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for (name, selector) in [
        ("everywhere", json!({})),
        ("arm-only", json!({"kubernetes.io/arch": "arm64"})),
    ] {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"nodeSelector": selector, "containers": [{"name": "agent", "image": "registry.test/agent:1"}]}}}
        }))
        .unwrap();
        sets.create(&PostParams::default(), &ds).await.unwrap();
    }
    for (name, want) in [("everywhere", 3), ("arm-only", 1)] {
        wait_for("the daemon pods", || async {
            let s = sets.get(name).await.ok()?.status?;
            (s.number_ready == want && s.desired_number_scheduled == want).then_some(())
        })
        .await;
    }
    let arm = pods
        .list(&ListParams::default().labels("app=arm-only"))
        .await
        .unwrap()
        .items;
    assert_eq!(
        arm[0].spec.as_ref().unwrap().node_name.as_deref(),
        Some("testbed-node-3")
    );
    sets.patch(
        "everywhere",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "registry.test/agent:2"}]}}}})),
    )
    .await
    .unwrap();
    let (ok, out, err) = kubectl_output(
        cluster.kubeconfig_path(),
        &["rollout", "status", "daemonset/everywhere", "--timeout=60s"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("successfully rolled out"), "{out}");
    let images: Vec<String> = pods
        .list(&ListParams::default().labels("app=everywhere"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect();
    assert_eq!(images, ["registry.test/agent:2"; 3]);
}

#[tokio::test]
async fn pods_without_a_matching_node_stay_pending_unschedulable() {
    let cluster = cluster().await;
    let pods: Api<Pod> = Api::namespaced(admin(&cluster).await, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "nowhere"},
        "spec": {"nodeSelector": {"kubernetes.io/arch": "s390x"}, "containers": [{"name": "a", "image": "registry.test/a:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let reason = wait_for("the scheduler's verdict", || async {
        let s = pods.get("nowhere").await.ok()?.status?;
        s.conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .and_then(|c| c.reason)
    })
    .await;
    assert_eq!(reason, "Unschedulable");
}

#[tokio::test]
async fn changing_a_running_pods_image_restarts_its_container() {
    let cluster = cluster().await;
    let pods: Api<Pod> = Api::namespaced(admin(&cluster).await, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "solo"},
        "spec": {"containers": [{"name": "a", "image": "registry.test/a:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let first = wait_for("the pod to run", || async {
        let cs = pods
            .get("solo")
            .await
            .ok()?
            .status?
            .container_statuses?
            .into_iter()
            .next()?;
        cs.state.as_ref()?.running.as_ref()?;
        Some(cs.image_id)
    })
    .await;
    pods.patch(
        "solo",
        &PatchParams::default(),
        &Patch::Strategic(
            json!({"spec": {"containers": [{"name": "a", "image": "registry.test/a:2"}]}}),
        ),
    )
    .await
    .unwrap();
    let (image, id, restarts) = wait_for("the restart with the new image", || async {
        let cs = pods
            .get("solo")
            .await
            .ok()?
            .status?
            .container_statuses?
            .into_iter()
            .next()?;
        cs.state.as_ref()?.running.as_ref()?;
        (cs.image == "registry.test/a:2").then_some((cs.image, cs.image_id, cs.restart_count))
    })
    .await;
    assert_eq!(image, "registry.test/a:2");
    assert_ne!(id, first);
    assert_eq!(restarts, 1);
}

#[tokio::test]
async fn repeated_kubelet_events_are_counted_not_duplicated() {
    use freshet_apiserver::images::MapResolver;
    use k8s_openapi::api::core::v1::Event;
    let cluster =
        TestCluster::start(ClusterOptions::default().resolver(Arc::new(MapResolver::new())))
            .await
            .expect("cluster starts");
    let client = admin(&cluster).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "missing"},
        "spec": {"containers": [{"name": "a", "image": "registry.test/missing:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait_for("the back-off event to repeat", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let backoff: Vec<&Event> = list
            .items
            .iter()
            .filter(|e| e.message.as_deref() == Some("Error: ImagePullBackOff"))
            .collect();
        assert!(backoff.len() <= 1, "one Event object per repeated event");
        backoff
            .first()
            .and_then(|e| e.count)
            .filter(|n| *n >= 2)
            .map(|_| ())
    })
    .await;
}
