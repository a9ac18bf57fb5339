//! `freshet run --once` as users run it: the built binary against the API test bed
//! (over HTTPS, from its kubeconfig) and the real registry; exit codes, the JSON
//! report, dry runs, skipping freshet's own workload, and config errors.

mod common;

use std::process::Output;

use common::{admin, deploy};
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

async fn freshet(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(args)
        .env_remove("FRESHET_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env("HOME", "/nonexistent-home")
        .output()
        .await
        .expect("run freshet")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("kubectl.kubernetes.io/restartedAt")
        .cloned()
}

#[tokio::test]
async fn run_once_refreshes_skips_itself_dry_runs_and_exits_by_outcome() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    let policy = json!({"freshet.io/policy": "digest", "freshet.io/failure-threshold": "1"});
    deploy(&client, "app", &image, policy.clone()).await;
    deploy(&client, "freshet", &image, policy).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let run = [
        "run",
        "--once",
        "--kubeconfig",
        &kubeconfig,
        "--self",
        "default/freshet",
    ];

    let first = freshet(&[&run[..], &["-o", "json"]].concat()).await;
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report = json_of(&first);
    assert_eq!(report["workloads"][0]["name"], "app");
    assert_eq!(report["workloads"][0]["status"], "recorded");
    assert_eq!(report["workloads"][0]["baselines"][0], image.as_str());
    assert_eq!(report["workloads"][1]["name"], "freshet");
    assert_eq!(report["workloads"][1]["status"], "skipped");

    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let status = [
        "status",
        "--kubeconfig",
        &kubeconfig,
        "--self",
        "default/freshet",
    ];
    let out = freshet(&[&status[..], &["-o", "json"]].concat()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = json_of(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    let row = &rows[0];
    assert_eq!(row["name"], "app");
    assert_eq!(row["containers"][0], "app");
    assert_eq!(row["policy"], "digest");
    assert_eq!(row["target"], api_fx.digest("stable"));
    assert_eq!(row["pending"], true);
    assert_eq!(row["failures"], 0);
    assert!(row["last_refresh"].is_string());
    let text = freshet(&status).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("(pending)"));
    let before = deploys.get("app").await.unwrap();
    let dry = freshet(&[&run[..], &["--dry-run"]].concat()).await;
    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("would refresh") && text.contains(api_fx.digest("stable")),
        "{text}"
    );
    assert!(text.contains("dry run: nothing written"), "{text}");
    let after = deploys.get("app").await.unwrap();
    let refreshed = |d: &Deployment| {
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("freshet.io/refreshed").cloned())
    };
    assert_eq!(
        refreshed(&after),
        refreshed(&before),
        "a dry run writes nothing"
    );
    assert_eq!(restarted_at(&after), None);

    let real = freshet(&[&run[..], &["--log-format", "json", "--log", "info"]].concat()).await;
    assert_eq!(
        real.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    let stderr = String::from_utf8_lossy(&real.stderr);
    let refreshed_line: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "refreshed")
        .unwrap_or_else(|| panic!("a JSON log line per refresh: {stderr}"));
    assert_eq!(refreshed_line["name"], "app");
    assert_eq!(refreshed_line["action"], "restart");
    assert_eq!(refreshed_line["to"], api_fx.digest("stable"));
    assert!(restarted_at(&deploys.get("app").await.unwrap()).is_some());
    let own = deploys.get("freshet").await.unwrap();
    let own_annotations = own.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !own_annotations
            .keys()
            .any(|k| k.starts_with("freshet.io/refresh")),
        "freshet's own deployment is never touched: {own_annotations:?}"
    );
    assert_eq!(restarted_at(&own), None);

    // The next run judges the restart's rollout first: let it finish, so that run
    // plans `app` again (and meets the stopped registry).
    freshet_testbed::wait::wait_for("app rolled out", || async {
        let d = deploys.get("app").await.ok()?;
        let s = d.status?;
        (s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(1)
            && s.replicas == Some(1)
            && s.available_replicas == Some(1))
        .then_some(())
    })
    .await;
    registry.stop().await;
    let failing = freshet(&[&run[..], &["--log-format", "json", "--log", "info"]].concat()).await;
    assert_eq!(
        failing.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&failing.stderr)
    );
    let stderr = String::from_utf8_lossy(&failing.stderr);
    let error_line: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("a JSON ERROR line: {stderr}"));
    assert!(
        error_line["error"]
            .as_str()
            .unwrap()
            .contains(&registry.host()),
        "{error_line}"
    );
}

#[tokio::test]
async fn run_once_config_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = freshet(&["run", "--once", "--kubeconfig", missing.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kubeconfig"));
    let out = freshet(&[
        "run",
        "--once",
        "--self",
        "nonsense",
        "--kubeconfig",
        missing.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAMESPACE/NAME"));
    let bad = dir.path().join("freshet.yaml");
    std::fs::write(&bad, "rules:\n  - policy: digest\n    threshold: 0\n").unwrap();
    let out = freshet(&["run", "--once", "--config", bad.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("freshet.yaml")
            && stderr.contains("rules[0].threshold")
            && stderr.contains("fix"),
        "{stderr}"
    );
    std::fs::write(&bad, "rules:\n  - policy: digest\n    imagez: [x]\n").unwrap();
    let out = freshet(&["run", "--once", "--config", bad.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("imagez") && stderr.contains("line 3"),
        "{stderr}"
    );
    let out = freshet(&["run", "--interval", "soon"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--interval") && stderr.contains("15m"),
        "{stderr}"
    );
}

/// The CLI's registry factory puts a workload's pull secret first in the credential
/// chain (here there is no docker config at all), `status` uses it too, and no
/// secret value reaches stdout or the debug log.
#[tokio::test]
async fn run_once_resolves_with_the_workloads_pull_secret_and_never_prints_it() {
    const PASSWORD: &str = "cli-pull-s3cret";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::basic().user("puller", PASSWORD))
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let host = registry.host();
    let image = format!("{host}/team/api:stable");
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    let config = json!({"auths": {host.as_str(): {"username": "puller", "password": PASSWORD}}});
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {"freshet.io/policy": "digest"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"imagePullSecrets": [{"name": "regcred"}],
                         "nodeSelector": {"kubernetes.io/arch": "amd64"},
                         "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let empty_docker_config = tempfile::tempdir().unwrap();
    let docker_config = empty_docker_config.path().to_str().unwrap();
    let run = [
        "run",
        "--once",
        "--kubeconfig",
        &kubeconfig,
        "--docker-config",
        docker_config,
        "--log",
        "debug",
        "-o",
        "json",
    ];
    let no_secret = |out: &Output| {
        for text in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(text);
            assert!(!text.contains(PASSWORD), "the secret leaked: {text}");
        }
    };

    let first = freshet(&run).await;
    no_secret(&first);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report = json_of(&first);
    assert_eq!(report["workloads"][0]["status"], "recorded", "{report}");
    assert_eq!(report["workloads"][0]["baselines"][0], image.as_str());

    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let status = freshet(&[
        "status",
        "--kubeconfig",
        &kubeconfig,
        "--docker-config",
        docker_config,
        "-o",
        "json",
    ])
    .await;
    no_secret(&status);
    let rows = json_of(&status);
    assert_eq!(rows[0]["target"], api_fx.digest("stable"), "{rows}");
    assert_eq!(rows[0]["pending"], true);

    let second = freshet(&run).await;
    no_secret(&second);
    let report = json_of(&second);
    assert_eq!(report["workloads"][0]["status"], "refreshed", "{report}");
    let now = Api::<Deployment>::namespaced(client.clone(), "default")
        .get("app")
        .await
        .unwrap();
    assert!(restarted_at(&now).is_some());
}
