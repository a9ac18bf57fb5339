//! Prometheus metrics of the controller mode: what the passes did, who leads, and
//! which failure streaks are open.
//!
//! Owns the metric names and the mapping from a [`PassReport`] to metric values. In
//! controller mode a streak that reaches its threshold does not end the process (the
//! one-shot mode exits 3 instead): it shows here as `freshet_escalated_workloads` and
//! `freshet_failure_streak`, next to the Warning Event on the workload, so an alert
//! can page on it. Must not serve HTTP: the binary exposes [`Metrics::encode`].
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `freshet_passes_total` | counter | `outcome`: `ok`, `failed`, `escalated`, `error` |
//! | `freshet_refreshes_total` | counter | (workloads whose spec changed) |
//! | `freshet_writes_total` | counter | (patches accepted) |
//! | `freshet_escalated_workloads` | gauge | (streaks at their threshold) |
//! | `freshet_failure_streak` | gauge | `namespace`, `kind`, `name`, `image` |
//! | `freshet_last_pass_timestamp_seconds` | gauge | (last completed pass) |
//! | `freshet_pass_images` | gauge | (unique images asked about in the last pass) |
//! | `freshet_leader` | gauge | (1 while this replica holds the lease) |
//! | `freshet_pass_duration_seconds` | histogram | (passes that ran, focused ones included) |
//! | `freshet_registry_requests_total` | counter | `registry`, `method`, `outcome` ([`registry`]) |
//! | `freshet_registry_tokens_fetched_total` | counter | `registry` |
//! | `freshet_registry_ratelimit_remaining` | gauge | `registry` |
//! | `freshet_api_writes_total` | counter | `resource`, `outcome` ([`api`]) |
//! | `freshet_rollbacks_total` | counter | (rollbacks performed, [`safety`]) |
//! | `freshet_holds` | gauge | (workloads on hold) |
//! | `freshet_rollout_queue_length` | gauge | (workloads whose rollout waits: pacing, a window) |
//! | `freshet_notifications_{sent,failed,dropped}_total` | counters | registered with [`Metrics::register_unprefixed`] |
//!
//! The registry clients report to [`Metrics::registry_recorder`] (set it as
//! `ClientOptions::recorder`), the writer to [`Metrics::api_writes`] (set it as
//! `PassOptions::api_writes`). [`textfile`] writes the same text for node-exporter.

pub mod api;
pub mod registry;
pub mod safety;
pub mod textfile;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

pub use api::ApiWrites;
pub use registry::RegistryMetrics;
pub use safety::SafetyMetrics;

use crate::ready::Readiness;
use crate::report::{Outcome, PassReport, Status};
use safety::Scope;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct StreakLabels {
    namespace: String,
    kind: &'static str,
    name: String,
    image: String,
}

/// The controller's metrics. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    passes: Family<OutcomeLabels, Counter>,
    refreshes: Counter,
    writes: Counter,
    escalated: Gauge,
    streaks: Family<StreakLabels, Gauge>,
    last_pass: Gauge<f64, AtomicU64>,
    images: Gauge,
    leader: Gauge,
    streak_copy: Mutex<BTreeMap<StreakLabels, (i64, bool)>>,
    duration: Histogram,
    registries: RegistryMetrics,
    api: ApiWrites,
    safety: SafetyMetrics,
    safety_copy: Mutex<safety::SafetyState>,
    unprefixed: Registry,
    readiness: Readiness,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("freshet");
        let m = Metrics {
            registry: Registry::default(),
            passes: Family::default(),
            refreshes: Counter::default(),
            writes: Counter::default(),
            escalated: Gauge::default(),
            streaks: Family::default(),
            last_pass: Gauge::default(),
            images: Gauge::default(),
            leader: Gauge::default(),
            streak_copy: Mutex::default(),
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            registries: RegistryMetrics::default(),
            api: ApiWrites::default(),
            safety: SafetyMetrics::default(),
            safety_copy: Mutex::default(),
            unprefixed: Registry::default(),
            readiness: Readiness::new(),
        };
        registry.register(
            "passes",
            "Refresh passes, by outcome (error: the pass could not run at all)",
            m.passes.clone(),
        );
        registry.register(
            "refreshes",
            "Workloads whose spec a pass changed",
            m.refreshes.clone(),
        );
        registry.register("writes", "Patches accepted by the API", m.writes.clone());
        registry.register(
            "escalated_workloads",
            "Workloads with a failure streak at its threshold (as of the pass that last looked at each)",
            m.escalated.clone(),
        );
        registry.register(
            "failure_streak",
            "Resolve failures in a row, per workload and image (open streaks only)",
            m.streaks.clone(),
        );
        registry.register(
            "last_pass_timestamp_seconds",
            "When the last completed pass ran (Unix time)",
            m.last_pass.clone(),
        );
        registry.register(
            "pass_images",
            "Unique images the last pass asked registries about",
            m.images.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            m.leader.clone(),
        );
        registry.register(
            "pass_duration_seconds",
            "How long passes took (listing, resolving, writing)",
            m.duration.clone(),
        );
        m.registries.register(&mut registry);
        m.api.register(&mut registry);
        registry.register(
            "rollbacks",
            "Rollbacks performed after failed rollouts",
            m.safety.rollbacks.clone(),
        );
        registry.register("holds", "Workloads on hold", m.safety.holds.clone());
        registry.register(
            "rollout_queue_length",
            "Updates waiting for their turn (rollout pacing)",
            m.safety.queue.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Registers metrics that carry their full name (`freshet_notifications_…`, from
    /// `freshet-notify`), before the metrics are shared.
    pub fn register_unprefixed(&mut self, register: impl FnOnce(&mut Registry)) {
        register(&mut self.unprefixed);
    }

    /// What registry clients report to (`ClientOptions::recorder`).
    pub fn registry_recorder(&self) -> Arc<dyn freshet_registry::Recorder> {
        Arc::new(self.registries.clone())
    }

    /// What the writer counts into (`PassOptions::api_writes`).
    pub fn api_writes(&self) -> ApiWrites {
        self.api.clone()
    }

    /// What `/readyz` answers from (the controller loop feeds it each pass).
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The safety gauges ([`Metrics::observe`] sets them from each report).
    pub fn safety(&self) -> &SafetyMetrics {
        &self.safety
    }

    /// Records how long a pass took (passes that could not run included).
    pub fn observe_duration(&self, took: Duration) {
        self.duration.observe(took.as_secs_f64());
    }

    /// Records a completed pass over every enrolled workload at `unix_time`.
    pub fn observe(&self, report: &PassReport, unix_time: f64) {
        self.observe_in(report, unix_time, Scope::Full);
    }

    /// Records a completed focused pass (a registry webhook's: its report lists only
    /// the workloads tracking the hooked images) at `unix_time`.
    pub fn observe_focused(&self, report: &PassReport, unix_time: f64) {
        self.observe_in(report, unix_time, Scope::Focused);
    }

    fn observe_in(&self, report: &PassReport, unix_time: f64, scope: Scope) {
        self.observe_safety(report, scope);
        let outcome = match report.outcome() {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Escalated => "escalated",
        };
        self.passes.get_or_create(&OutcomeLabels { outcome }).inc();
        let refreshed = report
            .workloads
            .iter()
            .filter(|w| w.status == Status::Refreshed && w.written)
            .count();
        self.refreshes.inc_by(refreshed as u64);
        self.writes.inc_by(report.writes() as u64);
        // Streaks of workloads a pass did not look at (not due) keep their value;
        // the others are replaced by what the pass found.
        let looked_at: Vec<_> = report
            .workloads
            .iter()
            .filter(|w| w.status != Status::NotDue)
            .collect();
        let seen: BTreeSet<(&str, &str, &str)> = looked_at
            .iter()
            .map(|w| (w.namespace.as_str(), w.kind, w.name.as_str()))
            .collect();
        let mut streaks = self.streak_copy.lock().unwrap_or_else(|e| e.into_inner());
        streaks.retain(|l, _| !seen.contains(&(l.namespace.as_str(), l.kind, l.name.as_str())));
        for w in looked_at {
            let failures = w.transient.iter().map(|f| (f, false));
            for (f, escalated) in failures.chain(w.escalations.iter().map(|f| (f, true))) {
                let labels = StreakLabels {
                    namespace: w.namespace.clone(),
                    kind: w.kind,
                    name: w.name.clone(),
                    image: f.image.clone(),
                };
                streaks.insert(labels, (i64::from(f.count), escalated));
            }
        }
        // prometheus-client cannot iterate a family, hence the copy.
        self.streaks.clear();
        for (labels, (count, _)) in streaks.iter() {
            self.streaks.get_or_create(labels).set(*count);
        }
        let escalated: BTreeSet<_> = streaks
            .iter()
            .filter(|(_, (_, at_threshold))| *at_threshold)
            .map(|(l, _)| (&l.namespace, l.kind, &l.name))
            .collect();
        self.escalated
            .set(i64::try_from(escalated.len()).unwrap_or(i64::MAX));
        self.images
            .set(i64::try_from(report.images).unwrap_or(i64::MAX));
        self.last_pass.set(unix_time);
    }

    fn observe_safety(&self, report: &PassReport, scope: Scope) {
        let t = safety::tally(report);
        self.safety.rollbacks.inc_by(t.rollbacks);
        let mut state = self.safety_copy.lock().unwrap_or_else(|e| e.into_inner());
        let (held, queued) = state.apply(&t, scope);
        self.safety
            .holds
            .set(i64::try_from(held).unwrap_or(i64::MAX));
        self.safety
            .queue
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
    }

    /// Records a pass that could not run (the cluster unreachable, a list refused).
    pub fn observe_error(&self) {
        self.passes
            .get_or_create(&OutcomeLabels { outcome: "error" })
            .inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The metrics in the Prometheus text format (OpenMetrics).
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.unprefixed);
        let _ = encode_eof(&mut out);
        out
    }

    /// The metrics in the Prometheus text format 0.0.4, for node-exporter's textfile
    /// collector.
    pub fn encode_textfile(&self) -> String {
        textfile::to_prometheus_text(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::WorkloadReport;
    use freshet_core::refresh::Streak;

    fn workload(name: &str, status: Status, failing: Option<u32>) -> WorkloadReport {
        let failure = failing.map(|count| Streak {
            image: "ghcr.io/acme/api:1".into(),
            count,
            message: "connection refused".into(),
        });
        WorkloadReport {
            transient: failure
                .clone()
                .into_iter()
                .filter(|f| f.count < 3)
                .collect(),
            escalations: failure.into_iter().filter(|f| f.count >= 3).collect(),
            ..crate::report::fixtures::workload(name, status, status != Status::NotDue)
        }
    }

    fn report(workloads: Vec<WorkloadReport>) -> PassReport {
        crate::report::fixtures::pass(false, "2026-11-23T10:00:00Z", workloads)
    }

    #[test]
    fn streaks_follow_the_passes_and_survive_passes_that_skip_the_workload() {
        let m = Metrics::new();
        m.observe(
            &report(vec![
                workload("a", Status::Escalated, Some(3)),
                workload("b", Status::Recorded, Some(1)),
            ]),
            1.0,
        );
        let text = m.encode();
        assert!(text.contains("freshet_escalated_workloads 1"), "{text}");
        assert!(
            text.contains("freshet_passes_total{outcome=\"escalated\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("name=\"a\",image=\"ghcr.io/acme/api:1\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("name=\"b\",image=\"ghcr.io/acme/api:1\"} 1"),
            "{text}"
        );
        // a is not due (its streak stays); b succeeded (its streak goes).
        m.observe(
            &report(vec![
                workload("a", Status::NotDue, None),
                workload("b", Status::Current, None),
            ]),
            2.0,
        );
        let text = m.encode();
        assert!(
            text.contains("name=\"a\",image=\"ghcr.io/acme/api:1\"} 3"),
            "{text}"
        );
        assert!(!text.contains("name=\"b\""), "{text}");
        assert!(
            text.contains("freshet_escalated_workloads 1"),
            "still failing: {text}"
        );
        assert!(
            text.contains("freshet_passes_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("freshet_last_pass_timestamp_seconds 2.0"),
            "{text}"
        );
        m.observe_error();
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains("freshet_passes_total{outcome=\"error\"} 1"),
            "{text}"
        );
        assert!(text.contains("freshet_leader 1"), "{text}");
    }
}
