//! One message to one sink: a POST with a per-request timeout, signed when the sink
//! has a key, retried on transient failures (connect, timeout, 5xx, 429) with
//! jittered exponential backoff or the server's `Retry-After`, both capped.
//!
//! Owns the failure classes ([`DeliveryError::class`], the `class` metrics label).
//! Must never put the sink's URL or key in an error or a log line: reqwest errors are
//! stripped of their URL, and logs name the sink and its scrubbed URL.

use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::sign::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::sink::Sink;

/// Why a message was not delivered. Never holds a URL or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The connection could not be made (refused, DNS, TLS).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No answer within the sink's timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// The receiver answered 429.
    #[error("rate limited (429)")]
    RateLimited {
        /// Its `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The receiver answered 5xx.
    #[error("the receiver failed ({0})")]
    Server(u16),
    /// The receiver refused the message (another 4xx, or 3xx): retrying will not help.
    #[error("the receiver refused the message ({0}); check the sink's URL and key")]
    Rejected(u16),
    /// The request failed for another reason.
    #[error("request failed: {0}")]
    Request(String),
}

impl DeliveryError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(self, DeliveryError::Rejected(_) | DeliveryError::Request(_))
    }

    /// The `class` label of `freshet_notifications_failed_total`.
    pub fn class(&self) -> &'static str {
        match self {
            DeliveryError::Connect(_) => "connect",
            DeliveryError::Timeout => "timeout",
            DeliveryError::RateLimited { .. } => "rateLimited",
            DeliveryError::Server(_) => "server",
            DeliveryError::Rejected(_) => "rejected",
            DeliveryError::Request(_) => "request",
        }
    }

    fn from_reqwest(e: reqwest::Error) -> DeliveryError {
        let e = e.without_url();
        if e.is_timeout() {
            return DeliveryError::Timeout;
        }
        // The source chain (hyper, io) names the failure, never the URL.
        let mut text = String::new();
        let mut source = e.source();
        while let Some(s) = source {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&s.to_string());
            source = s.source();
        }
        let text = freshet_core::notify::render::clean(&text, 200);
        if e.is_connect() {
            DeliveryError::Connect(text)
        } else {
            DeliveryError::Request(text)
        }
    }
}

/// Backoff and `Retry-After` bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay (doubled on each retry, then jittered to 50–100 %).
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    fn delay(&self, retry: u32, error: &DeliveryError) -> Duration {
        if let DeliveryError::RateLimited {
            retry_after: Some(d),
        } = error
        {
            return (*d).min(self.retry_after_cap);
        }
        let exp = self.base.saturating_mul(1 << retry.min(16)).min(self.max);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

fn retry_after(v: Option<&HeaderValue>) -> Option<Duration> {
    let v = v?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One attempt.
async fn attempt(client: &reqwest::Client, sink: &Sink, body: &str) -> Result<(), DeliveryError> {
    let mut req = client
        .post(sink.url.expose())
        .timeout(sink.config.timeout)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(key) = &sink.key {
        let t = unix_now();
        req = req
            .header(
                SIGNATURE_HEADER,
                sign(key.expose().as_bytes(), t, body.as_bytes()),
            )
            .header(TIMESTAMP_HEADER, t.to_string());
    }
    let resp = req.send().await.map_err(DeliveryError::from_reqwest)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => DeliveryError::RateLimited {
            retry_after: retry_after(resp.headers().get(RETRY_AFTER)),
        },
        s if s.is_server_error() => DeliveryError::Server(s.as_u16()),
        s => DeliveryError::Rejected(s.as_u16()),
    })
}

/// Sends `body` to `sink`, retrying transient failures up to the sink's `retries`.
/// Returns the last error when every attempt failed.
pub async fn deliver(
    client: &reqwest::Client,
    sink: &Sink,
    body: &str,
    backoff: &Backoff,
) -> Result<(), DeliveryError> {
    let mut retry = 0;
    loop {
        match attempt(client, sink, body).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && retry < sink.config.retries => {
                let delay = backoff.delay(retry, &e);
                tracing::debug!(
                    sink = %sink.name(), url = %sink.shown_url(), class = e.class(), error = %e,
                    retry = retry + 1, delay_ms = delay.as_millis() as u64,
                    "notification not delivered; retrying"
                );
                tokio::time::sleep(delay).await;
                retry += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_transience() {
        let cases = [
            (DeliveryError::Connect("x".into()), "connect", true),
            (DeliveryError::Timeout, "timeout", true),
            (
                DeliveryError::RateLimited { retry_after: None },
                "rateLimited",
                true,
            ),
            (DeliveryError::Server(503), "server", true),
            (DeliveryError::Rejected(404), "rejected", false),
            (DeliveryError::Request("x".into()), "request", false),
        ];
        for (e, class, transient) in cases {
            assert_eq!((e.class(), e.is_transient()), (class, transient), "{e}");
        }
    }

    #[test]
    fn backoff_is_jittered_doubling_and_capped() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(300),
            retry_after_cap: Duration::from_secs(2),
        };
        for _ in 0..50 {
            let d0 = b.delay(0, &DeliveryError::Timeout);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&d0));
            let d5 = b.delay(5, &DeliveryError::Timeout);
            assert!((Duration::from_millis(150)..=Duration::from_millis(300)).contains(&d5));
        }
        let ra = DeliveryError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(b.delay(0, &ra), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("7"))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static(
                "Wed, 21 Oct 2015 07:28:00 GMT"
            ))),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
        assert_eq!(retry_after(None), None);
    }
}
