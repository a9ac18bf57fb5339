//! Reading and writing at scale, counted on the wire: paged listing, bounded
//! concurrent writes, zero writes on a steady pass, a controller pass from the
//! watched store with no LIST, and tokens kept across passes. The API test bed over
//! HTTPS through the real kube client (with the counting layer under it) and a
//! real token-auth registry. No timing is asserted anywhere.

mod common;

use common::*;
use freshet_cluster::api_count::{ApiCounter, counted_client};
use freshet_cluster::workloads::{self, Pages};
use freshet_cluster::{PassOptions, Refresher, Status};
use freshet_core::refresh::WorkloadKind;
use freshet_testbed::registry::push::{ImageSpec, Pusher};
use freshet_testbed::registry::token::TokenOptions;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use kube::api::{DynamicObject, PostParams};
use serde_json::json;

const NS: &str = "scale";

/// A client of `cluster` whose requests `counter` counts.
async fn counted(cluster: &freshet_apiserver::TestCluster, counter: &ApiCounter) -> kube::Client {
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(cluster.admin_kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    counted_client(config, counter).expect("client builds")
}

/// Creates `n` Deployments with no replicas, enrolled on `image` by digest.
async fn deployments_on(client: &kube::Client, n: usize, image: &str) {
    for i in 0..n {
        deployments_on_named(client, &format!("app-{i:03}"), image).await;
    }
    settled(client, n).await;
}

/// Waits until the test bed's Deployment controller has observed all `n`
/// Deployments (its status write changes their `resourceVersion`; a pass that read
/// them before would meet a 409 and patch again, which the counts here must not see).
async fn settled(client: &kube::Client, n: usize) {
    let api = workloads::api(client, WorkloadKind::Deployment, Some(NS));
    freshet_testbed::wait::wait_for("the Deployments observed by the test bed", || async {
        let list = api.list(&Default::default()).await.ok()?;
        let observed = list
            .items
            .iter()
            .filter(|d| d.data["status"]["observedGeneration"].as_i64() >= Some(1))
            .count();
        (observed >= n).then_some(())
    })
    .await;
}

async fn token_registry_with(image_repo: &str) -> (RegistryServer, String) {
    let registry = RegistryServer::start(RegistryOptions::token(
        TokenOptions::new().user("bench", "bench-pw"),
    ))
    .await
    .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    pusher
        .push(image_repo, "stable", &ImageSpec::docker_v2("one"))
        .await
        .expect("pushed");
    let image = format!("{}/{image_repo}:stable", registry.host());
    (registry, image)
}

#[tokio::test]
async fn listing_pages_through_limit_and_continue_until_the_last_page() {
    let cluster = cluster().await;
    let counter = ApiCounter::default();
    let client = counted(&cluster, &counter).await;
    namespace(&client, NS).await;
    deployments_on(&client, 23, "example.invalid/app:1").await;
    let before = counter.snapshot();
    let mut pages = Pages::new(&client, WorkloadKind::Deployment, Some(NS), None, 4);
    let mut sizes = Vec::new();
    let mut names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("page read");
        sizes.push(page.len());
        names.extend(page.into_iter().map(|w| w.workload.name));
    }
    assert_eq!(
        sizes,
        [4, 4, 4, 4, 4, 3],
        "the test bed honours limit/continue"
    );
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 23, "every workload once");
    assert_eq!(
        counter.snapshot().since(before).lists,
        6,
        "one LIST per page"
    );
}

#[tokio::test]
async fn writes_stay_within_their_bound_and_a_steady_pass_writes_nothing() {
    let (registry, image) = token_registry_with("scale/app").await;
    let cluster = cluster().await;
    let counter = ApiCounter::default();
    let client = counted(&cluster, &counter).await;
    namespace(&client, NS).await;
    deployments_on(&client, 30, &image).await;
    let options = PassOptions {
        max_writes: 3,
        page_size: 7,
        ..PassOptions::default()
    };
    let refresher: Refresher = refresher(&client, options).with_api_counter(counter.clone());
    let first = refresher.run_once().await.expect("first pass");
    assert_eq!(first.writes(), 30, "{first:#?}");
    let api = first.requests.api.expect("counted");
    assert_eq!(api.patches, 30, "one patch per workload");
    assert!(
        (1..=3).contains(&api.max_patches_in_flight),
        "at most 3 patches in flight: {api:?}"
    );
    assert_eq!(
        api.lists,
        5 + 3 + 5,
        "30 Deployments in 5 pages of 7, one page per other kind; what runs (nodes, \
         the namespace's pods and ReplicaSets) and Argo CD's two kinds, one page each"
    );
    assert_eq!(
        first.requests.registry.manifest_heads, 1,
        "one HEAD per unique image"
    );

    let steady = refresher.run_once().await.expect("steady pass");
    assert_eq!(steady.writes(), 0);
    let api = steady.requests.api.expect("counted");
    assert_eq!(
        (api.patches, api.creates),
        (0, 0),
        "no write at all: {api:?}"
    );
    assert!(steady.workloads.iter().all(|w| w.status == Status::Current));
    drop(registry);
}

#[tokio::test]
async fn a_steady_controller_pass_reads_the_watched_store_and_reuses_its_token() {
    let (registry, image) = token_registry_with("scale/app").await;
    let cluster = cluster().await;
    let counter = ApiCounter::default();
    let client = counted(&cluster, &counter).await;
    namespace(&client, NS).await;
    deployments_on(&client, 5, &image).await;
    let refresher = refresher(&client, PassOptions::default())
        .with_api_counter(counter.clone())
        .watching();
    let first = refresher.run_once().await.expect("first pass");
    assert_eq!(first.writes(), 5, "{first:#?}");
    assert_eq!(first.requests.registry.token_requests, 1);

    let steady = refresher.run_once().await.expect("steady pass");
    assert_eq!(steady.writes(), 0, "{steady:#?}");
    let api = steady.requests.api.expect("counted");
    assert_eq!(api.lists, 0, "no LIST in a steady controller pass: {api:?}");
    assert_eq!(
        api.gets, 0,
        "the ServiceAccount's pull secrets are remembered across passes, and the \
         store holds what the first pass wrote (no 409 and re-read): {api:?} {steady:#?}"
    );
    assert_eq!((api.patches, api.creates), (0, 0));
    let r = steady.requests.registry;
    assert_eq!(r.manifest_heads, 1, "one HEAD per unique image: {r:?}");
    assert_eq!(r.manifest_gets, 0, "no manifest GET: {r:?}");
    assert_eq!(
        r.token_requests, 0,
        "the token is reused until it expires: {r:?}"
    );
    assert_eq!(r.pings, 0, "the challenge is remembered too: {r:?}");

    // A workload created later reaches the store through the watch.
    deployments_on_named(&client, "late", &image).await;
    let lists_before = counter.snapshot().lists;
    freshet_testbed::wait::wait_for("the new workload in the store", || async {
        let r = refresher.run_once().await.expect("pass");
        r.workloads.iter().any(|w| w.name == "late").then_some(())
    })
    .await;
    assert_eq!(
        counter.snapshot().lists,
        lists_before,
        "seen without a LIST"
    );
    drop(registry);
}

/// Creates one Deployment `name` with no replicas, enrolled on `image` by digest.
async fn deployments_on_named(client: &kube::Client, name: &str, image: &str) {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {"freshet.io/policy": "digest"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"},
                                           "containers": [{"name": "app", "image": image}]}}}
    }))
    .expect("deployment");
    workloads::api(client, WorkloadKind::Deployment, Some(NS))
        .create(&PostParams::default(), &object)
        .await
        .expect("deployment created");
}
