//! Reading workloads: the four kinds freshet refreshes, listed through the API in
//! pages into slim types and turned into the pure [`Workload`] the core plans on.
//!
//! Owns the mapping between [`WorkloadKind`] and its API resource, the slim wire
//! form [`SlimWorkload`] (only what freshet reads: name, namespace, uid,
//! resourceVersion, labels, annotations but kubectl's last-applied copy, and of the
//! pod template the containers and init containers (name, image, pull policy,
//! literal env), `imagePullSecrets` and `serviceAccountName`; serde skips everything
//! else, `managedFields` and `status` included, without building it), the paged
//! listing ([`Pages`]: `limit`/`continue`, bounded), and the reading of one
//! workload again. Must not decide anything: enrollment and planning are the
//! core's. Later facts read from the pod template (node selectors, affinity) are
//! added to [`SlimPodSpec`] and [`ReadWorkload`] the same way.

use std::collections::BTreeMap;

use freshet_core::refresh::{Container, Workload, WorkloadKind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Every kind freshet refreshes, in the order a run visits them.
pub const KINDS: [WorkloadKind; 4] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::CronJob,
];

/// Why workloads could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The API refused or failed a list or get.
    #[error("reading {kind}s{where_} failed")]
    Api {
        /// The kind.
        kind: &'static str,
        /// ` in namespace X`, `/name`, or nothing.
        where_: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// An object has no name or namespace, or could not be read at all.
    #[error("a {kind} without {what} came back from the API")]
    Malformed {
        /// The kind.
        kind: &'static str,
        /// The missing field.
        what: &'static str,
    },
    /// The API kept paging past the bound, or sent the same `continue` twice.
    #[error("listing {kind}s did not end: {detail}")]
    Paging {
        /// The kind.
        kind: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The controller's watched store is not in sync (a watch failed, or the first
    /// lists did not complete in time).
    #[error("the watched store of workloads is not in sync: {detail}")]
    Watch {
        /// What failed, naming the kind, the namespace and the client error.
        detail: String,
    },
}

/// The kind's name as the API spells it.
pub fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
        WorkloadKind::CronJob => "CronJob",
    }
}

/// The kind's API group and version (`apps/v1`, `batch/v1`).
pub fn api_version(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::CronJob => "batch/v1",
        _ => "apps/v1",
    }
}

/// The API resource of a kind.
pub fn api_resource(kind: WorkloadKind) -> ApiResource {
    let (group, version) = api_version(kind)
        .split_once('/')
        .expect("api versions have a group");
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind_name(kind)))
}

/// An `Api` for a kind in a namespace, or across all namespaces, as full objects
/// (for tests and callers that create workloads).
pub fn api(
    client: &kube::Client,
    kind: WorkloadKind,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let ar = api_resource(kind);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// An `Api` for a kind whose answers are read as [`SlimWorkload`].
pub fn slim_api(
    client: &kube::Client,
    kind: WorkloadKind,
    namespace: Option<&str>,
) -> Api<SlimWorkload> {
    let ar = api_resource(kind);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// The annotation kubectl copies the whole object into; freshet never reads it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A workload as freshet reads it off the wire: see the module doc for what is kept.
/// Its `metadata` holds only name, namespace, uid, resourceVersion, labels and
/// annotations.
#[derive(Debug, Clone, Deserialize)]
pub struct SlimWorkload {
    /// The kept metadata.
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// The pod template's kept fields (of `spec.template` or, for a CronJob,
    /// `spec.jobTemplate.spec.template`).
    #[serde(default, rename = "spec", deserialize_with = "slim_pod_spec")]
    pub pod: SlimPodSpec,
}

dynamic_resource!(SlimWorkload, metadata);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

fn slim_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = WireMeta::deserialize(d)?;
    let mut annotations = m.annotations;
    if let Some(a) = annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        annotations,
        ..ObjectMeta::default()
    })
}

/// The pod template fields freshet reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPodSpec {
    /// The containers.
    #[serde(default)]
    pub containers: Vec<SlimContainer>,
    /// The init containers.
    #[serde(default)]
    pub init_containers: Vec<SlimContainer>,
    /// `imagePullSecrets`.
    #[serde(default)]
    pub image_pull_secrets: Vec<NameRef>,
    /// `serviceAccountName`.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// `nodeSelector`.
    #[serde(default)]
    pub(crate) node_selector: BTreeMap<String, String>,
    /// `affinity` (only its required node affinity is kept).
    #[serde(default)]
    pub(crate) affinity: Option<crate::scheduling::Affinity>,
    /// `tolerations`.
    #[serde(default)]
    pub(crate) tolerations: Vec<crate::scheduling::SlimToleration>,
    /// The owner's `spec.progressDeadlineSeconds` (a Deployment's), beside its
    /// template for convenience.
    #[serde(skip)]
    pub progress_deadline: Option<u32>,
}

/// `{name: …}` (a pull secret reference).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NameRef {
    /// The name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A container's fields freshet reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimContainer {
    /// The name.
    #[serde(default)]
    pub name: String,
    /// The image.
    #[serde(default)]
    pub image: String,
    /// `imagePullPolicy`.
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    /// The env (literal values; `valueFrom` only noted).
    #[serde(default)]
    pub env: Vec<SlimEnv>,
}

/// One env var.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimEnv {
    /// The name.
    #[serde(default)]
    pub name: Option<String>,
    /// The literal value.
    #[serde(default)]
    pub value: Option<String>,
    /// Whether it has a `valueFrom` (its content is not kept).
    #[serde(default)]
    pub value_from: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    template: Option<WireTemplate>,
    job_template: Option<WireJobTemplate>,
    #[serde(default)]
    progress_deadline_seconds: Option<i64>,
}

#[derive(Deserialize)]
struct WireTemplate {
    spec: Option<SlimPodSpec>,
}

#[derive(Deserialize)]
struct WireJobTemplate {
    spec: Option<WireJobSpec>,
}

#[derive(Deserialize)]
struct WireJobSpec {
    template: Option<WireTemplate>,
}

fn slim_pod_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SlimPodSpec, D::Error> {
    let Some(spec) = Option::<WireSpec>::deserialize(d)? else {
        return Ok(SlimPodSpec::default());
    };
    let deadline = spec
        .progress_deadline_seconds
        .and_then(|s| u32::try_from(s).ok());
    let template = match spec.template {
        Some(t) => Some(t),
        None => spec.job_template.and_then(|j| j.spec?.template),
    };
    let mut pod = template.and_then(|t| t.spec).unwrap_or_default();
    pod.progress_deadline = deadline;
    Ok(pod)
}

/// One workload as read: the object (for events and re-reads) and its pure form.
#[derive(Debug, Clone)]
pub struct ReadWorkload {
    /// The object's UID (for events).
    pub uid: Option<String>,
    /// `metadata.labels` (for config rules).
    pub labels: freshet_core::Labels,
    /// The pod template's `imagePullSecrets` names, in order.
    pub pull_secrets: Vec<String>,
    /// The pod template's `serviceAccountName` (`default` when unset).
    pub service_account: String,
    /// The pod template's `nodeSelector`, required node affinity and tolerations.
    pub scheduling: freshet_core::runs::Scheduling,
    /// A Deployment's `spec.progressDeadlineSeconds` (the default rollout deadline).
    pub progress_deadline: Option<u32>,
    /// The pure form.
    pub workload: Workload,
}

/// Items per page of a list.
pub const PAGE_SIZE: u32 = 500;

/// Pages read per list at most (with [`PAGE_SIZE`], five million items).
pub const MAX_PAGES: usize = 10_000;

/// The pages of one list of `kind` (across all namespaces, or in `namespace`):
/// `limit`/`continue`, at most [`MAX_PAGES`], refusing a repeated `continue`.
pub struct Pages {
    api: Api<SlimWorkload>,
    kind: WorkloadKind,
    namespace: Option<String>,
    params: ListParams,
    pages: usize,
    done: bool,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("kind", &self.kind)
            .field("namespace", &self.namespace)
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

impl Pages {
    /// The pages of `kind`'s list, `page_size` items each (at least 1).
    pub fn new(
        client: &kube::Client,
        kind: WorkloadKind,
        namespace: Option<&str>,
        selector: Option<&str>,
        page_size: u32,
    ) -> Self {
        let mut params = ListParams::default().limit(page_size.max(1));
        if let Some(s) = selector {
            params = params.labels(s);
        }
        Self {
            api: slim_api(client, kind, namespace),
            kind,
            namespace: namespace.map(str::to_owned),
            params,
            pages: 0,
            done: false,
        }
    }

    /// The next page, or `None` after the last.
    pub async fn next(&mut self) -> Option<Result<Vec<ReadWorkload>, WorkloadError>> {
        if self.done {
            return None;
        }
        let kind = kind_name(self.kind);
        if self.pages == MAX_PAGES {
            self.done = true;
            return Some(Err(WorkloadError::Paging {
                kind,
                detail: format!("more than {MAX_PAGES} pages"),
            }));
        }
        self.pages += 1;
        let list = match self.api.list(&self.params).await {
            Ok(list) => list,
            Err(source) => {
                self.done = true;
                return Some(Err(WorkloadError::Api {
                    kind,
                    where_: self
                        .namespace
                        .as_ref()
                        .map(|n| format!(" in namespace {n}"))
                        .unwrap_or_default(),
                    source,
                }));
            }
        };
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) if self.params.continue_token.as_deref() == Some(c.as_str()) => {
                self.done = true;
                return Some(Err(WorkloadError::Paging {
                    kind,
                    detail: "the API sent the same continue token twice".into(),
                }));
            }
            Some(c) => self.params.continue_token = Some(c),
            None => self.done = true,
        }
        Some(
            list.items
                .into_iter()
                .map(|o| from_slim(self.kind, o))
                .collect(),
        )
    }
}

/// Lists every workload of `kind` (across all namespaces, or in `namespace`), page
/// by page.
pub async fn list(
    client: &kube::Client,
    kind: WorkloadKind,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<ReadWorkload>, WorkloadError> {
    let mut pages = Pages::new(client, kind, namespace, selector, PAGE_SIZE);
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        out.extend(page?);
    }
    Ok(out)
}

/// Reads one workload again (after a conflict).
pub async fn get(
    client: &kube::Client,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<ReadWorkload, WorkloadError> {
    let object = slim_api(client, kind, Some(namespace))
        .get(name)
        .await
        .map_err(|source| WorkloadError::Api {
            kind: kind_name(kind),
            where_: format!("/{namespace}/{name}"),
            source,
        })?;
    from_slim(kind, object)
}

/// Turns a full object of `kind` into the pure form (through the slim form).
pub fn from_object(
    kind: WorkloadKind,
    object: &DynamicObject,
) -> Result<ReadWorkload, WorkloadError> {
    let malformed = || WorkloadError::Malformed {
        kind: kind_name(kind),
        what: "a readable pod template",
    };
    let value = serde_json::to_value(object).map_err(|_| malformed())?;
    let slim: SlimWorkload = serde_json::from_value(value).map_err(|_| malformed())?;
    from_slim(kind, slim)
}

/// Turns a slim object of `kind` into the pure form (moving, not copying, its
/// strings).
pub fn from_slim(kind: WorkloadKind, object: SlimWorkload) -> Result<ReadWorkload, WorkloadError> {
    let SlimWorkload {
        metadata: meta,
        pod,
    } = object;
    let missing = |what| WorkloadError::Malformed {
        kind: kind_name(kind),
        what,
    };
    let name = meta.name.ok_or_else(|| missing("a name"))?;
    let namespace = meta.namespace.ok_or_else(|| missing("a namespace"))?;
    let SlimPodSpec {
        containers,
        init_containers,
        image_pull_secrets,
        service_account_name,
        node_selector,
        affinity,
        tolerations,
        progress_deadline,
    } = pod;
    let mut read = read_containers(containers, false);
    read.extend(read_containers(init_containers, true));
    let pull_secrets = image_pull_secrets
        .into_iter()
        .filter_map(|r| r.name)
        .filter(|n| !n.is_empty())
        .collect();
    let service_account = match service_account_name {
        Some(sa) if !sa.is_empty() => sa,
        _ => "default".to_owned(),
    };
    Ok(ReadWorkload {
        uid: meta.uid,
        labels: freshet_core::labels_of(meta.labels.unwrap_or_default().into_iter()),
        pull_secrets,
        service_account,
        scheduling: crate::scheduling::from_parts(node_selector, affinity, tolerations),
        progress_deadline,
        workload: Workload {
            kind,
            namespace,
            name,
            resource_version: meta.resource_version.unwrap_or_default(),
            annotations: freshet_core::labels_of(meta.annotations.unwrap_or_default().into_iter()),
            containers: read,
        },
    })
}

fn read_containers(list: Vec<SlimContainer>, init: bool) -> Vec<Container> {
    list.into_iter()
        .map(|c| Container {
            name: c.name,
            image: c.image,
            init,
            pull_policy: c.image_pull_policy,
            env: c
                .env
                .into_iter()
                .filter_map(|v| {
                    let value = match v.value_from {
                        Some(_) => None,
                        None => Some(v.value.unwrap_or_default()),
                    };
                    Some((v.name?, value))
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cronjob_containers_come_from_the_job_template() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "ops", "resourceVersion": "7",
                         "annotations": {"freshet.io/policy": "digest"}},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "containers": [{"name": "job", "image": "acme/job:2", "imagePullPolicy": "Always",
                                "env": [{"name": "A", "value": "1"},
                                        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}]
            }}}}}
        }))
        .unwrap();
        let read = from_object(WorkloadKind::CronJob, &object).unwrap();
        assert_eq!(read.pull_secrets, ["regcred", "mirror"]);
        assert_eq!(read.service_account, "default");
        let read = read.workload;
        assert_eq!(
            (read.namespace.as_str(), read.name.as_str()),
            ("ops", "nightly")
        );
        assert_eq!(read.resource_version, "7");
        let names: Vec<(&str, bool)> = read
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.init))
            .collect();
        assert_eq!(names, [("job", false), ("init", true)]);
        assert_eq!(read.containers[0].pull_policy.as_deref(), Some("Always"));
        assert_eq!(read.containers[0].env["A"].as_deref(), Some("1"));
        assert_eq!(read.containers[0].env["B"], None);
    }

    #[test]
    fn slim_workloads_keep_only_what_freshet_reads() {
        let wire = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "team", "uid": "u-1", "resourceVersion": "42",
                "labels": {"app": "web"},
                "annotations": {"freshet.io/policy": "digest",
                                "kubectl.kubernetes.io/last-applied-configuration": "{\"huge\":1}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                   "fieldsV1": {"f:spec": {"f:replicas": {}}}}],
                "generation": 3, "creationTimestamp": "2026-11-23T09:00:00Z"
            },
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"serviceAccountName": "builder",
                                           "containers": [{"name": "web", "image": "a/web:1",
                                                           "resources": {"limits": {"cpu": "1"}}}]}}},
            "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
        });
        let slim: SlimWorkload = serde_json::from_value(wire).unwrap();
        assert_eq!(
            slim.metadata.managed_fields, None,
            "managedFields are skipped"
        );
        assert_eq!(slim.metadata.generation, None);
        assert_eq!(slim.metadata.creation_timestamp, None);
        let annotations = slim.metadata.annotations.clone().unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["freshet.io/policy"],
            "kubectl's last-applied copy is not kept"
        );
        let read = from_slim(WorkloadKind::Deployment, slim).unwrap();
        assert_eq!(read.uid.as_deref(), Some("u-1"));
        assert_eq!(read.service_account, "builder");
        assert_eq!(read.workload.resource_version, "42");
        assert_eq!(read.workload.containers.len(), 1);
        assert_eq!(read.workload.containers[0].image, "a/web:1");
    }

    #[test]
    fn a_workload_without_a_name_is_malformed_not_guessed() {
        let slim: SlimWorkload =
            serde_json::from_value(json!({"metadata": {"namespace": "a"}, "spec": null})).unwrap();
        let err = from_slim(WorkloadKind::DaemonSet, slim).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a DaemonSet without a name came back from the API"
        );
    }

    #[test]
    fn api_resources_have_the_api_plurals() {
        let plurals: Vec<String> = KINDS.iter().map(|k| api_resource(*k).plural).collect();
        assert_eq!(
            plurals,
            ["deployments", "statefulsets", "daemonsets", "cronjobs"]
        );
    }
}
