//! Helpers shared by the tests that run the built binary against the API test bed.

use freshet_apiserver::TestCluster;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// The admin client of `cluster`.
pub async fn admin(cluster: &TestCluster) -> kube::Client {
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(cluster.admin_kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client")
}

/// Creates Deployment `name` in `default`: one container `app` on `image`, pulling
/// `Always`, on amd64 nodes, with `annotations`.
pub async fn deploy(client: &kube::Client, name: &str, image: &str, annotations: Value) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                // amd64-only fixtures select amd64 nodes on the mixed test bed (else
                // the platform guard rightly refuses to move them).
                "spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"},
                         "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .expect("deployment created");
}
