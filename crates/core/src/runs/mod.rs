//! What actually runs: the pure decisions behind catch-up, per-platform change
//! detection, the platform guard and stuck-pod reports (issue 11).
//!
//! The Kubernetes shell reads slim facts ([`facts`]: pods, nodes, ReplicaSets/Jobs, a
//! workload's scheduling) and the registry shell resolves tags into [`Target`]s;
//! everything here is a function from those values to values:
//!
//! - [`pods_of`]: a workload's pods by controller owner references (never labels);
//! - [`parse_image_id`]: a container's `imageID` reduced to the digest it runs;
//! - [`node_platform`] and [`workload_platforms`]: the platforms a workload runs on
//!   and may run on ([`node_fits`] applies `nodeSelector`, required affinity and
//!   taints);
//! - [`observe()`], [`freshness()`] / [`catch_up`]: whether the pods run what the tag
//!   names now;
//! - [`detect_change`]: whether a moved tag changed anything for this workload's
//!   platforms;
//! - [`guard()`]: whether the target offers every platform the workload needs;
//! - [`stuck_pods`]: pods that cannot pull;
//! - [`decide()`]: the above composed for one tracked container of a digest watch
//!   (guard, then catch-up or per-platform change detection), loop-safe;
//! - [`runs_report`]: what `status` shows per container.
//!
//! Every "unknown" carries a reason, every list is capped by a named constant in
//! [`facts`], and text from outside is escaped and bounded by [`text::bounded`]
//! before it lands in a value meant for an annotation or an Event. Nothing here
//! performs I/O or depends on refresh planning (the planner depends on this).

pub mod catchup;
pub mod change;
pub mod decide;
pub mod facts;
pub mod guard;
pub mod image_id;
pub mod node;
pub mod observe;
pub mod owners;
pub mod platforms;
pub mod report;
pub mod schedule;
pub mod stuck;
pub mod target;
pub mod text;

#[cfg(test)]
mod tests;

pub use catchup::{
    CatchUp, Freshness, FreshnessUnknown, NoCatchUp, PodFreshness, PodReason, PodUnknown, catch_up,
    freshness, pod_freshness,
};
pub use change::{Change, NoRestartWhy, RestartWhy, detect_change};
pub use decide::{
    NothingReason, RecordReason, RestartReason, RunsAction, RunsDecision, Tracked, decide,
};
pub use facts::{
    Intermediate, Names, Node, OwnerRef, Pod, PodContainer, Requirement, Scheduling, SelectorTerm,
    Taint, Toleration, Truncated, WorkloadKind, WorkloadRef,
};
pub use guard::{Guard, MissingPlatform, PlatformMissing, Unverified, guard};
pub use image_id::{ImageIdError, RepoDigest, parse_image_id};
pub use node::{
    NodeIndex, NodePlatform, NodePlatformError, NodePlatformRules, PlatformSource, node_platform,
};
pub use observe::{Observation, Observed, PodPlatformUnknown, observe};
pub use owners::{Excluded, OwnedPods, pods_of};
pub use platforms::{UnknownNode, WorkloadPlatforms, workload_platforms};
pub use report::{Resolved, RunningDigest, RunsReport, runs_report};
pub use schedule::{Mismatch, daemonset_tolerations, node_fits};
pub use stuck::{PullCause, StuckContainer, StuckPods, pull_cause, stuck_pods};
pub use target::{ForPlatform, Target};
