//! The cluster refresh, as pure decisions: which workloads and images are tracked
//! ([`enroll`]), when they are due ([`schedule`]) and what one run does to each
//! workload ([`plan`]).
//!
//! Owns everything about a refresh that needs no cluster and no registry, so it can
//! be tested with tables: annotation parsing (freshet's and Keel's), the actions
//! (restart, pin, set-image, set-env), audit annotations, failure streaks and their
//! escalation, and the strategic-merge patch body. The Kubernetes shell reads
//! workloads into [`plan::Workload`] values, resolves [`plan::tracked_images`] with
//! the registry client, calls [`plan::plan`] and sends the one patch it returns.

pub mod config;
pub mod enroll;
pub mod plan;
pub mod schedule;

#[cfg(test)]
mod tests;

pub use enroll::{ActionKind, Enrollment, from_annotations};
pub use plan::{Change, Container, Workload, WorkloadKind, WorkloadPlan, plan, tracked_images};
pub use schedule::Schedule;
