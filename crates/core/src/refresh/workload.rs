//! What the shell read of one workload: the facts a plan starts from.
//!
//! Owns [`Workload`] (kind, name, resourceVersion, annotations, containers),
//! [`Container`] (image, pull policy, literal env) and [`WorkloadKind`] with the path
//! of its pod template. These are plain values: the Kubernetes shell fills them from
//! API objects; the tests build them by hand. Must not read anything itself, nor
//! decide: planning is [`super::plan`]'s. A new target kind (another workload kind,
//! or a custom resource such as an Argo CD Application) starts here, with the path
//! its patches take.

use std::collections::BTreeMap;

use crate::Reference;

/// The workload kinds freshet refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 CronJob (its `jobTemplate`).
    CronJob,
}

impl WorkloadKind {
    /// The JSON path of the pod template, as object keys from the root.
    pub fn template_path(self) -> &'static [&'static str] {
        match self {
            Self::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }
}

/// One container of a workload's pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The container name.
    pub name: String,
    /// The image string as written.
    pub image: String,
    /// An init container.
    pub init: bool,
    /// `imagePullPolicy` as written (`None`: Kubernetes' default).
    pub pull_policy: Option<String>,
    /// Literal env values (`None` for `valueFrom`).
    pub env: BTreeMap<String, Option<String>>,
}

impl Container {
    /// The pull policy Kubernetes applies: as written, else `Always` for `:latest` or
    /// no tag, else `IfNotPresent`.
    pub fn effective_pull_policy(&self) -> &str {
        if let Some(p) = &self.pull_policy {
            return p;
        }
        match Reference::parse(&self.image) {
            Ok(r) if r.tag().is_none_or(|t| t == "latest") && r.digest().is_none() => "Always",
            _ => "IfNotPresent",
        }
    }
}

/// What the shell read of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.resourceVersion`, sent back as the patch's precondition.
    pub resource_version: String,
    /// `metadata.annotations` (a sorted vector: a workload has a handful, and
    /// thousands are kept at once).
    pub annotations: crate::Labels,
    /// Containers then init containers of the pod template.
    pub containers: Vec<Container>,
}
