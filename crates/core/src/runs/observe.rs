//! One container of a workload, observed in each of its pods: the digest it runs
//! and the platform of the node it runs on, each with the reason when unknown.
//!
//! Owns the join that catch-up and `status` both read, and the rule for which pods
//! count for a container: those whose spec names the tracked image (same name and
//! tag; a digest pin is ignored). Pods of an older template (a rollout in progress,
//! an image changed by hand) are counted apart, not compared. It must not judge
//! what it observes.

use serde::Serialize;

use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;

use super::facts::{Names, Pod};
use super::image_id::{ImageIdError, RepoDigest, parse_image_id};
use super::node::{NodeIndex, NodePlatformError};
use super::text::{TOKEN_MAX_BYTES, bounded};

/// Why the platform a pod runs on is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum PodPlatformUnknown {
    /// The pod is not on a node yet.
    Unscheduled,
    /// The pod's node is not in the node list.
    #[serde(rename_all = "camelCase")]
    NodeNotListed {
        /// The node.
        node: String,
    },
    /// The node's platform could not be read.
    #[serde(rename_all = "camelCase")]
    Node {
        /// Why.
        error: NodePlatformError,
    },
}

impl std::fmt::Display for PodPlatformUnknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unscheduled => f.write_str("the pod is not on a node yet"),
            Self::NodeNotListed { node } => write!(f, "node {node} is not in the node list"),
            Self::Node { error } => error.fmt(f),
        }
    }
}

/// One pod's instance of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The pod.
    pub pod: String,
    /// The pod's node.
    pub node: Option<String>,
    /// What the container runs.
    pub runs: Result<RepoDigest, ImageIdError>,
    /// The node's platform.
    pub platform: Result<Platform, PodPlatformUnknown>,
}

impl Observation {
    /// The digest the container runs, if known.
    pub fn digest(&self) -> Option<&Digest> {
        self.runs.as_ref().ok().map(|r| &r.digest)
    }
}

/// A container across a workload's pods.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The pods that run the tracked image, in the order given.
    pub observations: Vec<Observation>,
    /// Pods whose container names another image (an older template).
    pub other_image: Names,
    /// Pods without a container of that name.
    pub missing: Names,
}

/// Observes `container` (which runs `image`, as the workload's template writes it)
/// in each of `pods`.
pub fn observe(container: &str, image: &str, pods: &[&Pod], nodes: &NodeIndex<'_>) -> Observed {
    let tracked = same_image_key(image);
    let mut out = Observed::default();
    for pod in pods {
        let Some(c) = pod.containers.iter().find(|c| c.name == container) else {
            out.missing.push(&pod.name);
            continue;
        };
        if tracked.is_none() || same_image_key(&c.image) != tracked {
            out.other_image.push(&pod.name);
            continue;
        }
        let platform = match pod.node_name.as_deref() {
            None => Err(PodPlatformUnknown::Unscheduled),
            Some(node) => match nodes.platform(node) {
                None => Err(PodPlatformUnknown::NodeNotListed {
                    node: bounded(node, TOKEN_MAX_BYTES),
                }),
                Some(Ok(np)) => Ok(np.platform.clone()),
                Some(Err(error)) => Err(PodPlatformUnknown::Node {
                    error: error.clone(),
                }),
            },
        };
        out.observations.push(Observation {
            pod: pod.name.clone(),
            node: pod.node_name.clone(),
            runs: parse_image_id(&c.image_id),
            platform,
        });
    }
    out
}

/// The image's canonical name and tag, without a digest pin.
fn same_image_key(image: &str) -> Option<String> {
    Reference::parse(image)
        .ok()
        .map(|r| r.without_digest().canonical())
}
