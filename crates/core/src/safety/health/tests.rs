//! Table tests mirroring `kubectl rollout status`, plus freshet's pod and deadline rules.

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
}

fn dep(
    generations: (i64, i64),
    replicas: i32,
    counts: (i32, i32, i32),
    reason: Option<&str>,
) -> RolloutStatus {
    RolloutStatus::Deployment(DeploymentStatus {
        generation: generations.0,
        observed_generation: generations.1,
        replicas,
        status_replicas: counts.0,
        updated_replicas: counts.1,
        available_replicas: counts.2,
        progressing_reason: reason.map(Into::into),
    })
}

fn is_progressing(h: &Health, want: &str) -> bool {
    matches!(h, Health::Progressing(m) if m.contains(want))
}

#[test]
fn deployments_follow_kubectl() {
    // (status, expected: "healthy", "failed", or a substring of the progress message)
    let cases = [
        (
            dep((2, 1), 3, (3, 3, 3), None),
            "spec update to be observed",
        ),
        (dep((2, 2), 3, (3, 1, 1), None), "1 out of 3 new replicas"),
        (
            dep((2, 2), 3, (4, 3, 3), None),
            "1 old replicas are pending",
        ),
        (
            dep((2, 2), 3, (3, 3, 2), None),
            "2 of 3 updated replicas are available",
        ),
        (dep((2, 2), 3, (3, 3, 3), None), "healthy"),
        (
            dep((2, 3), 3, (3, 3, 3), Some("NewReplicaSetAvailable")),
            "healthy",
        ),
        (dep((2, 2), 0, (0, 0, 0), None), "healthy"),
        (
            dep((2, 2), 3, (4, 1, 3), Some("ProgressDeadlineExceeded")),
            "failed",
        ),
        // kubectl only reads the condition once the generation is observed.
        (
            dep((3, 2), 3, (4, 1, 3), Some("ProgressDeadlineExceeded")),
            "observed",
        ),
        (
            dep((2, 2), 3, (4, 1, 3), Some("ReplicaSetUpdated")),
            "1 out of 3",
        ),
    ];
    for (status, want) in cases {
        let h = judge(&status, &[], 3, t(600), t(10));
        let ok = match want {
            "healthy" => h == Health::Healthy,
            "failed" => h == Health::Failed(Failure::ProgressDeadlineExceeded),
            w => is_progressing(&h, w),
        };
        assert!(ok, "{status:?}: {h:?}, want {want}");
    }
}

fn sts(
    generations: (i64, i64),
    replicas: i32,
    partition: Option<i32>,
    ready: i32,
    updated: i32,
    revs: (&str, &str),
) -> RolloutStatus {
    RolloutStatus::StatefulSet(StatefulSetStatus {
        generation: generations.0,
        observed_generation: generations.1,
        replicas,
        strategy: StatefulSetStrategy::RollingUpdate { partition },
        ready_replicas: ready,
        updated_replicas: updated,
        current_revision: revs.0.into(),
        update_revision: revs.1.into(),
    })
}

#[test]
fn stateful_sets_follow_kubectl() {
    let cases = [
        (
            sts((1, 0), 3, None, 3, 3, ("a", "a")),
            "spec update to be observed",
        ),
        (
            sts((2, 1), 3, None, 3, 3, ("a", "a")),
            "spec update to be observed",
        ),
        (
            sts((2, 2), 3, None, 2, 1, ("a", "b")),
            "waiting for 1 pods to be ready",
        ),
        (sts((2, 2), 3, None, 3, 1, ("a", "b")), "at revision b"),
        (sts((2, 2), 3, None, 3, 3, ("b", "b")), "healthy"),
        (
            sts((2, 2), 4, Some(2), 4, 1, ("a", "b")),
            "1 out of 2 new pods",
        ),
        (sts((2, 2), 4, Some(2), 4, 2, ("a", "b")), "healthy"),
        // With a partition (defaulted to 0), kubectl counts updated replicas.
        (
            sts((2, 2), 3, Some(0), 3, 2, ("a", "b")),
            "2 out of 3 new pods",
        ),
        (sts((2, 2), 3, Some(0), 3, 3, ("a", "b")), "healthy"),
        (sts((2, 2), 3, Some(5), 3, 0, ("a", "b")), "healthy"),
    ];
    for (status, want) in cases {
        let h = judge(&status, &[], 3, t(600), t(10));
        let ok = match want {
            "healthy" => h == Health::Healthy,
            w => is_progressing(&h, w),
        };
        assert!(ok, "{status:?}: {h:?}, want {want}");
    }
    let on_delete = RolloutStatus::StatefulSet(StatefulSetStatus::default());
    assert_eq!(judge(&on_delete, &[], 3, t(600), t(10)), Health::Healthy);
}

fn ds(
    generations: (i64, i64),
    desired: i32,
    updated: i32,
    available: i32,
    unavailable: i32,
) -> RolloutStatus {
    RolloutStatus::DaemonSet(DaemonSetStatus {
        generation: generations.0,
        observed_generation: generations.1,
        on_delete: false,
        desired,
        updated,
        available,
        unavailable,
    })
}

#[test]
fn daemon_sets_follow_kubectl() {
    let cases = [
        (ds((2, 1), 3, 3, 3, 0), "spec update to be observed"),
        (ds((2, 2), 3, 1, 3, 0), "1 out of 3 new pods"),
        (ds((2, 2), 3, 3, 2, 1), "2 of 3 updated pods are available"),
        (ds((2, 2), 3, 3, 3, 1), "3 of 3 updated pods"),
        (ds((2, 2), 3, 3, 3, 0), "healthy"),
    ];
    for (status, want) in cases {
        let h = judge(&status, &[], 3, t(600), t(10));
        let ok = match want {
            "healthy" => h == Health::Healthy,
            w => is_progressing(&h, w),
        };
        assert!(ok, "{status:?}: {h:?}, want {want}");
    }
}

#[test]
fn cron_jobs_are_judged_by_their_next_job_and_wait_for_it_past_the_deadline() {
    let none = RolloutStatus::CronJob(CronJobStatus { next_job: None });
    assert!(is_progressing(
        &judge(&none, &[], 3, t(600), t(9_999)),
        "next scheduled Job"
    ));
    let job = |complete, failed: Option<&str>| {
        RolloutStatus::CronJob(CronJobStatus {
            next_job: Some(JobStatus {
                name: "backup-29000".into(),
                complete,
                failed_reason: failed.map(Into::into),
            }),
        })
    };
    assert_eq!(
        judge(&job(true, None), &[], 3, t(600), t(10)),
        Health::Healthy
    );
    assert!(is_progressing(
        &judge(&job(false, None), &[], 3, t(600), t(10)),
        "backup-29000"
    ));
    assert!(matches!(
        judge(&job(false, None), &[], 3, t(600), t(600)),
        Health::Failed(Failure::DeadlineExceeded { .. })
    ));
    assert_eq!(
        judge(
            &job(false, Some("BackoffLimitExceeded")),
            &[],
            3,
            t(600),
            t(10)
        ),
        Health::Failed(Failure::JobFailed {
            job: "backup-29000".into(),
            reason: "BackoffLimitExceeded".into()
        })
    );
}

fn pod(waiting: Option<&str>, restarts: u32) -> PodState {
    PodState {
        name: "api-7d9-x".into(),
        containers: vec![
            ContainerState {
                name: "sidecar".into(),
                waiting_reason: None,
                restart_count: 0,
            },
            ContainerState {
                name: "api".into(),
                waiting_reason: waiting.map(Into::into),
                restart_count: restarts,
            },
        ],
    }
}

#[test]
fn failing_pods_of_the_new_revision_fail_the_rollout_at_once() {
    let progressing = dep((2, 2), 3, (4, 1, 3), None);
    let cases = [
        (Some("CrashLoopBackOff"), 1, Some("crash_loop")),
        (Some("ErrImagePull"), 0, Some("image_pull")),
        (Some("ImagePullBackOff"), 0, Some("image_pull")),
        (Some("InvalidImageName"), 0, Some("image_pull")),
        (Some("ContainerCreating"), 0, None),
        (None, 3, None),
        (None, 4, Some("restarts")),
    ];
    for (waiting, restarts, want) in cases {
        let h = judge(&progressing, &[pod(waiting, restarts)], 3, t(600), t(10));
        match (want, &h) {
            (Some(label), Health::Failed(f)) => {
                assert_eq!(f.label(), label, "{waiting:?}/{restarts}");
                assert!(f.to_string().contains("pod api-7d9-x container api"), "{f}");
            }
            (None, Health::Progressing(_)) => {}
            _ => panic!("{waiting:?}/{restarts}: {h:?}"),
        }
    }
    // A healthy-looking workload with a crash-looping new pod has failed too.
    let done = dep((2, 2), 1, (1, 1, 1), None);
    assert!(matches!(
        judge(&done, &[pod(Some("CrashLoopBackOff"), 5)], 3, t(600), t(10)),
        Health::Failed(_)
    ));
}

#[test]
fn progressing_at_the_deadline_is_a_failure_but_healthy_stays_healthy() {
    let progressing = dep((2, 2), 3, (3, 3, 2), None);
    assert!(matches!(
        judge(&progressing, &[], 3, t(600), t(599)),
        Health::Progressing(_)
    ));
    let h = judge(&progressing, &[], 3, t(600), t(600));
    let Health::Failed(f @ Failure::DeadlineExceeded { .. }) = h else {
        panic!("{h:?}")
    };
    assert!(f.to_string().contains("2 of 3 updated replicas"), "{f}");
    let done = dep((2, 2), 3, (3, 3, 3), None);
    assert_eq!(judge(&done, &[], 3, t(600), t(5_000)), Health::Healthy);
}

#[test]
fn the_deadline_is_the_health_timeout_else_progress_deadline_seconds_else_600s() {
    let started = t(0);
    assert_eq!(
        deadline(started, Some(Duration::from_secs(120)), Some(900)),
        t(120)
    );
    assert_eq!(deadline(started, None, Some(900)), t(900));
    assert_eq!(deadline(started, None, None), t(600));
    assert_eq!(
        deadline(started, Some(Duration::MAX), None),
        DateTime::<Utc>::MAX_UTC
    );
}
