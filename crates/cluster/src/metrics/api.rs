//! Kubernetes API write metrics: what the one writer sent and how it went.
//!
//! Owns `freshet_api_writes_total{resource,outcome}`: `resource` is `patch` (a
//! workload patch) or `event`; `outcome` is `ok`, `conflict` (409: the pass re-reads
//! and retries) or `error`. The [`crate::writer::Writer`] counts; the controller and
//! `run --once --metrics-file` export. Must not block.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of an API write.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `patch` or `event`.
    pub resource: &'static str,
    /// `ok`, `conflict` or `error`.
    pub outcome: &'static str,
}

/// API write counters; clones share them (the default counts into its own).
#[derive(Debug, Clone, Default)]
pub struct ApiWrites {
    writes: Family<WriteLabels, Counter>,
}

impl ApiWrites {
    /// Registers the family (prefixed `freshet_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "api_writes",
            "Kubernetes API writes by resource (patch, event) and outcome (ok, conflict, error)",
            self.writes.clone(),
        );
    }

    /// Counts one write.
    pub fn count(&self, resource: &'static str, outcome: &'static str) {
        self.writes
            .get_or_create(&WriteLabels { resource, outcome })
            .inc();
    }

    /// Writes counted so far (reading creates no series).
    pub fn get(&self, resource: &'static str, outcome: &'static str) -> u64 {
        self.writes
            .get(&WriteLabels { resource, outcome })
            .map_or(0, |c| c.get())
    }
}
