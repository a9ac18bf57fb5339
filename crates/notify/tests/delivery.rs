//! Delivery against a local receiver on 127.0.0.1 that verifies signatures.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use freshet_core::notify::{Batch, Event, EventKind, NotifyConfig};
use freshet_notify::{
    Backoff, Metrics, Notifier, NotifierOptions, SIGNATURE_HEADER, Sink, load, verify,
};

const KEY: &str = "hmac-key-TOPSECRET-0123";
const SLACK_TOKEN: &str = "XoXoSLACKTOKENxyz";

/// A status to answer (0: hang forever) and an optional `Retry-After`.
type Answer = (u16, Option<&'static str>);

#[derive(Clone, Default)]
struct Receiver {
    /// Statuses to answer, in order; 200 when empty. 0 means hang forever.
    script: Arc<Mutex<VecDeque<Answer>>>,
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    r.got.lock().unwrap().push((headers, body));
    let next = r.script.lock().unwrap().pop_front();
    match next {
        Some((0, _)) => std::future::pending().await,
        Some((code, retry_after)) => {
            let mut resp = StatusCode::from_u16(code).unwrap().into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from_static(ra));
            }
            resp
        }
        None => StatusCode::OK.into_response(),
    }
}

impl Receiver {
    async fn start(script: &[Answer]) -> (Receiver, String) {
        let r = Receiver::default();
        r.script.lock().unwrap().extend(script.iter().copied());
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, format!("http://{addr}"))
    }

    fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().unwrap().clone()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn env(base: String) -> impl Fn(&str) -> Option<String> {
    move |k: &str| match k {
        "HOOK_KEY" => Some(KEY.to_owned()),
        "SLACK_URL" => Some(format!("{base}/services/T000/B000/{SLACK_TOKEN}")),
        "HOOK_URL" => Some(format!("{base}/hook")),
        _ => None,
    }
}

fn sinks(yaml: &str, base: &str) -> Vec<Sink> {
    let config = NotifyConfig::parse(yaml).unwrap();
    load(&config, &env(base.to_owned())).unwrap()
}

fn webhook(retries: u32, timeout: &str) -> String {
    format!(
        "sinks: [{{name: audit, type: webhook, urlFrom: {{env: HOOK_URL}}, secretFrom: {{env: HOOK_KEY}}, retries: {retries}, timeout: {timeout}}}]"
    )
}

fn fast() -> NotifierOptions {
    NotifierOptions {
        queue: 8,
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
            retry_after_cap: Duration::from_millis(10),
        },
        connect_timeout: Duration::from_secs(5),
    }
}

fn batch(n: usize) -> Batch {
    let mut b = Batch::new();
    for i in 0..n {
        b.push(
            Event::new(EventKind::Refresh, "dev", "Deployment", format!("api-{i}"))
                .container("app")
                .image("registry.example/acme/api:1")
                .digests("sha256:aaaa", "sha256:bbbb"),
        );
    }
    b
}

fn start(sinks: Vec<Sink>, options: NotifierOptions) -> (Notifier, Metrics) {
    let metrics = Metrics::default();
    let n = Notifier::start(Some("test".into()), sinks, options, metrics.clone()).unwrap();
    (n, metrics)
}

/// Captures tracing output of the current thread (tests run on a current-thread
/// runtime, so the delivery tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(sub))
    }
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn a_batch_is_delivered_as_one_signed_message_that_verifies() {
    let (r, base) = Receiver::start(&[]).await;
    let (n, m) = start(sinks(&webhook(0, "5s"), &base), fast());
    n.notify(&batch(3));
    assert_eq!(n.flush(Duration::from_secs(30)).await.pending, 0);
    let got = r.requests();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    let sig = headers[SIGNATURE_HEADER].to_str().unwrap();
    verify(KEY.as_bytes(), sig, body, now(), Duration::from_secs(300)).unwrap();
    let t: u64 = headers["x-freshet-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(sig.starts_with(&format!("t={t},v1=")));
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 3);
    assert_eq!(v["cluster"], "test");
    assert_eq!(m.sent("audit"), 1);
    // The same request replayed later is refused by the reference verifier.
    let err = verify(KEY.as_bytes(), sig, body, t + 301, Duration::from_secs(300)).unwrap_err();
    assert!(
        matches!(err, freshet_notify::VerifyError::Stale { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_500_is_retried_and_then_delivered() {
    let (r, base) = Receiver::start(&[(500, None), (429, Some("3600")), (200, None)]).await;
    let (n, m) = start(sinks(&webhook(3, "5s"), &base), fast());
    n.notify(&batch(1));
    assert_eq!(n.flush(Duration::from_secs(30)).await.pending, 0);
    let got = r.requests();
    assert_eq!(got.len(), 3);
    // Each attempt is signed afresh; the body is the same.
    assert_eq!(got[0].1, got[2].1);
    assert_eq!((m.sent("audit"), m.failed("audit", "server")), (1, 0));
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_is_counted() {
    let (r, base) = Receiver::start(&[(401, None)]).await;
    let (n, m) = start(sinks(&webhook(3, "5s"), &base), fast());
    n.notify(&batch(1));
    assert_eq!(n.flush(Duration::from_secs(30)).await.pending, 0);
    assert_eq!(r.requests().len(), 1);
    assert_eq!(m.failed("audit", "rejected"), 1);
}

#[tokio::test]
async fn slack_receives_escaped_text_in_one_message_per_pass() {
    let (r, base) = Receiver::start(&[]).await;
    let yaml = "sinks: [{name: ops, type: slack, urlFrom: {env: SLACK_URL}, maxEvents: 2}]";
    let (n, m) = start(sinks(yaml, &base), fast());
    let mut b = batch(4);
    b.push(
        Event::new(EventKind::FailureStreak, "dev", "Deployment", "web")
            .message("<!channel> pull failed\u{1b}[2J"),
    );
    n.notify(&b);
    assert_eq!(n.flush(Duration::from_secs(30)).await.pending, 0);
    let got = r.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0].0.get(SIGNATURE_HEADER).is_none());
    let v: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(
        text.contains("5 events") && text.ends_with("…and 3 more"),
        "{text}"
    );
    assert_eq!(m.sent("ops"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_receiver_is_bounded_by_the_timeout_and_never_stalls_the_pass() {
    let (r, base) = Receiver::start(&[(0, None), (0, None)]).await;
    let (n, m) = start(sinks(&webhook(1, "2s"), &base), fast());
    n.notify(&batch(1)); // returns at once: the pass goes on
    assert_eq!(n.pending(), 1);
    assert_eq!(n.flush(Duration::from_secs(600)).await.pending, 0);
    assert_eq!(m.failed("audit", "timeout"), 1);
    assert!(r.requests().len() <= 2);
}

#[tokio::test(start_paused = true)]
async fn flush_gives_up_at_its_deadline() {
    let (_r, base) = Receiver::start(&[(0, None)]).await;
    let (n, _m) = start(sinks(&webhook(0, "60s"), &base), fast());
    n.notify(&batch(1));
    assert_eq!(n.flush(Duration::from_secs(5)).await.pending, 1);
}

#[tokio::test]
async fn an_unreachable_url_is_logged_and_counted_without_its_secret() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (logs, _guard) = Logs::capture();
    let yaml = "sinks: [{name: ops, type: slack, urlFrom: {env: SLACK_URL}, retries: 2}]";
    let sinks = sinks(yaml, &base);
    let debug = format!("{sinks:?}");
    let (n, m) = start(sinks, fast());
    n.notify(&batch(1));
    assert_eq!(n.flush(Duration::from_secs(30)).await.pending, 0);
    assert_eq!(m.failed("ops", "connect"), 1);
    let text = logs.text();
    assert!(
        text.contains("notification not delivered") && text.contains("sink=ops"),
        "{text}"
    );
    assert!(text.contains("retry=2"), "{text}");
    for shown in [&text, &debug, &format!("{n:?}")] {
        assert!(
            !shown.contains(SLACK_TOKEN) && !shown.contains("/services/"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_it() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let options = NotifierOptions { queue: 2, ..fast() };
    let (n, m) = start(sinks(&webhook(0, "5s"), &base), options);
    // The delivery task has not run yet (current-thread runtime, no await so far).
    for _ in 0..5 {
        n.notify(&batch(1));
    }
    assert_eq!((n.pending(), m.dropped("audit")), (2, 3));
    assert_eq!(n.flush(Duration::from_secs(30)).await.pending, 0);
    assert_eq!(m.failed("audit", "connect"), 2);
}

#[test]
fn secrets_never_appear_in_debug_or_errors() {
    let dir = std::env::temp_dir().join(format!("freshet-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("url");
    std::fs::write(
        &file,
        format!("https://user:{SLACK_TOKEN}@hooks.example/x\n"),
    )
    .unwrap();
    let yaml = format!(
        "sinks: [{{name: ops, type: slack, urlFrom: {{file: {}}}}}]",
        file.display()
    );
    let config = NotifyConfig::parse(&yaml).unwrap();
    let err = load(&config, &|_| None).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("user:password") && !shown.contains(SLACK_TOKEN),
        "{shown}"
    );

    let sinks = sinks(&webhook(0, "5s"), "https://hooks.example");
    let shown = format!("{sinks:?}");
    assert!(
        !shown.contains(KEY) && !shown.contains("example/hook"),
        "{shown}"
    );
    assert!(shown.contains("https://hooks.example/***"), "{shown}");

    let missing = NotifyConfig::parse(
        "sinks: [{name: a, type: webhook, url: 'https://h/x', secretFrom: {env: NOPE}}]",
    )
    .unwrap();
    let err = load(&missing, &|_| None).unwrap_err().to_string();
    assert!(err.contains("env var NOPE is not set"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
