//! The API test bed's kubelet pulling from the real distribution registry:
//! tags resolve per node platform, `imageID` carries the tag's digest,
//! `IfNotPresent` keeps a node's cached digest after a tag moves while
//! `Always` pulls again, and a missing platform is `ErrImagePull`.

use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use freshet_testbed::wait::wait_for;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

async fn admin(cluster: &TestCluster) -> kube::Client {
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(cluster.admin_kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

fn pod(name: &str, image: &str, node: &str, policy: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [{"name": "app", "image": image, "imagePullPolicy": policy}]
        }
    }))
    .expect("pod")
}

/// Waits until the pod's first container is running or waiting for a
/// reason other than `ContainerCreating`; returns (state, imageID or
/// waiting message).
async fn settle(pods: &Api<Pod>, name: &str) -> (String, String) {
    wait_for(&format!("pod {name} to settle"), || async {
        let p = pods.get(name).await.expect("pod exists");
        let cs = p
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c.into_iter().next())?;
        let state = cs.state.unwrap_or_default();
        if state.running.is_some() {
            return Some(("Running".into(), cs.image_id));
        }
        let w = state.waiting?;
        (w.reason.as_deref() != Some("ContainerCreating"))
            .then(|| (w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
    })
    .await
}

/// The message of the `Pulled` event of pod `name`.
async fn pulled_message(cluster: &TestCluster, name: &str) -> String {
    let events: Api<Event> = Api::namespaced(admin(cluster).await, "default");
    let selector = format!("involvedObject.name={name},reason=Pulled");
    let list = events
        .list(&ListParams::default().fields(&selector))
        .await
        .expect("events list");
    list.items
        .into_iter()
        .next()
        .and_then(|e| e.message)
        .unwrap_or_default()
}

#[tokio::test]
async fn tags_resolve_per_node_platform_and_missing_platforms_fail_to_pull() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let alpine = fixtures::seed_alpine(&pusher).await.expect("alpine");
    fixtures::seed_amd64only(&pusher).await.expect("amd64only");
    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let pods: Api<Pod> = Api::namespaced(admin(&cluster).await, "default");
    let host = registry.host();
    let alpine_ref = format!("{host}/library/alpine:3.19.1");
    let pp = PostParams::default();

    // testbed-node-1 is amd64, testbed-node-3 is arm64.
    pods.create(
        &pp,
        &pod("on-amd64", &alpine_ref, "testbed-node-1", "IfNotPresent"),
    )
    .await
    .unwrap();
    pods.create(
        &pp,
        &pod("on-arm64", &alpine_ref, "testbed-node-3", "IfNotPresent"),
    )
    .await
    .unwrap();
    let want_id = format!("{host}/library/alpine@{}", alpine.digest("3.19.1"));
    assert_eq!(
        settle(&pods, "on-amd64").await,
        ("Running".to_string(), want_id.clone())
    );
    assert_eq!(
        settle(&pods, "on-arm64").await,
        ("Running".to_string(), want_id)
    );
    let arm = pods.get("on-arm64").await.unwrap();
    assert_eq!(
        arm.spec.unwrap().node_name.as_deref(),
        Some("testbed-node-3")
    );

    let amd64only = format!("{host}/team/amd64only:latest");
    pods.create(
        &pp,
        &pod("wrong-arch", &amd64only, "testbed-node-3", "Always"),
    )
    .await
    .unwrap();
    pods.create(
        &pp,
        &pod("right-arch", &amd64only, "testbed-node-2", "Always"),
    )
    .await
    .unwrap();
    let (reason, message) = settle(&pods, "wrong-arch").await;
    assert!(
        matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff"),
        "{reason}"
    );
    assert!(message.contains("linux/arm64"), "{message}");
    assert_eq!(settle(&pods, "right-arch").await.0, "Running");

    let missing = format!("{host}/library/alpine:9.9.9");
    pods.create(
        &pp,
        &pod("no-such-tag", &missing, "testbed-node-1", "Always"),
    )
    .await
    .unwrap();
    // A failed pull reports ErrImagePull, then ImagePullBackOff until the retry.
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    wait_for("ErrImagePull then ImagePullBackOff", || async {
        let (reason, message) = settle(&pods, "no-such-tag").await;
        assert!(message.contains("not found"), "{message}");
        seen.borrow_mut().insert(reason);
        (seen.borrow().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(
        seen.into_inner(),
        ["ErrImagePull".to_string(), "ImagePullBackOff".to_string()].into()
    );
}

#[tokio::test]
async fn if_not_present_keeps_the_node_cache_and_always_pulls_the_moved_tag() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut alpine = fixtures::seed_alpine(&pusher).await.expect("alpine");
    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let pods: Api<Pod> = Api::namespaced(admin(&cluster).await, "default");
    let host = registry.host();
    let image = format!("{host}/library/alpine:3.19.1");
    let pp = PostParams::default();
    let old_id = format!("{host}/library/alpine@{}", alpine.digest("3.19.1"));

    pods.create(&pp, &pod("first", &image, "testbed-node-1", "IfNotPresent"))
        .await
        .unwrap();
    assert_eq!(settle(&pods, "first").await.1, old_id);

    let moved = fixtures::move_tag(&pusher, &mut alpine, "3.19.1", "2")
        .await
        .expect("move tag");
    let new_id = format!("{host}/library/alpine@{}", moved.digest);
    assert_ne!(new_id, old_id);

    // Same node, IfNotPresent: the cached image is used.
    pods.create(
        &pp,
        &pod("cached", &image, "testbed-node-1", "IfNotPresent"),
    )
    .await
    .unwrap();
    assert_eq!(settle(&pods, "cached").await.1, old_id);
    // A cached image is reported as a kubelet reports it: no pull happened.
    assert_eq!(
        pulled_message(&cluster, "cached").await,
        format!("Container image \"{image}\" already present on machine")
    );
    assert_eq!(
        pulled_message(&cluster, "first").await,
        format!("Successfully pulled image \"{image}\"")
    );
    // Another node has no cache: it pulls the moved tag.
    pods.create(
        &pp,
        &pod("other-node", &image, "testbed-node-2", "IfNotPresent"),
    )
    .await
    .unwrap();
    assert_eq!(settle(&pods, "other-node").await.1, new_id);
    // Always pulls again, and refreshes the node's cache.
    pods.create(&pp, &pod("always", &image, "testbed-node-1", "Always"))
        .await
        .unwrap();
    assert_eq!(settle(&pods, "always").await.1, new_id);
    pods.create(
        &pp,
        &pod("cached-again", &image, "testbed-node-1", "IfNotPresent"),
    )
    .await
    .unwrap();
    assert_eq!(settle(&pods, "cached-again").await.1, new_id);
}

/// As a real kubelet, the test bed pulls from a private registry with the pod's
/// `imagePullSecrets` (`.dockerconfigjson` or legacy `.dockercfg`); without one the
/// pull fails as unauthorized.
#[tokio::test]
async fn pods_pull_from_a_private_registry_with_their_image_pull_secrets() {
    use base64::Engine as _;
    use k8s_openapi::api::core::v1::Secret;
    let registry = RegistryServer::start(RegistryOptions::basic().user("puller", "kubelet-s3cret"))
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let alpine = fixtures::seed_alpine(&pusher).await.expect("alpine");
    let cluster = TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let client = admin(&cluster).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let host = registry.host();
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:kubelet-s3cret");
    for (name, secret_type, key, data) in [
        (
            "regcred",
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({"auths": {host.as_str(): {"auth": auth}}}),
        ),
        (
            "legacy",
            "kubernetes.io/dockercfg",
            ".dockercfg",
            json!({host.as_str(): {"auth": auth}}),
        ),
    ] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "type": secret_type,
            "data": {key: base64::engine::general_purpose::STANDARD.encode(data.to_string())}
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    let image = format!("{host}/library/alpine:3.19.1");
    for (name, secret) in [
        ("with-secret", Some("regcred")),
        ("with-legacy", Some("legacy")),
        ("without", None),
    ] {
        let mut p = pod(name, &image, "testbed-node-1", "Always");
        if let Some(secret) = secret {
            p.spec.as_mut().unwrap().image_pull_secrets =
                Some(vec![k8s_openapi::api::core::v1::LocalObjectReference {
                    name: secret.into(),
                }]);
        }
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let want_id = format!("{host}/library/alpine@{}", alpine.digest("3.19.1"));
    for name in ["with-secret", "with-legacy"] {
        assert_eq!(
            settle(&pods, name).await,
            ("Running".to_string(), want_id.clone()),
            "{name}"
        );
    }
    let (reason, message) = settle(&pods, "without").await;
    assert!(
        matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff"),
        "{reason}"
    );
    assert!(message.contains("authorize"), "{message}");
}
