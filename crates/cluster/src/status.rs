//! The worklist (`freshet status`): every enrolled workload and tracked image with
//! what it runs, what its policy would move it to now, its last refresh, its failure
//! streak and its last error.
//!
//! Owns the shape of a status row. Reads the cluster and asks registries like a pass
//! does (through the same [`crate::gather::Gatherer`], with the same pull secrets
//! per workload), but never writes. Decides nothing: the target, "pending", the
//! streak and the next due time come from the core's
//! [`freshet_core::refresh::worklist`], which reads the audit annotations with the
//! same reader as the plan; the time comes from the refresher's clock. A workload
//! whose enrollment is invalid gets one row saying why.

use freshet_core::refresh::Timestamp;
use freshet_core::refresh::worklist::worklist;
use serde::Serialize;

use crate::gather::GatherError;
use crate::observed::report::container_reports;
use crate::observed::{Reader, workload_ref};
use crate::pass::Refresher;
use crate::workloads::kind_name;

/// One tracked image of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct ImageStatus {
    /// `Deployment`, …
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The containers running it (empty for an image only followed by an env var).
    pub containers: Vec<String>,
    /// The tracked image (canonical).
    pub image: String,
    /// The policy.
    pub policy: String,
    /// The digest it was last refreshed to (or baselined at).
    pub digest: Option<String>,
    /// When.
    pub last_refresh: Option<String>,
    /// The newest allowed target now: a digest for digest watches, a tag otherwise.
    pub target: Option<String>,
    /// Whether the next run would change it.
    pub pending: bool,
    /// Failures in a row so far.
    pub failures: u32,
    /// The error recorded on the workload when its streak escalated.
    pub last_error: Option<String>,
    /// What the registry said now, if it failed.
    pub error: Option<String>,
    /// The workload's pull secrets that could not be used (missing, forbidden,
    /// malformed), Keel settings freshet ignores, a `freshet pin`, a pending
    /// approval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The workload's schedule, if it has one (otherwise every pass looks at it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// When that schedule fires next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<Timestamp>,
    /// What the pods run, per container (digests, platforms, stuck pulls, and how
    /// that compares with the tag and the record).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<freshet_core::runs::RunsReport>,
    /// Why its rollout waits (a maintenance window, the pacing budget), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<String>,
    /// When the queued rollout is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_until: Option<Timestamp>,
}

impl Refresher {
    /// The worklist, at the current state of the cluster and registries and the
    /// clock's time.
    pub async fn status(&self) -> Result<Vec<ImageStatus>, GatherError> {
        let now = self.clock().now();
        let gatherer = self.gatherer();
        let enrolled = gatherer.enrolled().await?;
        let refs: Vec<_> = enrolled.valid.iter().map(|(w, e)| (w, e)).collect();
        let gathered = gatherer.facts(&refs, None).await?;
        let read: Vec<_> = enrolled.valid.iter().map(|(w, _)| w).collect();
        let observed = Reader::new(self.kube().clone()).read(&read).await;
        let nodes = observed.node_index();
        let facts: Vec<_> = gathered
            .per_workload
            .iter()
            .map(|(set, _)| &gathered.facts[*set])
            .collect();
        let queue = self
            .queue(&enrolled.valid, &facts, now)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %crate::errors::error_chain(&e), "the pacing state could not be read");
                Default::default()
            });
        let mut out = Vec::new();
        for (w, message) in &enrolled.invalid {
            out.push(invalid_row(w, message));
        }
        for ((w, e), (set, warnings)) in enrolled.valid.iter().zip(&gathered.per_workload) {
            let wl = &w.workload;
            let owned = workload_ref(w)
                .map(|r| observed.owned(&r))
                .unwrap_or_default();
            let mut warnings = warnings.clone();
            warnings.extend(observed.warnings_for(&wl.namespace));
            let queued = match queue.get(&crate::safety::triage::gate_id(w)) {
                Some(crate::safety::GateDecision::Queued { due, reason }) => {
                    Some((reason.clone(), *due))
                }
                _ => None,
            };
            for row in worklist(wl, e, &gathered.facts[*set], now) {
                let runs = container_reports(
                    wl,
                    &row.image,
                    &row.containers,
                    row.target.as_deref().filter(|t| t.starts_with("sha256:")),
                    &owned,
                    &nodes,
                    &gathered.targets[*set],
                );
                out.push(ImageStatus {
                    kind: kind_name(wl.kind),
                    namespace: wl.namespace.clone(),
                    name: wl.name.clone(),
                    containers: row.containers,
                    image: row.image,
                    policy: row.policy,
                    digest: row.record.as_ref().map(|r| r.digest.clone()),
                    last_refresh: row.record.map(|r| r.at),
                    target: row.target,
                    pending: row.pending,
                    failures: row.failures,
                    last_error: row.last_error,
                    error: row.error,
                    warnings: warnings
                        .iter()
                        .cloned()
                        .chain(crate::gate::notes(w, now))
                        .collect(),
                    schedule: row.schedule,
                    next_due: row.next_due,
                    runs,
                    queued: queued.as_ref().map(|q| q.0.clone()),
                    queued_until: queued.as_ref().and_then(|q| q.1),
                });
            }
        }
        out.extend(self.argocd_status(now).await?);
        Ok(out)
    }
}

/// The row of a workload whose enrollment is invalid (bad annotations, a
/// `freshet.io/containers` naming no container, an image that does not parse): no
/// image is tracked, the error says why.
fn invalid_row(w: &crate::workloads::ReadWorkload, message: &str) -> ImageStatus {
    let wl = &w.workload;
    ImageStatus {
        kind: kind_name(wl.kind),
        namespace: wl.namespace.clone(),
        name: wl.name.clone(),
        containers: Vec::new(),
        image: "-".into(),
        policy: "invalid".into(),
        digest: None,
        last_refresh: None,
        target: None,
        pending: false,
        failures: 0,
        last_error: None,
        error: Some(format!("invalid enrollment: {message}")),
        warnings: Vec::new(),
        schedule: None,
        next_due: None,
        runs: Vec::new(),
        queued: None,
        queued_until: None,
    }
}
