//! freshet's Kubernetes shell for the cluster refresh.
//!
//! Owns the I/O around the pure decisions of `freshet_core::refresh`. A pass
//! ([`pass`]) gathers its facts ([`gather`]: the four workload kinds from
//! [`workloads`], their image pull secrets from [`secrets`], each unique image asked
//! about once per set of pull secrets through [`facts`], and what runs through
//! [`observed`]: pods, their owners and nodes), lets the core plan each
//! workload, and hands the plans to the one [`writer`] (patches with their
//! resourceVersion, and [`events`], a series per repeat at the clock's time); it tells what it did in
//! a [`report`]. [`status`] shows the worklist, [`own`] finds freshet's own
//! workload, Argo CD Applications are a target kind of their own ([`argocd`]), and
//! the controller mode runs passes on an interval ([`controller`])
//! while this replica leads ([`lease`]), with Prometheus [`metrics`]. The time
//! comes from a [`clock`]. Before a pass writes, its [`gate`] holds back updates
//! waiting for approvals or pinned by `freshet pin`, and warns about Keel settings
//! freshet ignores. The runbook [`commands`] (`rollback`, `pin`, `hold`, `release`,
//! `approve`) read one workload and send one patch each. Must not decide anything:
//! every decision is `freshet_core::refresh`'s or `freshet_core::safety`'s, and only
//! [`writer`] (in a pass) and [`commands`] (one patch per command) write.

#[macro_use]
mod dynamic;

pub mod api_count;
pub mod argocd;
pub mod clock;
pub mod commands;
pub mod controller;
pub mod errors;
pub mod events;
pub mod facts;
pub mod gate;
pub mod gather;
pub mod lease;
pub mod metrics;
pub mod notice;
pub mod notices;
pub mod observed;
pub mod observer;
pub mod own;
pub mod pass;
pub mod ready;
pub mod report;
pub mod safety;
pub mod scheduling;
pub mod secrets;
pub mod status;
pub mod watch;
pub mod workloads;
pub mod writer;

pub use api_count::{ApiCounter, ApiCounts};
pub use clock::{Clock, FixedClock, SharedClock, SystemClock, TokioClock};
pub use errors::{error_chain, scrub_exec_output};
pub use gather::{BoxError, GatherError, RegistryFactory, WorkloadId};
pub use notice::Notice;
pub use observer::PassObserver;
pub use pass::{PassError, PassOptions, Refresher};
pub use report::{ChangeReport, Outcome, PassReport, PassRequests, Status, WorkloadReport};
pub use secrets::PullSecret;
