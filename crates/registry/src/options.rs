//! The tunables of a registry client, resolved once into typed values.
//!
//! Owns [`ClientOptions`] and the validated constructors for numbers that come from
//! outside (flags, config): they saturate or refuse instead of panicking later. It
//! must not read the environment or perform I/O; the CLI fills it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Where a client reports each request it sends, for metrics (the cluster's
/// Prometheus registry implements it). Called on the request's task: must not block.
pub trait Recorder: Send + Sync + std::fmt::Debug {
    /// One HTTP attempt to `registry` (the registry's host; a token request's is its
    /// realm's host; a redirect hop keeps the first host) with `method`, answered
    /// with `outcome`: `2xx`, `3xx`, `4xx`, `429`, `5xx` or `network` (no answer).
    /// `token`: a token request.
    fn request(&self, registry: &str, method: &str, outcome: &'static str, token: bool);

    /// `registry` reported `remaining` requests left in its rate-limit window
    /// (Docker Hub's `ratelimit-remaining`).
    fn rate_limit_remaining(&self, registry: &str, remaining: u64);
}

/// Tunables of a [`crate::Client`]. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (host or host:port) that may use plain http. Loopback registries
    /// always may, as Docker allows.
    pub insecure_registries: BTreeSet<String>,
    /// Extra (registry host, realm host) pairs allowed to receive credentials.
    pub trusted_realms: Vec<(String, String)>,
    /// Requests in flight to one registry at most.
    pub max_concurrency_per_registry: usize,
    /// Requests per second to one registry at most (`None`: no pacing). Build it with
    /// [`requests_per_second`] from outside input.
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
    /// Caps on tag listing across all pages of one repository.
    pub tag_limits: TagLimits,
    /// Told about every request (`None`: nobody).
    pub recorder: Option<Arc<dyn Recorder>>,
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
            tag_limits: TagLimits::default(),
            recorder: None,
        }
    }
}

/// How much one repository's tag list may hold, across all its pages. Exceeding a
/// cap is a `too_large` error naming the host, never an unbounded read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagLimits {
    /// Tags kept at most (after removing duplicates).
    pub max_tags: usize,
    /// Body bytes read at most, all pages together.
    pub max_bytes: usize,
    /// Pages read at most.
    pub max_pages: usize,
}

impl Default for TagLimits {
    fn default() -> Self {
        Self {
            max_tags: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_pages: 10_000,
        }
    }
}

/// The slowest pace [`requests_per_second`] accepts: one request per hour.
pub const MIN_REQUESTS_PER_SECOND: f64 = 1.0 / 3600.0;

/// A number from outside that is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    /// The requests-per-second value is not a positive finite number within range.
    #[error(
        "requests per second must be a number between {min} (one per hour) and {max}, got {got}"
    )]
    RequestsPerSecond { got: String, min: f64, max: f64 },
    /// A duration outside its accepted range.
    #[error("{name} must be between {min:?} and {max:?}, got {got:?}")]
    Duration {
        name: &'static str,
        got: Duration,
        min: Duration,
        max: Duration,
    },
    /// A count outside its accepted range.
    #[error("{name} must be between {min} and {max}, got {got}")]
    Count {
        name: &'static str,
        got: u64,
        min: u64,
        max: u64,
    },
}

impl ClientOptions {
    /// Checks every number against its accepted range, for options built from
    /// outside input (flags, config). The CLI calls this before building a client.
    pub fn validated(self) -> Result<Self, OptionError> {
        let day = Duration::from_secs(24 * 3600);
        let ms = Duration::from_millis(1);
        for (name, got, min, max) in [
            ("the request timeout", self.request_timeout, ms, day),
            ("the connect timeout", self.connect_timeout, ms, day),
            (
                "the longest Retry-After",
                self.max_retry_after,
                Duration::ZERO,
                day,
            ),
            (
                "the backoff base",
                self.backoff_base,
                Duration::ZERO,
                Duration::from_secs(60),
            ),
        ] {
            if !(min..=max).contains(&got) {
                return Err(OptionError::Duration {
                    name,
                    got,
                    min,
                    max,
                });
            }
        }
        let t = &self.tag_limits;
        for (name, got, min, max) in [
            (
                "the concurrency per registry",
                self.max_concurrency_per_registry as u64,
                1,
                10_000,
            ),
            (
                "the attempts per request",
                u64::from(self.max_attempts),
                1,
                100,
            ),
            ("the tag cap", t.max_tags as u64, 1, 10_000_000),
            ("the tag list byte cap", t.max_bytes as u64, 1024, 1 << 32),
            ("the tag page cap", t.max_pages as u64, 1, 1_000_000),
        ] {
            if !(min..=max).contains(&got) {
                return Err(OptionError::Count {
                    name,
                    got,
                    min,
                    max,
                });
            }
        }
        if let Some(rps) = self.requests_per_second {
            requests_per_second(rps)?;
        }
        Ok(self)
    }
}

/// Validates a requests-per-second value from outside: finite, at least one request
/// per hour (so the pace between requests stays bounded) and at most one million.
pub fn requests_per_second(value: f64) -> Result<f64, OptionError> {
    const MAX: f64 = 1_000_000.0;
    if value.is_finite() && (MIN_REQUESTS_PER_SECOND..=MAX).contains(&value) {
        Ok(value)
    } else {
        Err(OptionError::RequestsPerSecond {
            got: value.to_string(),
            min: MIN_REQUESTS_PER_SECOND,
            max: MAX,
        })
    }
}

/// The pause between two requests at `rps` requests per second; `None` for no pace.
/// Never panics: out-of-range values are clamped to the accepted range.
pub(crate) fn pace(rps: Option<f64>) -> Option<Duration> {
    let rps = rps.filter(|r| r.is_finite() && *r > 0.0)?;
    let secs = (1.0 / rps.max(MIN_REQUESTS_PER_SECOND)).min(3600.0);
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_second_is_range_checked() {
        for bad in [0.0, -1.0, 1e-300, 1e-9, f64::NAN, f64::INFINITY, 1e7] {
            assert!(requests_per_second(bad).is_err(), "{bad}");
        }
        for good in [MIN_REQUESTS_PER_SECOND, 0.5, 10.0, 1e6] {
            assert_eq!(requests_per_second(good), Ok(good));
        }
    }

    #[test]
    fn options_from_outside_are_range_checked() {
        assert!(ClientOptions::default().validated().is_ok());
        let bad = [
            ClientOptions {
                request_timeout: Duration::ZERO,
                ..Default::default()
            },
            ClientOptions {
                connect_timeout: Duration::from_secs(1_000_000_000 * 365 * 86400),
                ..Default::default()
            },
            ClientOptions {
                max_concurrency_per_registry: 0,
                ..Default::default()
            },
            ClientOptions {
                max_attempts: 1_000_000,
                ..Default::default()
            },
            ClientOptions {
                requests_per_second: Some(1e-300),
                ..Default::default()
            },
            ClientOptions {
                tag_limits: TagLimits {
                    max_tags: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
        ];
        for options in bad {
            let err = options.clone().validated().unwrap_err();
            assert!(err.to_string().contains("between"), "{err}");
        }
    }

    #[test]
    fn tiny_or_odd_paces_saturate_instead_of_panicking() {
        assert_eq!(pace(None), None);
        assert_eq!(pace(Some(0.0)), None);
        assert_eq!(pace(Some(f64::NAN)), None);
        assert_eq!(pace(Some(1e-300)), Some(Duration::from_secs(3600)));
        assert_eq!(pace(Some(1e-9)), Some(Duration::from_secs(3600)));
        assert_eq!(pace(Some(10.0)), Some(Duration::from_millis(100)));
    }
}
