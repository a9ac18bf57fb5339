//! The HTTP transport: one shared connection pool, retries with backoff, `429`
//! pauses, and redirects under the rules of [`crate::redirect`].
//!
//! Owns [`Transport`] (the reqwest client, the options and the counters) and
//! [`Transport::send`], which sends one [`Request`] (plain data: method, URL, accept,
//! authorization, form body, redirect rule), retries transient failures (decided by
//! [`crate::classify`]) with jittered exponential backoff, honours `Retry-After`,
//! and follows redirects itself so that credentials never cross hosts. It must not
//! know about challenges, tokens or what a status means to a caller: 401, 404 and
//! the rest are returned for the caller to interpret.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::body::body_detail;
use crate::classify::{StatusVerdict, classify, status_verdict};
use crate::error::RegistryError;
use crate::limits::Limits;
use crate::options::ClientOptions;
use crate::redirect::{self, Hop, Rule};
use crate::secret::Secret;
use crate::stats::{Kind, Stats};
use crate::text::quote;

/// One request, as data.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) accept: Option<&'a str>,
    pub(crate) authorization: Option<&'a Secret>,
    /// An `application/x-www-form-urlencoded` body.
    pub(crate) form: Option<String>,
    pub(crate) kind: Kind,
    pub(crate) rule: Rule,
    /// The registry may be spoken to in plain http.
    pub(crate) insecure: bool,
    /// What is asked for, for messages (`manifest a/b:1`).
    pub(crate) what: &'a str,
}

impl<'a> Request<'a> {
    /// A GET or HEAD with the same-host redirect rule and no credentials.
    pub(crate) fn new(method: Method, url: Url, kind: Kind, what: &'a str) -> Self {
        Self {
            method,
            url,
            accept: None,
            authorization: None,
            form: None,
            kind,
            rule: Rule::SameHost,
            insecure: false,
            what,
        }
    }
}

/// The shared HTTP client with its options and counters.
pub(crate) struct Transport {
    http: reqwest::Client,
    options: ClientOptions,
    stats: Stats,
}

impl Transport {
    /// Builds the HTTP client. Redirects are not followed by reqwest: [`Self::send`]
    /// follows them under freshet's rules.
    pub(crate) fn new(options: ClientOptions) -> Result<Self, reqwest::Error> {
        // freshet uses rustls with the ring provider only; installing it twice is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("freshet/", env!("CARGO_PKG_VERSION")))
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            options,
            stats: Stats::default(),
        })
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.options
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sends `req`, retrying transient failures and following redirects. `label`
    /// names the host in errors; `limits` are the registry's (they apply while the
    /// request stays on the registry's host).
    pub(crate) async fn send(
        &self,
        label: &str,
        limits: Option<&Limits>,
        req: &Request<'_>,
    ) -> Result<Response, RegistryError> {
        let mut seen = vec![req.url.clone()];
        let mut method = req.method.clone();
        let mut form = req.form.clone();
        let mut credentials = true;
        loop {
            let url = seen
                .last()
                .expect("the chain starts with the request")
                .clone();
            let hop_label = if credentials {
                label.to_owned()
            } else {
                format!("{label} (redirected to {})", url.host_str().unwrap_or("?"))
            };
            let auth = req.authorization.filter(|_| credentials);
            let first_hop = seen.len() == 1;
            let resp = self
                .with_retries(
                    label,
                    &hop_label,
                    limits.filter(|_| credentials),
                    (req.kind, &method),
                    || {
                        // Kinds count attempts at the registry; redirect hops count as
                        // requests only.
                        if first_hop {
                            self.stats.count(req.kind);
                        }
                        self.build(&method, &url, req.accept, auth, form.as_deref())
                    },
                )
                .await?;
            let status = resp.status();
            let Some(next) = location(&resp, &url).filter(|_| status.is_redirection()) else {
                return Ok(resp);
            };
            match redirect::decide(req.rule, &seen, &next, req.insecure) {
                Hop::Follow { credentials: c } => credentials = c,
                Hop::Refuse(reason) => {
                    return Err(RegistryError::Redirect {
                        host: label.to_owned(),
                        what: req.what.to_owned(),
                        target: shown(&next),
                        reason: reason.to_owned(),
                    });
                }
                Hop::Loop => {
                    seen.push(next);
                    return Err(RegistryError::RedirectLoop {
                        host: label.to_owned(),
                        what: req.what.to_owned(),
                        hops: seen.len() - 1,
                        chain: seen.iter().map(shown).collect::<Vec<_>>().join(" -> "),
                    });
                }
            }
            let post_to_get = status == StatusCode::SEE_OTHER
                || (method == Method::POST
                    && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND));
            if post_to_get {
                method = Method::GET;
                form = None;
            }
            seen.push(next);
        }
    }

    /// One request. User info in a URL is dropped: credentials come from the
    /// credential store only, as one `Authorization` header.
    fn build(
        &self,
        method: &Method,
        url: &Url,
        accept: Option<&str>,
        authorization: Option<&Secret>,
        form: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut url = url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut rb = self.http.request(method.clone(), url);
        if let Some(a) = accept {
            rb = rb.header(ACCEPT, a);
        }
        if let Some(a) = authorization {
            rb = rb.header(AUTHORIZATION, a.expose());
        }
        if let Some(body) = form {
            rb = rb
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.to_owned());
        }
        rb
    }

    /// Sends a request built by `build`, retrying transient failures (transport
    /// errors, 5xx, 429) with backoff. Returns any other response.
    async fn with_retries(
        &self,
        registry: &str,
        label: &str,
        limits: Option<&Limits>,
        (kind, method): (Kind, &Method),
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let o = &self.options;
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let permit = match limits {
                Some(l) => Some(l.acquire().await),
                None => None,
            };
            self.stats.request();
            let sent = build().send().await;
            drop(permit);
            self.record(registry, &sent, kind, method);
            let last = attempt >= o.max_attempts.max(1);
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    let failure = classify(&e);
                    if failure.is_transient() && !last {
                        self.backoff(attempt).await;
                        continue;
                    }
                    return Err(failure.into_error(label, Arc::new(e), o.request_timeout));
                }
            };
            if let Some(l) = limits {
                l.record_rate_limit(resp.headers());
            }
            match status_verdict(resp.status()) {
                StatusVerdict::Answer => return Ok(resp),
                StatusVerdict::RateLimited => {
                    let retry_after = retry_after(resp.headers());
                    let wait = retry_after.unwrap_or_else(|| self.backoff_delay(attempt));
                    if last || wait > o.max_retry_after {
                        return Err(rate_limited(label, retry_after));
                    }
                    tracing::warn!(
                        registry = label,
                        wait_ms = wait.as_millis() as u64,
                        "429 Too Many Requests: waiting before retrying"
                    );
                    if let Some(l) = limits {
                        l.pause_until(Instant::now() + wait).await;
                    }
                    self.stats.retry();
                    tokio::time::sleep(wait).await;
                }
                StatusVerdict::ServerError if !last => self.backoff(attempt).await,
                StatusVerdict::ServerError => {
                    return Err(RegistryError::Server {
                        host: label.to_owned(),
                        status: resp.status().as_u16(),
                        detail: body_detail(resp).await,
                    });
                }
            }
        }
    }

    /// Tells the options' recorder about one attempt.
    fn record(
        &self,
        registry: &str,
        sent: &Result<Response, reqwest::Error>,
        kind: Kind,
        method: &Method,
    ) {
        let Some(r) = &self.options.recorder else {
            return;
        };
        let token = kind == Kind::Token;
        let method = method.as_str();
        match sent {
            Ok(resp) => {
                r.request(registry, method, outcome_class(resp.status()), token);
                if let Some(rl) = crate::limits::parse_rate_limit(resp.headers()) {
                    r.rate_limit_remaining(registry, rl.remaining);
                }
            }
            Err(_) => r.request(registry, method, "network", token),
        }
    }

    fn backoff_delay(&self, attempt: u32) -> Duration {
        backoff_delay(self.options.backoff_base, attempt, fastrand::f64())
    }

    async fn backoff(&self, attempt: u32) {
        self.stats.retry();
        tokio::time::sleep(self.backoff_delay(attempt)).await;
    }
}

/// The outcome label of a status.
fn outcome_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// `base * 2^(attempt-1)`, capped at 5 s, scaled by a jitter in `[0.5, 1]`.
fn backoff_delay(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30) as i32;
    let capped = (base.as_secs_f64() * 2f64.powi(exp)).min(5.0);
    Duration::try_from_secs_f64(capped * (0.5 + jitter.clamp(0.0, 1.0) * 0.5))
        .unwrap_or(Duration::from_secs(5))
}

fn rate_limited(label: &str, retry_after: Option<Duration>) -> RegistryError {
    RegistryError::RateLimited {
        host: label.to_owned(),
        retry: retry_after
            .map(|d| format!(", retry after {}s", d.as_secs()))
            .unwrap_or_default(),
        hint: format!(
            "authenticate to raise the limit (docker login {label}), add a pull-through cache, or lower --max-rps"
        ),
    }
}

/// The `Location` of a response, resolved against the URL it answered.
fn location(resp: &Response, current: &Url) -> Option<Url> {
    let value = resp.headers().get(LOCATION)?.to_str().ok()?;
    current.join(value.trim()).ok()
}

/// A URL as shown in messages: no user info, no query (presigned URLs carry
/// signatures there), control characters escaped.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    quote(u.as_str(), 200)
}

/// `Retry-After` as seconds or an HTTP date. Huge values saturate.
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
        h.insert(RETRY_AFTER, u64::MAX.to_string().parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn backoff_doubles_caps_and_never_panics() {
        let base = Duration::from_millis(200);
        assert_eq!(backoff_delay(base, 1, 1.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(base, 2, 1.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(base, 2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(base, 30, 1.0), Duration::from_secs(5));
        assert_eq!(backoff_delay(base, u32::MAX, 1.0), Duration::from_secs(5));
        assert_eq!(backoff_delay(Duration::MAX, 1, 1.0), Duration::from_secs(5));
    }

    #[test]
    fn urls_in_messages_carry_no_signature_or_user_info() {
        let u = Url::parse("https://user:pw@cdn.example/blob?X-Amz-Signature=abc#f").unwrap();
        assert_eq!(shown(&u), "https://cdn.example/blob");
    }
}
