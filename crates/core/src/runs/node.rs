//! A node's platform, from its labels and its `nodeInfo`.
//!
//! Owns the rule: the GA labels `kubernetes.io/os` and `kubernetes.io/arch` first,
//! then the deprecated `beta.kubernetes.io/*` labels (kubelets stopped setting them
//! in 1.19, but old nodes and hand-made ones still carry them), then
//! `status.nodeInfo.{operatingSystem, architecture}`. Labels and `nodeInfo` that
//! disagree are reported, not settled by picking one.
//!
//! Kubernetes has **no** well-known label for the CPU variant (no
//! `kubernetes.io/arch-variant`; KEP-793 promoted only os and arch) and `nodeInfo`
//! carries none either: the runtime on the node picks the variant itself. So the
//! variant comes only from a label the operator names (`variant_label`), and
//! otherwise the architecture's default applies (`arm64` is `arm64/v8`; a 32-bit
//! `arm` node defaults to `v7`, as containerd does, and that assumption is recorded).
//! It must not read anything but the [`Node`] given.

use crate::platform::Platform;

use std::collections::BTreeMap;

use super::facts::{MAX_NODES, Node, Truncated};
use super::text::{TOKEN_MAX_BYTES, bounded};

/// `kubernetes.io/os`.
pub const LABEL_OS: &str = "kubernetes.io/os";
/// `kubernetes.io/arch`.
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// `beta.kubernetes.io/os` (deprecated since 1.14).
pub const LABEL_OS_BETA: &str = "beta.kubernetes.io/os";
/// `beta.kubernetes.io/arch` (deprecated since 1.14).
pub const LABEL_ARCH_BETA: &str = "beta.kubernetes.io/arch";

/// Where a node's platform was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PlatformSource {
    /// `kubernetes.io/os` and `kubernetes.io/arch`.
    Labels,
    /// `beta.kubernetes.io/os` and `beta.kubernetes.io/arch`.
    BetaLabels,
    /// `status.nodeInfo`.
    NodeInfo,
}

/// A node's platform and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlatform {
    /// The normalised platform.
    pub platform: Platform,
    /// Where os and arch came from.
    pub source: PlatformSource,
    /// True when the architecture has variants (32-bit `arm`) and none was given,
    /// so the default (`v7`) was assumed.
    pub variant_assumed: bool,
}

/// Why a node's platform is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum NodePlatformError {
    /// Neither labels nor `nodeInfo` name the OS and the architecture.
    #[error(
        "node {node} has no kubernetes.io/os and kubernetes.io/arch labels and no nodeInfo platform"
    )]
    NoPlatform {
        /// The node.
        node: String,
    },
    /// The labels and `nodeInfo` name different platforms.
    #[serde(rename_all = "camelCase")]
    #[error("node {node} is labelled {labels} but its kubelet reports {node_info}")]
    Disagree {
        /// The node.
        node: String,
        /// The platform the labels name.
        labels: String,
        /// The platform `nodeInfo` names.
        node_info: String,
    },
    /// A value that is not an OS or an architecture name.
    #[error("node {node} names an invalid platform part \"{value}\"")]
    Invalid {
        /// The node.
        node: String,
        /// The value, escaped and bounded.
        value: String,
    },
}

/// How to read platforms off nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePlatformRules {
    /// A label that carries the CPU variant (for example `v6` or `v8`), where the
    /// operator sets one; Kubernetes has no standard one.
    pub variant_label: Option<String>,
}

/// The platform of `node`.
pub fn node_platform(
    node: &Node,
    rules: &NodePlatformRules,
) -> Result<NodePlatform, NodePlatformError> {
    let label = |k: &str| {
        node.labels
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let from_labels = match (label(LABEL_OS), label(LABEL_ARCH)) {
        (Some(os), Some(arch)) => Some((os, arch, PlatformSource::Labels)),
        _ => match (label(LABEL_OS_BETA), label(LABEL_ARCH_BETA)) {
            (Some(os), Some(arch)) => Some((os, arch, PlatformSource::BetaLabels)),
            _ => None,
        },
    };
    let info = match (node.os.as_deref(), node.architecture.as_deref()) {
        (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => Some((os, arch)),
        _ => None,
    };
    let variant = rules.variant_label.as_deref().and_then(label);
    let build = |os: &str, arch: &str| -> Result<Platform, NodePlatformError> {
        for part in [os, arch].into_iter().chain(variant) {
            if !valid_part(part) {
                return Err(NodePlatformError::Invalid {
                    node: bounded(&node.name, TOKEN_MAX_BYTES),
                    value: bounded(part, TOKEN_MAX_BYTES),
                });
            }
        }
        Ok(Platform::new(os, arch, variant))
    };
    let (platform, source) = match (from_labels, info) {
        (Some((os, arch, source)), Some((ios, iarch))) => {
            let from_labels = build(os, arch)?;
            let from_info = build(ios, iarch)?;
            if from_labels != from_info {
                return Err(NodePlatformError::Disagree {
                    node: bounded(&node.name, TOKEN_MAX_BYTES),
                    labels: from_labels.to_string(),
                    node_info: from_info.to_string(),
                });
            }
            (from_labels, source)
        }
        (Some((os, arch, source)), None) => (build(os, arch)?, source),
        (None, Some((os, arch))) => (build(os, arch)?, PlatformSource::NodeInfo),
        (None, None) => {
            return Err(NodePlatformError::NoPlatform {
                node: bounded(&node.name, TOKEN_MAX_BYTES),
            });
        }
    };
    let variant_assumed = platform.architecture == "arm" && variant.is_none();
    Ok(NodePlatform {
        platform,
        source,
        variant_assumed,
    })
}

/// The nodes of a cluster by name, each with its platform (or why it has none),
/// computed once per pass and shared by every workload's decisions.
#[derive(Debug, Clone)]
pub struct NodeIndex<'a> {
    by_name: BTreeMap<&'a str, (&'a Node, Result<NodePlatform, NodePlatformError>)>,
    truncated: Option<Truncated>,
}

impl<'a> NodeIndex<'a> {
    /// Indexes at most [`MAX_NODES`] nodes (in the order given).
    pub fn new(nodes: &'a [Node], rules: &NodePlatformRules) -> Self {
        let kept = &nodes[..nodes.len().min(MAX_NODES)];
        let truncated = (nodes.len() > MAX_NODES).then_some(Truncated {
            cap: "MAX_NODES",
            kept: MAX_NODES,
            total: nodes.len(),
        });
        let by_name = kept
            .iter()
            .map(|n| (n.name.as_str(), (n, node_platform(n, rules))))
            .collect();
        Self { by_name, truncated }
    }

    /// The node named `name`, if indexed.
    pub fn get(&self, name: &str) -> Option<&'a Node> {
        self.by_name.get(name).map(|(n, _)| *n)
    }

    /// The platform of the node named `name`; `None` when the node is not indexed.
    pub fn platform(&self, name: &str) -> Option<&Result<NodePlatform, NodePlatformError>> {
        self.by_name.get(name).map(|(_, p)| p)
    }

    /// Every indexed node with its platform, in name order.
    pub fn iter(
        &self,
    ) -> impl Iterator<Item = (&'a Node, &Result<NodePlatform, NodePlatformError>)> {
        self.by_name.values().map(|(n, p)| (*n, p))
    }

    /// Set when more nodes were given than [`MAX_NODES`].
    pub fn truncated(&self) -> Option<&Truncated> {
        self.truncated.as_ref()
    }
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)], info: Option<(&str, &str)>) -> Node {
        Node {
            name: "n1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<crate::Labels>(),
            os: info.map(|i| i.0.to_owned()),
            architecture: info.map(|i| i.1.to_owned()),
            taints: vec![],
        }
    }

    #[test]
    fn reads_platform_from_labels_beta_labels_and_node_info() {
        let rules = NodePlatformRules::default();
        let with_variant = NodePlatformRules {
            variant_label: Some("example.com/arch-variant".into()),
        };
        let table: Vec<(Node, &NodePlatformRules, &str, PlatformSource, bool)> = vec![
            (
                node(
                    &[(LABEL_OS, "linux"), (LABEL_ARCH, "amd64")],
                    Some(("linux", "amd64")),
                ),
                &rules,
                "linux/amd64",
                PlatformSource::Labels,
                false,
            ),
            (
                node(&[(LABEL_OS, "linux"), (LABEL_ARCH, "arm64")], None),
                &rules,
                "linux/arm64",
                PlatformSource::Labels,
                false,
            ),
            (
                node(
                    &[(LABEL_OS_BETA, "linux"), (LABEL_ARCH_BETA, "arm64")],
                    None,
                ),
                &rules,
                "linux/arm64",
                PlatformSource::BetaLabels,
                false,
            ),
            (
                node(&[], Some(("linux", "arm64"))),
                &rules,
                "linux/arm64",
                PlatformSource::NodeInfo,
                false,
            ),
            (
                node(&[(LABEL_OS, "linux"), (LABEL_ARCH, "arm")], None),
                &rules,
                "linux/arm/v7",
                PlatformSource::Labels,
                true,
            ),
            (
                node(
                    &[
                        (LABEL_OS, "linux"),
                        (LABEL_ARCH, "arm"),
                        ("example.com/arch-variant", "v6"),
                    ],
                    None,
                ),
                &with_variant,
                "linux/arm/v6",
                PlatformSource::Labels,
                false,
            ),
            (
                node(
                    &[
                        (LABEL_OS, "linux"),
                        (LABEL_ARCH, "arm64"),
                        ("example.com/arch-variant", "v8"),
                    ],
                    None,
                ),
                &with_variant,
                "linux/arm64",
                PlatformSource::Labels,
                false,
            ),
            (
                node(&[(LABEL_OS, "windows"), (LABEL_ARCH, "amd64")], None),
                &rules,
                "windows/amd64",
                PlatformSource::Labels,
                false,
            ),
            // only one GA label: fall back to nodeInfo
            (
                node(&[(LABEL_ARCH, "amd64")], Some(("linux", "amd64"))),
                &rules,
                "linux/amd64",
                PlatformSource::NodeInfo,
                false,
            ),
        ];
        for (n, rules, want, source, assumed) in table {
            let got = node_platform(&n, rules).unwrap();
            assert_eq!(got.platform.to_string(), want, "{n:?}");
            assert_eq!(got.platform, Platform::parse(want).unwrap());
            assert_eq!(got.source, source, "{n:?}");
            assert_eq!(got.variant_assumed, assumed, "{n:?}");
        }
    }

    #[test]
    fn arm64_node_is_arm64_v8() {
        let n = node(&[(LABEL_OS, "linux"), (LABEL_ARCH, "arm64")], None);
        let p = node_platform(&n, &NodePlatformRules::default())
            .unwrap()
            .platform;
        assert_eq!(p, Platform::parse("linux/arm64/v8").unwrap());
    }

    #[test]
    fn a_node_without_platform_facts_is_explained() {
        let rules = NodePlatformRules::default();
        let e = node_platform(&node(&[(LABEL_OS, "linux")], None), &rules).unwrap_err();
        assert_eq!(e, NodePlatformError::NoPlatform { node: "n1".into() });
        assert!(
            e.to_string()
                .contains("no kubernetes.io/os and kubernetes.io/arch labels")
        );

        let e = node_platform(
            &node(
                &[(LABEL_OS, "linux"), (LABEL_ARCH, "amd64")],
                Some(("linux", "arm64")),
            ),
            &rules,
        )
        .unwrap_err();
        assert!(matches!(e, NodePlatformError::Disagree { .. }), "{e}");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["reason"], "disagree");
        assert_eq!(json["nodeInfo"], "linux/arm64");

        let e = node_platform(
            &node(&[(LABEL_OS, "linux"), (LABEL_ARCH, "am\nd64")], None),
            &rules,
        )
        .unwrap_err();
        assert_eq!(
            e,
            NodePlatformError::Invalid {
                node: "n1".into(),
                value: "am\\nd64".into()
            }
        );
    }
}
