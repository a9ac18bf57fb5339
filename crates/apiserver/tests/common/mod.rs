//! Helpers shared by the integration tests: starting a cluster, building a
//! `kube::Client` from its kubeconfig, waiting on conditions, running kubectl.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use freshet_apiserver::images::FakeResolver;
use freshet_apiserver::{ClusterOptions, TestCluster};
use serde_json::Value;

/// A TLS cluster whose images resolve through a [`FakeResolver`].
pub async fn fake_cluster() -> (TestCluster, Arc<FakeResolver>) {
    let resolver = Arc::new(FakeResolver::default());
    let cluster = TestCluster::start(ClusterOptions::default().resolver(resolver.clone()))
        .await
        .expect("cluster starts");
    (cluster, resolver)
}

/// A client from a kubeconfig document.
pub async fn client_from(kubeconfig: Value) -> kube::Client {
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

/// The admin client of `cluster`.
pub async fn admin(cluster: &TestCluster) -> kube::Client {
    client_from(cluster.admin_kubeconfig()).await
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
