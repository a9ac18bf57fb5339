//! The cluster refresh, as pure decisions: which workloads and images are tracked
//! ([`enroll`], [`config`]), when they are due ([`schedule`]), what one run does to
//! each workload ([`plan`]) and the one patch that does it ([`patch`]), what the
//! workload recorded ([`audit`]) and what `status` shows ([`worklist`]).
//!
//! Owns everything about a refresh that needs no cluster and no registry, so it can
//! be tested with tables: annotation parsing (freshet's and Keel's), the actions
//! (restart, pin, set-image, set-env), audit annotations, failure streaks and their
//! escalation, schedule windows, and the strategic-merge patch body. The Kubernetes
//! shell reads workloads into [`Workload`] values ([`workload`]), resolves
//! [`plan::tracked_images`] with the registry client, calls [`plan::plan`] with the
//! time ([`time::Timestamp`]) and sends the one patch it returns. Must not perform
//! I/O nor read the clock.

pub mod audit;
pub mod config;
pub mod enroll;
pub mod patch;
pub mod plan;
pub mod safety_config;
pub mod schedule;
pub mod time;
pub mod worklist;
pub mod workload;

#[cfg(test)]
mod tests;

pub use audit::Audit;
pub use enroll::{ActionKind, Enrollment, from_annotations};
pub use plan::{
    Change, ImageFacts, PlanEvent, RunsFacts, Streak, WorkloadPlan, plan, plan_with_runs,
    tracked_images,
};
pub use schedule::{Due, Schedule, Window};
pub use time::Timestamp;
pub use workload::{Container, Workload, WorkloadKind};
