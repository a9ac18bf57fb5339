//! Who hears about passes besides the caller: a [`PassObserver`] is told the
//! repositories a full pass tracks (the registry-webhook receiver's allowlist) and
//! every report (notifications). [`crate::pass::Refresher::with_observer`] adds one.
//!
//! Owns the trait and the computation of the tracked set. Observers must not block
//! nor fail a pass: they are called on the pass's task and return nothing.

use std::collections::BTreeSet;

use freshet_core::refresh::{Enrollment, tracked_images};

use crate::report::PassReport;
use crate::workloads::ReadWorkload;

/// Told about every pass. Both methods default to doing nothing.
pub trait PassObserver: Send + Sync {
    /// The repositories (`registry/repository`) the due, validly enrolled workloads
    /// of a full pass track; called before the registries are asked.
    fn tracked(&self, _repositories: &BTreeSet<String>) {}

    /// A pass is done (full or focused, dry runs included: see `report.dry_run`).
    fn report(&self, _report: &PassReport) {}
}

/// The repositories the (valid) enrolled workloads track.
pub(crate) fn tracked<'a>(
    enrolled: impl IntoIterator<Item = (&'a ReadWorkload, &'a Enrollment)>,
) -> BTreeSet<String> {
    enrolled
        .into_iter()
        .flat_map(|(w, e)| tracked_images(&w.workload, e).into_iter())
        .map(|(r, _)| r.name())
        .collect()
}

/// Whether `w`, enrolled as `e`, tracks one of `focus`.
pub(crate) fn tracks(w: &ReadWorkload, e: &Enrollment, focus: &BTreeSet<String>) -> bool {
    tracked_images(&w.workload, e)
        .iter()
        .any(|(r, _)| focus.contains(&r.name()))
}
