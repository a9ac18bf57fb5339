//! Readiness (`/readyz`): this replica has read a list of workloads from the API
//! server, and the API server answers now.
//!
//! Owns the rule and its probe. A pass that listed the workloads counts as a
//! successful read; a pass that could not list them (the API unreachable) marks the
//! replica unready. Followers run no pass, so `/readyz` probes by itself when the
//! last word is older than [`FRESH`]: a one-item list of Deployments in the pass's
//! first namespace (or cluster-wide), bounded by [`PROBE_TIMEOUT`], which the RBAC
//! of both modes allows. Must not decide anything about workloads.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use tokio::time::Instant;

use crate::pass::Refresher;
use crate::report::PassReport;

/// How long a pass's or a probe's answer stands before `/readyz` probes again.
pub const FRESH: Duration = Duration::from_secs(5);
/// How long a probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The last word on the API: whether it answered, and when.
#[derive(Debug, Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Readiness {
    /// Not ready: nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a pass's result (`Ok`: its list was read).
    pub fn observe<E>(&self, result: &Result<PassReport, E>) {
        self.record(result.is_ok());
    }

    fn record(&self, ok: bool) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), ok));
    }

    /// Whether the replica is ready, probing the API when the last word is stale.
    pub async fn check(&self, refresher: &Refresher) -> bool {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, ok)) = last
            && at.elapsed() < FRESH
        {
            return ok;
        }
        let ok = probe(refresher).await;
        self.record(ok);
        ok
    }
}

/// A one-item list of Deployments where the passes list them.
async fn probe(refresher: &Refresher) -> bool {
    let options = refresher.options();
    let namespace = options
        .namespaces
        .as_ref()
        .or(options.config.namespaces.as_ref())
        .and_then(|l| l.first());
    let api: Api<Deployment> = match namespace {
        Some(ns) => Api::namespaced(refresher.kube().clone(), ns),
        None => Api::all(refresher.kube().clone()),
    };
    let params = ListParams::default().limit(1);
    match tokio::time::timeout(PROBE_TIMEOUT, api.list_metadata(&params)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::errors::error_chain(&e), "readiness: the API server refused the probe list");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: the API server did not answer the probe list in time");
            false
        }
    }
}
