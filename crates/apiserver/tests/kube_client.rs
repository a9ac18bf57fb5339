//! The test bed through the real `kube` client: CRUD, selectors, optimistic
//! concurrency, every patch type, generation, subresources, Status errors,
//! watch resume and 410 Gone, and kube-runtime's watcher and reflector.

mod common;

use std::collections::BTreeMap;

use common::{admin, fake_cluster, wait_for};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"k": "v"},
    }))
    .expect("config map")
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "api", "image": image, "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "side:1"}
                ]}
            }
        }
    }))
    .expect("deployment")
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_get_list_with_selectors_and_delete() {
    let (cluster, _) = fake_cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&cluster).await, "default");
    let pp = PostParams::default();
    let a = cms
        .create(&pp, &config_map("a", &[("app", "web")]))
        .await
        .unwrap();
    cms.create(&pp, &config_map("b", &[("app", "db")]))
        .await
        .unwrap();
    assert!(a.metadata.uid.is_some());
    assert!(a.metadata.resource_version.is_some());
    assert_eq!(cms.get("a").await.unwrap().data, a.data);

    let web = cms
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 1);
    let not_web = cms
        .list(&ListParams::default().labels("app notin (web)"))
        .await
        .unwrap();
    assert_eq!(not_web.items[0].metadata.name.as_deref(), Some("b"));
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    let dup = api_error(cms.create(&pp, &config_map("a", &[])).await.unwrap_err());
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let gone = api_error(cms.get("a").await.unwrap_err());
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "configmaps \"a\" not found");
}

#[tokio::test]
async fn namespaces_are_cluster_scoped_and_required() {
    let (cluster, _) = fake_cluster().await;
    let client = admin(&cluster).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "apps"}})).unwrap(),
    )
    .await
    .unwrap();
    let ns = nss.get("apps").await.unwrap();
    assert_eq!(
        ns.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "apps"
    );
    let missing: Api<ConfigMap> = Api::namespaced(client, "nope");
    let e = api_error(
        missing
            .create(&PostParams::default(), &config_map("a", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
}

#[tokio::test]
async fn update_with_a_stale_resource_version_is_a_conflict() {
    let (cluster, _) = fake_cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&cluster).await, "default");
    let first = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let mut fresh = first.clone();
    fresh.data = Some(BTreeMap::from([("k".to_string(), "new".to_string())]));
    let second = cms
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );

    let mut stale = first;
    stale.data = Some(BTreeMap::from([("k".to_string(), "stale".to_string())]));
    let e = api_error(
        cms.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("the object has been modified"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn strategic_merge_merge_and_json_patches() {
    let (cluster, _) = fake_cluster().await;
    let deploys: Api<Deployment> = Api::namespaced(admin(&cluster).await, "default");
    let created = deploys
        .create(&PostParams::default(), &deployment("web", "api:1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // What `kubectl set image` sends.
    let smp = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "api"}, {"name": "sidecar"}],
        "containers": [{"name": "api", "image": "api:2"}]}}}});
    let pp = PatchParams::default();
    let patched = deploys
        .patch("web", &pp, &Patch::Strategic(&smp))
        .await
        .unwrap();
    let spec = patched.spec.template.spec.unwrap();
    assert_eq!(spec.containers[0].image.as_deref(), Some("api:2"));
    assert_eq!(spec.containers[0].env.as_ref().unwrap().len(), 1);
    assert_eq!(spec.containers[1].image.as_deref(), Some("side:1"));
    assert_eq!(patched.metadata.generation, Some(2));

    // Metadata-only changes keep the generation.
    let labelled = deploys
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    assert_eq!(labelled.metadata.labels.unwrap()["team"], "a");

    // JSON patch with a failing `test` changes nothing.
    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 7},
        {"op": "replace", "path": "/spec/replicas", "value": 3}
    ]))
    .unwrap();
    let e = api_error(
        deploys
            .patch("web", &pp, &Patch::<()>::Json(json_patch))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    let ok_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3}
    ]))
    .unwrap();
    let scaled = deploys
        .patch("web", &pp, &Patch::<()>::Json(ok_patch))
        .await
        .unwrap();
    assert_eq!(scaled.spec.replicas, Some(3));
}

#[tokio::test]
async fn status_subresource_and_scale() {
    let (cluster, _) = fake_cluster().await;
    let deploys: Api<Deployment> = Api::namespaced(admin(&cluster).await, "default");
    deploys
        .create(&PostParams::default(), &deployment("web", "api:1"))
        .await
        .unwrap();
    // Status in a main-resource update is ignored.
    let d = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 42}})),
        )
        .await
        .unwrap();
    assert_ne!(d.status.and_then(|s| s.replicas), Some(42));
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(2));
}

#[tokio::test]
async fn custom_resources_refuse_strategic_merge() {
    let (cluster, _) = fake_cluster().await;
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "applications");
    let apps: Api<DynamicObject> = Api::namespaced_with(admin(&cluster).await, "default", &ar);
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "guestbook"},
        "spec": {"source": {"helm": {"parameters": [{"name": "image.tag", "value": "1.0.0"}]}}}
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();
    let smp = json!({"spec": {"source": {"helm": {"parameters": [{"name": "image.tag", "value": "1.0.1"}]}}}});
    let e = api_error(
        apps.patch(
            "guestbook",
            &PatchParams::default(),
            &Patch::Strategic(&smp),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
    let merged = apps
        .patch("guestbook", &PatchParams::default(), &Patch::Merge(&smp))
        .await
        .unwrap();
    assert_eq!(
        merged.data["spec"]["source"]["helm"]["parameters"][0]["value"],
        "1.0.1"
    );
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_expired_versions_are_gone() {
    let (cluster, _) = fake_cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&cluster).await, "default");
    let a = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    cms.create(&PostParams::default(), &config_map("b", &[]))
        .await
        .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();

    // Resuming from `a`'s version replays what happened after it, in order.
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match stream.try_next().await.unwrap().expect("event") {
            WatchEvent::Added(cm) => seen.push(format!("ADDED {}", cm.metadata.name.unwrap())),
            WatchEvent::Deleted(cm) => seen.push(format!("DELETED {}", cm.metadata.name.unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["ADDED b", "DELETED a"]);
    // Live events follow.
    cms.create(&PostParams::default(), &config_map("c", &[]))
        .await
        .unwrap();
    match stream.try_next().await.unwrap().expect("event") {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("c")),
        other => panic!("unexpected {other:?}"),
    }

    cluster.compact();
    let mut expired = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match expired.try_next().await.unwrap().expect("event") {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_sends_bookmarks_when_allowed() {
    let (cluster, _) = fake_cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&cluster).await, "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap().expect("event") {
        WatchEvent::Bookmark(b) => assert!(!b.metadata.resource_version.is_empty()),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_runtime_watcher_and_reflector_follow_changes() {
    let (cluster, _) = fake_cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&cluster).await, "default");
    cms.create(&PostParams::default(), &config_map("before", &[]))
        .await
        .unwrap();
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(
        writer,
        kube::runtime::watcher(cms.clone(), Default::default()),
    );
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    cms.create(&PostParams::default(), &config_map("after", &[]))
        .await
        .unwrap();
    cms.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the reflector to see both changes", || {
        let names: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        async move { (names == ["after"]).then_some(()) }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn kube_runtime_watcher_with_streaming_lists() {
    let (cluster, _) = fake_cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&cluster).await, "default");
    cms.create(&PostParams::default(), &config_map("before", &[]))
        .await
        .unwrap();
    let (reader, writer) = kube::runtime::reflector::store();
    let config = kube::runtime::watcher::Config::default().streaming_lists();
    let stream = kube::runtime::reflector(writer, kube::runtime::watcher(cms.clone(), config));
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 1);
    cms.create(&PostParams::default(), &config_map("after", &[]))
        .await
        .unwrap();
    wait_for("the streamed watch to see the new object", || {
        let n = reader.state().len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn pods_list_across_namespaces_with_field_selectors() {
    let (cluster, _) = fake_cluster().await;
    let client = admin(&cluster).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", "api:1"))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::all(client);
    let running = wait_for("a running pod", || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().fields("status.phase=Running"))
                .await
                .ok()?;
            l.items.into_iter().next()
        }
    })
    .await;
    assert!(running.spec.unwrap().node_name.is_some());
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let (cluster, _) = fake_cluster().await;
    let client = admin(&cluster).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in ["a", "a-b"] {
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    }
    for (ns, name) in [("a", "x"), ("a", "y"), ("a-b", "x"), ("default", "z")] {
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &config_map(name, &[]))
            .await
            .unwrap();
    }
    let all: Api<ConfigMap> = Api::all(client);
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = all.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|c| {
            format!(
                "{}/{}",
                c.metadata.namespace.clone().unwrap(),
                c.metadata.name.clone().unwrap()
            )
        }));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen, ["a/x", "a/y", "a-b/x", "default/z"]);
}

#[tokio::test]
async fn leases_take_server_side_apply_and_optimistic_updates() {
    use k8s_openapi::api::coordination::v1::Lease;
    let (cluster, _) = fake_cluster().await;
    let leases: Api<Lease> = Api::namespaced(admin(&cluster).await, "default");
    let pp = PatchParams::apply("freshet").force();
    let apply = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "freshet-leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    let created = leases
        .patch("freshet-leader", &pp, &Patch::Apply(&apply))
        .await
        .unwrap();
    assert_eq!(
        created.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("a")
    );
    let mut taken = created.clone();
    taken.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("freshet-leader", &PostParams::default(), &taken)
        .await
        .unwrap();
    // The loser's write carries the old resourceVersion: 409.
    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let e = api_error(
        leases
            .replace("freshet-leader", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    assert_eq!(
        leases
            .get("freshet-leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("b")
    );
}

#[tokio::test]
async fn kube_runtime_recorder_events_show_in_both_event_apis() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (cluster, _) = fake_cluster().await;
    let client = admin(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "freshet".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "ImageUpdated".into(),
        note: Some("api: 1.0.0 -> 1.0.1".into()),
        action: "Update".into(),
        secondary: None,
    };
    let reference = kube::Resource::object_ref(&cm, &());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let events = core.list(&ListParams::default()).await.unwrap().items;
    let ours: Vec<&CoreEvent> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ImageUpdated"))
        .collect();
    assert!(!ours.is_empty());
    assert_eq!(ours[0].involved_object.name.as_deref(), Some("a"));
    assert_eq!(ours[0].message.as_deref(), Some("api: 1.0.0 -> 1.0.1"));
}

#[tokio::test]
async fn metadata_lists_gets_and_watches() {
    let (cluster, _) = fake_cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin(&cluster).await, "default");
    cms.create(&PostParams::default(), &config_map("a", &[("app", "web")]))
        .await
        .unwrap();
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].metadata.labels.as_ref().unwrap()["app"],
        "web"
    );
    let one = cms.get_metadata("a").await.unwrap();
    assert_eq!(one.metadata.name.as_deref(), Some("a"));
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch_metadata(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &config_map("b", &[]))
        .await
        .unwrap();
    loop {
        match stream.try_next().await.unwrap().expect("event") {
            WatchEvent::Added(m) => {
                assert_eq!(m.metadata.name.as_deref(), Some("b"));
                break;
            }
            WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(
        writer,
        kube::runtime::watcher(
            Api::<kube::core::PartialObjectMeta<ConfigMap>>::namespaced(
                admin(&cluster).await,
                "default",
            ),
            Default::default(),
        ),
    );
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    assert_eq!(reader.state().len(), 2);
    task.abort();
}

#[tokio::test]
async fn server_side_apply_tracks_managers_conflicts_and_removes_dropped_fields() {
    let (cluster, _) = fake_cluster().await;
    let deploys: Api<Deployment> = Api::namespaced(admin(&cluster).await, "default");
    deploys
        .create(
            &PostParams {
                field_manager: Some("creator".into()),
                ..Default::default()
            },
            &deployment("web", "api:1"),
        )
        .await
        .unwrap();
    let apply = |image: &str, labels: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "api", "image": image}]}}}})
    };
    let e = api_error(
        deploys
            .patch(
                "web",
                &PatchParams::apply("freshet"),
                &Patch::Apply(apply("api:2", json!({"team": "a"}))),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        r#"Apply failed with 1 conflict: conflict with "creator" using apps/v1: .spec.template.spec.containers[name="api"].image"#
    );
    let d = deploys
        .patch(
            "web",
            &PatchParams::apply("freshet").force(),
            &Patch::Apply(apply("api:2", json!({"team": "a"}))),
        )
        .await
        .unwrap();
    let managers: Vec<(String, String)> = d
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert!(
        managers.contains(&("freshet".into(), "Apply".into())),
        "{managers:?}"
    );
    assert!(
        managers.contains(&("creator".into(), "Update".into())),
        "{managers:?}"
    );
    assert_eq!(d.metadata.labels.unwrap()["team"], "a");
    // Applying again without the label removes it; the sidecar the creator owns stays.
    let d = deploys
        .patch(
            "web",
            &PatchParams::apply("freshet"),
            &Patch::Apply(apply("api:2", json!({}))),
        )
        .await
        .unwrap();
    assert!(!d.metadata.labels.unwrap_or_default().contains_key("team"));
    let containers = d.spec.template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("api:2"));
}
