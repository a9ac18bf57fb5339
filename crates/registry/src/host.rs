//! Per-registry state and the authenticated request.
//!
//! Owns [`Host`] (a registry's endpoint, its learned challenge from one `GET /v2/`
//! ping per run or from an earlier client sharing its tokens, its credential, token
//! cache and limits) and [`Hosts`] (the hosts of
//! one client, with the shared [`Transport`]). [`Hosts::send`] is the one way the
//! resolver and the tag lister talk to a registry: it adds the right
//! `Authorization`, re-learns the challenge once on a 401, and turns 401 and 403
//! into errors. It must not interpret manifests, tags or other answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, Response, StatusCode};
use tokio::sync::OnceCell;
use url::Url;

use crate::auth::{self, Challenge};
use crate::body::{body_detail, detail_of, error_body, is_plain_http_to_https};
use crate::credentials::CredentialStore;
use crate::endpoint::Endpoint;
use crate::error::RegistryError;
use crate::limits::{Limits, RateLimit};
use crate::options;
use crate::redirect::Rule;
use crate::secret::{Credential, Secret};
use crate::stats::Kind;
use crate::token::{self, SharedHost, SharedTokens, TokenRequest};
use crate::transport::{Request, Transport};

/// Per-registry state.
pub(crate) struct Host {
    pub(crate) endpoint: Endpoint,
    ping: OnceCell<Result<Challenge, RegistryError>>,
    learned: Mutex<Option<Challenge>>,
    credential: OnceCell<Result<Option<Credential>, RegistryError>>,
    /// Token cache and learned challenge, shared with later clients of the same
    /// credential set.
    shared: Arc<SharedHost>,
    limits: Limits,
}

impl Host {
    pub(crate) fn name(&self) -> &str {
        &self.endpoint.registry
    }
}

/// One authenticated request for a repository.
pub(crate) struct Ask<'a> {
    pub(crate) method: Method,
    pub(crate) url: &'a str,
    pub(crate) repository: &'a str,
    pub(crate) accept: Option<&'a str>,
    pub(crate) kind: Kind,
    /// What is asked for, for messages.
    pub(crate) what: &'a str,
}

/// The registries one client talks to.
pub(crate) struct Hosts {
    transport: Transport,
    credentials: CredentialStore,
    shared: SharedTokens,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

impl Hosts {
    pub(crate) fn new(
        transport: Transport,
        credentials: CredentialStore,
        shared: SharedTokens,
    ) -> Self {
        Self {
            transport,
            credentials,
            shared,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The state of `registry`, created on first use.
    pub(crate) fn get(&self, registry: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().expect("hosts lock");
        hosts
            .entry(registry.to_owned())
            .or_insert_with(|| {
                let o = self.transport.options();
                Arc::new(Host {
                    endpoint: Endpoint::new(registry, &o.insecure_registries),
                    ping: OnceCell::new(),
                    learned: Mutex::new(None),
                    credential: OnceCell::new(),
                    shared: self.shared.host(registry),
                    limits: Limits::new(
                        registry,
                        o.max_concurrency_per_registry,
                        options::pace(o.requests_per_second),
                    ),
                })
            })
            .clone()
    }

    /// The last rate-limit state each registry reported.
    pub(crate) fn rate_limits(&self) -> Vec<(String, RateLimit)> {
        let hosts = self.hosts.lock().expect("hosts lock");
        let mut out: Vec<_> = hosts
            .values()
            .filter_map(|h| Some((h.name().to_owned(), h.limits.rate_limit()?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Sends one authenticated request and returns the response for any status the
    /// caller must interpret (2xx, 3xx, 404, other 4xx). 401, 403, 429 and 5xx
    /// become errors here, after retries where they are transient. Blob GETs may be
    /// redirected to another host, without credentials.
    pub(crate) async fn send(&self, host: &Host, ask: &Ask<'_>) -> Result<Response, RegistryError> {
        let url = Url::parse(ask.url).map_err(|e| RegistryError::Malformed {
            host: host.name().to_owned(),
            detail: format!("cannot build the URL for {}: {e}", ask.what),
        })?;
        let mut reauthenticated = false;
        loop {
            let authorization = self.authorization(host, ask.repository).await?;
            let mut req = Request::new(ask.method.clone(), url.clone(), ask.kind, ask.what);
            req.accept = ask.accept;
            req.authorization = authorization.as_ref();
            req.insecure = host.endpoint.insecure();
            req.rule = if ask.kind == Kind::BlobGet {
                Rule::Blob
            } else {
                Rule::SameHost
            };
            let resp = self
                .transport
                .send(host.name(), Some(&host.limits), &req)
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
                        *host.learned.lock().expect("learned lock") = Some(ch.clone());
                        *host.shared.challenge.lock().expect("challenge lock") = Some(ch);
                    }
                    host.shared.tokens.forget(&auth::pull_scope(ask.repository));
                }
                StatusCode::UNAUTHORIZED => {
                    let had = matches!(self.credential(host).await, Ok(Some(_)));
                    let detail = body_detail(resp).await;
                    return Err(RegistryError::unauthorized(
                        host.name(),
                        ask.repository,
                        detail,
                        had,
                    ));
                }
                StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Forbidden {
                        host: host.name().to_owned(),
                        repository: ask.repository.to_owned(),
                        detail: body_detail(resp).await,
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    /// The challenge of a registry: learned from a later 401 if any, else the one
    /// an earlier client of the same credential set learned, else from one
    /// `GET /v2/` ping per run (its failure is remembered too, so an unreachable
    /// registry fails fast for every image on it; only a success is shared).
    async fn challenge(&self, host: &Host) -> Result<Challenge, RegistryError> {
        if let Some(ch) = host.learned.lock().expect("learned lock").clone() {
            return Ok(ch);
        }
        if let Some(ch) = host
            .shared
            .challenge
            .lock()
            .expect("challenge lock")
            .clone()
        {
            return Ok(ch);
        }
        let ch = host.ping.get_or_init(|| self.ping(host)).await.clone()?;
        *host.shared.challenge.lock().expect("challenge lock") = Some(ch.clone());
        Ok(ch)
    }

    async fn ping(&self, host: &Host) -> Result<Challenge, RegistryError> {
        let url = format!("{}/v2/", host.endpoint.base_url());
        let parsed = Url::parse(&url).map_err(|e| RegistryError::Malformed {
            host: host.name().to_owned(),
            detail: format!("cannot build {url}: {e}"),
        })?;
        let mut req = Request::new(Method::GET, parsed, Kind::Ping, "GET /v2/");
        req.insecure = host.endpoint.insecure();
        let resp = self
            .transport
            .send(host.name(), Some(&host.limits), &req)
            .await?;
        let malformed = |detail: String| RegistryError::Malformed {
            host: host.name().to_owned(),
            detail,
        };
        match resp.status() {
            s if s.is_success() => Ok(Challenge::None),
            StatusCode::UNAUTHORIZED => {
                let header = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        malformed("GET /v2/ answered 401 without a WWW-Authenticate header".into())
                    })?;
                auth::parse_challenge(header).map_err(|e| malformed(e.to_string()))
            }
            StatusCode::BAD_REQUEST => {
                let body = error_body(resp).await;
                if is_plain_http_to_https(&body) {
                    return Err(RegistryError::Tls {
                        host: host.name().to_owned(),
                        detail: "the registry speaks https but was contacted over plain http"
                            .into(),
                        source: Arc::new(std::io::Error::other("http to https server")),
                    });
                }
                Err(malformed(format!(
                    "GET /v2/ answered 400{}: is this an OCI registry?",
                    detail_of(&body)
                )))
            }
            StatusCode::FORBIDDEN => Err(RegistryError::Forbidden {
                host: host.name().to_owned(),
                repository: "/v2/".into(),
                detail: body_detail(resp).await,
            }),
            other => Err(malformed(format!(
                "GET {url} answered {other}: this is not an OCI distribution API endpoint; check the registry name and any path-based proxy"
            ))),
        }
    }

    async fn credential(&self, host: &Host) -> Result<Option<Credential>, RegistryError> {
        host.credential
            .get_or_init(|| async {
                self.credentials
                    .lookup(host.name())
                    .await
                    .map_err(|e| RegistryError::Credentials {
                        host: host.name().to_owned(),
                        source: Arc::new(e),
                    })
            })
            .await
            .clone()
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
                let credential = self.credential(host).await?;
                let scope = auth::pull_scope(repository);
                let t = TokenRequest {
                    endpoint: &host.endpoint,
                    realm: &realm,
                    service: service.as_deref(),
                    scope: &scope,
                    repository,
                    credential: credential.as_ref(),
                };
                let token = host
                    .shared
                    .tokens
                    .get_or_fetch(&scope, || token::fetch(&self.transport, &t))
                    .await?;
                Ok(Some(Secret::new(format!("Bearer {}", token.expose()))))
            }
        }
    }
}
