//! Where the safety layer meets a pass: each enrolled workload is followed (a
//! recorded rollout), refreshed at once (nothing to roll out), or sent to the
//! [`Gate`] with the others whose plans start a rollout.
//!
//! Owns that triage and the release of the gated workloads: those the gate admits
//! are refreshed like any other; the others are reported `queued` with when they
//! are due and why. Must not decide: the guard, the gate and the core do.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use futures::StreamExt as _;

use freshet_core::refresh::{Enrollment, ImageFacts, RunsFacts, Timestamp};

use super::budget::{BudgetError, BudgetStore};
use super::follow::{Followed, record_of, rule_of};
use super::gate::{Gate, GateDecision, GateRequest};
use super::guard::guarded_plan;
use crate::errors::error_chain;
use crate::pass::Refresher;
use crate::report::{Status, WorkloadReport};
use crate::workloads::{ReadWorkload, kind_name};

/// A workload waiting for the gate: the workload, its enrollment, its set of pull
/// secrets (index into the pass's facts), its secret warnings, its request, and
/// what its pods run.
type Entry<'a> = (
    ReadWorkload,
    Enrollment,
    usize,
    Vec<String>,
    GateRequest,
    Option<RunsFacts<'a>>,
);

/// The workloads of one pass whose plans start a rollout, and the rollouts still
/// in progress.
#[derive(Debug, Default)]
pub struct Pending<'a> {
    entries: Vec<Entry<'a>>,
    in_progress: u32,
}

/// The pending list, locked (a panic while it was held cannot leave it half
/// written: every change is one push or one increment).
fn lock<'m, 'a>(pending: &'m Mutex<Pending<'a>>) -> MutexGuard<'m, Pending<'a>> {
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Refresher {
    /// `Some(timeout)` when rollouts are recorded and followed (`None` inside:
    /// the workload's own deadline), `None` when not.
    fn follow_deadline(&self) -> Option<Option<std::time::Duration>> {
        let o = self.options();
        o.follow_rollouts.then_some(o.health_timeout)
    }

    /// An empty list of workloads waiting for the gate.
    pub(crate) fn pending<'a>(&self) -> Pending<'a> {
        Pending::default()
    }

    /// The plan freshet may write for `w` ([`guarded_plan`] with this refresher's
    /// health timeout).
    pub(crate) fn guarded(
        &self,
        w: &ReadWorkload,
        e: &Enrollment,
        facts: &ImageFacts,
        runs: Option<&RunsFacts<'_>>,
        now: Timestamp,
    ) -> Result<freshet_core::refresh::WorkloadPlan, String> {
        guarded_plan(w, e, facts, runs, now, self.follow_deadline()).map(|g| g.plan)
    }

    /// Follows, refreshes, or queues `w` for the gate (`None`: queued; its report
    /// comes from [`Refresher::release`]). Workloads are triaged concurrently, so
    /// `pending` is shared; its order does not matter (the gate orders its queue).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn triage<'a>(
        &self,
        w: ReadWorkload,
        e: Enrollment,
        (set, facts): (usize, &ImageFacts),
        runs: Option<RunsFacts<'a>>,
        warnings: Vec<String>,
        now: Timestamp,
        pending: &Mutex<Pending<'a>>,
    ) -> Option<WorkloadReport> {
        let w = if self.options().follow_rollouts && record_of(&w).is_some() {
            match self.follow(&w, now).await {
                Followed::Done(mut r) => {
                    if r.status == Status::Following {
                        lock(pending).in_progress += 1;
                    }
                    r.warnings.extend(warnings);
                    return Some(r);
                }
                Followed::Healthy(now_read) => now_read,
            }
        } else {
            w
        };
        let guarded = match guarded_plan(&w, &e, facts, runs.as_ref(), now, self.follow_deadline())
        {
            Ok(g) => g,
            Err(message) => return Some(WorkloadReport::failed(&w, message)),
        };
        if !guarded.starts_rollout {
            let mut r = self.refresh(w, e, facts, runs.as_ref(), now).await;
            r.warnings.extend(warnings);
            return Some(r);
        }
        let request = self.gate_request(&w, now);
        lock(pending)
            .entries
            .push((w, e, set, warnings, request, runs));
        None
    }

    /// What `w` asks the gate at `now`.
    pub(crate) fn gate_request(&self, w: &ReadWorkload, now: Timestamp) -> GateRequest {
        let rule = rule_of(&self.options().config, w);
        GateRequest {
            id: gate_id(w),
            namespace: w.workload.namespace.clone(),
            rule: rule.map(|r| r.index),
            waiting_since: now.utc(),
            windows: rule.map(|r| r.safety.windows.clone()).unwrap_or_default(),
        }
    }

    /// The gate's decisions for the workloads whose plans would start a rollout now
    /// (for `status`: nothing is written).
    pub(crate) async fn queue(
        &self,
        enrolled: &[(ReadWorkload, Enrollment)],
        facts: &[&ImageFacts],
        now: Timestamp,
    ) -> Result<BTreeMap<String, GateDecision>, BudgetError> {
        let mut requests = Vec::new();
        let mut in_progress = 0;
        for ((w, e), facts) in enrolled.iter().zip(facts) {
            if self.options().follow_rollouts && record_of(w).is_some() {
                in_progress += 1;
                continue;
            }
            let starts = guarded_plan(w, e, facts, None, now, self.follow_deadline())
                .is_ok_and(|g| g.starts_rollout);
            if starts {
                requests.push(self.gate_request(w, now));
            }
        }
        let options = self.options();
        Gate::new(
            options.config.pacing.clone(),
            BudgetStore::new(self.kube(), &options.state_namespace),
        )
        .admit(&requests, in_progress, now.utc(), true)
        .await
    }

    /// Passes the pending workloads through the gate: refreshes those it admits,
    /// reports the others as queued.
    pub(crate) async fn release(
        &self,
        pending: Pending<'_>,
        facts: &[ImageFacts],
        now: Timestamp,
    ) -> Vec<WorkloadReport> {
        if pending.entries.is_empty() {
            return Vec::new();
        }
        let options = self.options();
        let gate = Gate::new(
            options.config.pacing.clone(),
            BudgetStore::new(self.kube(), &options.state_namespace),
        );
        let requests: Vec<GateRequest> = pending.entries.iter().map(|e| e.4.clone()).collect();
        let decisions = match gate
            .admit(&requests, pending.in_progress, now.utc(), options.dry_run)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                let message = format!("the pacing gate failed: {}", error_chain(&e));
                tracing::error!(error = %message, "no rollout starts in this pass");
                return pending
                    .entries
                    .iter()
                    .map(|(w, ..)| WorkloadReport::failed(w, message.clone()))
                    .collect();
            }
        };
        let decisions = &decisions;
        futures::stream::iter(pending.entries)
            .map(|(w, e, set, warnings, request, runs)| async move {
                let mut r = match decisions.get(&request.id) {
                    Some(GateDecision::Queued { due, reason }) => {
                        tracing::info!(workload = %request.id, due = ?due.map(|d| d.to_string()), "queued: {reason}");
                        let mut r = WorkloadReport::new(&w, Status::Queued);
                        r.next_due = *due;
                        r.warnings.push(reason.clone());
                        r
                    }
                    _ => self.refresh(w, e, &facts[set], runs.as_ref(), now).await,
                };
                r.warnings.extend(warnings);
                r
            })
            .buffer_unordered(options.max_writes.max(1))
            .collect()
            .await
    }
}

/// The gate's id of a workload (`Deployment/team/web`).
pub fn gate_id(w: &ReadWorkload) -> String {
    format!(
        "{}/{}/{}",
        kind_name(w.workload.kind),
        w.workload.namespace,
        w.workload.name
    )
}
