//! Stuck pods: containers that cannot pull their image, whoever caused it.
//!
//! Owns the reading of a container's `waiting` state: the kubelet's pull-failure
//! reasons (`ErrImagePull`, `ImagePullBackOff`, …) and, from the message, the likely
//! cause (a platform missing from the image, `no matching manifest for linux/arm64
//! in the manifest list entries`; not found; denied; rate limited). The message
//! comes from outside and is escaped and bounded before it is kept. The cause read
//! from text is a hint next to the kept message, never the only record.
//! It must not emit Events or count streaks: the shell does, from these values.

use serde::Serialize;

use crate::platform::Platform;

use super::facts::{MAX_NAMES, Pod};
use super::node::NodeIndex;
use super::text::{MESSAGE_MAX_BYTES, TOKEN_MAX_BYTES, bounded};

/// The reason of the Warning Event for pods that cannot pull.
pub const EVENT_REASON: &str = "ImagePullFailing";

/// The `waiting.reason` values of a failed pull, as the kubelet names them.
pub const PULL_FAILURE_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "ImageInspectError",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];

/// What the message says went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "camelCase")]
pub enum PullCause {
    /// The image offers no manifest for the node's platform.
    #[serde(rename_all = "camelCase")]
    PlatformMissing {
        /// The platform, from the message or else from the node.
        platform: Option<String>,
    },
    /// The registry does not have the image or tag.
    NotFound,
    /// The registry refused the credentials (or their absence).
    Denied,
    /// The registry rate-limited the pull.
    RateLimited,
    /// The message names no cause freshet recognises (a back-off message often
    /// names none).
    Unrecognised,
}

/// A container that cannot pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StuckContainer {
    /// The pod.
    pub pod: String,
    /// The pod's node.
    pub node: Option<String>,
    /// The container.
    pub container: String,
    /// The image the container asks for (escaped, bounded).
    pub image: String,
    /// `waiting.reason`.
    pub reason: String,
    /// The cause read from the message.
    pub cause: PullCause,
    /// `waiting.message`, escaped and at most [`MESSAGE_MAX_BYTES`] bytes.
    pub message: String,
}

impl StuckContainer {
    /// The failure-streak class: `platform` for a missing platform, else `pull`.
    pub fn failure_class(&self) -> &'static str {
        match self.cause {
            PullCause::PlatformMissing { .. } => super::guard::FAILURE_CLASS,
            _ => "pull",
        }
    }
}

/// The stuck containers of a workload's pods.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StuckPods {
    /// At most [`MAX_NAMES`] stuck containers, in pod order.
    pub containers: Vec<StuckContainer>,
    /// How many more.
    pub more: usize,
}

impl std::fmt::Display for PullCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PlatformMissing { platform: Some(p) } => write!(f, "no image for {p}"),
            Self::PlatformMissing { platform: None } => {
                f.write_str("no image for the node's platform")
            }
            Self::NotFound => f.write_str("image not found"),
            Self::Denied => f.write_str("access denied"),
            Self::RateLimited => f.write_str("rate limited"),
            Self::Unrecognised => f.write_str("cause not recognised"),
        }
    }
}

impl StuckPods {
    /// The Warning Event message ([`EVENT_REASON`]): each stuck container with its
    /// reason, cause and the kubelet's message; escaped and at most
    /// [`MESSAGE_MAX_BYTES`] bytes. `None` when nothing is stuck.
    pub fn message(&self) -> Option<String> {
        if self.containers.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .containers
            .iter()
            .map(|s| {
                format!(
                    "pod {} container {} {}: {} ({})",
                    s.pod, s.container, s.reason, s.cause, s.message
                )
            })
            .collect();
        let mut text = parts.join("; ");
        if self.more > 0 {
            text = format!("{} more; {text}", self.more);
        }
        Some(bounded(&text, MESSAGE_MAX_BYTES))
    }
}

/// The containers of `pods` whose pull failed (only those named `container`, when
/// given).
pub fn stuck_pods(pods: &[&Pod], nodes: &NodeIndex<'_>, container: Option<&str>) -> StuckPods {
    let mut out = StuckPods::default();
    for pod in pods {
        for c in pod
            .containers
            .iter()
            .filter(|c| container.is_none_or(|n| c.name == n))
        {
            let Some(reason) = c
                .waiting_reason
                .as_deref()
                .filter(|r| PULL_FAILURE_REASONS.contains(r))
            else {
                continue;
            };
            if out.containers.len() >= MAX_NAMES {
                out.more += 1;
                continue;
            }
            let raw = c.waiting_message.as_deref().unwrap_or("");
            let node_platform = pod
                .node_name
                .as_deref()
                .and_then(|n| nodes.platform(n))
                .and_then(|p| p.as_ref().ok())
                .map(|np| np.platform.to_string());
            out.containers.push(StuckContainer {
                pod: pod.name.clone(),
                node: pod.node_name.clone(),
                container: c.name.clone(),
                image: bounded(&c.image, TOKEN_MAX_BYTES),
                reason: reason.to_owned(),
                cause: pull_cause(raw, node_platform),
                message: bounded(raw, MESSAGE_MAX_BYTES),
            });
        }
    }
    out
}

/// The cause a pull-failure message names. `node_platform` fills in the platform
/// when the message says a platform is missing but not which.
pub fn pull_cause(message: &str, node_platform: Option<String>) -> PullCause {
    let lower = message.to_ascii_lowercase();
    if let Some(rest) = lower.split("no matching manifest for ").nth(1) {
        let word = rest.split_whitespace().next().unwrap_or("");
        let platform = Platform::parse(word).ok().map(|p| p.to_string());
        return PullCause::PlatformMissing {
            platform: platform.or(node_platform),
        };
    }
    if lower.contains("no match for platform") {
        return PullCause::PlatformMissing {
            platform: node_platform,
        };
    }
    if lower.contains("toomanyrequests") || lower.contains("429 too many requests") {
        return PullCause::RateLimited;
    }
    if [
        "unauthorized",
        "denied",
        "authentication required",
        "403 forbidden",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return PullCause::Denied;
    }
    if ["manifest unknown", "not found", "name unknown"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return PullCause::NotFound;
    }
    PullCause::Unrecognised
}
