//! The controller mode: refresh passes on a fixed interval, by one leader at a time.
//!
//! Owns the loop of `freshet run` without `--once`: leader election on a
//! `coordination.k8s.io` Lease (through `kube-lease-manager`), one pass per interval
//! while leading, each pass covering the window since the previous one (so every
//! scheduled instant is seen once), metrics after every pass, and a clean stop on
//! shutdown (the pass in flight finishes, the lease is released so another replica
//! takes over at once). A failure streak at its threshold does not stop the loop: it
//! becomes a Warning Event on the workload (written by the pass) and a metric. A pass
//! that cannot run at all (the API unreachable) is logged, counted, and retried on
//! the next tick without moving the window forward. Must not decide anything: the
//! passes are [`Refresher::run_window`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use freshet_core::refresh::schedule;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::run::{Outcome, Refresher, error_chain};

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The lease could not be created or read (RBAC, a missing namespace).
    #[error(
        "cannot use lease {namespace}/{name} for leader election; check that the namespace exists and that freshet may get, create and patch leases there (deploy/overlays/controller grants it)"
    )]
    Lease {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
        /// The lease manager's error.
        #[source]
        source: LeaseManagerError,
    },
}

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a lease lasts unless renewed.
    pub duration: Duration,
    /// How long before expiry the holder renews it.
    pub grace: Duration,
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Time between passes.
    pub interval: Duration,
    /// Leader election (`None`: this replica always leads; run one replica only).
    pub lease: Option<LeaseOptions>,
}

/// Runs passes until `shutdown` resolves. Returns after releasing the lease.
pub async fn run(
    refresher: Refresher,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    tokio::pin!(shutdown);
    let (mut leading, lease_task) = match &options.lease {
        Some(lease) => {
            let manager = LeaseManagerBuilder::new(refresher.kube().clone(), &lease.name)
                .with_namespace(&lease.namespace)
                .with_identity(&lease.identity)
                .with_duration(lease.duration.as_secs().max(2))
                .with_grace(lease.grace.as_secs().max(1))
                .with_field_manager(format!("freshet-lease-{}", lease.identity))
                .build()
                .await
                .map_err(|source| ControllerError::Lease {
                    namespace: lease.namespace.clone(),
                    name: lease.name.clone(),
                    source,
                })?;
            tracing::info!(
                lease = %format!("{}/{}", lease.namespace, lease.name),
                identity = %lease.identity, "waiting for the leader lease"
            );
            let (rx, task) = manager.watch().await;
            (rx, Some(task))
        }
        None => (watch::channel(true).1, None),
    };
    let mut last: Option<DateTime<Utc>> = None;
    'outer: loop {
        // Follow: wait until this replica leads.
        while !*leading.borrow_and_update() {
            metrics.set_leader(false);
            tokio::select! {
                () = &mut shutdown => break 'outer,
                changed = leading.changed() => if changed.is_err() {
                    tracing::error!("the leader election task ended; stopping");
                    break 'outer;
                },
            }
        }
        metrics.set_leader(true);
        tracing::info!("leading: refresh passes start");
        let mut ticker = tokio::time::interval(options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break 'outer,
                changed = leading.changed() => {
                    if changed.is_err() {
                        tracing::error!("the leader election task ended; stopping");
                        break 'outer;
                    }
                    if !*leading.borrow_and_update() {
                        tracing::warn!("lost the leader lease: passes stop until it is won again");
                        // A new term starts from a fresh window.
                        last = None;
                        continue 'outer;
                    }
                }
                _ = ticker.tick() => {
                    last = pass(&refresher, &options, &metrics, last).await.or(last);
                }
            }
        }
    }
    metrics.set_leader(false);
    // Closing the channel makes the lease task release the lease and end.
    drop(leading);
    if let Some(task) = lease_task {
        match task.await {
            Ok(Ok(_)) => tracing::info!("released the leader lease"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "releasing the leader lease failed; it expires on its own")
            }
            Err(e) => tracing::warn!(error = %e, "the leader election task failed"),
        }
    }
    Ok(())
}

/// One pass over `(last, now]` (the last interval in a new term). Returns the time
/// the window now ends at, or `None` when the pass could not run.
async fn pass(
    refresher: &Refresher,
    options: &ControllerOptions,
    metrics: &Metrics,
    last: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    // Whole seconds: the window's end is written as RFC 3339 seconds.
    let now = Utc::now().trunc_subsecs(0);
    // Without `RunOptions::interval` (--ignore-schedules) every workload is due.
    let since = refresher.options().interval.and(last.or_else(|| {
        chrono::Duration::from_std(options.interval)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
    }));
    match refresher
        .run_window(since, &schedule::format_time(now))
        .await
    {
        Ok(report) => {
            metrics.observe(&report, now.timestamp_millis() as f64 / 1000.0);
            let outcome = report.outcome();
            let escalated: Vec<String> = report
                .workloads
                .iter()
                .filter(|w| !w.escalations.is_empty())
                .map(|w| format!("{}/{}/{}", w.kind, w.namespace, w.name))
                .collect();
            if outcome == Outcome::Escalated {
                tracing::error!(
                    escalated = ?escalated, writes = report.writes(), images = report.images,
                    "pass done: failure streaks at their threshold (see the Warning Events)"
                );
            } else {
                tracing::info!(
                    outcome = ?outcome, writes = report.writes(), images = report.images,
                    workloads = report.workloads.len(), "pass done"
                );
            }
            Some(now)
        }
        Err(e) => {
            metrics.observe_error();
            tracing::error!(error = %error_chain(&e), "pass failed; retrying on the next tick");
            None
        }
    }
}
