//! Image pull secrets in cluster mode, end to end: a basic-auth registry (the real
//! distribution registry with htpasswd), workloads whose pull secrets are Secrets in
//! their namespace (named by the pod template or by its ServiceAccount), and a
//! registry factory given no docker config, so every credential comes from a secret.

mod common;

use common::*;
use freshet_cluster::{Outcome, PassOptions, Status, WorkloadReport};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const USER: &str = "puller";
const PASSWORD: &str = "pull-s3cret-never-shown";

async fn private_registry() -> (RegistryServer, Pusher, fixtures::RepoFixture) {
    let registry = RegistryServer::start(RegistryOptions::basic().user(USER, PASSWORD))
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    let api_fx = fixtures::seed_api(&pusher).await.expect("seed api");
    (registry, pusher, api_fx)
}

fn find<'a>(workloads: &'a [WorkloadReport], namespace: &str, name: &str) -> &'a WorkloadReport {
    workloads
        .iter()
        .find(|w| w.namespace == namespace && w.name == name)
        .unwrap_or_else(|| panic!("{namespace}/{name} in {workloads:#?}"))
}

/// Namespace alpha's Deployment names `regcred` and is refreshed when the tag moves;
/// another in alpha uses a legacy `.dockercfg` secret; namespace beta's Deployment
/// of the same image has no secret and fails with the registry's auth error (it must
/// not borrow alpha's answer); a Deployment naming a secret that does not exist gets
/// a warning naming it. `status` uses the same credentials.
#[tokio::test]
async fn a_pull_secret_opens_a_private_registry_for_its_own_workloads_only() {
    let (registry, pusher, mut api_fx) = private_registry().await;
    let host = registry.host();
    let image = format!("{host}/team/api:stable");
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    for ns in ["alpha", "beta"] {
        namespace(&client, ns).await;
    }
    pull_secret(&client, "alpha", "regcred", &host, USER, PASSWORD).await;
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let legacy = json!({ format!("http://{host}"): {"auth": auth} });
    create_secret(
        &client,
        "alpha",
        "legacy",
        "kubernetes.io/dockercfg",
        ".dockercfg",
        legacy.to_string().as_bytes(),
    )
    .await;
    Deploy::test("web")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .pull_secret("regcred")
        .node(AMD64_NODE)
        .create(&client, "alpha")
        .await;
    Deploy::test("old")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .pull_secret("legacy")
        .create(&client, "alpha")
        .await;
    Deploy::test("ghost")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .pull_secret("missing")
        .create(&client, "alpha")
        .await;
    Deploy::test("web")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .create(&client, "beta")
        .await;

    let refresher = refresher(&client, PassOptions::default());
    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        first.images, 3,
        "one image, asked once per set: alpha/regcred, alpha/legacy, none"
    );
    assert_eq!(
        find(&first.workloads, "alpha", "web").status,
        Status::Recorded
    );
    assert_eq!(
        find(&first.workloads, "alpha", "old").status,
        Status::Recorded
    );
    let beta = find(&first.workloads, "beta", "web");
    assert_eq!(beta.status, Status::Recorded, "{beta:#?}");
    assert!(beta.baselines.is_empty(), "no answer borrowed: {beta:#?}");
    assert_eq!(beta.transient.len(), 1, "{beta:#?}");
    let message = &beta.transient[0].message;
    assert!(
        message.contains(&host) && message.contains("unauthorized"),
        "the registry's auth error naming the host: {message}"
    );
    let ghost = find(&first.workloads, "alpha", "ghost");
    assert!(
        ghost.warnings.iter().any(|w| w.contains("alpha/missing")
            && w.contains("does not exist")
            && w.contains("create it")),
        "{ghost:#?}"
    );
    assert_eq!(ghost.transient.len(), 1, "resolved without it: {ghost:#?}");

    let old_digest = api_fx.digest("stable").to_owned();
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    assert_eq!(second.outcome(), Outcome::Ok, "{second:#?}");
    for name in ["web", "old"] {
        let r = find(&second.workloads, "alpha", name);
        assert_eq!(r.status, Status::Refreshed, "{r:#?}");
        assert!(r.written);
        assert_eq!(r.changes[0].from, old_digest);
        let d = deployments(&client, "alpha").get(name).await.unwrap();
        assert_eq!(restarted_at(&d).as_deref(), Some("2026-11-23T10:15:00Z"));
        assert_eq!(
            refreshed_digest(&d, &image).as_deref(),
            Some(api_fx.digest("stable"))
        );
    }
    // The test bed's kubelet pulls with the pod's imagePullSecrets, as a real one:
    // the restarted pods run the moved tag's image.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "alpha");
    let repo = image.trim_end_matches(":stable").to_owned();
    let want_id = format!("{repo}@{}", api_fx.digest("stable"));
    wait_for("alpha/web's pod on the new image", || {
        let (pods, want_id) = (pods.clone(), want_id.clone());
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            list.items
                .iter()
                .any(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|c| c.first())
                        .is_some_and(|c| c.image_id == want_id && c.ready)
                })
                .then_some(())
        }
    })
    .await;
    let beta = find(&second.workloads, "beta", "web");
    assert!(beta.changes.is_empty(), "{beta:#?}");
    assert_eq!(beta.transient[0].count, 2);
    let beta_now = deployments(&client, "beta").get("web").await.unwrap();
    assert_eq!(restarted_at(&beta_now), None);
    assert_eq!(annotation(&beta_now, "freshet.io/refreshed"), None);

    // `status` resolves with the same credentials.
    let rows = refresher.status().await.unwrap();
    let row = |ns: &str, name: &str| {
        rows.iter()
            .find(|r| r.namespace == ns && r.name == name)
            .unwrap_or_else(|| panic!("{ns}/{name} in {rows:#?}"))
    };
    let web = row("alpha", "web");
    assert_eq!(web.error, None, "{web:#?}");
    assert_eq!(web.target.as_deref(), Some(api_fx.digest("stable")));
    let beta = row("beta", "web");
    assert!(
        beta.error.as_deref().is_some_and(|e| e.contains(&host)),
        "{beta:#?}"
    );
    assert!(
        row("alpha", "ghost")
            .warnings
            .iter()
            .any(|w| w.contains("alpha/missing")),
        "{rows:#?}"
    );
}

/// A pod template that names no pull secret uses its ServiceAccount's, as the
/// kubelet does.
#[tokio::test]
async fn a_service_account_pull_secret_is_used_when_the_template_names_none() {
    let (registry, pusher, mut api_fx) = private_registry().await;
    let host = registry.host();
    let image = format!("{host}/team/api:stable");
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    pull_secret(&client, NS, "regcred", &host, USER, PASSWORD).await;
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "builder"},
        "imagePullSecrets": [{"name": "regcred"}]
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    Deploy::test("web")
        .container("app", &image)
        .annotate("freshet.io/policy", "digest")
        .service_account("builder")
        .create(&client, NS)
        .await;

    let refresher = refresher(&client, PassOptions::default());
    let first = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    let web = find(&first.workloads, NS, "web");
    assert_eq!(web.status, Status::Recorded, "{web:#?}");
    assert!(
        web.transient.is_empty() && web.warnings.is_empty(),
        "{web:#?}"
    );
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let second = refresher
        .run_once_at(at("2026-11-23T10:15:00Z"))
        .await
        .unwrap();
    let web = find(&second.workloads, NS, "web");
    assert_eq!(web.status, Status::Refreshed, "{web:#?}");
    let d = deployments(&client, NS).get("web").await.unwrap();
    assert_eq!(restarted_at(&d).as_deref(), Some("2026-11-23T10:15:00Z"));
}

/// Regression: no secret value reaches the JSON report, the status rows or an
/// error's text, whether the secret is rejected by the registry, malformed, or of
/// the wrong type.
#[tokio::test]
async fn secret_values_never_appear_in_the_report_or_in_errors() {
    const WRONG: &str = "wr0ng-s3cret-never-shown";
    let (registry, _pusher, _api_fx) = private_registry().await;
    let host = registry.host();
    let image = format!("{host}/team/api:stable");
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    pull_secret(&client, NS, "rejected", &host, USER, WRONG).await;
    create_secret(
        &client,
        NS,
        "truncated",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        format!(
            "{{\"auths\": {{\"{host}\": {{\"username\": \"{USER}\", \"password\": \"{PASSWORD}"
        )
        .as_bytes(),
    )
    .await;
    create_secret(
        &client,
        NS,
        "opaque",
        "Opaque",
        ".dockerconfigjson",
        format!("{{\"auths\": {{\"{host}\": {{\"password\": \"{PASSWORD}\"}}}}}}").as_bytes(),
    )
    .await;
    create_secret(
        &client,
        NS,
        "no-auths",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        format!("{{\"{host}\": {{\"password\": \"{PASSWORD}\"}}}}").as_bytes(),
    )
    .await;
    for (name, secret) in [
        ("rejected", "rejected"),
        ("truncated", "truncated"),
        ("opaque", "opaque"),
        ("no-auths", "no-auths"),
    ] {
        Deploy::test(name)
            .container("app", &image)
            .annotate("freshet.io/policy", "digest")
            .pull_secret(secret)
            .create(&client, NS)
            .await;
    }
    let refresher = refresher(&client, PassOptions::default());
    let report = refresher
        .run_once_at(at("2026-11-23T10:00:00Z"))
        .await
        .unwrap();
    let rejected = find(&report.workloads, NS, "rejected");
    assert!(
        rejected.transient[0].message.contains("unauthorized"),
        "{rejected:#?}"
    );
    for name in ["truncated", "opaque", "no-auths"] {
        let r = find(&report.workloads, NS, name);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains(&format!("{NS}/{name}")) && w.contains("unusable")),
            "{r:#?}"
        );
    }
    let rows = refresher.status().await.unwrap();
    use base64::Engine as _;
    let encoded = |p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{p}"));
    let texts = [
        serde_json::to_string(&report).unwrap(),
        format!("{report:?}"),
        serde_json::to_string(&rows).unwrap(),
        format!("{rows:?}"),
    ];
    for text in texts {
        for secret in [PASSWORD, WRONG, &encoded(PASSWORD), &encoded(WRONG)] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
    }
}

/// A run reads each Secret once: a second workload naming it gets the cached copy,
/// and only the next run (a new reader) sees that it is gone.
#[tokio::test]
async fn each_pull_secret_is_read_once_per_run() {
    use freshet_cluster::secrets::Reader;
    use freshet_cluster::workloads;
    use freshet_core::refresh::WorkloadKind;
    let cluster = cluster().await;
    let client = admin(&cluster).await;
    namespace(&client, NS).await;
    pull_secret(&client, NS, "regcred", "registry.example", USER, PASSWORD).await;
    for name in ["one", "two"] {
        Deploy::test(name)
            .container("app", "registry.example/team/api:stable")
            .pull_secret("regcred")
            .create(&client, NS)
            .await;
    }
    let read = |name: &'static str| {
        let client = client.clone();
        async move {
            workloads::get(&client, WorkloadKind::Deployment, NS, name)
                .await
                .unwrap()
        }
    };
    let mut run = Reader::new(client.clone());
    let one = run.for_workload(&read("one").await).await;
    assert_eq!(one.secrets.len(), 1, "{one:?}");
    assert_eq!(one.secrets[0].name, format!("{NS}/regcred"));
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NS)
        .delete("regcred", &Default::default())
        .await
        .unwrap();
    let two = run.for_workload(&read("two").await).await;
    assert_eq!(two.secrets, one.secrets, "the run's copy");
    let next_run = Reader::new(client.clone())
        .for_workload(&read("two").await)
        .await;
    assert!(next_run.secrets.is_empty());
    assert!(
        next_run.warnings[0].contains(&format!("{NS}/regcred")),
        "{next_run:?}"
    );
}

const NS: &str = "team";
/// A test-bed node of the api fixture's platform (linux/amd64).
const AMD64_NODE: &str = "testbed-node-1";
