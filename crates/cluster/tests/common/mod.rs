//! Shared set-up of the cluster scenarios: the API test bed (its kubelet pulling
//! from the real registry), real registries with the standard fixtures, a kube
//! client from the test bed's kubeconfig, workload builders and waits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_cluster::{Refresher, RunOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace};
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

/// A refresher with an anonymous registry client.
pub fn refresher(client: &kube::Client, options: RunOptions) -> Refresher {
    Refresher::new(
        client.clone(),
        std::sync::Arc::new(|| Ok(freshet_registry::Client::anonymous()?)),
        options,
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
}

impl Deploy {
    /// A deployment named `name` with no containers yet.
    pub fn test(name: &str) -> Self {
        Self {
            name: name.into(),
            annotations: BTreeMap::new(),
            containers: Vec::new(),
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

    /// Creates it in `namespace`.
    pub async fn create(self, client: &kube::Client, namespace: &str) -> Deployment {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": self.name, "annotations": self.annotations},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": self.name}},
                "template": {
                    "metadata": {"labels": {"app": self.name}},
                    "spec": {"containers": self.containers}
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

/// Polls `check` until it returns `Some`, failing after 60 s.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
