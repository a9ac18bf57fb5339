//! The rollout-safety metrics: rollbacks performed, workloads on hold, and rollouts
//! waiting for their turn (the pacing budget or a maintenance window).
//!
//! Owns the mapping from a [`PassReport`] to these values: [`tally`] (pure: what one
//! report says) and [`SafetyState`] (which workloads are held or queued across
//! passes, since a registry webhook's focused pass reports only some workloads and
//! a workload that is not due keeps what the last pass that looked at it found).
//! Must not decide anything about safety: the pass decided and reported; this only
//! counts. A dry run's report counts like any other (what would be held or queued),
//! but a dry run performs no rollback, so it adds none.

use std::collections::BTreeSet;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::report::{PassReport, Status};

/// The gauges and counter of rollout safety, set by [`super::Metrics::observe`]
/// from each pass's report. Clones share the values.
#[derive(Debug, Clone, Default)]
pub struct SafetyMetrics {
    /// `freshet_rollbacks_total`: rollbacks performed (a patch restoring what ran
    /// before a failed rollout was accepted).
    pub rollbacks: Counter,
    /// `freshet_holds`: workloads on hold now (a non-empty `freshet.io/hold`).
    pub holds: Gauge,
    /// `freshet_rollout_queue_length`: workloads whose rollout waits for its turn.
    pub queue: Gauge,
}

/// A workload: namespace, kind, name.
pub type WorkloadKey = (String, &'static str, String);

/// What one pass's report says about rollout safety.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Rollbacks the pass performed.
    pub rollbacks: u64,
    /// Every workload the report lists (its hold is known, as read or rewritten).
    pub reported: BTreeSet<WorkloadKey>,
    /// The workloads the pass looked at (listed and due: their queue state is known).
    pub looked_at: BTreeSet<WorkloadKey>,
    /// Workloads on hold after the pass.
    pub held: BTreeSet<WorkloadKey>,
    /// Workloads whose rollout the pass queued.
    pub queued: BTreeSet<WorkloadKey>,
}

/// What `report` says about rollbacks, holds and the queue.
pub fn tally(report: &PassReport) -> Tally {
    let mut t = Tally::default();
    for w in &report.workloads {
        let key = (w.namespace.clone(), w.kind, w.name.clone());
        if w.status == Status::RolledBack && w.written && !report.dry_run {
            t.rollbacks += 1;
        }
        // A failed rollout always holds its digest (`run --once --wait` reports the
        // status it came to on the refresh's own report).
        if w.held || matches!(w.status, Status::RolledBack | Status::RolloutFailed) {
            t.held.insert(key.clone());
        }
        if w.status == Status::Queued {
            t.queued.insert(key.clone());
        }
        if w.status != Status::NotDue {
            t.looked_at.insert(key.clone());
        }
        t.reported.insert(key);
    }
    t
}

/// Which workloads a pass covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every enrolled workload (a workload missing from the report is gone).
    Full,
    /// Only some (a registry webhook's re-check): the others keep their state.
    Focused,
}

/// Which workloads are held or queued, as of the last pass that reported each.
#[derive(Debug, Default)]
pub struct SafetyState {
    held: BTreeSet<WorkloadKey>,
    queued: BTreeSet<WorkloadKey>,
}

impl SafetyState {
    /// Folds in one pass's tally; returns the workloads held and queued now.
    pub fn apply(&mut self, t: &Tally, scope: Scope) -> (usize, usize) {
        self.held.retain(|k| !t.reported.contains(k));
        self.held.extend(t.held.iter().cloned());
        self.queued.retain(|k| !t.looked_at.contains(k));
        self.queued.extend(t.queued.iter().cloned());
        if scope == Scope::Full {
            self.held.retain(|k| t.reported.contains(k));
            self.queued.retain(|k| t.reported.contains(k));
        }
        (self.held.len(), self.queued.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::WorkloadReport;

    fn w(name: &str, status: Status, written: bool, held: bool) -> WorkloadReport {
        WorkloadReport {
            held,
            ..crate::report::fixtures::workload(name, status, written)
        }
    }

    fn report(dry_run: bool, workloads: Vec<WorkloadReport>) -> PassReport {
        crate::report::fixtures::pass(dry_run, "2026-11-28T10:00:00Z", workloads)
    }

    fn names(keys: &BTreeSet<WorkloadKey>) -> Vec<&str> {
        keys.iter().map(|(_, _, n)| n.as_str()).collect()
    }

    /// Table: one report, and the rollbacks, holds and queue it tallies.
    #[test]
    fn safety_tally_counts_performed_rollbacks_holds_and_queued_rollouts() {
        type Case = (
            bool,
            Vec<WorkloadReport>,
            u64,
            Vec<&'static str>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (false, vec![], 0, vec![], vec![]),
            // A rollback performed holds the bad digest.
            (
                false,
                vec![w("a", Status::RolledBack, true, true)],
                1,
                vec!["a"],
                vec![],
            ),
            // A refused rollback patch performed nothing (the hold was not written
            // either, but the report says what the plan held).
            (
                false,
                vec![w("a", Status::RolledBack, false, true)],
                0,
                vec!["a"],
                vec![],
            ),
            // A dry run performs no rollback.
            (
                true,
                vec![w("a", Status::RolledBack, false, true)],
                0,
                vec!["a"],
                vec![],
            ),
            // onFailure pause or none: held, not rolled back.
            (
                false,
                vec![w("a", Status::RolloutFailed, true, true)],
                0,
                vec!["a"],
                vec![],
            ),
            // `run --once --wait`: the refresh's report, its status now rolled back.
            (
                false,
                vec![w("a", Status::RolledBack, true, false)],
                1,
                vec!["a"],
                vec![],
            ),
            // Held from an earlier pass, current or not due now: still held.
            (
                false,
                vec![
                    w("a", Status::Current, false, true),
                    w("b", Status::NotDue, false, true),
                    w("c", Status::Refreshed, true, false),
                ],
                0,
                vec!["a", "b"],
                vec![],
            ),
            (
                false,
                vec![
                    w("a", Status::Queued, false, false),
                    w("b", Status::Queued, false, true),
                    w("c", Status::Refreshed, true, false),
                ],
                0,
                vec!["b"],
                vec!["a", "b"],
            ),
        ];
        for (dry_run, workloads, rollbacks, held, queued) in cases {
            let t = tally(&report(dry_run, workloads));
            assert_eq!(t.rollbacks, rollbacks, "{t:?}");
            assert_eq!(names(&t.held), held, "{t:?}");
            assert_eq!(names(&t.queued), queued, "{t:?}");
        }
    }

    #[test]
    fn safety_state_keeps_what_a_focused_or_not_due_pass_did_not_look_at() {
        let mut s = SafetyState::default();
        let first = report(
            false,
            vec![
                w("a", Status::RolledBack, true, true),
                w("b", Status::Queued, false, false),
                w("c", Status::Queued, false, false),
            ],
        );
        assert_eq!(s.apply(&tally(&first), Scope::Full), (1, 2));
        // A webhook's pass over c only: c rolled; a and b keep their state.
        let focused = report(false, vec![w("c", Status::Refreshed, true, false)]);
        assert_eq!(s.apply(&tally(&focused), Scope::Focused), (1, 1));
        // b not due: still queued; a's hold lifted; c gone from the cluster.
        let full = report(
            false,
            vec![
                w("a", Status::Refreshed, true, false),
                w("b", Status::NotDue, false, false),
            ],
        );
        assert_eq!(s.apply(&tally(&full), Scope::Full), (0, 1));
        // A full pass without b: b is gone, so nothing waits.
        let empty = report(false, vec![w("a", Status::Current, false, false)]);
        assert_eq!(s.apply(&tally(&empty), Scope::Full), (0, 0));
    }
}
