//! The platforms a workload runs on (its pods' nodes) and may run on (the nodes its
//! scheduling constraints allow).
//!
//! Owns the join of pods, nodes and scheduling into per-platform node lists, and the
//! explanation of every node whose platform is unknown (no labels, labels that
//! disagree with the kubelet, a pod's node missing from the node list). It must not
//! decide anything about images: that is [`super::guard()`] and [`super::catchup`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::platform::Platform;

use super::facts::{MAX_NAMES, Names, Pod, Scheduling, Truncated};
use super::node::{NodeIndex, NodePlatformError};
use super::schedule::node_fits;
use super::text::{TOKEN_MAX_BYTES, bounded};

/// Why a node's platform is not counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum UnknownNode {
    /// A pod runs on a node that is not in the node list (deleted, or not readable).
    #[serde(rename_all = "camelCase")]
    NotListed {
        /// The node.
        node: String,
    },
    /// The node's platform could not be read.
    #[serde(rename_all = "camelCase")]
    NoPlatform {
        /// Why.
        error: NodePlatformError,
    },
}

impl std::fmt::Display for UnknownNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotListed { node } => write!(f, "node {node} is not in the node list"),
            Self::NoPlatform { error } => error.fmt(f),
        }
    }
}

/// Where a workload runs and may run, by platform.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadPlatforms {
    /// Platforms of the nodes the workload's pods are on, with those nodes.
    pub runs_on: BTreeMap<Platform, Names>,
    /// Platforms of the nodes the workload's pods may be scheduled on, with those
    /// nodes (running ones included when they still fit).
    pub may_run_on: BTreeMap<Platform, Names>,
    /// Nodes that run a pod of the workload but whose platform is unknown.
    pub running_on_unknown: Names,
    /// Why nodes' platforms are unknown, at most [`MAX_NAMES`], a pod's node first.
    pub unknown: Vec<UnknownNode>,
    /// How many more unknown nodes there are.
    pub unknown_more: usize,
    /// Pods not yet on a node.
    pub unscheduled_pods: usize,
    /// Arm nodes whose variant was assumed (see [`super::node::NodePlatform::variant_assumed`]).
    pub variant_assumed: Names,
    /// Set when there were more nodes than [`super::facts::MAX_NODES`].
    pub truncated: Option<Truncated>,
}

impl WorkloadPlatforms {
    /// Every platform the workload runs on or may run on.
    pub fn platforms(&self) -> BTreeSet<&Platform> {
        self.runs_on.keys().chain(self.may_run_on.keys()).collect()
    }
}

/// The platforms `pods` run on and the platforms `scheduling` allows on the
/// indexed nodes.
///
/// `may_run_on` depends only on `scheduling` and the nodes: a shell handling many
/// workloads may compute it once per distinct [`Scheduling`] (it is `Hash`).
pub fn workload_platforms(
    pods: &[&Pod],
    scheduling: &Scheduling,
    nodes: &NodeIndex<'_>,
) -> WorkloadPlatforms {
    let mut out = WorkloadPlatforms {
        truncated: nodes.truncated().cloned(),
        ..WorkloadPlatforms::default()
    };
    let mut running: BTreeMap<Platform, BTreeSet<&str>> = BTreeMap::new();
    let mut unknown_nodes: BTreeMap<&str, UnknownNode> = BTreeMap::new();
    let mut running_unknown: BTreeSet<&str> = BTreeSet::new();
    let mut assumed: BTreeSet<&str> = BTreeSet::new();
    for pod in pods {
        let Some(name) = pod.node_name.as_deref() else {
            out.unscheduled_pods += 1;
            continue;
        };
        match nodes.platform(name) {
            None => {
                running_unknown.insert(name);
                unknown_nodes
                    .entry(name)
                    .or_insert_with(|| UnknownNode::NotListed {
                        node: bounded(name, TOKEN_MAX_BYTES),
                    });
            }
            Some(Ok(np)) => {
                if np.variant_assumed {
                    assumed.insert(name);
                }
                running.entry(np.platform.clone()).or_default().insert(name);
            }
            Some(Err(error)) => {
                running_unknown.insert(name);
                unknown_nodes
                    .entry(name)
                    .or_insert_with(|| UnknownNode::NoPlatform {
                        error: error.clone(),
                    });
            }
        }
    }
    // A pod's node first: those explanations matter most.
    let explain = |u: UnknownNode, out: &mut WorkloadPlatforms| {
        if out.unknown.len() < MAX_NAMES {
            out.unknown.push(u);
        } else {
            out.unknown_more += 1;
        }
    };
    for (_, u) in std::mem::take(&mut unknown_nodes) {
        explain(u, &mut out);
    }
    let mut schedulable: BTreeMap<Platform, BTreeSet<&str>> = BTreeMap::new();
    for (node, platform) in nodes
        .iter()
        .filter(|(n, _)| node_fits(scheduling, n).is_ok())
    {
        match platform {
            Ok(np) => {
                if np.variant_assumed {
                    assumed.insert(&node.name);
                }
                schedulable
                    .entry(np.platform.clone())
                    .or_default()
                    .insert(&node.name);
            }
            Err(error) => {
                if !running_unknown.contains(node.name.as_str()) {
                    explain(
                        UnknownNode::NoPlatform {
                            error: error.clone(),
                        },
                        &mut out,
                    );
                }
            }
        }
    }
    out.runs_on = running.into_iter().map(|(p, n)| (p, names(n))).collect();
    out.may_run_on = schedulable
        .into_iter()
        .map(|(p, n)| (p, names(n)))
        .collect();
    out.running_on_unknown = names(running_unknown);
    out.variant_assumed = names(assumed);
    out
}

fn names(set: BTreeSet<&str>) -> Names {
    let mut names = Names::default();
    for n in set {
        names.push(n);
    }
    names
}
