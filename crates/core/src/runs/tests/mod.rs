//! Scenario, table and property tests across the `runs` decisions, with chainable
//! fixtures (`pod("web-1").on("arm-1").runs(d(1))`).

mod decisions;
mod flow;
mod props;
mod report;

use crate::digest::Digest;

use super::facts::{
    Node, OwnerRef, Pod, PodContainer, Requirement, Scheduling, SelectorTerm, WorkloadKind,
    WorkloadRef,
};
use super::node::{LABEL_ARCH, LABEL_OS, NodeIndex, NodePlatformRules};
use super::owners::{OwnedPods, pods_of};
use super::platforms::{WorkloadPlatforms, workload_platforms};
pub(crate) use super::target::fixtures::{d, image, index, p};

pub(crate) const IMAGE: &str = "nginx:latest";

/// A pod of the DaemonSet `web` (uid `w1`) with one container `app` running
/// [`IMAGE`], not yet scheduled and not yet pulled.
pub(crate) fn pod(name: &str) -> Pod {
    Pod {
        namespace: "ns".into(),
        name: name.into(),
        owners: vec![OwnerRef {
            kind: "DaemonSet".into(),
            name: "web".into(),
            uid: "w1".into(),
            controller: true,
        }],
        node_name: None,
        containers: vec![PodContainer {
            name: "app".into(),
            image: IMAGE.into(),
            ..PodContainer::default()
        }],
    }
}

pub(crate) trait PodExt {
    fn on(self, node: &str) -> Self;
    fn runs(self, digest: Digest) -> Self;
    fn image_id(self, id: &str) -> Self;
    fn image(self, image: &str) -> Self;
    fn waiting(self, reason: &str, message: &str) -> Self;
}

impl PodExt for Pod {
    fn on(mut self, node: &str) -> Self {
        self.node_name = Some(node.into());
        self
    }
    fn runs(self, digest: Digest) -> Self {
        self.image_id(&format!("docker.io/library/nginx@{digest}"))
    }
    fn image_id(mut self, id: &str) -> Self {
        self.containers[0].image_id = id.into();
        self
    }
    fn image(mut self, image: &str) -> Self {
        self.containers[0].image = image.into();
        self
    }
    fn waiting(mut self, reason: &str, message: &str) -> Self {
        self.containers[0].waiting_reason = Some(reason.into());
        self.containers[0].waiting_message = Some(message.into());
        self
    }
}

/// A node labelled with `platform` (`linux/arm64`), or with no platform for `""`.
pub(crate) fn node(name: &str, platform: &str) -> Node {
    let mut labels = crate::Labels::new();
    if let Some((os, arch)) = platform.split_once('/') {
        labels.insert(LABEL_OS.to_owned(), os.to_owned());
        labels.insert(LABEL_ARCH.to_owned(), arch.to_owned());
    }
    Node {
        name: name.into(),
        labels,
        ..Node::default()
    }
}

pub(crate) fn daemonset() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::DaemonSet,
        namespace: "ns".into(),
        name: "web".into(),
        uid: "w1".into(),
    }
}

pub(crate) fn owned(pods: &[Pod]) -> OwnedPods<'_> {
    pods_of(&daemonset(), &[], pods)
}

/// Scheduling that requires `kubernetes.io/arch In archs`.
pub(crate) fn arch_in(archs: &[&str]) -> Scheduling {
    Scheduling {
        required_terms: Some(vec![SelectorTerm {
            match_expressions: vec![Requirement {
                key: LABEL_ARCH.into(),
                operator: "In".into(),
                values: archs.iter().map(|a| (*a).to_owned()).collect(),
            }],
            match_fields: vec![],
        }]),
        ..Scheduling::default()
    }
}

pub(crate) fn platforms_of(
    pods: &[Pod],
    scheduling: &Scheduling,
    nodes: &[Node],
) -> WorkloadPlatforms {
    let index = NodeIndex::new(nodes, &NodePlatformRules::default());
    workload_platforms(&owned(pods).pods, scheduling, &index)
}
