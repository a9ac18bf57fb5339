//! Rollout health: is the rollout freshet started still progressing, done, or
//! failed?
//!
//! Owns the judgement, from slim status facts the shell copies out of the workload
//! and the pods of the new revision, with `kubectl rollout status`'s rules
//! (`k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go`):
//!
//! - **Deployment**: waits until `observedGeneration >= generation`; failed when the
//!   `Progressing` condition's reason is `ProgressDeadlineExceeded`; done when
//!   `updatedReplicas >= spec.replicas`, no old replicas are left
//!   (`status.replicas <= updatedReplicas`) and `availableReplicas >= updatedReplicas`.
//! - **StatefulSet** (`RollingUpdate`): waits for the generation, then for
//!   `readyReplicas >= spec.replicas`; with `rollingUpdate.partition` set (the API
//!   server defaults it to 0), done when `updatedReplicas >= replicas - partition`;
//!   without it, done when `updateRevision == currentRevision` (kubectl calls a
//!   `rollingUpdate` block without a partition done at once; freshet waits for the
//!   revision). `OnDelete` never rolls by itself: judged healthy (kubectl refuses to
//!   judge it).
//! - **DaemonSet** (`RollingUpdate`): waits for the generation, then
//!   `updatedNumberScheduled >= desiredNumberScheduled` and `numberAvailable >=
//!   desiredNumberScheduled` (and no unavailable pods).
//! - **CronJob**: the first Job created after the rollout started: done when it
//!   completes, failed when its `Failed` condition is set; no Job yet is still
//!   progressing, and the deadline does not apply until one starts (the next run may
//!   be hours away).
//!
//! On top of kubectl, any pod of the new revision whose container waits with
//! `CrashLoopBackOff`, `ErrImagePull`, `ImagePullBackOff` or `InvalidImageName`, or
//! restarted more than the restart threshold, fails the rollout at once; and a
//! rollout still progressing at its deadline (`--health-timeout`, by default the
//! Deployment's `progressDeadlineSeconds`, else [`DEFAULT_DEADLINE`]) has failed.
//! Must not read the cluster or the clock: the shell passes facts and `now`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The deadline when neither `--health-timeout` nor `progressDeadlineSeconds` sets
/// one: Kubernetes' default `progressDeadlineSeconds` (600 s).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

/// Restarts of one container of the new revision above which the rollout failed,
/// when nothing sets another.
pub const DEFAULT_RESTART_THRESHOLD: u32 = 3;

/// The `Progressing` condition reason of a Deployment past its progress deadline.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// Container waiting reasons that fail a rollout at once.
pub const FAILING_WAIT_REASONS: [&str; 4] = [
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
];

/// A Deployment's status facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeploymentStatus {
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.replicas` (Kubernetes' default is 1).
    pub replicas: i32,
    /// `status.replicas` (old and new pods).
    pub status_replicas: i32,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// The reason of the `Progressing` condition, if any.
    pub progressing_reason: Option<String>,
}

/// A StatefulSet's update strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatefulSetStrategy {
    /// `RollingUpdate`, with `rollingUpdate.partition` when set (the API server
    /// defaults it to 0).
    RollingUpdate {
        /// `spec.updateStrategy.rollingUpdate.partition`.
        partition: Option<i32>,
    },
    /// `OnDelete`: pods change only when deleted.
    #[default]
    OnDelete,
}

/// A StatefulSet's status facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatefulSetStatus {
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.replicas`.
    pub replicas: i32,
    /// The update strategy.
    pub strategy: StatefulSetStrategy,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
    /// `status.currentRevision`.
    pub current_revision: String,
    /// `status.updateRevision`.
    pub update_revision: String,
}

/// A DaemonSet's status facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonSetStatus {
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.updateStrategy.type` is `OnDelete`.
    pub on_delete: bool,
    /// `status.desiredNumberScheduled`.
    pub desired: i32,
    /// `status.updatedNumberScheduled`.
    pub updated: i32,
    /// `status.numberAvailable`.
    pub available: i32,
    /// `status.numberUnavailable`.
    pub unavailable: i32,
}

/// A Job's status facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobStatus {
    /// The Job's name.
    pub name: String,
    /// The `Complete` condition is true.
    pub complete: bool,
    /// The reason of the true `Failed` condition (`BackoffLimitExceeded`, …).
    pub failed_reason: Option<String>,
}

/// A CronJob's status facts: the first Job created after the rollout started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronJobStatus {
    /// That Job, once the schedule created it.
    pub next_job: Option<JobStatus>,
}

/// The status facts of a workload freshet rolled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    /// apps/v1 Deployment.
    Deployment(DeploymentStatus),
    /// apps/v1 StatefulSet.
    StatefulSet(StatefulSetStatus),
    /// apps/v1 DaemonSet.
    DaemonSet(DaemonSetStatus),
    /// batch/v1 CronJob.
    CronJob(CronJobStatus),
}

/// One container of a pod of the new revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    /// The container name.
    pub name: String,
    /// `state.waiting.reason`, if waiting.
    pub waiting_reason: Option<String>,
    /// `restartCount`.
    pub restart_count: u32,
}

/// A pod of the new revision (the shell selects them: the new ReplicaSet's
/// `pod-template-hash`, `controller-revision-hash == updateRevision`, or the next
/// Job's `job-name`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodState {
    /// The pod name.
    pub name: String,
    /// Containers and init containers.
    pub containers: Vec<ContainerState>,
}

/// Why a rollout failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The Deployment controller gave up (`ProgressDeadlineExceeded`).
    #[error("the Deployment exceeded its progress deadline (ProgressDeadlineExceeded)")]
    ProgressDeadlineExceeded,
    /// Still progressing at the deadline.
    #[error("not healthy by the deadline {}: {waiting_for}", super::format_time(*deadline))]
    DeadlineExceeded {
        /// The deadline.
        deadline: DateTime<Utc>,
        /// What it was still waiting for.
        waiting_for: String,
    },
    /// A container of the new revision waits for a failing reason.
    #[error("pod {pod} container {container} is in {reason}")]
    Waiting {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// `CrashLoopBackOff`, `ErrImagePull`, `ImagePullBackOff` or `InvalidImageName`.
        reason: String,
    },
    /// A container of the new revision restarted too often.
    #[error("pod {pod} container {container} restarted {count} times (more than {threshold})")]
    Restarts {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// `restartCount`.
        count: u32,
        /// The threshold.
        threshold: u32,
    },
    /// The CronJob's next Job failed.
    #[error("job {job} failed ({reason})")]
    JobFailed {
        /// The Job.
        job: String,
        /// Its `Failed` condition reason.
        reason: String,
    },
}

impl Failure {
    /// A short label for metrics and Event reasons.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::ProgressDeadlineExceeded => "progress_deadline",
            Failure::DeadlineExceeded { .. } => "deadline",
            Failure::Waiting { reason, .. } if reason == "CrashLoopBackOff" => "crash_loop",
            Failure::Waiting { .. } => "image_pull",
            Failure::Restarts { .. } => "restarts",
            Failure::JobFailed { .. } => "job_failed",
        }
    }
}

/// The judgement of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Not done yet; says what it waits for (kubectl's wording).
    Progressing(String),
    /// Done.
    Healthy,
    /// Failed: roll back (or pause, or report) as `onFailure` says.
    Failed(Failure),
}

/// The absolute deadline of a rollout started at `started`: `--health-timeout` when
/// given, else the workload's `progressDeadlineSeconds`, else [`DEFAULT_DEADLINE`].
pub fn deadline(
    started: DateTime<Utc>,
    health_timeout: Option<Duration>,
    progress_deadline_seconds: Option<u32>,
) -> DateTime<Utc> {
    let wait = health_timeout
        .or(progress_deadline_seconds.map(|s| Duration::from_secs(u64::from(s))))
        .unwrap_or(DEFAULT_DEADLINE);
    let wait = TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
    started
        .checked_add_signed(wait)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Judges a rollout: `pods` are the pods of the new revision, `restart_threshold`
/// the restarts above which a container fails it, `deadline` from the rollout
/// record.
pub fn judge(
    status: &RolloutStatus,
    pods: &[PodState],
    restart_threshold: u32,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Health {
    if let Some(failure) = failing_pod(pods, restart_threshold) {
        return Health::Failed(failure);
    }
    let (health, deadline_applies) = match status {
        RolloutStatus::Deployment(d) => (deployment(d), true),
        RolloutStatus::StatefulSet(s) => (stateful_set(s), true),
        RolloutStatus::DaemonSet(d) => (daemon_set(d), true),
        RolloutStatus::CronJob(c) => (cron_job(c), c.next_job.is_some()),
    };
    match health {
        Health::Progressing(waiting_for) if deadline_applies && now >= deadline => {
            Health::Failed(Failure::DeadlineExceeded {
                deadline,
                waiting_for,
            })
        }
        h => h,
    }
}

fn failing_pod(pods: &[PodState], threshold: u32) -> Option<Failure> {
    for pod in pods {
        for c in &pod.containers {
            if let Some(reason) = c
                .waiting_reason
                .as_deref()
                .filter(|r| FAILING_WAIT_REASONS.contains(r))
            {
                return Some(Failure::Waiting {
                    pod: pod.name.clone(),
                    container: c.name.clone(),
                    reason: reason.to_owned(),
                });
            }
            if c.restart_count > threshold {
                return Some(Failure::Restarts {
                    pod: pod.name.clone(),
                    container: c.name.clone(),
                    count: c.restart_count,
                    threshold,
                });
            }
        }
    }
    None
}

fn progressing(message: String) -> Health {
    Health::Progressing(message)
}

fn deployment(d: &DeploymentStatus) -> Health {
    if d.generation > d.observed_generation {
        return progressing("waiting for the deployment spec update to be observed".into());
    }
    if d.progressing_reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED) {
        return Health::Failed(Failure::ProgressDeadlineExceeded);
    }
    if d.updated_replicas < d.replicas {
        return progressing(format!(
            "{} out of {} new replicas have been updated",
            d.updated_replicas, d.replicas
        ));
    }
    if d.status_replicas > d.updated_replicas {
        return progressing(format!(
            "{} old replicas are pending termination",
            d.status_replicas - d.updated_replicas
        ));
    }
    if d.available_replicas < d.updated_replicas {
        return progressing(format!(
            "{} of {} updated replicas are available",
            d.available_replicas, d.updated_replicas
        ));
    }
    Health::Healthy
}

fn stateful_set(s: &StatefulSetStatus) -> Health {
    let StatefulSetStrategy::RollingUpdate { partition } = s.strategy else {
        return Health::Healthy;
    };
    if s.observed_generation == 0 || s.generation > s.observed_generation {
        return progressing("waiting for the statefulset spec update to be observed".into());
    }
    if s.ready_replicas < s.replicas {
        return progressing(format!(
            "waiting for {} pods to be ready",
            s.replicas - s.ready_replicas
        ));
    }
    if let Some(partition) = partition {
        let want = (s.replicas - partition).max(0);
        if s.updated_replicas < want {
            return progressing(format!(
                "partitioned roll out: {} out of {want} new pods have been updated",
                s.updated_replicas
            ));
        }
        return Health::Healthy;
    }
    if s.update_revision != s.current_revision {
        return progressing(format!(
            "{} pods at revision {}, waiting for the rolling update to complete",
            s.updated_replicas, s.update_revision
        ));
    }
    Health::Healthy
}

fn daemon_set(d: &DaemonSetStatus) -> Health {
    if d.on_delete {
        return Health::Healthy;
    }
    if d.generation > d.observed_generation {
        return progressing("waiting for the daemon set spec update to be observed".into());
    }
    if d.updated < d.desired {
        return progressing(format!(
            "{} out of {} new pods have been updated",
            d.updated, d.desired
        ));
    }
    if d.available < d.desired || d.unavailable > 0 {
        return progressing(format!(
            "{} of {} updated pods are available",
            d.available, d.desired
        ));
    }
    Health::Healthy
}

fn cron_job(c: &CronJobStatus) -> Health {
    match &c.next_job {
        None => progressing("waiting for the next scheduled Job".into()),
        Some(job) => match &job.failed_reason {
            Some(reason) => Health::Failed(Failure::JobFailed {
                job: job.name.clone(),
                // Status text anyone with status access could write: escaped and
                // bounded before it reaches an Event.
                reason: reason.escape_debug().take(128).collect(),
            }),
            None if job.complete => Health::Healthy,
            None => progressing(format!("waiting for job {} to complete", job.name)),
        },
    }
}

#[cfg(test)]
mod tests;
