//! The reader of what runs (`freshet_cluster::observed`) on the API test bed: pods
//! found through their ReplicaSets by owner reference, each container's imageID as
//! the test bed's kubelet reports it after pulling from the real registry, nodes'
//! platforms, pagination in pages of one, and a 403 that becomes a warning naming
//! the RBAC to grant.

mod common;

use common::*;
use freshet_cluster::observed::{Reader, workload_ref};
use freshet_cluster::workloads;
use freshet_core::refresh::WorkloadKind;
use freshet_core::runs::parse_image_id;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};

const NS: &str = "team";

#[tokio::test]
async fn reads_pods_by_owner_nodes_by_platform_page_by_page_and_a_403_is_a_warning() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    let multi = fixtures::seed_multi(&pusher).await.expect("seed multi");
    let image = format!("{}/team/multi:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    Deploy::test("web")
        .container("app", &image)
        .node("testbed-node-3")
        .create(&client, NS)
        .await;
    Deploy::test("other")
        .container("app", &image)
        .create(&client, NS)
        .await;

    let reader = Reader::new(client.clone()).with_page_size(1);
    let read = workloads::list(&client, WorkloadKind::Deployment, Some(NS), None)
        .await
        .unwrap();
    let web = read.iter().find(|w| w.workload.name == "web").unwrap();
    assert_eq!(
        web.scheduling
            .node_selector
            .get("kubernetes.io/hostname")
            .map(String::as_str),
        Some("testbed-node-3")
    );
    let all: Vec<_> = read.iter().collect();
    let observed = wait_for("both pods run with an imageID", || async {
        let o = reader.read(&all).await;
        let running = o
            .pods
            .iter()
            .filter(|p| p.containers.iter().any(|c| !c.image_id.is_empty()))
            .count();
        (running == 2).then_some(o)
    })
    .await;
    assert!(observed.warnings.is_empty(), "{:?}", observed.warnings);
    assert_eq!(observed.nodes.len(), 3, "three nodes, read one per page");
    let nodes = observed.node_index();
    let platform = |n: &str| {
        nodes
            .platform(n)
            .unwrap()
            .as_ref()
            .unwrap()
            .platform
            .to_string()
    };
    assert_eq!(platform("testbed-node-1"), "linux/amd64");
    assert_eq!(platform("testbed-node-3"), "linux/arm64");

    let owned = observed.owned(&workload_ref(web).unwrap());
    assert_eq!(owned.pods.len(), 1, "only web's pod: {owned:?}");
    assert_eq!(
        owned.excluded.len(),
        1,
        "the other deployment's pod is explained"
    );
    let pod = owned.pods[0];
    assert_eq!(pod.node_name.as_deref(), Some("testbed-node-3"));
    let runs = parse_image_id(&pod.containers[0].image_id).unwrap();
    assert_eq!(
        runs.digest.as_str(),
        multi.digest("latest"),
        "containerd reports the index digest"
    );

    // A ServiceAccount without any grant: every list is a warning naming the RBAC.
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(cluster.service_account_kubeconfig(NS, "nobody")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let nobody = kube::Client::try_from(config).unwrap();
    let denied = Reader::new(nobody).read(&all).await;
    assert!(denied.pods.is_empty() && denied.nodes.is_empty());
    assert!(!denied.nodes_read && denied.pods_read.is_empty());
    let messages = denied.warnings_for(NS).join("\n");
    for needle in [
        "freshet may not list pods in namespace team: grant its ServiceAccount get, list and watch on pods",
        "list and watch on nodes (API group \"\"); nodes are cluster-scoped and need a ClusterRole",
        "on replicasets (API group \"apps\")",
    ] {
        assert!(messages.contains(needle), "{needle}\n{messages}");
    }
    assert!(
        denied.warnings_for("elsewhere").len() == 1,
        "only the nodes"
    );
}

/// A client of `config` whose requests `counter` counts.
fn counted(config: kube::Config, counter: &freshet_cluster::api_count::ApiCounter) -> kube::Client {
    freshet_cluster::api_count::counted_client(config, counter).expect("client builds")
}

async fn config_of(kubeconfig: serde_json::Value) -> kube::Config {
    let kc: kube::config::Kubeconfig = serde_json::from_value(kubeconfig).unwrap();
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn many_namespaces_are_read_with_one_list_per_resource_or_per_namespace_without_cluster_access()
 {
    use freshet_cluster::api_count::ApiCounter;
    use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
    use kube::api::{Api, PostParams};

    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    fixtures::seed_multi(&pusher).await.expect("seed multi");
    let image = format!("{}/team/multi:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    let names: Vec<String> = (0..10).map(|i| format!("many-{i}")).collect();
    for ns in &names {
        namespace(&client, ns).await;
        Deploy::test("web")
            .container("app", &image)
            .create(&client, ns)
            .await;
    }
    let mut read = Vec::new();
    for ns in &names {
        read.extend(
            workloads::list(&client, WorkloadKind::Deployment, Some(ns), None)
                .await
                .unwrap(),
        );
    }
    let all: Vec<_> = read.iter().collect();
    wait_for("a pod in every namespace", || async {
        let o = Reader::new(client.clone()).read(&all).await;
        (o.pods.len() == names.len()).then_some(())
    })
    .await;

    // Cluster-wide read access: nodes, pods and ReplicaSets, one list each.
    let counter = ApiCounter::default();
    let admin_counted = counted(config_of(cluster.admin_kubeconfig()).await, &counter);
    let observed = Reader::new(admin_counted).read(&all).await;
    assert_eq!(counter.snapshot().lists, 3, "{:?}", counter.snapshot());
    assert!(observed.warnings.is_empty(), "{:?}", observed.warnings);
    assert_eq!(observed.pods.len(), names.len());
    assert_eq!(observed.pods_read.len(), names.len());
    for w in &all {
        let owned = observed.owned(&workload_ref(w).unwrap());
        assert_eq!(owned.pods.len(), 1, "{} has its pod", w.workload.namespace);
    }

    // Read access granted per namespace only (RoleBindings): the cluster-wide lists
    // are refused and each namespace is listed on its own, with no warning but the
    // nodes'.
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": ["", "apps"], "resources": ["pods", "replicasets"],
                   "verbs": ["get", "list", "watch"]}]
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    for ns in &names {
        let binding: RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "reader", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "many-0"}]
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
    }
    let counter = ApiCounter::default();
    let scoped = counted(
        config_of(cluster.service_account_kubeconfig("many-0", "reader")).await,
        &counter,
    );
    let observed = Reader::new(scoped).read(&all).await;
    assert_eq!(observed.pods.len(), names.len(), "{:?}", observed.warnings);
    assert_eq!(observed.pods_read.len(), names.len());
    let warnings: Vec<_> = observed.warnings.iter().map(|w| &w.message).collect();
    assert_eq!(warnings.len(), 1, "only the nodes: {warnings:?}");
    assert!(warnings[0].contains("nodes"), "{warnings:?}");
    assert_eq!(
        counter.snapshot().lists,
        1 + 2 + 2 * names.len() as u64,
        "nodes, the two refused cluster-wide lists, then two lists per namespace"
    );
}
