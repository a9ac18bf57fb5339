//! Reading workloads: the four kinds freshet refreshes, listed through the API as
//! dynamic objects and turned into the pure [`Workload`] the core plans on.
//!
//! Owns the mapping between [`WorkloadKind`] and its API resource, and the reading of
//! a pod template's containers and init containers (image, pull policy, literal env)
//! and of the names its pulls use (`imagePullSecrets`, `serviceAccountName`).
//! Must not decide anything: enrollment and planning are the core's.

use std::collections::BTreeMap;

use freshet_core::refresh::{Container, Workload, WorkloadKind};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

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
    /// An object has no name or namespace.
    #[error("a {kind} without {what} came back from the API")]
    Malformed {
        /// The kind.
        kind: &'static str,
        /// The missing field.
        what: &'static str,
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

/// An `Api` for a kind in a namespace, or across all namespaces.
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

/// One workload as read: the object (for events and re-reads) and its pure form.
#[derive(Debug, Clone)]
pub struct ReadWorkload {
    /// The object's UID (for events).
    pub uid: Option<String>,
    /// `metadata.labels` (for config rules).
    pub labels: BTreeMap<String, String>,
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

/// Lists every workload of `kind` (across all namespaces, or in `namespace`).
pub async fn list(
    client: &kube::Client,
    kind: WorkloadKind,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<ReadWorkload>, WorkloadError> {
    let mut params = ListParams::default();
    if let Some(s) = selector {
        params = params.labels(s);
    }
    let list = api(client, kind, namespace)
        .list(&params)
        .await
        .map_err(|source| WorkloadError::Api {
            kind: kind_name(kind),
            where_: namespace
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default(),
            source,
        })?;
    list.items.iter().map(|o| from_object(kind, o)).collect()
}

/// Reads one workload again (after a conflict).
pub async fn get(
    client: &kube::Client,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<ReadWorkload, WorkloadError> {
    let object = api(client, kind, Some(namespace))
        .get(name)
        .await
        .map_err(|source| WorkloadError::Api {
            kind: kind_name(kind),
            where_: format!("/{namespace}/{name}"),
            source,
        })?;
    from_object(kind, &object)
}

/// Turns an object of `kind` into the pure form.
pub fn from_object(
    kind: WorkloadKind,
    object: &DynamicObject,
) -> Result<ReadWorkload, WorkloadError> {
    let meta = &object.metadata;
    let missing = |what| WorkloadError::Malformed {
        kind: kind_name(kind),
        what,
    };
    let name = meta.name.clone().ok_or_else(|| missing("a name"))?;
    let namespace = meta
        .namespace
        .clone()
        .ok_or_else(|| missing("a namespace"))?;
    let mut pod_spec = &object.data;
    for key in kind.template_path() {
        pod_spec = &pod_spec[*key];
    }
    let pod_spec = &pod_spec["spec"];
    let mut containers = read_containers(&pod_spec["containers"], false);
    containers.extend(read_containers(&pod_spec["initContainers"], true));
    let pull_secrets = pod_spec["imagePullSecrets"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["name"].as_str())
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let service_account = match pod_spec["serviceAccountName"].as_str() {
        Some(sa) if !sa.is_empty() => sa.to_owned(),
        _ => "default".to_owned(),
    };
    Ok(ReadWorkload {
        uid: meta.uid.clone(),
        labels: meta.labels.clone().unwrap_or_default(),
        pull_secrets,
        service_account,
        scheduling: crate::scheduling::scheduling_of(pod_spec),
        progress_deadline: object.data["spec"]["progressDeadlineSeconds"]
            .as_u64()
            .and_then(|s| u32::try_from(s).ok()),
        workload: Workload {
            kind,
            namespace,
            name,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            containers,
        },
    })
}

fn read_containers(list: &Value, init: bool) -> Vec<Container> {
    let Some(list) = list.as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().map(str::to_owned);
            let env: BTreeMap<String, Option<String>> = c["env"]
                .as_array()
                .map(|vars| {
                    vars.iter()
                        .filter_map(|v| {
                            let name = v["name"].as_str()?.to_owned();
                            let value = if v.get("valueFrom").is_some() {
                                None
                            } else {
                                Some(v["value"].as_str().unwrap_or_default().to_owned())
                            };
                            Some((name, value))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Container {
                name: s("name").unwrap_or_default(),
                image: s("image").unwrap_or_default(),
                init,
                pull_policy: s("imagePullPolicy"),
                env,
            }
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
    fn api_resources_have_the_api_plurals() {
        let plurals: Vec<String> = KINDS.iter().map(|k| api_resource(*k).plural).collect();
        assert_eq!(
            plurals,
            ["deployments", "statefulsets", "daemonsets", "cronjobs"]
        );
    }
}
