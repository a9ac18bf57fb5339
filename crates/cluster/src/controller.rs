//! The controller mode: refresh passes on a fixed interval, by one leader at a time.
//!
//! Owns the loop of `freshet run` without `--once`: one pass per interval while
//! this replica leads ([`crate::lease`]), each pass covering the window since the
//! previous one (so every scheduled instant is seen once), metrics after every pass,
//! and a clean stop on shutdown (the pass in flight finishes, the lease is released
//! so another replica takes over at once). A failure streak at its threshold does
//! not stop the loop: it becomes a Warning Event on the workload (written by the
//! pass) and a metric. A pass that cannot run at all (the API unreachable) is
//! logged, counted, and retried on the next tick without moving the window forward.
//! Between ticks, images named by registry webhooks ([`Rechecks`]) make the leader
//! run a focused pass at once ([`Passes::run_focused`]) over the current window,
//! which does not move. Every pass's duration and result feed the metrics and
//! readiness. Ticks come from tokio's clock and window times from the [`Clock`], so
//! tests drive both with paused time. The workloads come from the watched store the
//! caller set up ([`Refresher::watching`]), so a steady pass sends registry requests
//! only; each "pass done" line carries the pass's request counts. Must not decide
//! anything: the passes are
//! [`Refresher::run_window`] behind the [`Passes`] trait.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use freshet_core::Reference;
use freshet_core::refresh::{Timestamp, Window};

use crate::clock::SharedClock;
use crate::errors::error_chain;
use crate::lease::{Leadership, LeaseError, LeaseOptions};
use crate::metrics::Metrics;
use crate::pass::{PassError, Refresher};
use crate::report::{Outcome, PassReport};

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Leader election could not start.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Time between passes.
    pub interval: Duration,
    /// Leader election (`None`: this replica always leads; run one replica only).
    pub lease: Option<LeaseOptions>,
}

/// What the loop runs on each tick: a pass over a window. (The loop runs on the
/// caller's task, so the pass need not be `Send`.)
pub trait Passes {
    /// One pass over `window`.
    fn run_window(&self, window: Window) -> impl Future<Output = Result<PassReport, PassError>>;

    /// A pass over `window` limited to the workloads that track one of
    /// `repositories` (`registry/repository`): a registry webhook's re-check.
    fn run_focused(
        &self,
        window: Window,
        repositories: &BTreeSet<String>,
    ) -> impl Future<Output = Result<PassReport, PassError>>;
}

impl Passes for Refresher {
    fn run_window(&self, window: Window) -> impl Future<Output = Result<PassReport, PassError>> {
        Refresher::run_window(self, window)
    }

    fn run_focused(
        &self,
        window: Window,
        repositories: &BTreeSet<String>,
    ) -> impl Future<Output = Result<PassReport, PassError>> {
        Refresher::run_focused(self, window, repositories)
    }
}

/// Images to re-check at once (a registry webhook's), drained by the leader's loop.
pub type Rechecks = tokio::sync::mpsc::Receiver<Reference>;

/// The most repositories one re-check pass covers (the rest wait for the next).
pub const MAX_RECHECK_BATCH: usize = 256;

/// Runs passes until `shutdown` resolves. Returns after releasing the lease.
pub async fn run(
    refresher: Refresher,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    let (_keep, rechecks) = tokio::sync::mpsc::channel(1);
    run_with(refresher, options, metrics, rechecks, shutdown).await
}

/// [`run`], and while leading, a focused pass as soon as `rechecks` names images
/// (between ticks; the window is the regular one and does not move, so the next
/// tick still sees every scheduled instant). A follower drops what it receives.
pub async fn run_with(
    refresher: Refresher,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    mut rechecks: Rechecks,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    let leadership = match &options.lease {
        Some(lease) => Leadership::elect(refresher.kube().clone(), lease).await?,
        None => Leadership::always(),
    };
    let ticks = Ticks {
        interval: options.interval,
        // Without `PassOptions::interval` (--ignore-schedules) every workload is due.
        schedules: refresher.options().interval.is_some(),
        clock: refresher.clock().clone(),
    };
    run_loop_with(
        &refresher,
        leadership,
        ticks,
        &metrics,
        &mut rechecks,
        shutdown,
    )
    .await;
    Ok(())
}

/// When passes run and which window each covers.
#[derive(Debug, Clone)]
pub struct Ticks {
    /// Time between passes.
    pub interval: Duration,
    /// Whether schedules apply (`false`: every workload is due in every pass).
    pub schedules: bool,
    /// Where each pass's time comes from.
    pub clock: SharedClock,
}

impl Ticks {
    /// The window of a pass at `now` after the pass that ended at `last` (the last
    /// interval in a new term).
    pub fn window(&self, last: Option<Timestamp>, now: Timestamp) -> Window {
        if !self.schedules {
            return Window::everything(now);
        }
        Window {
            since: last.or_else(|| now.checked_sub(self.interval)),
            now,
        }
    }
}

/// The loop: follow until leading, then one pass per tick until the lease is lost
/// (back to following, with a fresh window) or `shutdown`.
pub async fn run_loop(
    passes: &impl Passes,
    leadership: Leadership,
    ticks: Ticks,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let (_keep, mut rechecks) = tokio::sync::mpsc::channel(1);
    run_loop_with(passes, leadership, ticks, metrics, &mut rechecks, shutdown).await;
}

/// [`run_loop`] with re-checks (see [`run_with`]).
pub async fn run_loop_with(
    passes: &impl Passes,
    mut leadership: Leadership,
    ticks: Ticks,
    metrics: &Metrics,
    rechecks: &mut Rechecks,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut last: Option<Timestamp> = None;
    'outer: loop {
        // Follow: wait until this replica leads.
        while !*leadership.receiver().borrow_and_update() {
            metrics.set_leader(false);
            tokio::select! {
                () = &mut shutdown => break 'outer,
                changed = leadership.receiver().changed() => if changed.is_err() {
                    tracing::error!("the leader election task ended; stopping");
                    break 'outer;
                },
                Some(image) = rechecks.recv() => {
                    tracing::debug!(image = %image, "not leading: the leader's passes cover this image");
                }
            }
        }
        metrics.set_leader(true);
        tracing::info!("leading: refresh passes start");
        let mut ticker = tokio::time::interval(ticks.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break 'outer,
                changed = leadership.receiver().changed() => {
                    if changed.is_err() {
                        tracing::error!("the leader election task ended; stopping");
                        break 'outer;
                    }
                    if !*leadership.receiver().borrow_and_update() {
                        tracing::warn!("lost the leader lease: passes stop until it is won again");
                        // A new term starts from a fresh window.
                        last = None;
                        continue 'outer;
                    }
                }
                _ = ticker.tick() => {
                    let window = ticks.window(last, ticks.clock.now());
                    last = pass(passes, metrics, window, None).await.or(last);
                }
                Some(image) = rechecks.recv() => {
                    let focus = drain(image, rechecks);
                    let window = ticks.window(last, ticks.clock.now());
                    pass(passes, metrics, window, Some(&focus)).await;
                }
            }
        }
    }
    metrics.set_leader(false);
    leadership.release().await;
}

/// `first` and whatever else is queued, as repositories (at most [`MAX_RECHECK_BATCH`]).
fn drain(first: Reference, rechecks: &mut Rechecks) -> BTreeSet<String> {
    let mut focus = BTreeSet::from([first.name()]);
    while focus.len() < MAX_RECHECK_BATCH {
        match rechecks.try_recv() {
            Ok(image) => focus.insert(image.name()),
            Err(_) => break,
        };
    }
    focus
}

/// One pass over `window` (only the workloads tracking `focus`, when given).
/// Returns the time the window now ends at, or `None` when the pass could not run.
async fn pass(
    passes: &impl Passes,
    metrics: &Metrics,
    window: Window,
    focus: Option<&BTreeSet<String>>,
) -> Option<Timestamp> {
    let started = tokio::time::Instant::now();
    let result = match focus {
        None => passes.run_window(window).await,
        Some(focus) => {
            tracing::info!(repositories = ?focus, "registry webhook: re-checking at once");
            passes.run_focused(window, focus).await
        }
    };
    let elapsed = started.elapsed();
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    metrics.observe_duration(elapsed);
    metrics.readiness().observe(&result);
    match result {
        Ok(report) => {
            let at = report.at.unix_seconds() as f64;
            match focus {
                None => metrics.observe(&report, at),
                Some(_) => metrics.observe_focused(&report, at),
            }
            let outcome = report.outcome();
            if outcome == Outcome::Escalated {
                let escalated: Vec<String> = report
                    .workloads
                    .iter()
                    .filter(|w| !w.escalations.is_empty())
                    .map(|w| format!("{}/{}/{}", w.kind, w.namespace, w.name))
                    .collect();
                tracing::error!(
                    escalated = ?escalated, writes = report.writes(), images = report.images,
                    "pass done: failure streaks at their threshold (see the Warning Events)"
                );
            } else {
                let r = &report.requests.registry;
                let api = report.requests.api.unwrap_or_default();
                tracing::info!(
                    outcome = ?outcome, writes = report.writes(), images = report.images,
                    workloads = report.workloads.len(),
                    registry_requests = r.requests, manifest_heads = r.manifest_heads,
                    manifest_gets = r.manifest_gets, token_requests = r.token_requests,
                    pings = r.pings, api_lists = api.lists, api_gets = api.gets,
                    api_patches = api.patches, api_creates = api.creates, elapsed_ms,
                    "pass done"
                );
            }
            Some(window.now)
        }
        Err(e) => {
            metrics.observe_error();
            tracing::error!(error = %error_chain(&e), "pass failed; retrying on the next tick");
            None
        }
    }
}

#[cfg(test)]
mod tests;
