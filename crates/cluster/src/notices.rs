//! What a pass tells the notification sinks: the [`Notice`]s a pass attaches to a
//! workload's report, and the mapping from a whole [`PassReport`] to one
//! notification [`Batch`] ([`batch`]).
//!
//! The mapping, entry by entry (a dry run maps to nothing):
//!
//! | report entry | event |
//! |---|---|
//! | a written workload's `changes` (status `refreshed`) | `refresh`, one per change |
//! | `notices` | the notice's kind, as is |
//!
//! The pass adds `failureStreak` notices when a streak reaches its threshold (once,
//! not on every pass after) and `recovered` when such a streak ends
//! ([`WorkloadReport::of_plan`]). The other kinds (`rollback`, `hold`,
//! `approvalNeeded`) come from the code that makes those decisions: it pushes a
//! [`Notice`] onto [`WorkloadReport::notices`] and needs nothing else. Must not send
//! anything nor read the clock: `freshet-notify` delivers the batch.

use freshet_core::notify::{Batch, Event, EventKind};

pub use crate::notice::Notice;
use crate::report::{PassReport, Status, WorkloadReport};

/// The notification batch of a pass: every refresh written and every notice, in the
/// report's order. Empty for a dry run.
pub fn batch(report: &PassReport) -> Batch {
    let mut batch = Batch::new();
    if report.dry_run {
        return batch;
    }
    for w in &report.workloads {
        if w.status == Status::Refreshed && w.written {
            for c in &w.changes {
                let mut e = Event::new(EventKind::Refresh, &w.namespace, w.kind, &w.name)
                    .container(c.containers.join(","))
                    .image(&c.image)
                    .digests(&c.from, &c.to);
                if let Some(var) = &c.var {
                    e = e.message(format!("{} {var}", c.action));
                } else {
                    e = e.message(c.action);
                }
                batch.push(e);
            }
        }
        for n in &w.notices {
            batch.push(event(n, w));
        }
    }
    batch
}

/// The event of notice `n` on workload `w`.
fn event(n: &Notice, w: &WorkloadReport) -> Event {
    let mut e = Event::new(n.kind, &w.namespace, w.kind, &w.name).message(&n.message);
    e.level = n.level.unwrap_or(e.level);
    e.container.clone_from(&n.container);
    e.image.clone_from(&n.image);
    e.from.clone_from(&n.from);
    e.to.clone_from(&n.to);
    e.class.clone_from(&n.class);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ChangeReport;
    use freshet_core::notify::Level;

    use crate::report::fixtures::workload;

    fn report(dry_run: bool, workloads: Vec<WorkloadReport>) -> PassReport {
        crate::report::fixtures::pass(dry_run, "2026-11-23T10:00:00Z", workloads)
    }

    /// The mapping table of the module doc, entry by entry.
    #[test]
    fn report_entries_map_to_events() {
        let mut refreshed = workload("api", Status::Refreshed, true);
        refreshed.changes.push(ChangeReport {
            action: "restart",
            containers: vec!["app".into(), "side".into()],
            image: "ghcr.io/acme/api:1".into(),
            var: None,
            from: "sha256:aa".into(),
            to: "sha256:bb".into(),
        });
        let mut unwritten = workload("lost", Status::Failed, false);
        unwritten.changes = refreshed.changes.clone();
        let mut held = workload("web", Status::Current, false);
        held.notices.push(Notice::hold("paused by ops"));
        held.notices.push(Notice::rollback(
            "ghcr.io/acme/web:2",
            "sha256:bad",
            "sha256:good",
            "CrashLoopBackOff",
        ));
        held.notices.push(
            Notice::approval_needed("ghcr.io/acme/web:2", "sha256:cc", "approve it")
                .level(Level::Info),
        );
        let r = report(false, vec![refreshed, unwritten, held]);
        let b = batch(&r);
        let kinds: Vec<(EventKind, Level, &str)> = b
            .events
            .iter()
            .map(|e| (e.kind, e.level, e.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (EventKind::Refresh, Level::Info, "api"),
                (EventKind::Hold, Level::Warning, "web"),
                (EventKind::Rollback, Level::Error, "web"),
                (EventKind::ApprovalNeeded, Level::Info, "web"),
            ]
        );
        let e = &b.events[0];
        assert_eq!(e.container.as_deref(), Some("app,side"));
        assert_eq!(
            (e.from.as_deref(), e.to.as_deref()),
            (Some("sha256:aa"), Some("sha256:bb"))
        );
        assert_eq!(b.events[2].to.as_deref(), Some("sha256:good"));
        assert!(batch(&report(true, r.workloads.clone())).is_empty());
    }
}
