//! The slim facts the decision layer reads: pods, nodes, the owners between a
//! workload and its pods, and a workload's scheduling constraints.
//!
//! Owns plain structs that hold only what freshet reads, so the Kubernetes shell can
//! deserialise into them (or copy into them) without keeping `managedFields` or any
//! status it does not use, and the caps that bound every list the decisions look at.
//! It must not know how the facts are fetched (no kube, no k8s-openapi, no I/O).

/// The most pods of one workload that any decision looks at. Beyond it, pods are
/// taken in name order and the rest are counted, not read (see [`Truncated`]).
pub const MAX_PODS_PER_WORKLOAD: usize = 1000;
/// The most nodes a workload's "may run on" set is computed over.
pub const MAX_NODES: usize = 5000;
/// The most owners (ReplicaSets, Jobs) of one workload that are looked at.
pub const MAX_OWNERS_PER_WORKLOAD: usize = 1000;
/// The most names (pods, nodes) any single value lists; the rest are counted.
pub const MAX_NAMES: usize = 10;

/// The top-level workload kinds whose pods freshet follows. The same four kinds as
/// the refresh planner's; kept here so that this module does not depend on it (the
/// planner will depend on this one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment (owns ReplicaSets, which own pods).
    Deployment,
    /// apps/v1 StatefulSet (owns pods).
    StatefulSet,
    /// apps/v1 DaemonSet (owns pods).
    DaemonSet,
    /// batch/v1 CronJob (owns Jobs, which own pods).
    CronJob,
}

impl WorkloadKind {
    /// The Kubernetes `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::CronJob => "CronJob",
        }
    }

    /// The kind of the owner between this workload and its pods, if there is one
    /// (`ReplicaSet` for a Deployment, `Job` for a CronJob).
    pub fn intermediate(self) -> Option<&'static str> {
        match self {
            Self::Deployment => Some("ReplicaSet"),
            Self::CronJob => Some("Job"),
            Self::StatefulSet | Self::DaemonSet => None,
        }
    }
}

/// The identity of one enrolled workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// Its kind.
    pub kind: WorkloadKind,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`: owner references are matched on it, so that a deleted and
    /// recreated workload of the same name does not adopt the old one's pods.
    pub uid: String,
}

/// One entry of `metadata.ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    /// `kind`, for example `ReplicaSet`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `uid`.
    pub uid: String,
    /// `controller: true`; only the controlling owner counts.
    pub controller: bool,
}

/// An owner between a workload and its pods: a ReplicaSet or a Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intermediate {
    /// `kind`: `ReplicaSet` or `Job`.
    pub kind: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerRef>,
}

/// A slim pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pod {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerRef>,
    /// `spec.nodeName`; `None` while unscheduled.
    pub node_name: Option<String>,
    /// Its containers (spec and status joined by name), init containers included.
    pub containers: Vec<PodContainer>,
}

/// One container of a pod: what the spec asked for and what the status reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodContainer {
    /// The container name.
    pub name: String,
    /// An init container.
    pub init: bool,
    /// `spec.containers[].image`: what the pod was told to run.
    pub image: String,
    /// `status.containerStatuses[].imageID`: what the runtime pulled; empty before
    /// the first pull or when the status is missing.
    pub image_id: String,
    /// `state.waiting.reason`, for example `ImagePullBackOff`.
    pub waiting_reason: Option<String>,
    /// `state.waiting.message`, raw from the kubelet.
    pub waiting_message: Option<String>,
    /// `restartCount`.
    pub restart_count: u32,
}

/// A slim node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: crate::Labels,
    /// `status.nodeInfo.operatingSystem`.
    pub os: Option<String>,
    /// `status.nodeInfo.architecture`.
    pub architecture: Option<String>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// `key`.
    pub key: String,
    /// `value` (empty when absent).
    pub value: String,
    /// `effect`: `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Toleration {
    /// `key`; empty with `Exists` tolerates every taint.
    pub key: String,
    /// `operator`: `Exists`, else `Equal` (the default).
    pub operator: String,
    /// `value`.
    pub value: String,
    /// `effect`; empty matches every effect.
    pub effect: String,
}

/// One requirement of a node selector term (`matchExpressions` or `matchFields`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key (or, for `matchFields`, the field: only `metadata.name`).
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt` or `Lt`, as written.
    pub operator: String,
    /// The values.
    pub values: Vec<String>,
}

/// One `nodeSelectorTerms` entry: its requirements are ANDed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct SelectorTerm {
    /// `matchExpressions` (on labels).
    pub match_expressions: Vec<Requirement>,
    /// `matchFields` (on `metadata.name`).
    pub match_fields: Vec<Requirement>,
}

/// Where a workload's pods may be scheduled, from its pod template.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Scheduling {
    /// `nodeSelector`.
    pub node_selector: crate::Labels,
    /// `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
    /// .nodeSelectorTerms` (ORed); `None` when there is no required affinity.
    pub required_terms: Option<Vec<SelectorTerm>>,
    /// `tolerations`.
    pub tolerations: Vec<Toleration>,
}

/// A list that was cut at a named cap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Truncated {
    /// The cap's name, for example `MAX_PODS_PER_WORKLOAD`.
    pub cap: &'static str,
    /// The cap's value: how many were kept.
    pub kept: usize,
    /// How many there were.
    pub total: usize,
}

/// Names listed up to [`MAX_NAMES`], the rest counted.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Names {
    /// The first names, in order.
    pub names: Vec<String>,
    /// How many more there are.
    pub more: usize,
}

impl Names {
    /// Adds a name, or counts it once [`MAX_NAMES`] are listed. Repeats of a listed
    /// name are skipped; callers pass distinct names (from a set) for exact counts.
    pub fn push(&mut self, name: &str) {
        if self.names.iter().any(|n| n == name) {
            return;
        }
        if self.names.len() < MAX_NAMES {
            self.names.push(name.to_owned());
        } else {
            self.more += 1;
        }
    }

    /// How many names in all.
    pub fn total(&self) -> usize {
        self.names.len() + self.more
    }
}

impl std::fmt::Display for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names.join(", "))?;
        if self.more > 0 {
            write!(f, " and {} more", self.more)?;
        }
        Ok(())
    }
}
