//! The platform guard: the target image must offer every platform the workload's
//! pods run on or may run on, before freshet acts.
//!
//! Owns the check and the value the shell turns into a Warning Event
//! [`EVENT_REASON`] (`ImagePlatformMissing`) and a failure streak of class
//! [`FAILURE_CLASS`] (`platform`): the image, the missing platforms, and for each
//! the nodes that run or could run the workload. When the check cannot be made
//! (nodes or a single image of unknown platform), the answer says so and why.
//! It must not emit anything.

use serde::Serialize;

use crate::digest::Digest;

use super::facts::Names;
use super::platforms::WorkloadPlatforms;
use super::target::{ForPlatform, Target};
use super::text::{MESSAGE_MAX_BYTES, TOKEN_MAX_BYTES, bounded};

/// The reason of the Warning Event for a missing platform.
pub const EVENT_REASON: &str = "ImagePlatformMissing";
/// The failure-streak class of a missing platform.
pub const FAILURE_CLASS: &str = "platform";

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "guard", rename_all = "camelCase")]
pub enum Guard {
    /// The target offers every platform the workload runs on or may run on.
    Offers,
    /// The target lacks some of them: do not act.
    Missing(PlatformMissing),
    /// The target lacks platforms the workload could be scheduled on but runs no
    /// pod on, and the previous image lacked them too: acting changes nothing there.
    #[serde(rename_all = "camelCase")]
    NoRegression {
        /// Those platforms, each with its nodes.
        still_missing: Vec<MissingPlatform>,
    },
    /// Nothing is known to be missing, but not every platform could be checked.
    /// Acting is what freshet did before the guard existed; the reason is reported.
    Unverified {
        /// Why.
        why: Unverified,
    },
}

impl Guard {
    /// Whether freshet may act on the workload: not when a platform is missing.
    pub fn allows(&self) -> bool {
        !matches!(self, Self::Missing(_))
    }
}

/// Why the guard could not check every platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Unverified {
    /// The target is a single image whose platform was not read.
    TargetPlatformUnknown,
    /// Pods run on nodes of unknown platform.
    #[serde(rename_all = "camelCase")]
    NodesUnknown {
        /// Those nodes.
        nodes: Names,
    },
    /// No pod runs and no node is known to fit the workload.
    NoPlatforms,
}

/// A target that lacks platforms the workload needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformMissing {
    /// The image as the workload writes it (escaped, bounded).
    pub image: String,
    /// The digest the tag names now.
    pub digest: Digest,
    /// The missing platforms, each with its nodes.
    pub missing: Vec<MissingPlatform>,
    /// The platforms the target offers.
    pub offered: Vec<String>,
}

/// One missing platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingPlatform {
    /// The platform.
    pub platform: String,
    /// Nodes of it that run the workload's pods now.
    pub running: Names,
    /// Nodes of it the workload's pods may be scheduled on.
    pub schedulable: Names,
}

impl PlatformMissing {
    /// The Event message: names the image, the missing platforms and their nodes;
    /// escaped and at most [`MESSAGE_MAX_BYTES`] bytes.
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .missing
            .iter()
            .map(|m| {
                let mut s = m.platform.clone();
                if m.running.total() > 0 {
                    s.push_str(&format!(" (running on {})", m.running));
                } else if m.schedulable.total() > 0 {
                    s.push_str(&format!(" (schedulable on {})", m.schedulable));
                }
                s
            })
            .collect();
        let offered = if self.offered.is_empty() {
            "none".to_owned()
        } else {
            self.offered.join(", ")
        };
        let text = format!(
            "{} ({}) offers no image for {}; it offers {}. Not acting.",
            self.image,
            self.digest.short(),
            parts.join("; "),
            offered
        );
        bounded(&text, MESSAGE_MAX_BYTES)
    }
}

/// Checks that `target` (the tag `image` names now) offers every platform in
/// `platforms` (running first, then schedulable).
///
/// With `previous` (what the workload ran before: the recorded target, or the one
/// its pods run), a platform the workload could be scheduled on but runs no pod on,
/// and that `previous` did not offer either, does not block: the target does not
/// make it worse, and it is reported as [`Guard::NoRegression`]. Without
/// `previous`, or when `previous` does not say, every platform counts.
pub fn guard(
    image: &str,
    target: &Target,
    previous: Option<&Target>,
    platforms: &WorkloadPlatforms,
) -> Guard {
    let mut missing = Vec::new();
    let mut still_missing = Vec::new();
    let mut unknown = false;
    for p in platforms.platforms() {
        let entry = || MissingPlatform {
            platform: p.to_string(),
            running: platforms.runs_on.get(p).cloned().unwrap_or_default(),
            schedulable: platforms.may_run_on.get(p).cloned().unwrap_or_default(),
        };
        match target.for_platform(p) {
            ForPlatform::Offered(_) => {}
            ForPlatform::Unknown => unknown = true,
            ForPlatform::NotOffered => {
                let runs_there = platforms.runs_on.contains_key(p);
                let never_offered =
                    previous.is_some_and(|t| t.for_platform(p) == ForPlatform::NotOffered);
                if !runs_there && never_offered {
                    still_missing.push(entry());
                } else {
                    missing.push(entry());
                }
            }
        }
    }
    if !missing.is_empty() {
        return Guard::Missing(PlatformMissing {
            image: bounded(image, TOKEN_MAX_BYTES),
            digest: target.digest().clone(),
            missing,
            offered: target.platforms().iter().map(ToString::to_string).collect(),
        });
    }
    let why = if unknown {
        Unverified::TargetPlatformUnknown
    } else if platforms.running_on_unknown.total() > 0 {
        Unverified::NodesUnknown {
            nodes: platforms.running_on_unknown.clone(),
        }
    } else if platforms.platforms().is_empty() {
        Unverified::NoPlatforms
    } else if !still_missing.is_empty() {
        return Guard::NoRegression { still_missing };
    } else {
        return Guard::Offers;
    };
    Guard::Unverified { why }
}
