//! What a pass did: the [`PassReport`] of every enrolled workload, its outcome, and
//! the log lines that go with a plan.
//!
//! Owns the report's shape (the `--output json` of `run --once` and what the
//! controller's metrics read), the mapping from a core [`WorkloadPlan`] to a
//! [`WorkloadReport`], and the overall [`Outcome`] that becomes the exit code. Must
//! not write to the cluster nor decide anything: the plan decided, the writer wrote,
//! this only tells.

use freshet_core::refresh::{Change, Streak, Timestamp, WorkloadPlan};
use serde::Serialize;

use crate::notice::Notice;
use crate::workloads::{ReadWorkload, kind_name};
use freshet_core::notify::EventKind;
use freshet_core::safety::Holds;
use freshet_core::safety::hold::HOLD;

/// What happened to one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Changed (or, in a dry run, would be).
    Refreshed,
    /// Only annotations changed (baselines recorded, failure streaks counted or cleared).
    Recorded,
    /// Nothing to do.
    Current,
    /// Skipped: freshet's own workload.
    Skipped,
    /// Its schedule did not fire in this pass's window (see `next_due`).
    NotDue,
    /// A failure streak reached its threshold.
    Escalated,
    /// Its annotations are invalid, or writing failed.
    Failed,
    /// A rollout freshet started is still progressing (see `warnings`; `next_due`
    /// is its deadline).
    Following,
    /// A rollout freshet started failed and was rolled back (see `error`).
    RolledBack,
    /// A rollout freshet started failed; `onFailure` is pause or none, so it was
    /// paused or only reported (see `error`).
    RolloutFailed,
    /// Its rollout waits for a maintenance window or the pacing budget (`next_due`:
    /// when it is due; `warnings`: why).
    Queued,
}

/// One change, for output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeReport {
    /// `restart`, `set-image` or `set-env`.
    pub action: &'static str,
    /// The containers affected.
    pub containers: Vec<String>,
    /// The tracked image (for set-env and restart) or the container's image.
    pub image: String,
    /// The env var (set-env only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// Before (a digest, an image, an env value; empty when unset).
    pub from: String,
    /// After.
    pub to: String,
}

/// What one pass did to one workload.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// Spec changes made (or planned, in a dry run).
    pub changes: Vec<ChangeReport>,
    /// Images whose first digest was recorded as a baseline.
    pub baselines: Vec<String>,
    /// Warnings that change nothing.
    pub warnings: Vec<String>,
    /// Failure streaks below the threshold (treated as transient: warned and skipped).
    pub transient: Vec<Streak>,
    /// Failure streaks at or above the threshold.
    pub escalations: Vec<Streak>,
    /// Whether a patch was sent and accepted.
    pub written: bool,
    /// When its schedule fires next (workloads with a schedule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<Timestamp>,
    /// What went wrong (invalid annotations, a refused patch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What notifications announce besides refreshes (`crate::notices` maps them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    /// Whether the workload is on hold after this pass (its `freshet.io/hold`
    /// annotation as read, or as the plan rewrites it): the `freshet_holds` gauge.
    #[serde(skip)]
    pub held: bool,
}

impl WorkloadReport {
    /// An empty report of the `kind` `namespace/name` with `status`: nothing
    /// changed, written or held.
    pub fn named(kind: &'static str, namespace: String, name: String, status: Status) -> Self {
        WorkloadReport {
            kind,
            namespace,
            name,
            status,
            changes: Vec::new(),
            baselines: Vec::new(),
            warnings: Vec::new(),
            transient: Vec::new(),
            escalations: Vec::new(),
            written: false,
            next_due: None,
            error: None,
            notices: Vec::new(),
            held: false,
        }
    }

    /// An empty report of `w` with `status`.
    pub fn new(w: &ReadWorkload, status: Status) -> Self {
        WorkloadReport {
            held: holds_something(w.workload.annotations.get(HOLD).map(String::as_str)),
            ..Self::named(
                kind_name(w.workload.kind),
                w.workload.namespace.clone(),
                w.workload.name.clone(),
                status,
            )
        }
    }

    /// The report of `plan` for `w` (not yet written).
    pub fn of_plan(w: &ReadWorkload, plan: &WorkloadPlan) -> Self {
        let status = if !plan.escalations.is_empty() {
            Status::Escalated
        } else if !plan.changes.is_empty() {
            Status::Refreshed
        } else if !plan.annotations.is_empty() {
            Status::Recorded
        } else {
            Status::Current
        };
        WorkloadReport {
            changes: plan.changes.iter().map(ChangeReport::of).collect(),
            baselines: plan.baselines.clone(),
            warnings: plan.warnings.clone(),
            transient: plan.transient.clone(),
            escalations: plan.escalations.clone(),
            notices: streak_notices(plan),
            held: match plan.annotations.get(HOLD) {
                Some(rewritten) => holds_something(rewritten.as_deref()),
                None => holds_something(w.workload.annotations.get(HOLD).map(String::as_str)),
            },
            ..WorkloadReport::new(w, status)
        }
    }

    /// A failed workload with `error`.
    pub fn failed(w: &ReadWorkload, error: String) -> Self {
        WorkloadReport {
            error: Some(error),
            ..WorkloadReport::new(w, Status::Failed)
        }
    }
}

/// Whether a `freshet.io/hold` value holds anything. A value freshet cannot parse
/// counts as a hold: the workload fails until it is fixed, so it is not touched.
fn holds_something(value: Option<&str>) -> bool {
    Holds::parse(value).map_or(true, |h| !h.0.is_empty())
}

/// A streak reaching its threshold, and its recovery: announced once each.
fn streak_notices(plan: &WorkloadPlan) -> Vec<Notice> {
    let reached = plan.reached.iter().map(|s| {
        Notice::new(
            EventKind::FailureStreak,
            format!("{} failures in a row: {}", s.count, s.message),
        )
        .image(&s.image)
    });
    let recovered = plan.recovered.iter().map(|s| {
        Notice::new(
            EventKind::Recovered,
            format!("resolved again after {} failures in a row", s.count),
        )
        .image(&s.image)
    });
    reached.chain(recovered).collect()
}

impl ChangeReport {
    /// The report of one change.
    pub fn of(change: &Change) -> Self {
        match change {
            Change::Restart {
                image,
                containers,
                from,
                to,
            } => ChangeReport {
                action: "restart",
                containers: containers.clone(),
                image: image.clone(),
                var: None,
                from: from.to_string(),
                to: to.to_string(),
            },
            Change::SetImage {
                container,
                from,
                to,
                ..
            } => ChangeReport {
                action: "set-image",
                containers: vec![container.clone()],
                image: from.clone(),
                var: None,
                from: from.clone(),
                to: to.clone(),
            },
            Change::SetEnv {
                container,
                var,
                from,
                to,
                image,
                ..
            } => ChangeReport {
                action: "set-env",
                containers: vec![container.clone()],
                image: image.clone(),
                var: Some(var.clone()),
                from: from.clone().unwrap_or_default(),
                to: to.clone(),
            },
        }
    }
}

/// The overall result of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything refreshed, was current, or failed below its threshold.
    Ok,
    /// Some workload could not be read, planned or written, or a rollout failed.
    Failed,
    /// A failure streak reached its threshold (takes precedence over `Failed`).
    Escalated,
}

/// What one pass did.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    /// A dry run (nothing written).
    pub dry_run: bool,
    /// The pass's time.
    pub at: Timestamp,
    /// Unique images asked about (counted once per set of pull secrets).
    pub images: usize,
    /// Enrolled (and skipped) workloads, in kind, namespace, name order.
    pub workloads: Vec<WorkloadReport>,
    /// The requests the pass sent.
    pub requests: PassRequests,
}

/// The requests one pass sent, counted where they leave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PassRequests {
    /// To the registries, summed over the pass's clients.
    pub registry: freshet_registry::StatsSnapshot,
    /// To the Kubernetes API (`None`: the client is not counted). Includes what
    /// watchers sent during the pass.
    pub api: Option<crate::api_count::ApiCounts>,
}

impl PassReport {
    /// The overall result.
    pub fn outcome(&self) -> Outcome {
        if self.workloads.iter().any(|w| w.status == Status::Escalated) {
            Outcome::Escalated
        } else if self.workloads.iter().any(|w| {
            matches!(
                w.status,
                Status::Failed | Status::RolledBack | Status::RolloutFailed
            )
        }) {
            Outcome::Failed
        } else {
            Outcome::Ok
        }
    }

    /// How many patches were written.
    pub fn writes(&self) -> usize {
        self.workloads.iter().filter(|w| w.written).count()
    }
}

/// Logs what a plan found worth telling (once per workload, when its plan is final).
pub fn log_plan(w: &ReadWorkload, plan: &WorkloadPlan) {
    let id = &w.workload;
    for s in &plan.transient {
        tracing::warn!(
            kind = kind_name(id.kind), namespace = %id.namespace, name = %id.name,
            image = %s.image, count = s.count, error = %s.message,
            "resolve failed; treated as transient (below the failure threshold), skipping"
        );
    }
    for e in &plan.escalations {
        tracing::error!(
            kind = kind_name(id.kind), namespace = %id.namespace, name = %id.name,
            image = %e.image, count = e.count, error = %e.message,
            "resolve failed too many times in a row; check egress, the token endpoint, credentials and that the tag exists"
        );
    }
    for warning in &plan.warnings {
        tracing::warn!(kind = kind_name(id.kind), namespace = %id.namespace, name = %id.name, "{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(status: Status) -> WorkloadReport {
        WorkloadReport {
            kind: "Deployment",
            namespace: "team".into(),
            name: "api".into(),
            status,
            changes: Vec::new(),
            baselines: Vec::new(),
            warnings: Vec::new(),
            transient: Vec::new(),
            escalations: Vec::new(),
            written: status == Status::Refreshed,
            next_due: None,
            error: None,
            notices: Vec::new(),
            held: false,
        }
    }

    /// Table: the statuses of a pass's workloads, and the pass's outcome.
    #[test]
    fn escalated_takes_precedence_over_failed() {
        let cases = [
            (vec![Status::Current, Status::Refreshed], Outcome::Ok),
            (vec![Status::NotDue, Status::Skipped], Outcome::Ok),
            (vec![Status::Failed, Status::Refreshed], Outcome::Failed),
            (vec![Status::Failed, Status::Escalated], Outcome::Escalated),
        ];
        for (statuses, outcome) in cases {
            let report = PassReport {
                dry_run: false,
                at: Timestamp::parse("2026-11-23T10:00:00Z").unwrap(),
                images: 0,
                workloads: statuses.iter().map(|s| workload(*s)).collect(),
                requests: PassRequests::default(),
            };
            assert_eq!(report.outcome(), outcome, "{statuses:?}");
        }
    }

    #[test]
    fn the_json_report_keeps_its_shape() {
        let mut w = workload(Status::NotDue);
        w.next_due = Timestamp::parse("2026-11-24T03:00:00Z").ok();
        w.transient.push(Streak {
            image: "ghcr.io/a/b:1".into(),
            count: 1,
            message: "down".into(),
        });
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["status"], "not-due");
        assert_eq!(v["next_due"], "2026-11-24T03:00:00Z");
        assert_eq!(
            v["transient"],
            serde_json::json!([{"image": "ghcr.io/a/b:1", "count": 1, "message": "down"}])
        );
        assert!(v.get("error").is_none());
    }
}

/// Reports for the tests of the modules that read them (metrics, notices).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A Deployment `team/<name>` with `status`, nothing else in it.
    pub(crate) fn workload(name: &str, status: Status, written: bool) -> WorkloadReport {
        WorkloadReport {
            written,
            ..WorkloadReport::named("Deployment", "team".into(), name.into(), status)
        }
    }

    /// A pass at `at` (RFC 3339) over `workloads`, with one image.
    pub(crate) fn pass(dry_run: bool, at: &str, workloads: Vec<WorkloadReport>) -> PassReport {
        PassReport {
            dry_run,
            at: Timestamp::parse(at).expect("an RFC 3339 time"),
            images: 1,
            workloads,
            requests: Default::default(),
        }
    }
}
