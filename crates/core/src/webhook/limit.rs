//! Webhook pacing: a token bucket per source, a debounce per image, a replay guard.
//!
//! Owns the arithmetic that keeps a flood of deliveries from becoming a flood of
//! registry requests: a source spends one token per authenticated delivery
//! ([`TokenBucket`]), an image is re-checked at most once per debounce interval
//! ([`Debouncer`]), and a GitHub delivery ID is acted on once ([`ReplayGuard`]). Every
//! structure is bounded. It must not read the clock: `now` is always an argument.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// A sustained rate with a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many deliveries may arrive at once.
    pub burst: u32,
    /// How many deliveries per minute are refilled.
    pub per_minute: u32,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            burst: 10,
            per_minute: 60,
        }
    }
}

/// A token bucket: starts full (`burst` tokens), refills `per_minute / 60` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            tokens: f64::from(rate.burst),
            last: None,
        }
    }

    /// Takes a token if one is left at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            let refill = elapsed * f64::from(self.rate.per_minute) / 60.0;
            self.tokens = (self.tokens + refill).min(f64::from(self.rate.burst));
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why an image was not admitted for a re-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The image was re-checked less than the interval ago.
    Debounced,
    /// The debounce table is full of recent images; refusing is the safe side.
    Full,
}

/// At most one re-check per key per interval (leading edge: the first delivery wins,
/// later ones inside the interval are dropped and counted).
#[derive(Debug, Clone)]
pub struct Debouncer {
    interval: Duration,
    capacity: usize,
    last: HashMap<String, Instant>,
}

impl Debouncer {
    /// A debouncer remembering at most `capacity` keys.
    pub fn new(interval: Duration, capacity: usize) -> Self {
        Self {
            interval,
            capacity: capacity.max(1),
            last: HashMap::new(),
        }
    }

    /// Admits `key` at `now` unless it was admitted less than the interval ago.
    pub fn admit(&mut self, key: &str, now: Instant) -> Result<(), Refusal> {
        if let Some(at) = self.last.get(key)
            && now.saturating_duration_since(*at) < self.interval
        {
            return Err(Refusal::Debounced);
        }
        if !self.last.contains_key(key) && self.last.len() >= self.capacity {
            let interval = self.interval;
            self.last
                .retain(|_, at| now.saturating_duration_since(*at) < interval);
            if self.last.len() >= self.capacity {
                return Err(Refusal::Full);
            }
        }
        self.last.insert(key.to_owned(), now);
        Ok(())
    }
}

/// Remembers the last `capacity` delivery IDs; a repeated ID is a replay.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    capacity: usize,
    seen: HashSet<String>,
    order: VecDeque<String>,
}

/// The longest delivery ID remembered (GitHub's are 36-character GUIDs).
pub const DELIVERY_ID_MAX: usize = 128;

impl ReplayGuard {
    /// A guard remembering at most `capacity` IDs.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `id`; false when it was already seen. IDs longer than
    /// [`DELIVERY_ID_MAX`] are cut to that length before comparison.
    pub fn first_time(&mut self, id: &str) -> bool {
        let id: String = id.chars().take(DELIVERY_ID_MAX).collect();
        if self.seen.contains(&id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(id.clone());
        self.order.push_back(id);
        true
    }
}
