//! `deploy/overlays/controller`: renders with `kubectl kustomize`, applies to the test
//! bed with kubectl, and its ServiceAccount may hold the leader Lease and run passes,
//! and no other Lease.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use freshet_cluster::PassOptions;
use freshet_cluster::controller::{self, ControllerOptions};
use freshet_cluster::lease::LeaseOptions;
use freshet_cluster::metrics::Metrics;
use freshet_testbed::kubectl::kubectl;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn the_controller_overlay_applies_and_its_service_account_leads_and_refreshes() {
    let overlay = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/overlays/controller"
    );
    let rendered = kubectl(&["kustomize", overlay], None).await;
    for want in [
        "kind: Deployment",
        "replicas: 2",
        "kind: Role",
        "coordination.k8s.io",
        "- --metrics-addr=0.0.0.0:9090",
        "freshet.io/policy: never",
    ] {
        assert!(rendered.contains(want), "{want} in {rendered}");
    }
    assert!(!rendered.contains("--once"), "a controller, not a job");
    assert!(!rendered.contains("secrets"), "no secrets access");

    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    kubectl(
        &["--kubeconfig", &kubeconfig, "apply", "-f", "-"],
        Some(&rendered),
    )
    .await;
    let admin_client = admin(&cluster).await;
    namespace(&admin_client, NS).await;
    Deploy::test("web")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&admin_client, NS)
        .await;

    let kc: kube::config::Kubeconfig =
        serde_json::from_value(cluster.service_account_kubeconfig("freshet", "freshet")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let sa = kube::Client::try_from(config).unwrap();
    let metrics = Arc::new(Metrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let lease = LeaseOptions {
        namespace: "freshet".into(),
        name: "freshet".into(),
        identity: "freshet-0".into(),
        duration: Duration::from_secs(15),
        grace: Duration::from_secs(5),
    };
    let run = controller::run(
        refresher(&sa, PassOptions::default()),
        ControllerOptions {
            interval: Duration::from_secs(1),
            lease: Some(lease),
        },
        metrics.clone(),
        async {
            let _ = stopped.await;
        },
    );
    let leases: Api<Lease> = Api::namespaced(admin_client.clone(), "freshet");
    let deploys = deployments(&admin_client, NS);
    let checks = async {
        wait_for("the lease held by freshet-0", || async {
            leases
                .get_opt("freshet")
                .await
                .ok()??
                .spec?
                .holder_identity
                .filter(|h| h == "freshet-0")
        })
        .await;
        wait_for("a pass recording web's baseline", || async {
            annotation(&deploys.get("web").await.ok()?, "freshet.io/refreshed")
        })
        .await;
        assert!(metrics.encode().contains("freshet_leader 1"));
        stop.send(()).unwrap();
    };
    // The controller's future is not `Send` (kube-lease-manager's watch borrows), so
    // it runs beside the checks rather than in a spawned task.
    let (result, ()) = tokio::join!(run, checks);
    result.expect("a clean stop");
    let released = leases.get("freshet").await.unwrap();
    assert!(
        released
            .spec
            .and_then(|s| s.holder_identity)
            .is_none_or(|h| h.is_empty()),
        "released on stop"
    );

    // The Role names one Lease: another one cannot be taken over.
    let other = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("someone-else".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Lease>::namespaced(admin_client.clone(), "freshet")
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    let theirs = Api::<Lease>::namespaced(sa.clone(), "freshet")
        .get("someone-else")
        .await;
    assert!(
        matches!(theirs, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{theirs:?}"
    );
}

const NS: &str = "team";
