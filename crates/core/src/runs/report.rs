//! What `status` shows per container: the digests the pods run, on which platforms
//! and nodes, the pods whose image is unknown and why, stuck pulls, and (when the
//! tag was resolved) the freshness verdict.
//!
//! Owns the grouping into a serialisable [`RunsReport`] (the same value backs the
//! table and `--output json`). Every list is capped by [`MAX_NAMES`] with the rest
//! counted. It must not decide actions.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::digest::Digest;

use super::catchup::{Freshness, PodReason, PodUnknown, freshness};
use super::facts::{MAX_NAMES, Names, Truncated};
use super::node::NodeIndex;
use super::observe::observe;
use super::owners::OwnedPods;
use super::stuck::{StuckPods, stuck_pods};
use super::target::Target;
use super::text::{TOKEN_MAX_BYTES, bounded};

/// What one container of a workload runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunsReport {
    /// The container.
    pub container: String,
    /// The image the template writes (escaped, bounded).
    pub image: String,
    /// The digests the pods run, most pods first, at most [`MAX_NAMES`].
    pub running: Vec<RunningDigest>,
    /// How many more distinct digests.
    pub running_more: usize,
    /// Pods whose `imageID` names no digest, and why, at most [`MAX_NAMES`].
    pub unknown: Vec<PodReason>,
    /// How many more.
    pub unknown_more: usize,
    /// Pods whose container names another image (an older template).
    pub other_image: Names,
    /// Containers of this name that cannot pull.
    pub stuck: StuckPods,
    /// The comparison with what the tag names now, when it was resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
    /// Set when the workload has more pods than were looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

/// One digest the pods run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningDigest {
    /// The digest (an index digest when the pods pulled a multi-platform tag).
    pub digest: Digest,
    /// How many pods run it.
    pub pods: usize,
    /// The platforms of their nodes (`linux/arm64`), in order.
    pub platforms: Vec<String>,
    /// Pods that run it on a node of unknown platform.
    pub platform_unknown_pods: usize,
    /// Their nodes.
    pub nodes: Names,
}

/// The tag as resolved now, with earlier targets (see [`super::catchup`]).
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'t> {
    /// What the tag names now.
    pub target: &'t Target,
    /// Earlier targets, for example the recorded one.
    pub known: &'t [Target],
}

/// The report for `container` (running `image`) across the workload's `owned` pods.
pub fn runs_report(
    container: &str,
    image: &str,
    owned: &OwnedPods<'_>,
    nodes: &NodeIndex<'_>,
    resolved: Option<Resolved<'_>>,
) -> RunsReport {
    let observed = observe(container, image, &owned.pods, nodes);
    #[derive(Default)]
    struct Group<'a> {
        pods: usize,
        platforms: BTreeSet<String>,
        platform_unknown_pods: usize,
        nodes: BTreeSet<&'a str>,
    }
    let mut groups: BTreeMap<&Digest, Group<'_>> = BTreeMap::new();
    let mut unknown = Vec::new();
    let mut unknown_more = 0;
    for obs in &observed.observations {
        match &obs.runs {
            Ok(r) => {
                let g = groups.entry(&r.digest).or_default();
                g.pods += 1;
                match &obs.platform {
                    Ok(p) => {
                        g.platforms.insert(p.to_string());
                    }
                    Err(_) => g.platform_unknown_pods += 1,
                }
                if let Some(n) = obs.node.as_deref() {
                    g.nodes.insert(n);
                }
            }
            Err(error) if unknown.len() < MAX_NAMES => unknown.push(PodReason {
                pod: obs.pod.clone(),
                why: PodUnknown::ImageId {
                    error: error.clone(),
                },
            }),
            Err(_) => unknown_more += 1,
        }
    }
    let mut running: Vec<RunningDigest> = groups
        .into_iter()
        .map(|(digest, g)| {
            let mut nodes = Names::default();
            for n in g.nodes {
                nodes.push(n);
            }
            RunningDigest {
                digest: digest.clone(),
                pods: g.pods,
                platforms: g.platforms.into_iter().collect(),
                platform_unknown_pods: g.platform_unknown_pods,
                nodes,
            }
        })
        .collect();
    running.sort_by(|a, b| b.pods.cmp(&a.pods).then_with(|| a.digest.cmp(&b.digest)));
    let running_more = running.len().saturating_sub(MAX_NAMES);
    running.truncate(MAX_NAMES);
    RunsReport {
        container: container.to_owned(),
        image: bounded(image, TOKEN_MAX_BYTES),
        running,
        running_more,
        unknown,
        unknown_more,
        other_image: observed.other_image.clone(),
        stuck: stuck_pods(&owned.pods, nodes, Some(container)),
        freshness: resolved
            .map(|r| freshness(&observed, r.target, r.known, owned.truncated.as_ref())),
        truncated: owned.truncated.clone(),
    }
}
