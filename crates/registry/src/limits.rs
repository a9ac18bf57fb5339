//! Per-registry limits: the concurrency cap, the requests-per-second pace, the pause
//! after a `429`, and Docker Hub's `ratelimit-*` headers.
//!
//! Owns [`Limits`] (one per registry host) and the slot arithmetic ([`take_slot`]).
//! It decides when a request may go and remembers what the registry said about its
//! limits; it must not send requests or know about auth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::Semaphore;
use tokio::time::Instant;

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

/// The limits of one registry host.
pub(crate) struct Limits {
    host: String,
    semaphore: Arc<Semaphore>,
    pace: Option<Duration>,
    next_slot: tokio::sync::Mutex<Instant>,
    rate_limit: Mutex<Option<RateLimit>>,
    warned_low: AtomicBool,
}

/// Books the next request slot: the later of `now` and the booked `next`; the slot
/// after it is one `pace` later. With no pace every request goes at once, but a 429
/// pause (which moves `next` forward) still holds everyone back.
pub(crate) fn take_slot(next: &mut Instant, now: Instant, pace: Duration) -> Instant {
    let slot = (*next).max(now);
    *next = slot + pace;
    slot
}

impl Limits {
    pub(crate) fn new(host: &str, max_concurrency: usize, pace: Option<Duration>) -> Self {
        Self {
            host: host.to_owned(),
            semaphore: Arc::new(Semaphore::new(max_concurrency.max(1))),
            pace,
            next_slot: tokio::sync::Mutex::new(Instant::now()),
            rate_limit: Mutex::new(None),
            warned_low: AtomicBool::new(false),
        }
    }

    /// Waits for a concurrency permit and the next paced slot.
    pub(crate) async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
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
    pub(crate) async fn pause_until(&self, until: Instant) {
        let mut next = self.next_slot.lock().await;
        *next = (*next).max(until);
    }

    /// The last rate-limit state the registry reported.
    pub(crate) fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit.lock().ok()?.clone()
    }

    /// Remembers Docker Hub's `ratelimit-*` headers; warns once when nearly used up.
    pub(crate) fn record_rate_limit(&self, headers: &HeaderMap) {
        let Some(state) = parse_rate_limit(headers) else {
            return;
        };
        if let Some(limit) = state.limit
            && state.remaining.saturating_mul(10) < limit
            && !self.warned_low.swap(true, Ordering::Relaxed)
        {
            let remaining = state.remaining;
            tracing::warn!(
                registry = self.host,
                remaining,
                limit,
                "registry rate limit nearly used up: {remaining} of {limit} requests left in this window; authenticate (docker login) or add a pull-through cache"
            );
        }
        *self.rate_limit.lock().expect("rate limit lock") = Some(state);
    }
}

/// `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600`.
pub(crate) fn parse_rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    let remaining = header_number(headers, "ratelimit-remaining")?;
    let limit = header_number(headers, "ratelimit-limit");
    let window_secs = headers
        .get("ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(";w=").nth(1))
        .and_then(|w| w.trim().parse().ok());
    Some(RateLimit {
        limit,
        remaining,
        window_secs,
    })
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?;
    v.split(';').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers_parse() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-limit", "100;w=21600".parse().unwrap());
        h.insert("ratelimit-remaining", "76;w=21600".parse().unwrap());
        assert_eq!(header_number(&h, "ratelimit-limit"), Some(100));
        assert_eq!(header_number(&h, "ratelimit-remaining"), Some(76));
        assert_eq!(
            parse_rate_limit(&h),
            Some(RateLimit {
                limit: Some(100),
                remaining: 76,
                window_secs: Some(21600)
            })
        );
    }

    #[test]
    fn a_huge_remaining_count_does_not_overflow() {
        let limits = Limits::new("h", 1, None);
        let mut h = HeaderMap::new();
        h.insert("ratelimit-limit", "100".parse().unwrap());
        h.insert("ratelimit-remaining", u64::MAX.to_string().parse().unwrap());
        limits.record_rate_limit(&h);
        assert_eq!(limits.rate_limit().unwrap().remaining, u64::MAX);
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
