//! Reading a rollout's facts: the workload's status fields and the pods of its new
//! revision, as the slim structs `freshet_core::safety::health` judges.
//!
//! Owns which pods belong to the new revision: a Deployment's newest ReplicaSet
//! (by `deployment.kubernetes.io/revision`, its `pod-template-hash`), a
//! StatefulSet's `controller-revision-hash == updateRevision`, a DaemonSet's pods
//! running the template's images, a CronJob's first Job created after the rollout
//! started (its `job-name`). Lists are bounded. Must not judge nor write.

use chrono::{DateTime, Utc};
use freshet_core::refresh::WorkloadKind;
use freshet_core::safety::health::{
    ContainerState, CronJobStatus, DaemonSetStatus, DeploymentStatus, JobStatus, PodState,
    StatefulSetStatus, StatefulSetStrategy,
};
use freshet_core::safety::{Container, RolloutStatus};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::workloads::{self, ReadWorkload, WorkloadError, kind_name};

/// At most this many pods or ReplicaSets are read per rollout.
pub const MAX_LISTED: u32 = 500;

/// What a rollout is judged on.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The workload as read now (its resourceVersion is the write precondition).
    pub read: ReadWorkload,
    /// The status facts.
    pub status: RolloutStatus,
    /// The pods of the new revision.
    pub pods: Vec<PodState>,
}

/// Reads `read`'s workload again with its status, and the pods of its new revision
/// (`started`: when the rollout began, for a CronJob's next Job).
pub async fn observe(
    kube: &kube::Client,
    read: &ReadWorkload,
    started: DateTime<Utc>,
) -> Result<Observed, WorkloadError> {
    let w = &read.workload;
    let api_err = |source| WorkloadError::Api {
        kind: kind_name(w.kind),
        where_: format!("/{}/{}", w.namespace, w.name),
        source,
    };
    let object = workloads::api(kube, w.kind, Some(&w.namespace))
        .get(&w.name)
        .await
        .map_err(api_err)?;
    let now_read = workloads::from_object(w.kind, &object)?;
    let o = &object.data;
    let (status, pods) = match w.kind {
        WorkloadKind::Deployment => (
            RolloutStatus::Deployment(deployment(&object)),
            deployment_pods(kube, &object).await.map_err(api_err)?,
        ),
        WorkloadKind::StatefulSet => {
            let s = stateful_set(&object);
            let selector = format!("controller-revision-hash={}", s.update_revision);
            let pods = if s.update_revision.is_empty() {
                Vec::new()
            } else {
                pods(kube, &w.namespace, &join(match_labels(o), &selector))
                    .await
                    .map_err(api_err)?
            };
            (RolloutStatus::StatefulSet(s), pods)
        }
        WorkloadKind::DaemonSet => {
            let images = template_images(&now_read);
            let all = pods_raw(kube, &w.namespace, &match_labels(o))
                .await
                .map_err(api_err)?;
            let pods = all
                .iter()
                .filter(|p| runs_images(p, &images))
                .map(pod_state)
                .collect();
            (RolloutStatus::DaemonSet(daemon_set(&object)), pods)
        }
        WorkloadKind::CronJob => {
            let (next_job, pods) = cron_job(kube, &object, started).await.map_err(api_err)?;
            (RolloutStatus::CronJob(CronJobStatus { next_job }), pods)
        }
    };
    Ok(Observed {
        read: now_read,
        status,
        pods,
    })
}

/// The workload's containers in the safety layer's form.
pub fn containers(read: &ReadWorkload) -> Vec<Container> {
    read.workload
        .containers
        .iter()
        .map(|c| Container {
            name: c.name.clone(),
            init: c.init,
            image: c.image.clone(),
            env: c.env.clone(),
        })
        .collect()
}

fn i64_at(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn i32_at(v: &Value, path: &str) -> i32 {
    i32::try_from(i64_at(v, path)).unwrap_or(i32::MAX)
}

fn generation(object: &DynamicObject) -> i64 {
    object.metadata.generation.unwrap_or(0)
}

fn deployment(object: &DynamicObject) -> DeploymentStatus {
    let o = &object.data;
    let progressing_reason = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .and_then(|c| c["reason"].as_str())
        .map(str::to_owned);
    DeploymentStatus {
        generation: generation(object),
        observed_generation: i64_at(o, "/status/observedGeneration"),
        replicas: o
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .map_or(1, |r| i32::try_from(r).unwrap_or(i32::MAX)),
        status_replicas: i32_at(o, "/status/replicas"),
        updated_replicas: i32_at(o, "/status/updatedReplicas"),
        available_replicas: i32_at(o, "/status/availableReplicas"),
        progressing_reason,
    }
}

fn stateful_set(object: &DynamicObject) -> StatefulSetStatus {
    let o = &object.data;
    let strategy = match o
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
    {
        Some("OnDelete") => StatefulSetStrategy::OnDelete,
        _ => StatefulSetStrategy::RollingUpdate {
            partition: o
                .pointer("/spec/updateStrategy/rollingUpdate/partition")
                .and_then(Value::as_i64)
                .map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
        },
    };
    let s = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    StatefulSetStatus {
        generation: generation(object),
        observed_generation: i64_at(o, "/status/observedGeneration"),
        replicas: o
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .map_or(1, |r| i32::try_from(r).unwrap_or(i32::MAX)),
        strategy,
        ready_replicas: i32_at(o, "/status/readyReplicas"),
        updated_replicas: i32_at(o, "/status/updatedReplicas"),
        current_revision: s("/status/currentRevision"),
        update_revision: s("/status/updateRevision"),
    }
}

fn daemon_set(object: &DynamicObject) -> DaemonSetStatus {
    let o = &object.data;
    DaemonSetStatus {
        generation: generation(object),
        observed_generation: i64_at(o, "/status/observedGeneration"),
        on_delete: o
            .pointer("/spec/updateStrategy/type")
            .and_then(Value::as_str)
            == Some("OnDelete"),
        desired: i32_at(o, "/status/desiredNumberScheduled"),
        updated: i32_at(o, "/status/updatedNumberScheduled"),
        available: i32_at(o, "/status/numberAvailable"),
        unavailable: i32_at(o, "/status/numberUnavailable"),
    }
}

/// `spec.selector.matchLabels` as a label selector.
fn match_labels(o: &Value) -> String {
    o.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn join(a: String, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a},{b}")
    }
}

async fn deployment_pods(
    kube: &kube::Client,
    object: &DynamicObject,
) -> Result<Vec<PodState>, kube::Error> {
    let ns = object.metadata.namespace.as_deref().unwrap_or_default();
    let selector = match_labels(&object.data);
    let api: Api<ReplicaSet> = Api::namespaced(kube.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&selector).limit(MAX_LISTED))
        .await?;
    let uid = object.metadata.uid.as_deref();
    let newest = list
        .items
        .iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(o.uid.as_str()) == uid)
        })
        .max_by_key(|rs| {
            rs.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0)
        });
    let Some(hash) = newest
        .and_then(|rs| rs.metadata.labels.as_ref())
        .and_then(|l| l.get("pod-template-hash"))
    else {
        return Ok(Vec::new());
    };
    pods(
        kube,
        ns,
        &join(selector, &format!("pod-template-hash={hash}")),
    )
    .await
}

async fn cron_job(
    kube: &kube::Client,
    object: &DynamicObject,
    started: DateTime<Utc>,
) -> Result<(Option<JobStatus>, Vec<PodState>), kube::Error> {
    let ns = object.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(kube.clone(), ns);
    let list = api.list(&ListParams::default().limit(MAX_LISTED)).await?;
    let uid = object.metadata.uid.as_deref();
    let next = list
        .items
        .iter()
        .filter(|j| {
            j.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| Some(o.uid.as_str()) == uid)
        })
        .filter_map(|j| {
            let created = j.metadata.creation_timestamp.as_ref()?.0.as_second();
            Some((DateTime::<Utc>::from_timestamp(created, 0)?, j))
        })
        .filter(|(created, _)| *created >= started)
        .min_by_key(|(created, _)| *created)
        .map(|(_, j)| j);
    let Some(job) = next else {
        return Ok((None, Vec::new()));
    };
    let name = job.metadata.name.clone().unwrap_or_default();
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let failed_reason = conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_else(|| "Failed".into()));
    let pods = pods(kube, ns, &format!("job-name={name}")).await?;
    Ok((
        Some(JobStatus {
            name,
            complete: has("Complete"),
            failed_reason,
        }),
        pods,
    ))
}

async fn pods_raw(kube: &kube::Client, ns: &str, selector: &str) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(kube.clone(), ns);
    let mut params = ListParams::default().limit(MAX_LISTED);
    if !selector.is_empty() {
        params = params.labels(selector);
    }
    Ok(api.list(&params).await?.items)
}

async fn pods(kube: &kube::Client, ns: &str, selector: &str) -> Result<Vec<PodState>, kube::Error> {
    Ok(pods_raw(kube, ns, selector)
        .await?
        .iter()
        .map(pod_state)
        .collect())
}

fn template_images(read: &ReadWorkload) -> Vec<(String, String)> {
    read.workload
        .containers
        .iter()
        .filter(|c| !c.init)
        .map(|c| (c.name.clone(), c.image.clone()))
        .collect()
}

fn runs_images(pod: &Pod, images: &[(String, String)]) -> bool {
    let Some(spec) = &pod.spec else { return false };
    images.iter().all(|(name, image)| {
        spec.containers
            .iter()
            .any(|c| &c.name == name && c.image.as_deref() == Some(image.as_str()))
    })
}

/// A pod's containers (and init containers) as the health judgement reads them.
pub fn pod_state(pod: &Pod) -> PodState {
    let statuses = pod.status.iter().flat_map(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
    });
    PodState {
        name: pod.metadata.name.clone().unwrap_or_default(),
        containers: statuses
            .map(|c| ContainerState {
                name: c.name.clone(),
                waiting_reason: c
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone()),
                restart_count: u32::try_from(c.restart_count).unwrap_or(0),
            })
            .collect(),
    }
}
