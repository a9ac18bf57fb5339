//! Per-platform change detection: did a moved tag change anything for the
//! platforms this workload runs on?
//!
//! Owns the rule of issue 11: a new index digest whose children for every platform
//! the workload's pods run on are unchanged does not restart it, and the reason is a
//! value the audit annotation records. Whenever that cannot be shown (no pods
//! running, a node of unknown platform, a single image of unknown platform) the
//! answer is to restart, as freshet did before, with the reason. It must not
//! decide whether the target offers the platforms: that is [`super::guard()`].

use serde::Serialize;

use crate::digest::Digest;

use super::facts::Names;
use super::platforms::WorkloadPlatforms;
use super::target::{ForPlatform, Target};

/// Whether a tag's move restarts a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub enum Change {
    /// Restart: the image for some running platform changed, or that cannot be ruled
    /// out.
    #[serde(rename_all = "camelCase")]
    Restart {
        /// Why.
        why: RestartWhy,
    },
    /// Do not restart.
    #[serde(rename_all = "camelCase")]
    NoRestart {
        /// Why (for the audit annotation).
        why: NoRestartWhy,
    },
}

/// Why a workload restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum RestartWhy {
    /// The image for these running platforms changed.
    #[serde(rename_all = "camelCase")]
    PlatformsChanged {
        /// The platforms.
        platforms: Vec<String>,
        /// The index (or image) digest before.
        from: Digest,
        /// The digest now.
        to: Digest,
    },
    /// No pod runs on a node of known platform, so nothing can be compared.
    NothingRuns,
    /// Pods run on nodes of unknown platform.
    #[serde(rename_all = "camelCase")]
    PlatformsUnknown {
        /// Those nodes.
        nodes: Names,
    },
    /// The earlier or the new target is a single image whose platform was not read.
    TargetPlatformUnknown,
}

/// Why a workload does not restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum NoRestartWhy {
    /// The tag names the same digest as before.
    SameDigest,
    /// The index moved, but the image of every platform the pods run on is the same.
    #[serde(rename_all = "camelCase")]
    OtherPlatformsOnly {
        /// The index digest before.
        from: Digest,
        /// The index digest now (to record).
        to: Digest,
        /// The running platforms, unchanged.
        platforms: Vec<String>,
    },
}

impl std::fmt::Display for NoRestartWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SameDigest => f.write_str("the tag names the same digest"),
            Self::OtherPlatformsOnly {
                from,
                to,
                platforms,
            } => write!(
                f,
                "index moved from {} to {}, but the image for {} is unchanged: nothing restarted",
                from.short(),
                to.short(),
                platforms.join(", ")
            ),
        }
    }
}

impl std::fmt::Display for RestartWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PlatformsChanged {
                platforms,
                from,
                to,
            } => write!(
                f,
                "the image for {} changed ({} to {})",
                platforms.join(", "),
                from.short(),
                to.short()
            ),
            Self::NothingRuns => {
                f.write_str("no pod runs on a node of known platform; restarting as before")
            }
            Self::PlatformsUnknown { nodes } => {
                write!(f, "pods run on nodes of unknown platform ({nodes}); restarting as before")
            }
            Self::TargetPlatformUnknown => f.write_str(
                "a single-platform image's platform is unknown (config not read); restarting as before",
            ),
        }
    }
}

/// Whether moving from `previous` to `current` restarts a workload that runs on
/// `platforms.runs_on`.
pub fn detect_change(previous: &Target, current: &Target, platforms: &WorkloadPlatforms) -> Change {
    let (from, to) = (previous.digest(), current.digest());
    if from == to {
        return Change::NoRestart {
            why: NoRestartWhy::SameDigest,
        };
    }
    let restart = |why| Change::Restart { why };
    if platforms.running_on_unknown.total() > 0 {
        return restart(RestartWhy::PlatformsUnknown {
            nodes: platforms.running_on_unknown.clone(),
        });
    }
    if platforms.runs_on.is_empty() {
        return restart(RestartWhy::NothingRuns);
    }
    let mut changed = Vec::new();
    for p in platforms.runs_on.keys() {
        match (previous.for_platform(p), current.for_platform(p)) {
            (ForPlatform::Unknown, _) | (_, ForPlatform::Unknown) => {
                return restart(RestartWhy::TargetPlatformUnknown);
            }
            (ForPlatform::Offered(a), ForPlatform::Offered(b)) if a == b => {}
            _ => changed.push(p.to_string()),
        }
    }
    let all = platforms.runs_on.keys().map(ToString::to_string).collect();
    if changed.is_empty() {
        Change::NoRestart {
            why: NoRestartWhy::OtherPlatformsOnly {
                from: from.clone(),
                to: to.clone(),
                platforms: all,
            },
        }
    } else {
        restart(RestartWhy::PlatformsChanged {
            platforms: changed,
            from: from.clone(),
            to: to.clone(),
        })
    }
}
