//! Test support for the Argo CD tests: the real registry (open or with htpasswd
//! users) holding `team/api` with a `:preview` tag, the API test bed (optionally with
//! a write hook), real kubectl to apply and read Applications, and the built binary
//! run as `freshet run --once -o json`.
//!
//! It must not judge freshet: the tests do.
#![allow(dead_code)]

use std::process::Output;

use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::kubectl::kubectl;
use freshet_testbed::registry::fixtures::{self, RepoFixture};
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use serde_json::{Value, json};

pub const IU: &str = "argocd-image-updater.argoproj.io/";

pub struct Bed {
    pub registry: RegistryServer,
    pub pusher: Pusher,
    pub api: RepoFixture,
    pub cluster: TestCluster,
    pub kubeconfig: String,
    pub repo: String,
}

impl Bed {
    /// The registry with `team/api:preview` (at 1.0.0's image) and the test bed.
    pub async fn start() -> Bed {
        Bed::with(RegistryOptions::open(), ClusterOptions::default()).await
    }

    /// The registry started with `registry` (a basic-auth registry's first user
    /// pushes) and the test bed with `cluster`.
    pub async fn with(registry: RegistryOptions, cluster: ClusterOptions) -> Bed {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = RegistryServer::start(registry).await.unwrap();
        let pusher = Pusher::new(&registry).unwrap();
        let mut api = fixtures::seed_api(&pusher).await.unwrap();
        let preview = pusher.tag(api.image("1.0.0"), "preview").await.unwrap();
        api.tags.insert("preview".into(), preview);
        let cluster = TestCluster::start(cluster).await.unwrap();
        let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
        let repo = format!("{}/team/api", registry.host());
        Bed {
            registry,
            pusher,
            api,
            cluster,
            kubeconfig,
            repo,
        }
    }

    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut all = vec!["--kubeconfig", &self.kubeconfig];
        all.extend_from_slice(args);
        kubectl(&all, stdin).await
    }

    pub async fn apply(&self, objects: &[Value]) {
        let text: Vec<String> = objects.iter().map(Value::to_string).collect();
        self.kubectl(&["apply", "-f", "-"], Some(&text.join("\n")))
            .await;
    }

    /// The Application as kubectl prints it (JSON text).
    pub async fn app_text(&self, name: &str) -> String {
        self.kubectl(
            &["get", "application", name, "-n", "argocd", "-o", "json"],
            None,
        )
        .await
    }

    pub async fn app(&self, name: &str) -> Value {
        serde_json::from_str(&self.app_text(name).await).unwrap()
    }

    /// `freshet run --once -o json` (with `extra` environment).
    pub async fn run(&self, env: &[(&str, &str)]) -> (Output, Value) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
            .args([
                "run",
                "--once",
                "--kubeconfig",
                &self.kubeconfig,
                "-o",
                "json",
            ])
            .env_remove("FRESHET_LOG")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .env_remove("FRESHET_SELF")
            .env_remove("FRESHET_GIT_TOKEN")
            .env("HOME", "/nonexistent-home")
            .envs(env.iter().copied())
            .output()
            .await
            .expect("freshet runs");
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, report)
    }

    pub async fn move_preview(&mut self, generation: &str) -> String {
        fixtures::move_tag(&self.pusher, &mut self.api, "preview", generation)
            .await
            .unwrap();
        self.api.digest("preview").to_owned()
    }

    /// The notes of the Events about `name` in `namespace` with `reason`.
    pub async fn events(&self, namespace: &str, name: &str, reason: &str) -> Vec<String> {
        let list: Value = serde_json::from_str(
            &self
                .kubectl(&["get", "events", "-n", namespace, "-o", "json"], None)
                .await,
        )
        .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

pub fn report_of<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == kind && w["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {report}"))
}

pub fn annotations(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// An Application in `argocd` with one source (or `sources`), running `image`.
pub fn application(name: &str, notes: Value, spec: Value, source_type: &str, image: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd", "annotations": notes},
        "spec": spec,
        "status": {"sourceType": source_type, "summary": {"images": [image]}},
    })
}
