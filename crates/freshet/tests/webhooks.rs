//! The registry-webhook router end to end: authentication, limits, pacing, the tracked
//! filter, and that a body naming an untracked host never makes freshet contact it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use freshet::server::webhooks::{RecheckSink, WebhookMetrics, WebhookState, router};
use freshet_core::Reference;
use freshet_core::webhook::WebhooksConfig;
use freshet_core::webhook::auth::hub_signature;
use freshet_core::webhook::{Secret, ValidSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const GH_SECRET: &str = "github-secret-0123456789";
const HUB_TOKEN: &str = "hub-token-0123456789abcdef";
const HARBOR_TOKEN: &str = "harbor-token-0123456789ab";
const QUAY_TOKEN: &str = "quay-token-0123456789abcd";
const GEN_TOKEN: &str = "generic-token-0123456789";

const GITHUB_PACKAGE: &str = r#"{"action":"published","package":{"name":"app","namespace":"octo-org",
  "package_type":"CONTAINER","package_version":{"package_url":"ghcr.io/octo-org/app:v1.4.0",
  "container_metadata":{"tag":{"name":"v1.4.0","digest":"sha256:aa"}}}}}"#;

/// A sink that records what it is handed and tracks a fixed set of repositories.
#[derive(Default)]
struct Recorder {
    tracked: HashSet<String>,
    calls: Mutex<Vec<String>>,
}

impl RecheckSink for Recorder {
    fn is_tracked(&self, image: &Reference) -> bool {
        self.tracked.contains(&image.name())
    }
    fn recheck(&self, image: Reference) -> bool {
        self.calls.lock().unwrap().push(image.to_string());
        true
    }
}

struct Bed {
    state: WebhookState,
    sink: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

impl Bed {
    fn calls(&self) -> Vec<String> {
        self.sink.calls.lock().unwrap().clone()
    }
    fn metrics(&self) -> &WebhookMetrics {
        self.state.metrics()
    }
}

fn bed(generic_rate: (u32, u32), tracked: &[&str]) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, secret: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        path
    };
    let config = serde_json::json!({
        "max_body_bytes": 4096,
        "debounce": "1h",
        "sources": [
            {"name": "gh", "kind": "github", "secret": {"file": file("gh", GH_SECRET)}},
            {"name": "hub", "kind": "dockerhub", "secret": {"file": file("hub", HUB_TOKEN)}},
            {"name": "harbor", "kind": "harbor", "secret": {"file": file("harbor", HARBOR_TOKEN)}},
            {"name": "quay", "kind": "quay", "secret": {"file": file("quay", QUAY_TOKEN)}},
            {"name": "gen", "kind": "generic", "secret": {"file": file("gen", GEN_TOKEN)},
             "rate": {"burst": generic_rate.0, "per_minute": generic_rate.1}},
        ]
    });
    let config: WebhooksConfig = serde_json::from_value(config).unwrap();
    let valid = config.validate().unwrap();
    let sink = Arc::new(Recorder {
        tracked: tracked
            .iter()
            .map(|s| Reference::parse(s).unwrap().name())
            .collect(),
        calls: Mutex::default(),
    });
    let state = WebhookState::from_config(&valid, sink.clone(), WebhookMetrics::new()).unwrap();
    Bed {
        state,
        sink,
        _dir: dir,
    }
}

fn github(body: &str, signature: Option<String>, delivery: &str) -> Request<Body> {
    let mut req = Request::post("/webhooks/gh")
        .header("content-type", "application/json")
        .header("x-github-event", "package")
        .header("x-github-delivery", delivery);
    if let Some(sig) = signature {
        req = req.header("x-hub-signature-256", sig);
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

fn signed(body: &str) -> Option<String> {
    Some(hub_signature(&Secret::new(GH_SECRET), body.as_bytes()))
}

fn generic(image: &str) -> Request<Body> {
    Request::post("/webhooks/gen")
        .header("authorization", format!("Bearer {GEN_TOKEN}"))
        .body(Body::from(format!(r#"{{"image":"{image}"}}"#)))
        .unwrap()
}

async fn send(bed: &Bed, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let res = router(bed.state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn webhook_github_valid_signature_queues_the_tracked_image() {
    let bed = bed((10, 60), &["ghcr.io/octo-org/app:v1.3.0"]);
    let (status, body) = send(&bed, github(GITHUB_PACKAGE, signed(GITHUB_PACKAGE), "d-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["queued"], 1);
    assert_eq!(bed.calls(), ["ghcr.io/octo-org/app:v1.4.0"]);
    assert_eq!(bed.metrics().deliveries("gh", "accepted"), 1);
    assert_eq!(bed.metrics().images("gh", "queued"), 1);
}

#[tokio::test]
async fn webhook_github_missing_or_wrong_signature_is_refused_and_counted() {
    let bed = bed((10, 60), &["ghcr.io/octo-org/app"]);
    let (status, _) = send(&bed, github(GITHUB_PACKAGE, None, "d-1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong = hub_signature(
        &Secret::new("not-the-secret-at-all"),
        GITHUB_PACKAGE.as_bytes(),
    );
    let (status, _) = send(&bed, github(GITHUB_PACKAGE, Some(wrong), "d-2")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A signature over another body (a tampered delivery) is wrong too.
    let tampered = GITHUB_PACKAGE.replace("v1.4.0", "v9.9.9");
    let (status, _) = send(&bed, github(&tampered, signed(GITHUB_PACKAGE), "d-3")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &bed,
        github(GITHUB_PACKAGE, Some("sha256=xyz".into()), "d-4"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(bed.calls().is_empty());
    assert_eq!(bed.metrics().deliveries("gh", "unauthenticated"), 1);
    assert_eq!(bed.metrics().deliveries("gh", "bad_credential"), 3);
}

#[tokio::test]
async fn webhook_github_replayed_delivery_is_refused() {
    let bed = bed((10, 60), &["ghcr.io/octo-org/app"]);
    let (status, _) = send(&bed, github(GITHUB_PACKAGE, signed(GITHUB_PACKAGE), "d-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = send(&bed, github(GITHUB_PACKAGE, signed(GITHUB_PACKAGE), "d-1")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(bed.calls().len(), 1);
    assert_eq!(bed.metrics().deliveries("gh", "replayed"), 1);
}

#[tokio::test]
async fn webhook_oversized_body_is_413_declared_or_streamed() {
    let bed = bed((10, 60), &["ghcr.io/o/a"]);
    let big = format!(
        r#"{{"image":"ghcr.io/o/a:1","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let req = Request::post("/webhooks/gen")
        .header("authorization", format!("Bearer {GEN_TOKEN}"))
        .header("content-length", big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    assert_eq!(send(&bed, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // No Content-Length: the stream itself is cut at the limit.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let req = Request::post("/webhooks/gen")
        .header("authorization", format!("Bearer {GEN_TOKEN}"))
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    assert_eq!(send(&bed, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(bed.calls().is_empty());
    assert_eq!(bed.metrics().deliveries("gen", "too_large"), 2);
}

#[tokio::test]
async fn webhook_unknown_source_or_path_shape_is_404_and_missing_token_401() {
    let bed = bed((10, 60), &["docker.io/library/nginx"]);
    let hub = r#"{"push_data":{"tag":"1.27"},"repository":{"repo_name":"library/nginx"}}"#;
    let post = |uri: String| Request::post(uri).body(Body::from(hub)).unwrap();
    assert_eq!(
        send(&bed, post("/webhooks/nope".into())).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&bed, post("/webhooks/nope/x".into())).await.0,
        StatusCode::NOT_FOUND
    );
    // GitHub takes no token segment; Docker Hub needs one.
    assert_eq!(
        send(&bed, post(format!("/webhooks/gh/{GH_SECRET}")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&bed, post("/webhooks/hub".into())).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&bed, post("/webhooks/hub/wrong-token".into())).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = send(&bed, post(format!("/webhooks/hub/{HUB_TOKEN}"))).await;
    assert_eq!(
        (status, body["queued"].as_u64()),
        (StatusCode::ACCEPTED, Some(1))
    );
    assert_eq!(bed.calls(), ["docker.io/library/nginx:1.27"]);
    assert_eq!(bed.metrics().deliveries("unknown", "unknown_source"), 3);
    assert_eq!(bed.metrics().deliveries("hub", "unauthenticated"), 1);
}

#[tokio::test]
async fn webhook_malformed_body_is_400_and_nothing_tracked_is_202_with_zero() {
    let bed = bed((10, 60), &["ghcr.io/o/a"]);
    let req = Request::post("/webhooks/gen")
        .header("authorization", format!("Bearer {GEN_TOKEN}"))
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(send(&bed, req).await.0, StatusCode::BAD_REQUEST);
    let (status, body) = send(&bed, generic("ghcr.io/o/other:1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        (body["queued"].as_u64(), body["untracked"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(bed.calls().is_empty());
    assert_eq!(bed.metrics().deliveries("gen", "malformed_json"), 1);
    assert_eq!(bed.metrics().deliveries("gen", "nothing_tracked"), 1);
}

#[tokio::test]
async fn webhook_flood_beyond_the_rate_limit_is_429_and_rechecks_at_most_the_burst() {
    // Burst 3, one refill per minute: the test finishes long before a refill.
    let images: Vec<String> = (0..10).map(|i| format!("ghcr.io/o/app{i}")).collect();
    let tracked: Vec<&str> = images.iter().map(String::as_str).collect();
    let bed = bed((3, 1), &tracked);
    // Deliveries with a wrong token are refused before the bucket: an outsider cannot
    // starve the source.
    for _ in 0..5 {
        let req = Request::post("/webhooks/gen")
            .header("authorization", "Bearer wrong-token-0123456789")
            .body(Body::from(r#"{"image":"ghcr.io/o/app0:1"}"#))
            .unwrap();
        assert_eq!(send(&bed, req).await.0, StatusCode::FORBIDDEN);
    }
    let mut statuses = Vec::new();
    for image in &images {
        statuses.push(send(&bed, generic(&format!("{image}:1"))).await.0);
    }
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((accepted, limited), (3, 7), "{statuses:?}");
    assert_eq!(bed.calls().len(), 3);
    assert_eq!(bed.metrics().deliveries("gen", "rate_limited"), 7);
    assert_eq!(bed.metrics().deliveries("gen", "bad_credential"), 5);
}

#[tokio::test]
async fn webhook_repeated_pushes_of_one_image_recheck_it_once_per_debounce() {
    let bed = bed((100, 6000), &["ghcr.io/o/a"]);
    for tag in ["1", "2", "3", "4", "5"] {
        assert_eq!(
            send(&bed, generic(&format!("ghcr.io/o/a:{tag}"))).await.0,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(bed.calls(), ["ghcr.io/o/a:1"]);
    assert_eq!(bed.metrics().images("gen", "debounced"), 4);
}

#[tokio::test]
async fn webhook_harbor_and_quay_payloads_reach_the_sink() {
    let bed = bed(
        (10, 60),
        &["harbor.example.com/library/alpine", "quay.io/dgangaia/test"],
    );
    let harbor = r#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[
        {"tag":"v1.0.0","resource_url":"harbor.example.com/library/alpine:v1.0.0"}]}}"#;
    let req = Request::post("/webhooks/harbor")
        .header("authorization", HARBOR_TOKEN)
        .body(Body::from(harbor))
        .unwrap();
    assert_eq!(send(&bed, req).await.0, StatusCode::ACCEPTED);
    let quay = r#"{"docker_url":"quay.io/dgangaia/test","updated_tags":["latest"]}"#;
    let req = Request::post(format!("/webhooks/quay/{QUAY_TOKEN}"))
        .body(Body::from(quay))
        .unwrap();
    assert_eq!(send(&bed, req).await.0, StatusCode::ACCEPTED);
    assert_eq!(
        bed.calls(),
        [
            "harbor.example.com/library/alpine:v1.0.0",
            "quay.io/dgangaia/test:latest"
        ]
    );
}

#[tokio::test]
async fn webhook_docker_hub_source_cannot_name_another_registry() {
    let bed = bed((10, 60), &["ghcr.io/o/a"]);
    let hub = r#"{"push_data":{"tag":"1"},"repository":{"repo_name":"ghcr.io/o/a"}}"#;
    let req = Request::post(format!("/webhooks/hub/{HUB_TOKEN}"))
        .body(Body::from(hub))
        .unwrap();
    let (status, body) = send(&bed, req).await;
    assert_eq!(
        (status, body["queued"].as_u64()),
        (StatusCode::ACCEPTED, Some(0))
    );
    assert!(bed.calls().is_empty());
    assert_eq!(bed.metrics().images("hub", "foreign_registry"), 1);
}

async fn serve(bed: &Bed) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(bed.state.clone());
    // The task ends with the test's runtime.
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// One HTTP/1.1 request over a real socket; returns the status code.
async fn post_raw(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn webhook_real_socket_signed_delivery_is_accepted() {
    let bed = bed((10, 60), &["ghcr.io/octo-org/app"]);
    let addr = serve(&bed).await;
    let headers = [
        ("x-github-event", "package".to_owned()),
        ("x-github-delivery", "d-socket".to_owned()),
        ("x-hub-signature-256", signed(GITHUB_PACKAGE).unwrap()),
    ];
    assert_eq!(
        post_raw(addr, "/webhooks/gh", &headers, GITHUB_PACKAGE).await,
        202
    );
    assert_eq!(bed.calls(), ["ghcr.io/octo-org/app:v1.4.0"]);
}

#[tokio::test]
async fn webhook_body_naming_an_untracked_host_never_contacts_it() {
    // A listener standing in for the host a hostile body names.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let host = trap.local_addr().unwrap();
    let bed = bed((10, 60), &["ghcr.io/o/a"]);
    let addr = serve(&bed).await;
    let auth = [("authorization", format!("Bearer {GEN_TOKEN}"))];
    let body = format!(r#"{{"image":"{host}/evil/app:1"}}"#);
    assert_eq!(post_raw(addr, "/webhooks/gen", &auth, &body).await, 202);
    let harbor = format!(
        r#"{{"type":"PUSH_ARTIFACT","event_data":{{"resources":[{{"resource_url":"{host}/p/app:1"}}]}}}}"#
    );
    let auth = [("authorization", format!("Bearer {HARBOR_TOKEN}"))];
    assert_eq!(
        post_raw(addr, "/webhooks/harbor", &auth, &harbor).await,
        202
    );
    let hub = format!(
        r#"{{"callback_url":"http://{host}/cb","push_data":{{"tag":"1"}},"repository":{{"repo_name":"o/a"}}}}"#
    );
    assert_eq!(
        post_raw(addr, &format!("/webhooks/hub/{HUB_TOKEN}"), &[], &hub).await,
        202
    );
    assert!(bed.calls().is_empty());
    assert_eq!(bed.metrics().images("gen", "untracked"), 1);
    assert_eq!(bed.metrics().images("harbor", "untracked"), 1);
    // The answers are in and the router spawns nothing: nobody dialled the trap.
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host named in the body was contacted: {other:?}"),
    }
}

#[test]
fn webhook_secret_errors_name_the_source_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "hunter2\n").unwrap();
    let source = |secret| ValidSource {
        name: "hub".into(),
        kind: freshet_core::webhook::SourceKind::DockerHub,
        secret,
        rate: Default::default(),
        registries: None,
    };
    use freshet::server::webhooks::load_secret;
    use freshet_core::webhook::SecretLocation;
    let err = load_secret(&source(SecretLocation::File(short)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"hub\"") && err.contains("7 bytes"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let missing = dir.path().join("missing");
    let err = load_secret(&source(SecretLocation::File(missing)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read secret.file"), "{err}");
    let var = "FRESHET_TEST_WEBHOOK_SECRET_THAT_IS_NEVER_SET";
    let err = load_secret(&source(SecretLocation::Env(var.into())))
        .unwrap_err()
        .to_string();
    assert!(err.contains(var), "{err}");
}

#[tokio::test]
async fn webhook_metrics_register_in_the_controller_registry() {
    let bed = bed((10, 60), &["ghcr.io/o/a"]);
    let mut registry = prometheus_client::registry::Registry::default();
    bed.metrics().register(&mut registry);
    assert_eq!(
        send(&bed, generic("ghcr.io/o/a:1")).await.0,
        StatusCode::ACCEPTED
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let delivery = r#"freshet_webhook_deliveries_total{source="gen",outcome="accepted"} 1"#;
    let image = r#"freshet_webhook_images_total{source="gen",outcome="queued"} 1"#;
    assert!(text.contains(delivery) && text.contains(image), "{text}");
}
