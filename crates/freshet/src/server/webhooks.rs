//! The registry-webhook receiver: an axum router the controller mounts next to `/metrics`.
//!
//! Owns the HTTP side of `freshet_core::webhook`: reading each source's secret from its
//! file or environment variable ([`WebhookState::from_config`]), and answering
//! deliveries in this order, each step counted in [`WebhookMetrics`]:
//!
//! | step | answer |
//! |---|---|
//! | no source of that name, or a token segment on a source that takes none | 404 |
//! | body over `max_body_bytes` (declared or streamed) | 413 |
//! | no credential / wrong or malformed credential | 401 / 403 |
//! | authenticated, but the source's token bucket is empty | 429 (`Retry-After`) |
//! | GitHub delivery ID already seen (`X-GitHub-Delivery`) | 409 |
//! | body unreadable as the source's payload | 400 |
//! | ping, pull, delete, non-container package | 202 `{"ignored": …}` |
//! | a push | 202 `{"queued", "untracked", "debounced", "refused"}` |
//!
//! A push naming nothing tracked is answered 202 with `queued: 0`, not 422: a registry
//! that sees 4xx retries and marks the hook failing, and one Docker Hub or Harbor hook
//! commonly covers repositories freshet does not track.
//!
//! Authentication: GitHub signs the raw body (`X-Hub-Signature-256`); Docker Hub and
//! Quay cannot sign or send headers, so their token is the last path segment
//! (`POST /webhooks/<source>/<token>`); Harbor sends its "Auth Header" setting as
//! `Authorization` (`Bearer <token>` or the bare token); generic deliveries send
//! `Authorization: Bearer <token>`. Tokens are compared in constant time. The bucket
//! is spent only by authenticated deliveries, so an outsider cannot starve a source.
//!
//! It must never contact a host named in a body: parsing only yields references, the
//! sink drops every repository freshet does not track, and each tracked repository is
//! handed over at most once per debounce interval. It must never log a secret, a token
//! path or a body: a tracing layer on the controller's router must not record the URI
//! of `/webhooks/*` requests.

mod metrics;
mod sink;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use freshet_core::Reference;
use freshet_core::webhook::auth::{
    HUB_SIGNATURE_HEADER, authorization_token, verify_hub_signature, verify_token,
};
use freshet_core::webhook::config::MIN_SECRET_LEN;
use freshet_core::webhook::{
    AuthError, AuthScheme, Debouncer, Parsed, Refusal, ReplayGuard, Secret, SecretLocation,
    SourceKind, TokenBucket, ValidSource, ValidWebhooks,
};
use serde_json::json;

pub use metrics::{DeliveryLabels, ImageLabels, UNKNOWN_SOURCE, WebhookMetrics};
pub use sink::{ChannelSink, RecheckSink};

/// The longest secret file read, in bytes.
pub const SECRET_FILE_MAX: u64 = 4096;
/// How many repositories the debounce table remembers.
pub const DEBOUNCE_CAPACITY: usize = 10_000;
/// How many GitHub delivery IDs each GitHub source remembers.
pub const REPLAY_CAPACITY: usize = 4096;
const GITHUB_EVENT_HEADER: &str = "x-github-event";
const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";

/// Why the webhook receiver cannot start. Messages name the source, the place and the
/// fix, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// The secret file cannot be read.
    #[error(
        "webhooks source {name:?}: cannot read secret.file {path:?}: {error}; mount the secret there or fix the path"
    )]
    ReadFile {
        /// The source name.
        name: String,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The secret environment variable is unset or not UTF-8.
    #[error(
        "webhooks source {name:?}: environment variable {var} (secret.env) is not set; set it or fix the name"
    )]
    MissingEnv {
        /// The source name.
        name: String,
        /// The variable.
        var: String,
    },
    /// The secret is shorter than `MIN_SECRET_LEN` or longer than `SECRET_FILE_MAX`.
    #[error(
        "webhooks source {name:?}: the secret in {location} is {len} bytes; use {MIN_SECRET_LEN} to {SECRET_FILE_MAX} bytes (e.g. `openssl rand -hex 32`)"
    )]
    SecretLength {
        /// The source name.
        name: String,
        /// `file <path>` or `env <VAR>`.
        location: String,
        /// The length found.
        len: usize,
    },
}

/// Reads a source's secret from its file (one trailing newline removed) or variable.
pub fn load_secret(source: &ValidSource) -> Result<Secret, WebhookSetupError> {
    let (value, location) = match &source.secret {
        SecretLocation::File(path) => (
            read_secret_file(path).map_err(|error| WebhookSetupError::ReadFile {
                name: source.name.clone(),
                path: path.clone(),
                error,
            })?,
            format!("file {path:?}"),
        ),
        SecretLocation::Env(var) => (
            std::env::var(var).map_err(|_| WebhookSetupError::MissingEnv {
                name: source.name.clone(),
                var: var.clone(),
            })?,
            format!("env {var}"),
        ),
    };
    let value = value.strip_suffix('\n').unwrap_or(&value);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.len() < MIN_SECRET_LEN || value.len() as u64 > SECRET_FILE_MAX {
        return Err(WebhookSetupError::SecretLength {
            name: source.name.clone(),
            location,
            len: value.len(),
        });
    }
    Ok(Secret::new(value))
}

fn read_secret_file(path: &FsPath) -> std::io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(SECRET_FILE_MAX + 1)
        .read_to_string(&mut s)?;
    Ok(s)
}

#[derive(Debug)]
struct Source {
    name: String,
    kind: SourceKind,
    secret: Secret,
    registries: Option<Vec<String>>,
    bucket: Mutex<TokenBucket>,
    replay: Mutex<ReplayGuard>,
}

struct Inner {
    sources: HashMap<String, Source>,
    max_body_bytes: usize,
    debounce: Mutex<Debouncer>,
    sink: Arc<dyn RecheckSink>,
    metrics: WebhookMetrics,
}

/// The receiver's shared state: sources with their secrets and buckets, the debounce
/// table, the sink and the counters. Cloning shares it.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.inner.sources.keys().collect();
        names.sort();
        f.debug_struct("WebhookState")
            .field("sources", &names)
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    /// Reads every source's secret ([`load_secret`]) and builds the state.
    pub fn from_config(
        config: &ValidWebhooks,
        sink: Arc<dyn RecheckSink>,
        metrics: WebhookMetrics,
    ) -> Result<Self, WebhookSetupError> {
        let mut sources = HashMap::new();
        for s in &config.sources {
            let source = Source {
                name: s.name.clone(),
                kind: s.kind,
                secret: load_secret(s)?,
                registries: s.registries.clone(),
                bucket: Mutex::new(TokenBucket::new(s.rate)),
                replay: Mutex::new(ReplayGuard::new(REPLAY_CAPACITY)),
            };
            sources.insert(s.name.clone(), source);
        }
        let inner = Inner {
            sources,
            max_body_bytes: config.max_body_bytes,
            debounce: Mutex::new(Debouncer::new(config.debounce, DEBOUNCE_CAPACITY)),
            sink,
            metrics,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The counters (shared with the state).
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.inner.metrics
    }
}

/// The receiver's routes: `POST /webhooks/{source}` and `POST /webhooks/{source}/{token}`.
/// Merge it into the controller's router (`metrics_router.merge(router(state))`).
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(deliver))
        .route("/webhooks/{source}/{token}", post(deliver_with_token))
        .with_state(state)
}

async fn deliver(
    State(state): State<WebhookState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&state, &source, None, &headers, body).await
}

async fn deliver_with_token(
    State(state): State<WebhookState>,
    Path((source, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&state, &source, Some(&token), &headers, body).await
}

/// A refusal: status, metric outcome, and a fixed message (never input text).
struct Refused(StatusCode, &'static str, &'static str);

async fn handle(
    state: &WebhookState,
    name: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let inner = &state.inner;
    let Some(source) = inner.sources.get(name) else {
        return refuse(inner, UNKNOWN_SOURCE, unknown());
    };
    if token.is_some() && source.kind.auth_scheme() != AuthScheme::PathToken {
        return refuse(inner, UNKNOWN_SOURCE, unknown());
    }
    let body = match read_body(headers, body, inner.max_body_bytes).await {
        Ok(body) => body,
        Err(r) => return refuse(inner, &source.name, r),
    };
    if let Err(e) = authenticate(source, token, headers, &body) {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let r = Refused(status, e.metric_label(), "not authenticated");
        return refuse(inner, &source.name, r);
    }
    if let Err(r) = admit(source, headers) {
        return refuse(inner, &source.name, r);
    }
    let event = header_str(headers, GITHUB_EVENT_HEADER);
    match freshet_core::webhook::parse(source.kind, event, &body) {
        Err(e) => {
            tracing::debug!(source = %source.name, error = %e, "webhook payload refused");
            let r = Refused(
                StatusCode::BAD_REQUEST,
                e.metric_label(),
                "malformed payload",
            );
            refuse(inner, &source.name, r)
        }
        Ok(Parsed::Ignored(what)) => {
            inner.metrics.count_delivery(&source.name, "ignored");
            (StatusCode::ACCEPTED, axum::Json(json!({ "ignored": what }))).into_response()
        }
        Ok(Parsed::Push(images)) => push(inner, source, images),
    }
}

fn unknown() -> Refused {
    Refused(
        StatusCode::NOT_FOUND,
        "unknown_source",
        "no such webhook source",
    )
}

fn refuse(inner: &Inner, source: &str, Refused(status, outcome, message): Refused) -> Response {
    inner.metrics.count_delivery(source, outcome);
    tracing::debug!(source, outcome, "webhook delivery refused");
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
    }
    response
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, Refused> {
    let too_large = || Refused(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "body too large");
    let declared =
        header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // The stream is cut at the limit whatever Content-Length said; a client that
    // aborts mid-body never reads the answer, so every read error is answered 413.
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

fn authenticate(
    source: &Source,
    token: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), AuthError> {
    let authorization = header_str(headers, header::AUTHORIZATION.as_str());
    match source.kind.auth_scheme() {
        AuthScheme::HubSignature => verify_hub_signature(
            &source.secret,
            header_str(headers, HUB_SIGNATURE_HEADER),
            body,
        ),
        AuthScheme::PathToken => verify_token(&source.secret, token),
        AuthScheme::AuthorizationHeader => {
            let harbor = source.kind == SourceKind::Harbor;
            verify_token(&source.secret, authorization_token(authorization, harbor))
        }
    }
}

/// The rate limit, then (GitHub) the replay guard.
fn admit(source: &Source, headers: &HeaderMap) -> Result<(), Refused> {
    let now = tokio::time::Instant::now().into_std();
    let mut bucket = source.bucket.lock().unwrap_or_else(PoisonError::into_inner);
    if !bucket.try_take(now) {
        return Err(Refused(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "rate limit exceeded",
        ));
    }
    drop(bucket);
    if source.kind == SourceKind::GitHub
        && let Some(id) = header_str(headers, GITHUB_DELIVERY_HEADER)
    {
        let mut replay = source.replay.lock().unwrap_or_else(PoisonError::into_inner);
        if !replay.first_time(id) {
            return Err(Refused(
                StatusCode::CONFLICT,
                "replayed",
                "delivery already received",
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct PushCounts {
    queued: usize,
    untracked: usize,
    debounced: usize,
    refused: usize,
}

fn push(inner: &Inner, source: &Source, images: Vec<Reference>) -> Response {
    let now = tokio::time::Instant::now().into_std();
    let mut counts = PushCounts::default();
    for image in images {
        let outcome = route_image(inner, source, image, now);
        match outcome {
            "queued" => counts.queued += 1,
            "untracked" | "foreign_registry" => counts.untracked += 1,
            "debounced" => counts.debounced += 1,
            _ => counts.refused += 1,
        }
        inner.metrics.count_image(&source.name, outcome);
    }
    let outcome = if counts.queued > 0 {
        "accepted"
    } else {
        "nothing_tracked"
    };
    inner.metrics.count_delivery(&source.name, outcome);
    let body = json!({
        "queued": counts.queued,
        "untracked": counts.untracked,
        "debounced": counts.debounced,
        "refused": counts.refused,
    });
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// One image's fate: the source's registries, the tracked set, the debounce, the sink.
fn route_image(
    inner: &Inner,
    source: &Source,
    image: Reference,
    now: std::time::Instant,
) -> &'static str {
    if let Some(allowed) = &source.registries
        && !allowed.iter().any(|r| r == image.registry())
    {
        return "foreign_registry";
    }
    if !inner.sink.is_tracked(&image) {
        return "untracked";
    }
    let admitted = inner
        .debounce
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(&image.name(), now);
    match admitted {
        Err(Refusal::Debounced) => "debounced",
        Err(Refusal::Full) => "debounce_full",
        Ok(()) => {
            tracing::debug!(source = %source.name, image = %image, "webhook re-check queued");
            if inner.sink.recheck(image) {
                "queued"
            } else {
                "queue_full"
            }
        }
    }
}
