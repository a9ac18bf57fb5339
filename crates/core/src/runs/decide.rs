//! One tracked container's decision, composed from the others: guard, then change
//! detection or catch-up, as one value the refresh planner maps to its actions.
//!
//! Owns the order and the loop-safety rule:
//! 1. the [`guard()`] first: a target that lacks a platform the workload needs
//!    blocks every action ([`RunsAction::Block`]);
//! 2. on first sight (nothing recorded), catch-up: stale pods are refreshed, else
//!    the target is recorded as the baseline (`catchUp: false` always records);
//! 3. when the tag moved since the recorded target, per-platform change detection;
//!    when it says "no restart", stale pods still catch up;
//! 4. when the tag names what is recorded, nothing is written, even if pods are
//!    still stale (a rollout in progress, or `IfNotPresent` pods that cannot pull
//!    the moved tag): restarting again would loop; the stale pods are reported.
//!
//! It must not build patches or annotations: the planner does, from this value and
//! [`RunsDecision::record`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::digest::Digest;

use super::catchup::{CatchUp, Freshness, NoCatchUp, catch_up, freshness};
use super::change::{Change, NoRestartWhy, RestartWhy, detect_change};
use super::facts::Names;
use super::guard::{Guard, PlatformMissing, guard};
use super::node::NodeIndex;
use super::observe::observe;
use super::owners::OwnedPods;
use super::platforms::WorkloadPlatforms;
use super::target::Target;

/// A tracked container of a digest watch, with its resolved tag.
#[derive(Debug, Clone, Copy)]
pub struct Tracked<'a> {
    /// The container name.
    pub container: &'a str,
    /// The image as the template writes it.
    pub image: &'a str,
    /// What the tag names now.
    pub target: &'a Target,
    /// What was recorded last time (for example [`Target::recorded`] from the
    /// annotation); `None` on first sight.
    pub previous: Option<&'a Target>,
    /// `catchUp` (rule) and `freshet.io/catch-up`; `false` keeps the baseline
    /// behaviour.
    pub catch_up: bool,
}

/// What to do for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum RunsAction {
    /// Do not act: Warning Event `ImagePlatformMissing`, failure streak of class
    /// `platform`.
    #[serde(rename_all = "camelCase")]
    Block {
        /// What is missing, for the Event.
        missing: PlatformMissing,
    },
    /// Restart the workload onto the target and record it.
    #[serde(rename_all = "camelCase")]
    Restart {
        /// Why.
        why: RestartReason,
    },
    /// Record the target (and [`RunsDecision::record`]) without restarting.
    #[serde(rename_all = "camelCase")]
    Record {
        /// Why nothing restarts (for the audit annotation).
        why: RecordReason,
    },
    /// Write nothing.
    #[serde(rename_all = "camelCase")]
    Nothing {
        /// Why.
        why: NothingReason,
    },
}

/// Why a container restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum RestartReason {
    /// Pods run an older image than the tag names now.
    #[serde(rename_all = "camelCase")]
    CatchUp {
        /// The stale pods.
        pods: Names,
    },
    /// The tag moved and the image for a running platform changed (or that cannot
    /// be ruled out).
    #[serde(rename_all = "camelCase")]
    Changed {
        /// Why.
        why: RestartWhy,
    },
}

/// Why a container's new target is recorded without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum RecordReason {
    /// First sight, nothing to catch up (or catch-up disabled): the baseline.
    #[serde(rename_all = "camelCase")]
    Baseline {
        /// Why no catch-up.
        why: NoCatchUp,
    },
    /// The tag moved, but not for the platforms the workload runs on.
    #[serde(rename_all = "camelCase")]
    Unchanged {
        /// Why.
        why: NoRestartWhy,
    },
}

/// Why nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum NothingReason {
    /// The tag names what is recorded, and the pods run it (or cannot be seen).
    AlreadyRecorded,
    /// The tag names what is recorded, but these pods still run something older;
    /// restarting again would loop, so they are reported.
    #[serde(rename_all = "camelCase")]
    StillStale {
        /// The stale pods.
        pods: Names,
    },
}

/// The decision for one container, with the facts behind it for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunsDecision {
    /// What to do.
    pub action: RunsAction,
    /// The guard's answer (also when it allows).
    pub guard: Guard,
    /// How the pods compare with the target.
    pub freshness: Freshness,
    /// The per-platform digests to record with the target (see
    /// [`Target::record`]), for every platform the workload runs or may run on.
    pub record: BTreeMap<String, Option<Digest>>,
}

/// Decides for one tracked container of a workload.
pub fn decide(
    tracked: &Tracked<'_>,
    owned: &OwnedPods<'_>,
    platforms: &WorkloadPlatforms,
    nodes: &NodeIndex<'_>,
) -> RunsDecision {
    let target = tracked.target;
    let known: &[Target] = tracked.previous.map_or(&[], std::slice::from_ref);
    let observed = observe(tracked.container, tracked.image, &owned.pods, nodes);
    let fresh = freshness(&observed, target, known, owned.truncated.as_ref());
    let g = guard(tracked.image, target, tracked.previous, platforms);
    let action = action(tracked, &g, &fresh, platforms);
    RunsDecision {
        action,
        guard: g,
        freshness: fresh,
        record: target.record(platforms.platforms()),
    }
}

fn action(
    tracked: &Tracked<'_>,
    g: &Guard,
    fresh: &Freshness,
    platforms: &WorkloadPlatforms,
) -> RunsAction {
    let target = tracked.target;
    let catch = catch_up(fresh, tracked.catch_up);
    match (tracked.previous, g) {
        (Some(prev), _) if prev.digest() == target.digest() => RunsAction::Nothing {
            why: match catch {
                CatchUp::Refresh { pods, .. } => NothingReason::StillStale { pods },
                CatchUp::Nothing { .. } => NothingReason::AlreadyRecorded,
            },
        },
        (_, Guard::Missing(missing)) => RunsAction::Block {
            missing: missing.clone(),
        },
        (None, _) => match catch {
            CatchUp::Refresh { pods, .. } => RunsAction::Restart {
                why: RestartReason::CatchUp { pods },
            },
            CatchUp::Nothing { why } => RunsAction::Record {
                why: RecordReason::Baseline { why },
            },
        },
        (Some(prev), _) => match (detect_change(prev, target, platforms), catch) {
            (Change::Restart { why }, _) => RunsAction::Restart {
                why: RestartReason::Changed { why },
            },
            (Change::NoRestart { .. }, CatchUp::Refresh { pods, .. }) => RunsAction::Restart {
                why: RestartReason::CatchUp { pods },
            },
            (Change::NoRestart { why }, CatchUp::Nothing { .. }) => RunsAction::Record {
                why: RecordReason::Unchanged { why },
            },
        },
    }
}
