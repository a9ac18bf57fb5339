//! The focused read of what runs (`Reader::read_selected`, a registry webhook's
//! re-check) on the API test bed: it lists a workload's pods and ReplicaSets by its
//! own selector (several workloads sharing a selector key: one set-based list) and
//! finds the same pods of each as the read of the whole namespace, without the other
//! workloads' pods or ReplicaSets.

mod common;

use common::*;
use freshet_cluster::observed::{Reader, workload_ref};
use freshet_cluster::workloads;
use freshet_core::refresh::WorkloadKind;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};

const NS: &str = "team";

#[tokio::test]
async fn a_focused_read_lists_only_the_workloads_own_pods_and_owners() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    fixtures::seed_multi(&pusher).await.expect("seed multi");
    let image = format!("{}/team/multi:latest", registry.host());
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    for name in ["web", "other", "third"] {
        Deploy::test(name)
            .container("app", &image)
            .create(&client, NS)
            .await;
    }
    let reader = Reader::new(client.clone());
    let read = workloads::list(&client, WorkloadKind::Deployment, Some(NS), None)
        .await
        .unwrap();
    let web = read.iter().find(|w| w.workload.name == "web").unwrap();
    let all: Vec<_> = read.iter().collect();
    let whole = wait_for("three pods run with an imageID", || async {
        let o = reader.read(&all).await;
        let running = o
            .pods
            .iter()
            .filter(|p| p.containers.iter().any(|c| !c.image_id.is_empty()))
            .count();
        (running == 3).then_some(o)
    })
    .await;

    let focused = reader.read_selected(&[web]).await;
    assert!(focused.warnings.is_empty(), "{:?}", focused.warnings);
    assert!(focused.nodes_read);
    assert_eq!(focused.nodes, whole.nodes);
    assert!(focused.pods_read.contains(NS));
    let id = workload_ref(web).unwrap();
    let (mine, all_of_it) = (focused.owned(&id), whole.owned(&id));
    assert_eq!(mine.pods.len(), 1, "{mine:?}");
    assert_eq!(mine.pods, all_of_it.pods, "the same pods of web either way");
    assert!(
        mine.excluded.is_empty(),
        "no other workload's pod: {mine:?}"
    );
    assert_eq!(focused.pods.len(), 1);
    assert!(
        !focused.intermediates.is_empty()
            && focused
                .intermediates
                .iter()
                .all(|i| i.name.starts_with("web-")),
        "{:?}",
        focused.intermediates
    );
    assert_eq!(whole.pods.len(), 3);

    // Two workloads whose selectors share their key: one set-based list each of
    // pods and ReplicaSets, still without the third workload's.
    let other = read.iter().find(|w| w.workload.name == "other").unwrap();
    let two = reader.read_selected(&[web, other]).await;
    assert!(two.warnings.is_empty(), "{:?}", two.warnings);
    assert_eq!(two.pods.len(), 2, "{:?}", two.pods);
    for w in [web, other] {
        let id = workload_ref(w).unwrap();
        assert_eq!(two.owned(&id).pods, whole.owned(&id).pods);
    }
    assert!(
        two.intermediates
            .iter()
            .all(|i| !i.name.starts_with("third-")),
        "{:?}",
        two.intermediates
    );
}
