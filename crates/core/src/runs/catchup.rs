//! Catch-up: do a container's pods run what its tag names now?
//!
//! Owns the comparison, pod by pod, of the digest the pod runs with the
//! [`Target`]: the index digest itself, or the index's child for the pod's own
//! platform, is current; a digest of an earlier target (`known`, for example the
//! recorded one) whose child for the pod's platform equals today's child is current
//! too (the index moved for other platforms only); anything else is stale. One stale
//! pod makes the container stale; otherwise one unknown pod makes it unknown, with
//! the reason. [`catch_up`] turns that into the action, honouring `catchUp: false`.
//!
//! It must not check that the target offers the pods' platforms: run
//! [`super::guard::guard`] first and act only when it allows.

use serde::Serialize;

use crate::digest::Digest;

use super::facts::{MAX_NAMES, Names, Truncated};
use super::image_id::ImageIdError;
use super::observe::{Observation, Observed, PodPlatformUnknown};
use super::target::{ForPlatform, Target};

/// The most earlier targets compared against.
pub const MAX_KNOWN_TARGETS: usize = 8;

/// Why one pod's freshness is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum PodUnknown {
    /// The container's `imageID` names no manifest digest.
    #[serde(rename_all = "camelCase")]
    ImageId {
        /// Why.
        error: ImageIdError,
    },
    /// The pod runs an earlier target, and which child it runs depends on its
    /// platform, which is unknown.
    #[serde(rename_all = "camelCase")]
    Platform {
        /// Why.
        error: PodPlatformUnknown,
    },
    /// The pod runs an earlier target and one of the two is a single image whose
    /// platform was not read.
    TargetPlatformUnknown,
}

impl std::fmt::Display for PodUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ImageId { error } => error.fmt(f),
            Self::Platform { error } => error.fmt(f),
            Self::TargetPlatformUnknown => {
                f.write_str("a single-platform image's platform is unknown (config not read)")
            }
        }
    }
}

/// One pod compared with the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodFreshness {
    /// The pod runs the target's digest or its child for the pod's platform.
    Current,
    /// The pod runs an earlier target whose image for its platform is today's.
    SamePlatformImage {
        /// The earlier target's digest.
        was: Digest,
    },
    /// The pod runs something else.
    Stale {
        /// What it runs.
        runs: Digest,
    },
    /// Not known.
    Unknown(PodUnknown),
}

/// One container of a workload compared with the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Freshness {
    /// Every pod runs the target for its platform.
    #[serde(rename_all = "camelCase")]
    Current {
        /// How many pods.
        pods: usize,
        /// Pods that run an earlier index whose image for their platform is today's.
        same_platform_image: Names,
    },
    /// At least one pod runs an older image than the tag names now.
    #[serde(rename_all = "camelCase")]
    Stale {
        /// The stale pods.
        pods: Names,
        /// The digests they run, at most [`MAX_NAMES`].
        runs: Vec<Digest>,
        /// The digest the tag names now.
        target: Digest,
    },
    /// Not known; nothing is stale as far as can be seen.
    #[serde(rename_all = "camelCase")]
    Unknown {
        /// Why.
        why: FreshnessUnknown,
    },
}

/// Why a container's freshness is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum FreshnessUnknown {
    /// The workload has no pods (scaled to zero, a CronJob between runs, or
    /// pods not readable).
    NoPods,
    /// No pod runs the tracked image yet (all belong to an older template).
    #[serde(rename_all = "camelCase")]
    NoPodRunsImage {
        /// Pods that run another image.
        other_image: Names,
    },
    /// Some pods' freshness is unknown.
    #[serde(rename_all = "camelCase")]
    Pods {
        /// The pods and why, at most [`MAX_NAMES`].
        pods: Vec<PodReason>,
        /// How many more.
        more: usize,
    },
    /// The workload has more pods than were looked at, and none of those was stale.
    #[serde(rename_all = "camelCase")]
    TooManyPods {
        /// The cap.
        truncated: Truncated,
    },
}

/// A pod and why its freshness is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReason {
    /// The pod.
    pub pod: String,
    /// Why.
    pub why: PodUnknown,
}

/// Compares one pod with the target (and earlier targets).
pub fn pod_freshness(obs: &Observation, target: &Target, known: &[Target]) -> PodFreshness {
    let runs = match &obs.runs {
        Ok(r) => &r.digest,
        Err(error) => {
            return PodFreshness::Unknown(PodUnknown::ImageId {
                error: error.clone(),
            });
        }
    };
    if target.names(runs) {
        return PodFreshness::Current;
    }
    let Some(earlier) = known
        .iter()
        .take(MAX_KNOWN_TARGETS)
        .find(|k| k.digest() == runs)
    else {
        return PodFreshness::Stale { runs: runs.clone() };
    };
    let platform = match &obs.platform {
        Ok(p) => p,
        Err(error) => {
            return PodFreshness::Unknown(PodUnknown::Platform {
                error: error.clone(),
            });
        }
    };
    match (
        earlier.for_platform(platform),
        target.for_platform(platform),
    ) {
        (ForPlatform::Offered(was), ForPlatform::Offered(now)) if was == now => {
            PodFreshness::SamePlatformImage { was: runs.clone() }
        }
        (ForPlatform::Unknown, _) | (_, ForPlatform::Unknown) => {
            PodFreshness::Unknown(PodUnknown::TargetPlatformUnknown)
        }
        _ => PodFreshness::Stale { runs: runs.clone() },
    }
}

/// Compares a container's observed pods with the target. `truncated` is the cap
/// hit while finding the workload's pods, if any.
pub fn freshness(
    observed: &Observed,
    target: &Target,
    known: &[Target],
    truncated: Option<&Truncated>,
) -> Freshness {
    if observed.observations.is_empty() {
        let why = if observed.other_image.total() > 0 {
            FreshnessUnknown::NoPodRunsImage {
                other_image: observed.other_image.clone(),
            }
        } else {
            FreshnessUnknown::NoPods
        };
        return Freshness::Unknown { why };
    }
    let mut stale = Names::default();
    let mut runs: Vec<Digest> = Vec::new();
    let mut same = Names::default();
    let mut unknown: Vec<PodReason> = Vec::new();
    let mut unknown_more = 0;
    for obs in &observed.observations {
        match pod_freshness(obs, target, known) {
            PodFreshness::Current => {}
            PodFreshness::SamePlatformImage { .. } => same.push(&obs.pod),
            PodFreshness::Stale { runs: d } => {
                stale.push(&obs.pod);
                if runs.len() < MAX_NAMES && !runs.contains(&d) {
                    runs.push(d);
                }
            }
            PodFreshness::Unknown(why) if unknown.len() < MAX_NAMES => unknown.push(PodReason {
                pod: obs.pod.clone(),
                why,
            }),
            PodFreshness::Unknown(_) => unknown_more += 1,
        }
    }
    if stale.total() > 0 {
        return Freshness::Stale {
            pods: stale,
            runs,
            target: target.digest().clone(),
        };
    }
    if !unknown.is_empty() {
        let why = FreshnessUnknown::Pods {
            pods: unknown,
            more: unknown_more,
        };
        return Freshness::Unknown { why };
    }
    if let Some(t) = truncated {
        let why = FreshnessUnknown::TooManyPods {
            truncated: t.clone(),
        };
        return Freshness::Unknown { why };
    }
    Freshness::Current {
        pods: observed.observations.len(),
        same_platform_image: same,
    }
}

/// What catch-up does for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum CatchUp {
    /// Refresh the workload: its pods run an older image than the tag names now.
    #[serde(rename_all = "camelCase")]
    Refresh {
        /// The stale pods.
        pods: Names,
        /// The digest the tag names now.
        target: Digest,
    },
    /// Do nothing beyond today's baseline behaviour.
    #[serde(rename_all = "camelCase")]
    Nothing {
        /// Why.
        why: NoCatchUp,
    },
}

/// Why catch-up does nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum NoCatchUp {
    /// `catchUp: false` (rule) or `freshet.io/catch-up: "false"`: record a baseline
    /// and restart nothing, as before catch-up existed.
    Disabled,
    /// Every pod runs what the tag names now.
    Current,
    /// Freshness is unknown.
    #[serde(rename_all = "camelCase")]
    Unknown {
        /// Why.
        why: FreshnessUnknown,
    },
}

/// The catch-up action for a container's [`Freshness`]. With `enabled` false
/// (`catchUp: false`) it is always [`NoCatchUp::Disabled`].
pub fn catch_up(freshness: &Freshness, enabled: bool) -> CatchUp {
    if !enabled {
        return CatchUp::Nothing {
            why: NoCatchUp::Disabled,
        };
    }
    match freshness {
        Freshness::Stale { pods, target, .. } => CatchUp::Refresh {
            pods: pods.clone(),
            target: target.clone(),
        },
        Freshness::Current { .. } => CatchUp::Nothing {
            why: NoCatchUp::Current,
        },
        Freshness::Unknown { why } => CatchUp::Nothing {
            why: NoCatchUp::Unknown { why: why.clone() },
        },
    }
}
