//! freshet's Kubernetes shell for the cluster refresh.
//!
//! Owns the I/O around the pure decisions of `freshet_core::refresh`: reading the
//! four workload kinds ([`workloads`]), asking registries about each unique image
//! once ([`facts`]), performing each workload's one patch with its resourceVersion
//! precondition and the conflict loop ([`run`]), Events ([`events`]) and finding
//! freshet's own workload ([`own`]), the worklist ([`status`]), and the controller
//! mode: passes on an interval under a leader lease ([`controller`]) with Prometheus
//! [`metrics`]. Decides nothing itself.

pub mod controller;
pub mod events;
pub mod facts;
pub mod metrics;
pub mod own;
pub mod run;
pub mod status;
pub mod workloads;

pub use run::{
    Outcome, Refresher, RegistryFactory, RunError, RunOptions, RunReport, Status, WorkloadId,
    WorkloadReport,
};
