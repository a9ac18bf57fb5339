//! Simulated controllers and kubelet, driven by changes: a work queue keyed by
//! object is filled from the store's changes (an object and the owners it
//! names) and from timers, and each tick reconciles only the queued objects:
//! Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, Pods (the
//! kubelet), plus CronJobs, which wait on the clock.
//!
//! Submodules, one concern each: the shared context and Event recorder
//! (`context`), helpers over objects (`objects`), the work queue (`queue`), the
//! loop (`runner`), ServiceAccounts and their tokens (`accounts`), and one
//! module per controller. Controllers write only through the store, never
//! through HTTP, and must not bypass its versioning. They have no error type: a
//! write that fails is logged and retried when the object changes again, as
//! level-triggered controllers do. This module only declares and re-exports; no
//! submodule imports it.

mod accounts;
mod context;
pub mod cron;
pub mod deployment;
pub mod kubelet;
mod objects;
mod queue;
pub mod replicaset;
mod runner;
pub mod workloads;

pub use self::context::{Controllers, NodeSpec};
pub use self::kubelet::state::{PullLog, PullRecord};
