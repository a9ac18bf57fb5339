//! The slim shapes the reader deserialises pods, nodes, ReplicaSets and Jobs into,
//! and their conversion into the core's [`freshet_core::runs`] facts.
//!
//! Owns which fields freshet reads from these objects: everything else in the API's
//! answer (`managedFields`, most of `status`, volumes, probes, ...) is skipped by
//! serde while parsing and never kept. Every string and list kept is bounded here
//! ([`MAX_CONTAINERS`], [`MAX_OWNER_REFS`], [`MAX_LABELS`], [`MAX_TAINTS`],
//! [`MAX_FIELD_BYTES`]) so an odd object cannot grow a pass's memory. Must not read
//! anything nor decide.

use std::collections::BTreeMap;

use freshet_core::runs::{Intermediate, Node, OwnerRef, Pod, PodContainer, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Deserialize;

/// The most containers (init included) kept of one pod or template.
pub const MAX_CONTAINERS: usize = 64;
/// The most owner references kept of one object.
pub const MAX_OWNER_REFS: usize = 16;
/// The most labels kept of one node.
pub const MAX_LABELS: usize = 256;
/// The most taints kept of one node.
pub const MAX_TAINTS: usize = 64;
/// The most bytes kept of one string (names, images, messages).
pub const MAX_FIELD_BYTES: usize = 4096;

/// A list page: its items and the `continue` token.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub(crate) items: Vec<T>,
    #[serde(default)]
    pub(crate) metadata: ListMeta,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ListMeta {
    #[serde(rename = "continue", default)]
    pub(crate) continue_: Option<String>,
}

/// The metadata freshet reads, in kube's type (so a slim object can be watched:
/// see [`crate::watch`]): name, namespace, UID, resourceVersion, labels and
/// owner references; the rest (`managedFields`, annotations) is skipped.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta(pub(crate) ObjectMeta);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    owner_references: Vec<SlimOwner>,
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = WireMeta::deserialize(d)?;
        let owner_references = m
            .owner_references
            .into_iter()
            .take(MAX_OWNER_REFS)
            .map(|o| OwnerReference {
                kind: cut(o.kind),
                name: cut(o.name),
                uid: cut(o.uid),
                controller: o.controller,
                ..OwnerReference::default()
            })
            .collect::<Vec<_>>();
        Ok(Meta(ObjectMeta {
            name: m.name.map(cut),
            namespace: m.namespace.map(cut),
            uid: m.uid.map(cut),
            resource_version: m.resource_version,
            labels: m.labels,
            owner_references: (!owner_references.is_empty()).then_some(owner_references),
            ..ObjectMeta::default()
        }))
    }
}

impl Meta {
    fn name(&self) -> String {
        self.0.name.clone().unwrap_or_default()
    }
    fn namespace(&self) -> String {
        self.0.namespace.clone().unwrap_or_default()
    }
    fn uid(&self) -> String {
        self.0.uid.clone().unwrap_or_default()
    }
    fn labels(&self) -> BTreeMap<String, String> {
        self.0.labels.clone().unwrap_or_default()
    }
    fn owners(&self) -> Vec<OwnerRef> {
        // `as_deref` keeps the slice's exact size, so one allocation of its length
        // (a flattened `Option` would grow the vector from four).
        self.0
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|o| OwnerRef {
                kind: o.kind.clone(),
                name: o.name.clone(),
                uid: o.uid.clone(),
                controller: o.controller.unwrap_or(false),
            })
            .collect()
    }
}

dynamic_resource!(SlimPod, metadata.0);
dynamic_resource!(SlimNode, metadata.0);
dynamic_resource!(SlimOwned, metadata.0);

#[derive(Debug, Clone, Deserialize)]
struct SlimOwner {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    controller: Option<bool>,
}

/// A pod as freshet reads it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SlimPod {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    containers: Vec<SpecContainer>,
    #[serde(default)]
    init_containers: Vec<SpecContainer>,
}

#[derive(Debug, Clone, Deserialize)]
struct SpecContainer {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatus {
    #[serde(default)]
    name: String,
    #[serde(rename = "imageID", default)]
    image_id: String,
    #[serde(default)]
    restart_count: i64,
    #[serde(default)]
    state: Option<ContainerState>,
}

#[derive(Debug, Clone, Deserialize)]
struct ContainerState {
    #[serde(default)]
    waiting: Option<Waiting>,
}

#[derive(Debug, Clone, Deserialize)]
struct Waiting {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A node as freshet reads it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SlimNode {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: NodeSpec,
    #[serde(default)]
    status: NodeStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct NodeSpec {
    #[serde(default)]
    taints: Vec<SlimTaint>,
}

#[derive(Debug, Clone, Deserialize)]
struct SlimTaint {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    effect: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStatus {
    #[serde(default)]
    node_info: Option<NodeInfo>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo {
    #[serde(default)]
    operating_system: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
}

/// A ReplicaSet or Job: only its identity, its owners, and (a ReplicaSet's) how
/// many pods it wants and has.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SlimOwned {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: OwnedCounts,
    #[serde(default)]
    status: OwnedCounts,
}

/// `spec.replicas` or `status.replicas` (and `status.terminatingReplicas`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedCounts {
    #[serde(default)]
    replicas: Option<i64>,
    #[serde(default)]
    terminating_replicas: Option<i64>,
}

/// `s` cut to at most [`MAX_FIELD_BYTES`] bytes on a character boundary.
fn cut(mut s: String) -> String {
    if s.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn labels(map: BTreeMap<String, String>) -> freshet_core::Labels {
    freshet_core::labels_of(
        map.into_iter()
            .take(MAX_LABELS)
            .map(|(k, v)| (cut(k), cut(v))),
    )
}

impl SlimPod {
    /// The core's pod: spec and status joined by container name.
    pub(crate) fn into_fact(self) -> Pod {
        let SlimPod {
            metadata,
            spec,
            status,
        } = self;
        let mut containers = Vec::new();
        for (specs, statuses, init) in [
            (spec.containers, status.container_statuses, false),
            (spec.init_containers, status.init_container_statuses, true),
        ] {
            for c in specs.into_iter().take(MAX_CONTAINERS) {
                if containers.len() >= MAX_CONTAINERS {
                    break;
                }
                let st = statuses.iter().find(|s| s.name == c.name);
                let waiting = st.and_then(|s| s.state.as_ref()?.waiting.as_ref());
                containers.push(PodContainer {
                    name: cut(c.name),
                    init,
                    image: cut(c.image),
                    image_id: st.map(|s| cut(s.image_id.clone())).unwrap_or_default(),
                    waiting_reason: waiting.and_then(|w| w.reason.clone()).map(cut),
                    waiting_message: waiting.and_then(|w| w.message.clone()).map(cut),
                    restart_count: st
                        .map(|s| u32::try_from(s.restart_count.max(0)).unwrap_or(u32::MAX))
                        .unwrap_or(0),
                });
            }
        }
        Pod {
            namespace: metadata.namespace(),
            name: metadata.name(),
            owners: metadata.owners(),
            node_name: spec.node_name.filter(|n| !n.is_empty()).map(cut),
            containers,
        }
    }
}

impl SlimNode {
    /// The core's node.
    pub(crate) fn into_fact(self) -> Node {
        let info = self.status.node_info;
        Node {
            name: self.metadata.name(),
            labels: labels(self.metadata.labels()),
            os: info
                .as_ref()
                .and_then(|i| i.operating_system.clone())
                .map(cut),
            architecture: info.and_then(|i| i.architecture).map(cut),
            taints: self
                .spec
                .taints
                .into_iter()
                .take(MAX_TAINTS)
                .map(|t| Taint {
                    key: cut(t.key),
                    value: cut(t.value.unwrap_or_default()),
                    effect: cut(t.effect),
                })
                .collect(),
        }
    }
}

impl SlimOwned {
    /// Whether it may own pods: not a ReplicaSet scaled to zero whose status says
    /// it has none left (the old revisions a Deployment keeps: most of the
    /// ReplicaSets of a cluster). A Job, or a count not reported, may.
    pub(crate) fn may_own_pods(&self) -> bool {
        let zero = |n: Option<i64>| n == Some(0);
        !(zero(self.spec.replicas)
            && zero(self.status.replicas)
            && self.status.terminating_replicas.unwrap_or(0) == 0)
    }

    /// The core's intermediate owner of `kind` (`ReplicaSet`, `Job`).
    pub(crate) fn into_fact(self, kind: &str) -> Intermediate {
        Intermediate {
            kind: kind.to_owned(),
            namespace: self.metadata.namespace(),
            name: self.metadata.name(),
            uid: self.metadata.uid(),
            owners: self.metadata.owners(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_only_what_freshet_reads_and_joins_status_by_name() {
        let raw = json!({
            "metadata": {"name": "web-1", "namespace": "team", "uid": "p1",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "uid": "rs1", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x:1"}, {"name": "side", "image": "y:1"}],
                     "initContainers": [{"name": "init", "image": "z:1"}]},
            "status": {"containerStatuses": [
                {"name": "side", "imageID": "", "restartCount": 2,
                 "state": {"waiting": {"reason": "ImagePullBackOff", "message": "back-off"}}},
                {"name": "app", "imageID": "docker-pullable://x@sha256:abc", "restartCount": 0}]}
        });
        let pod = serde_json::from_value::<SlimPod>(raw).unwrap().into_fact();
        assert_eq!(pod.name, "web-1");
        assert_eq!(pod.node_name.as_deref(), Some("n1"));
        assert_eq!(pod.owners[0].uid, "rs1");
        assert!(pod.owners[0].controller);
        assert_eq!(pod.containers.len(), 3);
        assert_eq!(pod.containers[0].image_id, "docker-pullable://x@sha256:abc");
        assert_eq!(
            pod.containers[1].waiting_reason.as_deref(),
            Some("ImagePullBackOff")
        );
        assert_eq!(pod.containers[1].restart_count, 2);
        assert!(pod.containers[2].init && pod.containers[2].image_id.is_empty());
    }

    #[test]
    fn a_node_reads_its_platform_facts() {
        let raw = json!({
            "metadata": {"name": "n1", "labels": {"kubernetes.io/arch": "arm64"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"nodeInfo": {"operatingSystem": "linux", "architecture": "arm64"}}
        });
        let node = serde_json::from_value::<SlimNode>(raw).unwrap().into_fact();
        assert_eq!(node.architecture.as_deref(), Some("arm64"));
        assert_eq!(node.taints[0].value, "");
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let s = cut("é".repeat(MAX_FIELD_BYTES));
        assert!(s.len() <= MAX_FIELD_BYTES && s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_replicaset_scaled_to_zero_with_no_pods_left_owns_none() {
        let owned = |spec: serde_json::Value, status: serde_json::Value| {
            serde_json::from_value::<SlimOwned>(json!({
                "metadata": {"name": "web-1", "namespace": "a", "uid": "u"},
                "spec": spec, "status": status,
            }))
            .unwrap()
            .may_own_pods()
        };
        assert!(!owned(json!({"replicas": 0}), json!({"replicas": 0})));
        assert!(
            owned(json!({"replicas": 1}), json!({"replicas": 0})),
            "scaling up"
        );
        assert!(
            owned(json!({"replicas": 0}), json!({"replicas": 2})),
            "scaling down"
        );
        assert!(
            owned(
                json!({"replicas": 0}),
                json!({"replicas": 0, "terminatingReplicas": 1})
            ),
            "pods still terminating"
        );
        assert!(owned(json!({"replicas": 0}), json!({})), "no status yet");
        assert!(
            owned(json!({}), json!({"replicas": 0})),
            "spec.replicas defaults to 1"
        );
        assert!(
            owned(json!({"parallelism": 1}), json!({"active": 0})),
            "a Job keeps its pods after it ends"
        );
    }
}
