//! Shared set-up of the cluster scenarios: the API test bed (its kubelet pulling
//! from the real registry), real registries with the standard fixtures, a kube
//! client from the test bed's kubeconfig, workload builders and waits.
#![allow(dead_code)]

use std::collections::BTreeMap;

use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_cluster::{PassOptions, PullSecret, Refresher};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

/// Installs ring as rustls' provider (once per process).
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TLS test bed whose kubelet pulls from real registries.
pub async fn cluster() -> TestCluster {
    crypto();
    TestCluster::start(ClusterOptions::default())
        .await
        .expect("cluster starts")
}

/// The admin client of `cluster`.
pub async fn admin(cluster: &TestCluster) -> kube::Client {
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(cluster.admin_kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

/// A refresher whose registry clients hold only the workloads' pull secrets (no
/// docker config), as the CLI builds them.
pub fn refresher(client: &kube::Client, options: PassOptions) -> Refresher {
    Refresher::new(client.clone(), registry_factory(), options)
}

/// Registry clients holding only the given pull secrets (no docker config), their
/// tokens in the given cache.
pub fn registry_factory() -> freshet_cluster::RegistryFactory {
    std::sync::Arc::new(
        |secrets: &[PullSecret], tokens: &freshet_registry::SharedTokens| {
            let mut store = freshet_registry::CredentialStore::anonymous();
            for s in secrets {
                store = store.with_pull_secret(&s.name, s.json.expose().as_bytes())?;
            }
            Ok(freshet_registry::Client::with_shared_tokens(
                store,
                freshet_registry::ClientOptions::default(),
                tokens.clone(),
            )?)
        },
    )
}

/// Creates a namespace.
pub async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// A deployment builder.
#[derive(Debug, Clone)]
pub struct Deploy {
    name: String,
    annotations: BTreeMap<String, String>,
    containers: Vec<Value>,
    pull_secrets: Vec<String>,
    service_account: Option<String>,
    node: Option<String>,
}

impl Deploy {
    /// A deployment named `name` with no containers yet.
    pub fn test(name: &str) -> Self {
        Self {
            name: name.into(),
            annotations: BTreeMap::new(),
            containers: Vec::new(),
            pull_secrets: Vec::new(),
            service_account: None,
            node: None,
        }
    }

    /// Adds a container pulling `Always`.
    pub fn container(mut self, name: &str, image: &str) -> Self {
        self.containers.push(
            json!({"name": name, "image": image, "imagePullPolicy": "Always",
                   "env": [{"name": "KEEP", "value": "me"}]}),
        );
        self
    }

    /// Adds an annotation.
    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Names a pull secret in the pod template's `imagePullSecrets`.
    pub fn pull_secret(mut self, name: &str) -> Self {
        self.pull_secrets.push(name.into());
        self
    }

    /// Sets the pod template's `serviceAccountName`.
    pub fn service_account(mut self, name: &str) -> Self {
        self.service_account = Some(name.into());
        self
    }

    /// Pins its pods to the test-bed node `name` (by `kubernetes.io/hostname`);
    /// without it, they select `kubernetes.io/arch: amd64`.
    pub fn node(mut self, name: &str) -> Self {
        self.node = Some(name.into());
        self
    }

    /// Creates it in `namespace`.
    pub async fn create(self, client: &kube::Client, namespace: &str) -> Deployment {
        let mut pod = json!({"containers": self.containers});
        if !self.pull_secrets.is_empty() {
            pod["imagePullSecrets"] = self
                .pull_secrets
                .iter()
                .map(|n| json!({"name": n}))
                .collect();
        }
        if let Some(sa) = &self.service_account {
            pod["serviceAccountName"] = json!(sa);
        }
        // The test bed has amd64 and arm64 nodes, and most fixtures are amd64-only:
        // like a real mixed cluster, such workloads select amd64 nodes (or else
        // freshet's platform guard rightly refuses to move them).
        pod["nodeSelector"] = match &self.node {
            Some(node) => json!({"kubernetes.io/hostname": node}),
            None => json!({"kubernetes.io/arch": "amd64"}),
        };
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": self.name, "annotations": self.annotations},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": self.name}},
                "template": {
                    "metadata": {"labels": {"app": self.name}},
                    "spec": pod
                }
            }
        }))
        .expect("deployment");
        deployments(client, namespace)
            .create(&PostParams::default(), &d)
            .await
            .expect("deployment created")
    }
}

/// Creates a `kubernetes.io/dockerconfigjson` Secret `name` in `namespace` holding
/// `username`/`password` for `host`.
pub async fn pull_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    host: &str,
    username: &str,
    password: &str,
) {
    let config = json!({"auths": {host: {"username": username, "password": password}}});
    create_secret(
        client,
        namespace,
        name,
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        config.to_string().as_bytes(),
    )
    .await;
}

/// Creates a Secret of `secret_type` with one data key.
pub async fn create_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    secret_type: &str,
    key: &str,
    data: &[u8],
) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some(secret_type.into()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            k8s_openapi::ByteString(data.to_vec()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret created");
}

/// The deployments API of `namespace`.
pub fn deployments(client: &kube::Client, namespace: &str) -> Api<Deployment> {
    Api::namespaced(client.clone(), namespace)
}

/// A deployment's metadata annotation.
pub fn annotation(d: &Deployment, key: &str) -> Option<String> {
    d.metadata.annotations.as_ref()?.get(key).cloned()
}

/// The pod-template annotation `kubectl.kubernetes.io/restartedAt`.
pub fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("kubectl.kubernetes.io/restartedAt")
        .cloned()
}

/// The env value of `var` on container `container`.
pub fn env(d: &Deployment, container: &str, var: &str) -> Option<String> {
    let pod = d.spec.template.spec.as_ref()?;
    let c = pod.containers.iter().find(|c| c.name == container)?;
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == var)?
        .value
        .clone()
}

/// The digest recorded in `freshet.io/refreshed` for `image`.
pub fn refreshed_digest(d: &Deployment, image: &str) -> Option<String> {
    let v: Value = serde_json::from_str(&annotation(d, "freshet.io/refreshed")?).ok()?;
    v[image]["digest"].as_str().map(str::to_owned)
}

/// The events in `namespace` about object `name`.
pub async fn events(client: &kube::Client, namespace: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("events list")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect()
}

// Not every test binary that includes this module waits.
#[allow(unused_imports)]
pub use freshet_testbed::wait::wait_for;

/// The time `s` (RFC 3339), for passes run at a chosen instant.
pub fn at(s: &str) -> freshet_core::refresh::Timestamp {
    freshet_core::refresh::Timestamp::parse(s).expect("an RFC 3339 time")
}

/// Waits until every live pod labelled `app=<app>` in `namespace` runs `digest`
/// (its container's imageID ends with it).
pub async fn wait_pods_run(client: &kube::Client, namespace: &str, app: &str, digest: &str) {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("{namespace}/{app}'s pods run {digest}");
    wait_for(&what, || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .ok()?;
        let ids: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .map(|c| c.image_id.clone())
            .collect();
        (!ids.is_empty() && ids.iter().all(|id| id.ends_with(digest))).then_some(())
    })
    .await;
}

/// Waits until deployment `name` finished rolling out (`kubectl rollout status`'s
/// rule): a pass judging its rollout then finds it healthy.
pub async fn wait_rolled_out(client: &kube::Client, namespace: &str, name: &str) {
    let api = deployments(client, namespace);
    wait_for(&format!("deployment {namespace}/{name} rolled out"), || {
        let api = api.clone();
        async move {
            let d = api.get(name).await.ok()?;
            let s = d.status?;
            let want = d.spec.replicas.unwrap_or(1);
            let done = s.observed_generation >= d.metadata.generation
                && s.updated_replicas.unwrap_or(0) == want
                && s.replicas.unwrap_or(0) == want
                && s.available_replicas.unwrap_or(0) == want;
            done.then_some(())
        }
    })
    .await;
}
