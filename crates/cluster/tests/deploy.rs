//! `deploy/`: `kubectl apply -k deploy/` installs the CronJob mode (the root
//! kustomization is the CronJob overlay) on the test bed, its image pinned by digest,
//! and its ServiceAccount's least-privilege RBAC is enough for a refresh run and no
//! more. (crates/freshet/tests/deploy_image.rs runs the same with the real image,
//! pulled by the test bed's kubelet.) `deploy/pull-secrets` adds, in one
//! namespace, `get` on the named pull secrets only.

mod common;

use common::*;
use freshet_cluster::{Outcome, PassOptions, Status};
use freshet_testbed::kubectl::kubectl;
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams};

#[tokio::test]
async fn apply_k_deploy_installs_the_cronjob_and_its_service_account_can_refresh_and_no_more() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let rendered = kubectl(&["kustomize", root], None).await;
    assert!(
        rendered.contains("schedule: '*/15 * * * *'")
            || rendered.contains("schedule: \"*/15 * * * *\""),
        "{rendered}"
    );
    assert!(
        !rendered.contains("secrets"),
        "no secrets access without pull secrets"
    );
    let image = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .expect("an image");
    let (_, digest) = image.split_once("@sha256:").expect("pinned by digest");
    assert!(
        image.starts_with(concat!(
            "ghcr.io/freshet/freshet:",
            env!("CARGO_PKG_VERSION"),
            "@"
        )) && digest.len() == 64
            && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{image}"
    );

    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = cluster().await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    kubectl(&["--kubeconfig", &kubeconfig, "apply", "-k", root], None).await;
    let listed = kubectl(
        &[
            "--kubeconfig",
            &kubeconfig,
            "get",
            "cronjob,serviceaccount,configmap",
            "-n",
            "freshet",
            "-o",
            "name",
        ],
        None,
    )
    .await;
    assert!(listed.contains("cronjob.batch/freshet"), "{listed}");
    assert!(listed.contains("serviceaccount/freshet"), "{listed}");

    let admin_client = admin(&cluster).await;
    namespace(&admin_client, NS).await;
    Deploy::test("web")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&admin_client, NS)
        .await;

    // freshet as its ServiceAccount.
    let sa_kubeconfig = cluster.service_account_kubeconfig("freshet", "freshet");
    let kc: kube::config::Kubeconfig = serde_json::from_value(sa_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let sa = kube::Client::try_from(config).unwrap();
    let refresher = refresher(&sa, PassOptions::default());
    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(first.outcome(), Outcome::Ok, "{first:#?}");
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    let web = second.workloads.iter().find(|w| w.name == "web").unwrap();
    assert_eq!(web.status, Status::Refreshed, "{second:#?}");
    assert!(web.written);
    assert!(
        events(&admin_client, NS, "web")
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("ImageRefreshed")),
        "the ServiceAccount may create events"
    );
    // freshet's own CronJob is enrolled as `never`: not in the report.
    assert!(second.workloads.iter().all(|w| w.namespace != "freshet"));
    // The owner walk works inside its own namespace (Role freshet-self).
    let own = freshet_cluster::own::discover(&sa, "freshet", "missing-pod").await;
    assert!(
        matches!(
            own,
            Err(freshet_cluster::own::OwnError::Get { source: kube::Error::Api(ref s), .. }) if s.code == 404
        ),
        "allowed to look, and there is no such pod: {own:?}"
    );

    // And no more than that.
    let forbidden = |e: kube::Error| matches!(e, kube::Error::Api(s) if s.code == 403);
    let deleted = deployments(&sa, NS)
        .delete("web", &DeleteParams::default())
        .await;
    assert!(deleted.is_err_and(forbidden), "no delete");
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), NS);
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .is_err_and(forbidden),
        "no secrets"
    );

    // What runs: read-only access to pods, ReplicaSets, Jobs and nodes, all of
    // which the pass read without a warning; and no write to any of them.
    assert!(
        second
            .workloads
            .iter()
            .all(|w| w.warnings.iter().all(|m| !m.contains("may not list"))),
        "{second:#?}"
    );
    let pods: Api<Pod> = Api::namespaced(sa.clone(), NS);
    // The restart replaces the pod: wait for one to exist (the list itself must
    // be allowed at every try).
    let pod = freshet_testbed::wait::wait_for("a pod of web", || async {
        let listed = pods.list(&ListParams::default()).await.unwrap();
        listed.items.first()?.metadata.name.clone()
    })
    .await;
    let nodes: Api<Node> = Api::all(sa.clone());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    Api::<ReplicaSet>::namespaced(sa.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<Job>::namespaced(sa.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        pods.delete(&pod, &DeleteParams::default())
            .await
            .is_err_and(forbidden),
        "no pod deletes"
    );
    let label = kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {"x": "y"}}}));
    assert!(
        nodes
            .patch("testbed-node-1", &Default::default(), &label)
            .await
            .is_err_and(forbidden),
        "no node patches"
    );
    assert!(
        Api::<ReplicaSet>::namespaced(sa.clone(), NS)
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .is_err_and(forbidden),
        "no ReplicaSet deletes"
    );
}

/// `deploy/pull-secrets` renders to a namespaced Role and RoleBinding (no cluster-wide
/// secret access), applies with kubectl, and lets freshet's ServiceAccount get the
/// named pull secret and no other secret; a run as that ServiceAccount refreshes a
/// workload of a private registry with it, and a workload in a namespace without the
/// grant gets a warning naming its secret and the fix (while a ServiceAccount it may
/// not read is no warning).
#[tokio::test]
async fn the_pull_secrets_piece_grants_get_on_the_named_secret_only_and_a_run_uses_it() {
    const PASSWORD: &str = "deploy-pull-s3cret";
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/overlays/cronjob");
    let piece = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/pull-secrets");
    let base = kubectl(&["kustomize", base], None).await;
    let rendered = kubectl(&["kustomize", piece], None).await;
    assert!(
        !rendered.contains("ClusterRole") && rendered.contains("kind: Role\n"),
        "a namespaced Role only: {rendered}"
    );
    assert!(
        rendered.contains("resourceNames:\n  - regcred"),
        "{rendered}"
    );
    assert!(rendered.contains("namespace: team"), "{rendered}");

    let registry = RegistryServer::start(RegistryOptions::basic().user("puller", PASSWORD))
        .await
        .expect("registry");
    let pusher = Pusher::new(&registry).expect("pusher");
    let mut api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    let host = registry.host();
    let image = format!("{host}/team/api:stable");
    let cluster = cluster().await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    let admin_client = admin(&cluster).await;
    namespace(&admin_client, NS).await;
    namespace(&admin_client, "elsewhere").await;
    for text in [&base, &rendered] {
        kubectl(
            &["--kubeconfig", &kubeconfig, "apply", "-f", "-"],
            Some(text),
        )
        .await;
    }
    for ns in [NS, "elsewhere"] {
        pull_secret(&admin_client, ns, "regcred", &host, "puller", PASSWORD).await;
        Deploy::test("web")
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .pull_secret("regcred")
            .create(&admin_client, ns)
            .await;
    }
    pull_secret(&admin_client, NS, "unrelated", &host, "puller", PASSWORD).await;
    // No imagePullSecrets: freshet would read the ServiceAccount's, which it may not
    // do in this namespace; it goes on without them.
    Deploy::test("plain")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&admin_client, "elsewhere")
        .await;

    let sa_kubeconfig = cluster.service_account_kubeconfig("freshet", "freshet");
    let kc: kube::config::Kubeconfig = serde_json::from_value(sa_kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let sa = kube::Client::try_from(config).unwrap();
    let forbidden = |e: kube::Error| matches!(e, kube::Error::Api(s) if s.code == 403);
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), NS);
    assert!(secrets.get("regcred").await.is_ok(), "the named secret");
    assert!(
        secrets.get("unrelated").await.is_err_and(forbidden),
        "no other secret"
    );
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .is_err_and(forbidden),
        "no list"
    );
    let elsewhere: Api<Secret> = Api::namespaced(sa.clone(), "elsewhere");
    assert!(
        elsewhere.get("regcred").await.is_err_and(forbidden),
        "not in another namespace"
    );

    let refresher = refresher(&sa, PassOptions::default());
    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    let web = |report: &freshet_cluster::PassReport, ns: &str| {
        report
            .workloads
            .iter()
            .find(|w| w.namespace == ns && w.name == "web")
            .cloned()
            .unwrap_or_else(|| panic!("{ns}/web in {report:#?}"))
    };
    let team = web(&first, NS);
    assert_eq!(team.status, Status::Recorded, "{team:#?}");
    assert!(
        team.warnings.is_empty() && team.transient.is_empty(),
        "{team:#?}"
    );
    let other = web(&first, "elsewhere");
    assert!(
        other
            .warnings
            .iter()
            .any(|w| w.contains("elsewhere/regcred")
                && w.contains("may not read")
                && w.contains("deploy/pull-secrets")),
        "{other:#?}"
    );
    assert_eq!(other.transient.len(), 1, "resolved without it: {other:#?}");
    let plain = first
        .workloads
        .iter()
        .find(|w| w.namespace == "elsewhere" && w.name == "plain")
        .unwrap();
    assert!(
        plain.warnings.is_empty(),
        "a forbidden ServiceAccount read is no warning: {plain:#?}"
    );
    assert!(
        plain.transient[0].message.contains("unauthorized"),
        "{plain:#?}"
    );

    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    let team = web(&second, NS);
    assert_eq!(team.status, Status::Refreshed, "{second:#?}");
    assert!(team.written);
    let d = deployments(&admin_client, NS).get("web").await.unwrap();
    assert_eq!(
        refreshed_digest(&d, &image).as_deref(),
        Some(api_fx.digest("stable"))
    );
}

const NS: &str = "team";
