//! Where the cluster shell gets the time from: a [`Clock`] passed in.
//!
//! Owns the one place that reads the wall clock ([`SystemClock`]) and the clocks
//! tests and simulations use instead: [`FixedClock`] (one instant) and
//! [`TokioClock`] (an instant that moves with tokio's clock, so a test under
//! `tokio::time::pause()` drives the controller's ticks and its windows together
//! with `advance`). Every decision gets its time from here, through the caller:
//! passes, windows, audit annotations, `restartedAt` and `status`. Must not decide
//! anything, and nothing else in the shell may read the clock for a decision.

use std::fmt;
use std::sync::Arc;

use freshet_core::refresh::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, to the second.
    fn now(&self) -> Timestamp;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_utc(chrono::Utc::now())
    }
}

/// Always the same instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// `origin` plus the time tokio's clock moved since this clock was made: under
/// `tokio::time::pause()`, `advance` moves it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `origin` now.
    pub fn starting_at(origin: Timestamp) -> Self {
        Self {
            origin,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().duration_since(self.start);
        self.origin.checked_add(elapsed).unwrap_or(self.origin)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time_only() {
        let origin = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let clock = TokioClock::starting_at(origin);
        assert_eq!(clock.now(), origin);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now().to_string(), "2026-11-23T10:01:30Z");
        assert_eq!(FixedClock(origin).now(), origin);
    }
}
