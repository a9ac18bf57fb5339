//! Operating freshet, end to end with the built binary, the API test bed and the
//! real registry: notifications from `run --once` to a local receiver that verifies
//! the signature, the textfile-collector metrics file, no progress bytes when
//! output is not a terminal; and in controller mode, a registry webhook that makes
//! the controller refresh a workload long before its interval, `/readyz` following
//! the API server, and the metrics of a pass.

mod common;

use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::{admin, deploy};
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::{ImageSpec, Pusher};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use freshet_testbed::wait::wait_for_or;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const KEY: &str = "a-test-hmac-key-of-some-length";

/// What the receiver got: (signature header, body).
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on 127.0.0.1 that records every delivery and answers 200.
async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    async fn hook(State(seen): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
        let sig = headers
            .get(freshet_notify::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock().unwrap().push((sig, body.to_vec()));
        "ok"
    }
    let seen: Received = Arc::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen, task)
}

async fn freshet(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("FRESHET_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env("HOME", "/nonexistent-home")
        .output()
        .await
        .expect("run freshet")
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
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

/// A refresh and a failure streak reaching its threshold arrive as one signed
/// message; its recovery as another; the metrics file says so; and nothing on
/// stdout or stderr is a progress byte.
#[tokio::test]
async fn run_once_notifies_signed_batches_and_writes_the_metrics_file() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let host = registry.host();
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    deploy(
        &client,
        "app",
        &format!("{host}/team/api:stable"),
        json!({"freshet.io/policy": "digest",
               "freshet.io/audit-annotation": "example.com/last-refreshed-app-digest"}),
    )
    .await;
    deploy(
        &client,
        "broken",
        &format!("{host}/team/api:later"),
        json!({"freshet.io/policy": "digest", "freshet.io/failure-threshold": "2"}),
    )
    .await;
    let (url, seen, _server) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("freshet.yaml");
    std::fs::write(
        &config,
        format!(
            "notifications:\n  cluster: test-bed\n  sinks:\n    - name: audit\n      type: webhook\n      url: {url}\n      secretFrom: {{env: FRESHET_TEST_KEY}}\n"
        ),
    )
    .unwrap();
    let metrics_file = dir.path().join("freshet.prom");
    let args = [
        "run",
        "--once",
        "--kubeconfig",
        &kubeconfig,
        "--config",
        config.to_str().unwrap(),
        "--metrics-file",
        metrics_file.to_str().unwrap(),
    ];
    let env = [("FRESHET_TEST_KEY", KEY)];
    let run = || freshet(&args, &env);

    // Baselines and a first failure: nothing worth a message.
    let first = run().await;
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing to announce yet");

    // The tag moves and the streak reaches 2: one message, two events.
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let second = run().await;
    assert_eq!(
        second.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    for out in [&first, &second] {
        let bytes = [&out.stdout[..], &out.stderr[..]].concat();
        assert!(
            !bytes.contains(&b'\r') && !bytes.contains(&0x1b),
            "no progress bytes when not on a terminal: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let messages = seen.lock().unwrap().clone();
    assert_eq!(messages.len(), 1, "one batch per pass");
    let (sig, body) = &messages[0];
    freshet_notify::verify(
        KEY.as_bytes(),
        sig,
        body,
        now_unix(),
        Duration::from_secs(300),
    )
    .expect("a valid signature");
    assert!(
        freshet_notify::verify(
            b"another key",
            sig,
            body,
            now_unix(),
            Duration::from_secs(300)
        )
        .is_err()
    );
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["cluster"], "test-bed");
    let events = payload["events"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("refresh", "app"), ("failureStreak", "broken")]);
    assert_eq!(events[0]["to"], api_fx.digest("stable"));
    assert!(!String::from_utf8_lossy(body).contains(KEY));
    let app = Api::<Deployment>::namespaced(client.clone(), "default")
        .get("app")
        .await
        .unwrap();
    assert_eq!(
        app.metadata.annotations.unwrap()["example.com/last-refreshed-app-digest"],
        api_fx.digest("stable"),
        "the team's own audit annotation follows the refresh"
    );

    let text = std::fs::read_to_string(&metrics_file).unwrap();
    for line in [
        "# TYPE freshet_passes_total counter",
        "freshet_passes_total{outcome=\"escalated\"} 1",
        "freshet_pass_duration_seconds_count 1",
        "freshet_notifications_sent_total{sink=\"audit\"} 1",
        "freshet_api_writes_total{resource=\"patch\",outcome=\"ok\"} 2",
        &format!(
            "freshet_registry_requests_total{{registry=\"{host}\",method=\"HEAD\",outcome=\"2xx\"}}"
        ),
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");

    // The missing tag appears: the streak recovers, announced once.
    pusher
        .push_tag_many(
            "team/api",
            ["later"],
            &ImageSpec::docker_v2("team/api-later"),
        )
        .await
        .unwrap();
    // The kubelet retries the pull and the pods run: nothing is stuck any more.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    freshet_testbed::wait::wait_for("broken's pods run the new tag", || async {
        let list = pods.list(&Default::default()).await.ok()?;
        let mut broken = list
            .items
            .iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("broken-"))
            })
            .peekable();
        broken.peek()?;
        broken
            .all(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .all(|c| c.ready)
            })
            .then_some(())
    })
    .await;
    let third = run().await;
    assert_eq!(
        third.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let messages = seen.lock().unwrap().clone();
    assert_eq!(messages.len(), 2);
    let payload: Value = serde_json::from_slice(&messages[1].1).unwrap();
    assert_eq!(payload["events"][0]["kind"], "recovered");
    assert_eq!(payload["events"][0]["name"], "broken");
    drop(registry);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One HTTP/1.0 request over a plain socket: (status, body), `None` while down.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// With a one-hour interval, only the webhook can make the controller refresh the
/// workload: it does, for a tracked image, and ignores an untracked one; `/readyz`
/// answers 200 while the API server answers and 503 once it is gone.
#[tokio::test]
async fn a_registry_webhook_refreshes_before_the_interval_and_readyz_follows_the_api() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let mut api_fx = fixtures::seed_api(&pusher).await.unwrap();
    let host = registry.host();
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    deploy(
        &client,
        "app",
        &format!("{host}/team/api:stable"),
        json!({"freshet.io/policy": "digest"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("freshet.yaml");
    std::fs::write(
        &config,
        "webhooks:\n  sources:\n    - name: ci\n      kind: generic\n      secret: {env: FRESHET_TEST_HOOK_TOKEN}\n",
    )
    .unwrap();
    let log = dir.path().join("controller.log");
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"))
        .args([
            "run",
            "--kubeconfig",
            &kubeconfig,
            "--config",
            config.to_str().unwrap(),
            "--interval",
            "1h",
            "--no-leader-election",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--log",
            "info",
        ])
        .env("FRESHET_TEST_HOOK_TOKEN", KEY)
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env_remove("FRESHET_LOG")
        .env("HOME", "/nonexistent-home")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let show_log = || eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    // The first pass (at start) records the baseline: the image is tracked.
    wait_for_or("the baseline", show_log, || async {
        let d = deploys.get("app").await.ok()?;
        d.metadata
            .annotations?
            .contains_key("freshet.io/refreshed")
            .then_some(())
    })
    .await;
    wait_for_or("ready", show_log, || async {
        (http(port, "GET", "/readyz", "", "").await?.0 == 200).then_some(())
    })
    .await;
    fixtures::move_tag(&pusher, &mut api_fx, "stable", "2")
        .await
        .unwrap();
    let auth = format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n");
    let untracked = http(
        port,
        "POST",
        "/webhooks/ci",
        &auth,
        r#"{"image": "evil.example.com/x/y:1"}"#,
    )
    .await
    .unwrap();
    assert_eq!(untracked.0, 202, "{untracked:?}");
    assert!(untracked.1.contains("\"queued\":0"), "{untracked:?}");
    let unsigned = http(port, "POST", "/webhooks/ci", "", r#"{"image": "x:1"}"#)
        .await
        .unwrap();
    assert_eq!(unsigned.0, 401, "{unsigned:?}");
    let body = format!(r#"{{"image": "{host}/team/api:stable"}}"#);
    let tracked = http(port, "POST", "/webhooks/ci", &auth, &body)
        .await
        .unwrap();
    assert_eq!(tracked.0, 202, "{tracked:?}");
    assert!(tracked.1.contains("\"queued\":1"), "{tracked:?}");
    wait_for_or("the webhook's refresh", show_log, || async {
        restarted_at(&deploys.get("app").await.ok()?).map(|_| ())
    })
    .await;
    // The patch is visible before its pass ends and records its metrics.
    let lines = [
        "freshet_webhook_deliveries_total{source=\"ci\",outcome=\"accepted\"} 1",
        "freshet_webhook_images_total{source=\"ci\",outcome=\"untracked\"} 1",
        "freshet_pass_duration_seconds_count 2",
        "freshet_api_writes_total{resource=\"patch\",outcome=\"ok\"} 2",
    ];
    let last = std::sync::Mutex::new(String::new());
    wait_for_or(
        "the webhook pass's metrics",
        || eprintln!("{}", last.lock().unwrap()),
        || async {
            let metrics = http(port, "GET", "/metrics", "", "").await?.1;
            let done = lines.iter().all(|l| metrics.contains(l));
            *last.lock().unwrap() = metrics;
            done.then_some(())
        },
    )
    .await;

    drop(cluster);
    wait_for_or("unready without the API server", show_log, || async {
        (http(port, "GET", "/readyz", "", "").await?.0 == 503).then_some(())
    })
    .await;
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
}
