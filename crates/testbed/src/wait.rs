//! Waiting for a condition in tests: poll it until it holds or a deadline passes.
//!
//! Owns the one poll loop the integration tests share, so no test sleeps for a fixed
//! time: the short pause between polls only paces the checks, and the deadline turns
//! a condition that never holds into a failure naming what was awaited.

use std::time::Duration;

/// How long a condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Polls `check` until it returns `Some`; panics naming `what` after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_or(what, || {}, check).await
}

/// Like [`wait_for`], calling `on_timeout` first (to print the logs of the processes
/// the test was waiting on).
pub async fn wait_for_or<T, F, Fut>(what: &str, on_timeout: impl FnOnce(), mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            on_timeout();
            panic!("timed out waiting for {what}");
        }
        // Paces the polls; the condition, not this pause, ends the wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
