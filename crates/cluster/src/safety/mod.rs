//! The safety layer in the cluster shell: rollouts freshet starts are recorded,
//! followed and rolled back; bad digests are held; rollouts are paced by a budget
//! kept in the cluster and wait for their rule's maintenance windows.
//!
//! Owns the I/O around `freshet_core::safety`, wired into a pass the way its `//!`
//! describes: [`guard`] turns a core plan into the plan freshet may write (held
//! digests dropped, lifted holds unpinned, the `freshet.io/rollout` record added);
//! [`observe`] reads a workload's rollout status and the pods of its new revision;
//! [`follow`] judges a recorded rollout and writes the rollback in one patch with
//! the `resourceVersion` it judged; [`budget`] keeps the pacing state in a ConfigMap
//! in freshet's namespace, spent with `resourceVersion` so two runs never spend one
//! slot; [`gate`] is the one gate every rollout-starting action passes (windows,
//! then pacing). Must not decide anything itself: health, rollback, holds, pacing
//! and windows are the core's decisions; writes go through [`crate::writer`].

pub mod budget;
pub mod follow;
pub mod gate;
pub mod guard;
pub mod observe;
pub mod triage;

pub use budget::{BudgetError, BudgetStore};
pub use gate::{Gate, GateDecision, GateRequest};

/// The Warning Event reason of an automatic rollback.
pub const ROLLED_BACK: &str = "RolledBack";
/// The Warning Event reason of an automatic rollback the API refused.
pub const ROLLBACK_FAILED: &str = "RollbackFailed";
/// The Warning Event reason of a failed rollout freshet paused or only reported.
pub const ROLLOUT_FAILED: &str = "RolloutFailed";
