//! The registry client: one shared HTTP client, per-registry limits, retries, the auth
//! dance, and run-scoped memoisation.
//!
//! Owns every request freshet sends to a registry. Per registry it keeps the learned
//! challenge (one `GET /v2/` ping per run), the credential, a token cache keyed by
//! scope (one token request per scope until `expires_in`), a concurrency cap, an
//! optional requests-per-second pace, and Docker Hub's `ratelimit-remaining`.
//! Transient failures (network, 5xx, 429, cut-off bodies) are retried with jittered
//! exponential backoff; `429` honours `Retry-After` and pauses the whole registry.
//! Within one [`Client`], each manifest is asked for once however many callers want it.
//!
//! Resolution ([`crate::resolve`]) and tag listing ([`crate::tags`]) are built on
//! [`Client::send`]; nothing else talks to the network.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use crate::auth::{self, Challenge};
use crate::credentials::CredentialStore;
use crate::endpoint::Endpoint;
use crate::error::RegistryError;
use crate::secret::{Credential, Secret};

/// Tunables of a [`Client`]. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (host or host:port) that may use plain http. Loopback registries
    /// always may, as Docker allows.
    pub insecure_registries: BTreeSet<String>,
    /// Extra (registry host, realm host) pairs allowed to receive credentials.
    pub trusted_realms: Vec<(String, String)>,
    /// Requests in flight to one registry at most.
    pub max_concurrency_per_registry: usize,
    /// Requests per second to one registry at most (`None`: no pacing).
    pub requests_per_second: Option<f64>,
    /// Attempts per request for transient failures (1 = no retry).
    pub max_attempts: u32,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// The longest `Retry-After` honoured; a longer one fails the request at once.
    pub max_retry_after: Duration,
    /// First backoff step; doubles per attempt, jittered, capped at 5 s.
    pub backoff_base: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure_registries: BTreeSet::new(),
            trusted_realms: Vec::new(),
            max_concurrency_per_registry: 32,
            requests_per_second: None,
            max_attempts: 3,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            backoff_base: Duration::from_millis(200),
        }
    }
}

/// Counters of what a client sent, for tests, benchmarks and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Every HTTP request sent (retries included).
    pub requests: AtomicU64,
    /// `GET /v2/` pings.
    pub pings: AtomicU64,
    /// Manifest HEADs.
    pub manifest_heads: AtomicU64,
    /// Manifest GETs.
    pub manifest_gets: AtomicU64,
    /// Blob GETs (image configs, for single-arch platform checks).
    pub blob_gets: AtomicU64,
    /// Token endpoint requests.
    pub token_requests: AtomicU64,
    /// Tag list pages.
    pub tag_pages: AtomicU64,
    /// Retries after transient failures.
    pub retries: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub pings: u64,
    pub manifest_heads: u64,
    pub manifest_gets: u64,
    pub blob_gets: u64,
    pub token_requests: u64,
    pub tag_pages: u64,
    pub retries: u64,
}

/// Docker Hub style rate-limit state of one registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RateLimit {
    /// Requests allowed per window, when sent.
    pub limit: Option<u64>,
    /// Requests left in the window.
    pub remaining: u64,
    /// The window in seconds, when sent.
    pub window_secs: Option<u64>,
}

/// What kind of request, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ping,
    ManifestHead,
    ManifestGet,
    BlobGet,
    TagPage,
}

/// The shared answer of one memoised computation (errors are memoised too: a run
/// asks a failing reference once, like a succeeding one).
type MemoCell<V> = Arc<OnceCell<Result<V, RegistryError>>>;

/// A memo of one async computation per key, for the lifetime of a client.
pub(crate) struct Memo<K, V> {
    cells: Mutex<HashMap<K, MemoCell<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Self {
            cells: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn get_or_run<F, Fut>(&self, key: &K, f: F) -> Result<V, RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, RegistryError>>,
    {
        let cell = {
            let mut cells = self.cells.lock().expect("memo lock");
            cells.entry(key.clone()).or_default().clone()
        };
        cell.get_or_init(f).await.clone()
    }
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<(Secret, Instant)>>>;

/// Books the next request slot: the later of `now` and the booked `next`; the slot
/// after it is one `pace` later. With no pace every request goes at once, but a 429
/// pause (which moves `next` forward) still holds everyone back.
fn take_slot(next: &mut Instant, now: Instant, pace: Duration) -> Instant {
    let slot = (*next).max(now);
    *next = slot + pace;
    slot
}

/// Per-registry state.
pub(crate) struct Host {
    pub(crate) endpoint: Endpoint,
    ping: OnceCell<Result<Challenge, RegistryError>>,
    learned: Mutex<Option<Challenge>>,
    credential: OnceCell<Result<Option<Credential>, RegistryError>>,
    tokens: Mutex<HashMap<String, TokenSlot>>,
    semaphore: Arc<Semaphore>,
    pace: Option<Duration>,
    next_slot: tokio::sync::Mutex<Instant>,
    rate_limit: Mutex<Option<RateLimit>>,
    warned_low: AtomicBool,
}

impl Host {
    fn host(&self) -> &str {
        &self.endpoint.registry
    }

    async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        let permit = self
            .semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let slot = take_slot(
            &mut *self.next_slot.lock().await,
            Instant::now(),
            self.pace.unwrap_or_default(),
        );
        tokio::time::sleep_until(slot).await;
        permit
    }

    /// Holds back every request to this registry until `until` (after a 429).
    async fn pause_until(&self, until: Instant) {
        let mut next = self.next_slot.lock().await;
        *next = (*next).max(until);
    }

    fn record_rate_limit(&self, headers: &HeaderMap) {
        let Some(remaining) = header_number(headers, "ratelimit-remaining") else {
            return;
        };
        let limit = header_number(headers, "ratelimit-limit");
        let window_secs = headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(";w=").nth(1))
            .and_then(|w| w.trim().parse().ok());
        let state = RateLimit {
            limit,
            remaining,
            window_secs,
        };
        if let Some(limit) = limit
            && remaining * 10 < limit
            && !self.warned_low.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                registry = self.host(),
                remaining,
                limit,
                "registry rate limit nearly used up: {remaining} of {limit} requests left in this window; authenticate (docker login) or add a pull-through cache"
            );
        }
        *self.rate_limit.lock().expect("rate limit lock") = Some(state);
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?;
    v.split(';').next()?.trim().parse().ok()
}

pub(crate) struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    credentials: CredentialStore,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    stats: Stats,
    pub(crate) heads: Memo<(String, String, String), crate::resolve::Head>,
    pub(crate) manifests: Memo<(String, String, String), crate::resolve::ManifestBody>,
    pub(crate) configs: Memo<(String, String, String), freshet_core::Platform>,
}

/// The registry client. Cheap to clone; clones share connections, tokens and memos.
/// Use one client per run: its memos make every unique question asked once.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The TLS stack or HTTP client failed to initialise.
    #[error("cannot initialise the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

impl Client {
    /// Builds a client with the given credentials and options.
    pub fn new(
        credentials: CredentialStore,
        options: ClientOptions,
    ) -> Result<Self, ClientBuildError> {
        // freshet uses rustls with the ring provider only; installing it twice is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("freshet/", env!("CARGO_PKG_VERSION")))
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Follow a few redirects on the same host only: credentials and tokens
                // must never be carried to another host.
                let same_host = attempt.previous().last().is_some_and(|prev| {
                    prev.host_str() == attempt.url().host_str()
                        && prev.port_or_known_default() == attempt.url().port_or_known_default()
                });
                if attempt.previous().len() > 5 || !same_host {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(ClientBuildError::Http)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                options,
                credentials,
                hosts: Mutex::new(HashMap::new()),
                stats: Stats::default(),
                heads: Memo::new(),
                manifests: Memo::new(),
                configs: Memo::new(),
            }),
        })
    }

    /// An anonymous client with default options.
    pub fn anonymous() -> Result<Self, ClientBuildError> {
        Self::new(CredentialStore::anonymous(), ClientOptions::default())
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.inner.stats;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: l(&s.requests),
            pings: l(&s.pings),
            manifest_heads: l(&s.manifest_heads),
            manifest_gets: l(&s.manifest_gets),
            blob_gets: l(&s.blob_gets),
            token_requests: l(&s.token_requests),
            tag_pages: l(&s.tag_pages),
            retries: l(&s.retries),
        }
    }

    /// The last rate-limit state each registry reported.
    pub fn rate_limits(&self) -> Vec<(String, RateLimit)> {
        let hosts = self.inner.hosts.lock().expect("hosts lock");
        let mut out: Vec<_> = hosts
            .values()
            .filter_map(|h| Some((h.host().to_owned(), h.rate_limit.lock().ok()?.clone()?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub(crate) fn memos(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn host(&self, registry: &str) -> Arc<Host> {
        let mut hosts = self.inner.hosts.lock().expect("hosts lock");
        hosts
            .entry(registry.to_owned())
            .or_insert_with(|| {
                let o = &self.inner.options;
                Arc::new(Host {
                    endpoint: Endpoint::new(registry, &o.insecure_registries),
                    ping: OnceCell::new(),
                    learned: Mutex::new(None),
                    credential: OnceCell::new(),
                    tokens: Mutex::new(HashMap::new()),
                    semaphore: Arc::new(Semaphore::new(o.max_concurrency_per_registry.max(1))),
                    pace: o
                        .requests_per_second
                        .filter(|r| *r > 0.0)
                        .map(|r| Duration::from_secs_f64(1.0 / r)),
                    next_slot: tokio::sync::Mutex::new(Instant::now()),
                    rate_limit: Mutex::new(None),
                    warned_low: AtomicBool::new(false),
                })
            })
            .clone()
    }

    fn count(&self, kind: Kind) {
        let s = &self.inner.stats;
        let counter = match kind {
            Kind::Ping => &s.pings,
            Kind::ManifestHead => &s.manifest_heads,
            Kind::ManifestGet => &s.manifest_gets,
            Kind::BlobGet => &s.blob_gets,
            Kind::TagPage => &s.tag_pages,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends one authenticated request for `repository` and returns the response for
    /// any status the caller must interpret (2xx, 3xx, 404, other 4xx). 401, 403, 429
    /// and 5xx become errors here, after retries where they are transient.
    pub(crate) async fn send(
        &self,
        host: &Host,
        method: Method,
        url: &str,
        repository: &str,
        accept: Option<&str>,
        kind: Kind,
    ) -> Result<Response, RegistryError> {
        let mut reauthenticated = false;
        loop {
            let authorization = self.authorization(host, repository).await?;
            let resp = self
                .with_retries(host.host(), Some(host), || {
                    self.count(kind);
                    let mut rb = self.inner.http.request(method.clone(), url);
                    if let Some(a) = accept {
                        rb = rb.header(ACCEPT, a);
                    }
                    if let Some(h) = &authorization {
                        rb = rb.header(AUTHORIZATION, h.expose());
                    }
                    rb
                })
                .await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !reauthenticated => {
                    // A token may have expired early, or this repository needs auth the
                    // ping did not ask for: learn the challenge, drop the token, retry once.
                    reauthenticated = true;
                    if let Some(ch) = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        && let Ok(ch) = auth::parse_challenge(ch)
                    {
                        *host.learned.lock().expect("learned lock") = Some(ch);
                    }
                    host.tokens
                        .lock()
                        .expect("tokens lock")
                        .remove(&auth::pull_scope(repository));
                    continue;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(self
                        .unauthorized(host, repository, &body_detail(resp).await)
                        .await);
                }
                StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Forbidden {
                        host: host.host().to_owned(),
                        repository: repository.to_owned(),
                        detail: body_detail(resp).await,
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    /// Sends a request built by `build`, retrying transient failures (transport
    /// errors, 5xx, 429) with backoff. Returns any other response.
    async fn with_retries(
        &self,
        label: &str,
        host: Option<&Host>,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let o = &self.inner.options;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = match host {
                Some(h) => Some(h.acquire().await),
                None => None,
            };
            self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = build().send().await;
            drop(permit);
            let last = attempt >= o.max_attempts.max(1);
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    let err = RegistryError::from_transport(label, e, o.request_timeout);
                    if err.is_transient() && !last {
                        self.backoff(attempt).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            if let Some(h) = host {
                h.record_rate_limit(resp.headers());
            }
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let retry_after = retry_after(resp.headers());
                let wait = retry_after.unwrap_or_else(|| self.backoff_delay(attempt));
                if !last && wait <= o.max_retry_after {
                    tracing::warn!(
                        registry = label,
                        wait_ms = wait.as_millis() as u64,
                        "429 Too Many Requests: waiting before retrying"
                    );
                    if let Some(h) = host {
                        h.pause_until(Instant::now() + wait).await;
                    }
                    self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(RegistryError::RateLimited {
                    host: label.to_owned(),
                    retry: retry_after
                        .map(|d| format!(", retry after {}s", d.as_secs()))
                        .unwrap_or_default(),
                    hint: format!(
                        "authenticate to raise the limit (docker login {label}), add a pull-through cache, or lower --max-rps"
                    ),
                });
            }
            if status.is_server_error() {
                if !last {
                    self.backoff(attempt).await;
                    continue;
                }
                return Err(RegistryError::Server {
                    host: label.to_owned(),
                    status: status.as_u16(),
                    detail: body_detail(resp).await,
                });
            }
            return Ok(resp);
        }
    }

    fn backoff_delay(&self, attempt: u32) -> Duration {
        let base = self.inner.options.backoff_base.as_secs_f64()
            * 2f64.powi(attempt.saturating_sub(1) as i32);
        let capped = base.min(5.0);
        Duration::from_secs_f64(capped * (0.5 + fastrand::f64() * 0.5))
    }

    async fn backoff(&self, attempt: u32) {
        self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.backoff_delay(attempt)).await;
    }

    async fn credential(&self, host: &Host) -> Result<Option<Credential>, RegistryError> {
        host.credential
            .get_or_init(|| async {
                self.inner
                    .credentials
                    .lookup(host.host())
                    .await
                    .map_err(|e| RegistryError::Credentials {
                        host: host.host().to_owned(),
                        detail: e.to_string(),
                    })
            })
            .await
            .clone()
    }

    /// The challenge of a registry: learned from a later 401 if any, else from one
    /// `GET /v2/` ping per run (its failure is remembered too, so an unreachable
    /// registry fails fast for every image on it).
    async fn challenge(&self, host: &Host) -> Result<Challenge, RegistryError> {
        if let Some(ch) = host.learned.lock().expect("learned lock").clone() {
            return Ok(ch);
        }
        host.ping.get_or_init(|| self.ping(host)).await.clone()
    }

    async fn ping(&self, host: &Host) -> Result<Challenge, RegistryError> {
        let url = format!("{}/v2/", host.endpoint.base_url());
        let resp = self
            .with_retries(host.host(), Some(host), || {
                self.count(Kind::Ping);
                self.inner.http.get(&url)
            })
            .await?;
        let status = resp.status();
        match status {
            s if s.is_success() => Ok(Challenge::None),
            StatusCode::UNAUTHORIZED => {
                let header = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| RegistryError::Malformed {
                        host: host.host().to_owned(),
                        detail: "GET /v2/ answered 401 without a WWW-Authenticate header".into(),
                    })?;
                auth::parse_challenge(header).map_err(|e| RegistryError::Malformed {
                    host: host.host().to_owned(),
                    detail: e.to_string(),
                })
            }
            StatusCode::BAD_REQUEST => {
                let body = body_detail(resp).await;
                if body.to_ascii_lowercase().contains("https server") {
                    return Err(RegistryError::Tls {
                        host: host.host().to_owned(),
                        detail: "the registry speaks https but was contacted over plain http"
                            .into(),
                        source: Arc::new(std::io::Error::other("http to https server")),
                    });
                }
                Err(RegistryError::Malformed {
                    host: host.host().to_owned(),
                    detail: format!("GET /v2/ answered 400{body}: is this an OCI registry?"),
                })
            }
            StatusCode::FORBIDDEN => Err(RegistryError::Forbidden {
                host: host.host().to_owned(),
                repository: "/v2/".into(),
                detail: body_detail(resp).await,
            }),
            other => Err(RegistryError::Malformed {
                host: host.host().to_owned(),
                detail: format!(
                    "GET {url} answered {other}: this is not an OCI distribution API endpoint; check the registry name and any path-based proxy"
                ),
            }),
        }
    }

    async fn authorization(
        &self,
        host: &Host,
        repository: &str,
    ) -> Result<Option<Secret>, RegistryError> {
        match self.challenge(host).await? {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self
                .credential(host)
                .await?
                .and_then(|c| c.basic_header())
                .map(Secret::new)),
            Challenge::Bearer { realm, service } => {
                let token = self
                    .token(host, &realm, service.as_deref(), repository)
                    .await?;
                Ok(Some(Secret::new(format!("Bearer {}", token.expose()))))
            }
        }
    }

    /// A bearer token for the pull scope of `repository`: cached until it expires;
    /// concurrent callers for one scope share one token request.
    async fn token(
        &self,
        host: &Host,
        realm: &url::Url,
        service: Option<&str>,
        repository: &str,
    ) -> Result<Secret, RegistryError> {
        let scope = auth::pull_scope(repository);
        let slot = host
            .tokens
            .lock()
            .expect("tokens lock")
            .entry(scope.clone())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some((token, until)) = slot.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let token = self
            .fetch_token(host, realm, service, &scope, repository)
            .await?;
        *slot = Some((token.token.clone(), Instant::now() + token.lifetime));
        Ok(token.token)
    }

    async fn fetch_token(
        &self,
        host: &Host,
        realm: &url::Url,
        service: Option<&str>,
        scope: &str,
        repository: &str,
    ) -> Result<auth::Token, RegistryError> {
        let registry = host.host();
        let credential = self.credential(host).await?;
        let refused = |e: auth::AuthError| RegistryError::ForeignRealm {
            host: registry.to_owned(),
            detail: e.to_string(),
        };
        if credential.is_some() {
            auth::check_realm_for_credentials(
                &host.endpoint.api_host,
                realm,
                host.endpoint.insecure(),
                &self.inner.options.trusted_realms,
            )
            .map_err(refused)?;
        } else {
            auth::check_realm_scheme(realm, host.endpoint.insecure()).map_err(refused)?;
        }
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let realm_label = realm.host_str().unwrap_or(registry).to_owned();
        let resp = self
            .with_retries(&realm_label, None, || {
                self.inner
                    .stats
                    .token_requests
                    .fetch_add(1, Ordering::Relaxed);
                match &credential {
                    Some(Credential::IdentityToken(refresh)) => {
                        let mut form = url::form_urlencoded::Serializer::new(String::new());
                        form.append_pair("grant_type", "refresh_token")
                            .append_pair("refresh_token", refresh.expose())
                            .append_pair("client_id", "freshet")
                            .append_pair("scope", scope);
                        if let Some(s) = service {
                            form.append_pair("service", s);
                        }
                        let mut post = realm.clone();
                        post.set_query(None);
                        self.inner
                            .http
                            .post(post)
                            .header(
                                reqwest::header::CONTENT_TYPE,
                                "application/x-www-form-urlencoded",
                            )
                            .body(form.finish())
                    }
                    Some(c @ Credential::Basic { .. }) => self
                        .inner
                        .http
                        .get(url.clone())
                        .header(AUTHORIZATION, c.basic_header().unwrap_or_default()),
                    None => self.inner.http.get(url.clone()),
                }
            })
            .await
            .map_err(|e| match e {
                // The token endpoint is part of reaching the registry: say so.
                RegistryError::Connect {
                    host: h,
                    detail,
                    source,
                } => RegistryError::Connect {
                    host: format!("{registry} (token endpoint {h})"),
                    detail,
                    source,
                },
                RegistryError::Dns { host: h, source } => RegistryError::Dns {
                    host: format!("{registry} (token endpoint {h})"),
                    source,
                },
                other => other,
            })?;
        match resp.status() {
            s if s.is_success() => {
                let body = read_capped(registry, resp, 1024 * 1024, "token response").await?;
                auth::parse_token_response(&body).map_err(|detail| RegistryError::Malformed {
                    host: registry.to_owned(),
                    detail: format!("token endpoint {realm_label}: {detail}"),
                })
            }
            StatusCode::UNAUTHORIZED => Err(self
                .unauthorized(host, repository, &body_detail(resp).await)
                .await),
            StatusCode::FORBIDDEN => Err(RegistryError::Forbidden {
                host: registry.to_owned(),
                repository: repository.to_owned(),
                detail: body_detail(resp).await,
            }),
            s if s.is_redirection() => Err(RegistryError::ForeignRealm {
                host: registry.to_owned(),
                detail: format!(
                    "token endpoint {realm_label} redirected to another host; freshet does not follow it with credentials"
                ),
            }),
            other => Err(RegistryError::Malformed {
                host: registry.to_owned(),
                detail: format!(
                    "token endpoint {realm_label} answered {other}{}",
                    body_detail(resp).await
                ),
            }),
        }
    }

    async fn unauthorized(&self, host: &Host, repository: &str, detail: &str) -> RegistryError {
        let registry = host.host();
        let has_credential = matches!(self.credential(host).await, Ok(Some(_)));
        let hint = if has_credential {
            format!(
                "the credentials for {registry} were rejected or lack pull access to {repository}: check the user and password or token in the docker config or pull secret"
            )
        } else {
            format!(
                "{registry} requires credentials for {repository}: run `docker login {registry}`, pass --docker-config DIR, or give the workload a pull secret"
            )
        };
        RegistryError::Unauthorized {
            host: registry.to_owned(),
            repository: repository.to_owned(),
            detail: detail.to_owned(),
            hint,
        }
    }
}

/// Reads a body up to `limit` bytes; larger is [`RegistryError::TooLarge`].
pub(crate) async fn read_capped(
    host: &str,
    mut resp: Response,
    limit: usize,
    what: &str,
) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        host: host.to_owned(),
        what: what.to_owned(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        match RegistryError::from_transport(host, e, Duration::ZERO) {
            RegistryError::Connect { detail, .. } => RegistryError::Truncated {
                host: host.to_owned(),
                detail,
            },
            other => other,
        }
    })? {
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A short, single-line excerpt of an error body (`: MANIFEST_UNKNOWN …`), or nothing.
pub(crate) async fn body_detail(resp: Response) -> String {
    let Ok(body) = resp.bytes().await else {
        return String::new();
    };
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i.code.as_deref().unwrap_or(""),
                    i.message.as_deref().unwrap_or("")
                )
                .trim()
                .to_owned()
            })
            .collect();
        if !parts.is_empty() {
            return format!(" ({})", parts.join("; "));
        }
    }
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(" ({})", text.trim())
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(5))
                .parse()
                .unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn rate_limit_headers_parse() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        h.insert("ratelimit-remaining", "76;w=21600".parse().unwrap());
        assert_eq!(header_number(&h, "ratelimit-limit"), Some(100));
        assert_eq!(header_number(&h, "ratelimit-remaining"), Some(76));
    }

    #[test]
    fn pacing_spaces_slots_and_a_429_pause_holds_everyone_back() {
        let t0 = Instant::now();
        let pace = Duration::from_millis(100);
        let mut next = t0;
        // A burst at t0 is spread one pace apart.
        let slots: Vec<Duration> = (0..4)
            .map(|_| take_slot(&mut next, t0, pace) - t0)
            .collect();
        assert_eq!(slots, [0, 100, 200, 300].map(Duration::from_millis));
        // A request long after the booked slots goes at once.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(take_slot(&mut next, later, pace), later);
        // Unpaced: everyone at once, unless a 429 pushed `next` into the future.
        let mut next = t0 + Duration::from_secs(30);
        assert_eq!(
            take_slot(&mut next, t0, Duration::ZERO),
            t0 + Duration::from_secs(30)
        );
        assert_eq!(
            take_slot(&mut next, t0, Duration::ZERO),
            t0 + Duration::from_secs(30)
        );
    }
}
