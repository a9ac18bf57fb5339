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
        web.scheduling.node_selector["kubernetes.io/hostname"],
        "testbed-node-3"
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
