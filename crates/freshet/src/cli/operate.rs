//! What `freshet run` adds around its passes for operators, in both modes: the
//! notifier fed by every pass's report, the metrics every pass counts into, and for
//! `run --once` the bounded wait for deliveries and the textfile-collector file.
//!
//! Owns the wiring of [`freshet_notify::Notifier`] (sinks' secrets read from files
//! or env at start: a missing one is a usage error, exit 2) as a
//! [`PassObserver`], and the end of a one-shot run. Must not decide what a
//! notification says (`freshet_cluster::notices`) nor ever fail or delay a pass
//! because of a sink: delivery runs in the background and only `run --once` waits
//! for it, at most [`FLUSH_DEADLINE`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use freshet_cluster::metrics::{Metrics, textfile};
use freshet_cluster::{PassObserver, PassReport, Refresher, notices};
use freshet_notify::{Notifier, NotifierOptions};

use super::Failure;

/// The longest `run --once` waits for notifications before exiting.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(15);

/// Sends each pass's batch (a dry run's is empty).
struct NotifyEachPass(Arc<Notifier>);

impl PassObserver for NotifyEachPass {
    fn report(&self, report: &PassReport) {
        self.0.notify(&notices::batch(report));
    }
}

/// Starts the notifier of the config's `notifications` section (none without
/// sinks), registers its counters in `metrics` and makes `refresher` feed it.
pub fn notifications(
    refresher: Refresher,
    metrics: &mut Metrics,
) -> Result<(Refresher, Option<Arc<Notifier>>), Failure> {
    let config = &refresher.options().config.notifications;
    if config.sinks.is_empty() {
        return Ok((refresher, None));
    }
    let sinks = freshet_notify::load(config, &|k| std::env::var(k).ok())
        .context("notifications")
        .map_err(Failure::usage)?;
    let counters = freshet_notify::Metrics::default();
    metrics.register_unprefixed(|r| counters.register(r));
    let notifier = Notifier::start(
        config.cluster.clone(),
        sinks,
        NotifierOptions::default(),
        counters,
    )
    .context("notifications")?;
    let notifier = Arc::new(notifier);
    tracing::info!(sinks = config.sinks.len(), "notifications on");
    let refresher = refresher.with_observer(Arc::new(NotifyEachPass(notifier.clone())));
    Ok((refresher, Some(notifier)))
}

/// The end of `run --once`: waits (bounded) for notifications, then writes the
/// metrics file. Neither changes the exit code: a sink that is down is logged and
/// counted; an unwritable metrics file is logged.
pub async fn finish_once(
    notifier: Option<Arc<Notifier>>,
    metrics: &Metrics,
    metrics_file: Option<&Path>,
) {
    if let Some(n) = notifier {
        let left = n.flush(FLUSH_DEADLINE).await;
        if left.pending > 0 {
            tracing::warn!(
                pending = left.pending,
                "notifications not delivered before exiting"
            );
        }
    }
    if let Some(path) = metrics_file
        && let Err(e) = textfile::write_atomically(path, &metrics.encode_textfile())
    {
        tracing::error!(path = %path.display(), error = %e, "cannot write the metrics file");
    }
}

/// Records a one-shot pass in `metrics` (the controller's loop does it itself).
pub fn observe_once(metrics: &Metrics, report: &PassReport, took: Duration) {
    metrics.observe_duration(took);
    metrics.observe(report, report.at.unix_seconds() as f64);
}
