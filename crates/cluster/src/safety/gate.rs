//! The one gate every rollout-starting action passes: the rule's maintenance
//! windows, then the pacing budget.
//!
//! Owns the order of the two checks and the spending of slots: workloads outside
//! their windows stay queued until the next window opens; the others are paced
//! together by `freshet_core::safety::pacing::pace`, and the slots of those that
//! roll are written back to the [`BudgetStore`] with the `resourceVersion` read,
//! before any of them is patched (a conflict re-reads and decides again, bounded).
//! A slot is spent when the gate admits, so a patch that then fails keeps its slot
//! spent: the budget errs on the side of fewer rollouts. When paced, the same
//! state remembers since when each queued workload waits (by the budget or outside
//! its windows), so the queue order survives one-shot runs; a workload that no
//! pass asks for any more is forgotten. Catch-up and any other
//! path that starts rollouts should call [`Gate::admit`] too. Must not patch
//! workloads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use freshet_core::refresh::Timestamp;
use freshet_core::safety::pacing::{QueueReason, Queued};
use freshet_core::safety::{DueWorkload, Pacing, Windows, pace};

use super::budget::{BudgetError, BudgetStore};

/// Re-reads of the pacing state after a conflict before giving up.
const RETRIES: u32 = 8;

/// A workload whose plan starts a rollout, asking to start it.
#[derive(Debug, Clone)]
pub struct GateRequest {
    /// A unique id (`Kind/namespace/name`).
    pub id: String,
    /// Its namespace (for per-namespace budgets).
    pub namespace: String,
    /// The index of the config rule it matched (rule budgets, queue order).
    pub rule: Option<usize>,
    /// Since when it waits as this pass sees it (the queue order after the rule);
    /// an earlier time the pacing state remembers wins.
    pub waiting_since: DateTime<Utc>,
    /// Its rule's maintenance windows (empty: always open).
    pub windows: Windows,
}

/// The gate's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateDecision {
    /// Start the rollout now (its slots are spent).
    Roll,
    /// Wait.
    Queued {
        /// When it is due (`None`: when a rollout in progress finishes).
        due: Option<Timestamp>,
        /// Why, for the report and `status`.
        reason: String,
    },
}

/// The windows-then-pacing gate of one pass.
#[derive(Debug, Clone)]
pub struct Gate {
    pacing: Pacing,
    store: BudgetStore,
}

impl Gate {
    /// A gate spending `pacing`'s budget in `store`.
    pub fn new(pacing: Pacing, store: BudgetStore) -> Self {
        Self { pacing, store }
    }

    fn paces(&self) -> bool {
        let p = &self.pacing;
        p.cluster.is_some()
            || !p.rules.is_empty()
            || !p.namespaces.is_empty()
            || p.max_in_progress.is_some()
    }

    /// Decides every request at `now`: `in_progress` rollouts are still being
    /// followed. With `dry_run`, nothing is written (the decisions are what a real
    /// pass would do with the state as it is).
    pub async fn admit(
        &self,
        requests: &[GateRequest],
        in_progress: u32,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<BTreeMap<String, GateDecision>, BudgetError> {
        let mut out = BTreeMap::new();
        let mut open = Vec::new();
        let mut closed = Vec::new();
        for r in requests {
            if r.windows.is_open(now) {
                open.push(r);
                continue;
            }
            closed.push(r);
            let due = r.windows.next_open(now);
            out.insert(r.id.clone(), outside_window(due));
        }
        if !self.paces() {
            out.extend(open.iter().map(|r| (r.id.clone(), GateDecision::Roll)));
            return Ok(out);
        }
        let due: Vec<DueWorkload> = open
            .iter()
            .map(|r| DueWorkload {
                id: r.id.clone(),
                namespace: r.namespace.clone(),
                rule: r.rule,
                waiting_since: r.waiting_since,
            })
            .collect();
        let mut attempt = 0;
        let decided = loop {
            let stored = self.store.read().await?;
            let mut decided = pace(&self.pacing, &stored.state, &due, in_progress, now);
            // Those outside their windows wait too: their time is kept for when
            // the window opens.
            for r in &closed {
                decided
                    .state
                    .keep_waiting(&stored.state, &r.id, r.waiting_since);
            }
            decided.state.cap_waiting();
            if dry_run || decided.state == stored.state {
                break decided;
            }
            match self.store.write(&stored, &decided.state).await {
                Ok(()) => break decided,
                Err(e) if e.is_transient() && attempt < RETRIES => {
                    attempt += 1;
                    tracing::info!(
                        attempt,
                        "the pacing state changed since it was read; deciding again"
                    );
                }
                Err(e) => return Err(e),
            }
        };
        let windows: BTreeMap<&str, &Windows> =
            open.iter().map(|r| (r.id.as_str(), &r.windows)).collect();
        out.extend(decided.roll.into_iter().map(|id| (id, GateDecision::Roll)));
        for q in decided.queued {
            let w = windows.get(q.id.as_str()).copied();
            out.insert(q.id.clone(), queued(&q, w));
        }
        Ok(out)
    }
}

fn outside_window(due: Option<DateTime<Utc>>) -> GateDecision {
    let due = due.map(Timestamp::from_utc);
    GateDecision::Queued {
        due,
        reason: match due {
            Some(t) => format!("outside its maintenance windows; the next opens at {t}"),
            None => "outside its maintenance windows, and none opens in the next two weeks".into(),
        },
    }
}

fn queued(q: &Queued, windows: Option<&Windows>) -> GateDecision {
    // A workload queued by the budget is due at the later of its slot and the
    // next window from then.
    let due = q
        .due
        .map(|d| windows.and_then(|w| w.next_open(d)).unwrap_or(d))
        .map(Timestamp::from_utc);
    let reason = match (&q.reason, due) {
        (QueueReason::Budget { scope }, Some(t)) => {
            format!("the pacing budget ({scope}) is spent; due at {t}")
        }
        (QueueReason::Budget { scope }, None) => format!("the pacing budget ({scope}) is spent"),
        (QueueReason::InProgress { max }, _) => {
            format!("{max} rollouts are in progress (pacing.maxInProgress); due when one finishes")
        }
    };
    GateDecision::Queued { due, reason }
}
