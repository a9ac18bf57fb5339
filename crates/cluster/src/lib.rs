//! freshet's Kubernetes shell for the cluster refresh.
//!
//! Owns the I/O around the pure decisions of `freshet_core::refresh`. A pass
//! ([`pass`]) gathers its facts ([`gather`]: the four workload kinds from
//! [`workloads`], their image pull secrets from [`secrets`], each unique image asked
//! about once per set of pull secrets through [`facts`]), lets the core plan each
//! workload, and hands the plans to the one [`writer`] (patches with their
//! resourceVersion, and [`events`] through kube's Recorder); it tells what it did in
//! a [`report`]. [`status`] shows the worklist, [`own`] finds freshet's own
//! workload, and the controller mode runs passes on an interval ([`controller`])
//! while this replica leads ([`lease`]), with Prometheus [`metrics`]. The time
//! comes from a [`clock`]. Must not decide anything: every decision is
//! `freshet_core::refresh`'s, and only [`writer`] writes to the cluster.

pub mod api_count;
pub mod clock;
pub mod controller;
pub mod errors;
pub mod events;
pub mod facts;
pub mod gather;
pub mod lease;
pub mod metrics;
pub mod own;
pub mod pass;
pub mod report;
pub mod secrets;
pub mod status;
pub mod watch;
pub mod workloads;
pub mod writer;

pub use api_count::{ApiCounter, ApiCounts};
pub use clock::{Clock, FixedClock, SharedClock, SystemClock, TokioClock};
pub use errors::error_chain;
pub use gather::{BoxError, GatherError, RegistryFactory, WorkloadId};
pub use pass::{PassError, PassOptions, Refresher};
pub use report::{ChangeReport, Outcome, PassReport, PassRequests, Status, WorkloadReport};
pub use secrets::PullSecret;
