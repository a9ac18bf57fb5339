//! Controllers for the other workloads freshet updates: StatefulSets and
//! DaemonSets (pods labelled with `controller-revision-hash`, history kept as
//! ControllerRevisions, rolling replacement of outdated pods), Jobs (pods to
//! completion) and CronJobs (status only).
//!
//! Owns these controllers' reconciliation. They write only through the store.

use serde_json::{Value, json};

use super::context::{Controllers, NodeSpec};
use super::objects::{controller_ref, def, pod_ready, pod_terminal};
use super::replicaset::{owned_pods, pod_from_template};
use crate::store::{Propagation, UpdateMode, ns_name};
use crate::util::{i64_at, now_rfc3339, random_suffix, short_hash, str_at};

/// CronJobs at `now` (Unix seconds): at the latest scheduled minute since
/// the last run (or creation), a Job from the template, unless suspended or
/// forbidden by the concurrency policy; `status.active`,
/// `lastScheduleTime` and `lastSuccessfulTime`; history limits.
pub fn reconcile_cronjobs(c: &mut Controllers, now: u64) {
    for cj in c.store.list("cronjobs.batch", None).0 {
        let (ns, name) = ns_name(&cj);
        let uid = str_at(&cj, "metadata.uid").to_string();
        let jobs: Vec<Value> = c.store.owned("jobs.batch", &ns, &uid);
        let finished = |j: &Value| j.pointer("/status/completionTime").is_some() || job_failed(j);
        let mut active: Vec<&Value> = jobs.iter().filter(|j| !finished(j)).collect();
        let mut status = cj.get("status").cloned().unwrap_or(json!({}));
        let since = [
            str_at(&cj, "status.lastScheduleTime"),
            str_at(&cj, "metadata.creationTimestamp"),
        ]
        .iter()
        .find_map(|t| crate::table::parse_rfc3339(t).ok())
        .unwrap_or(now);
        let suspended = cj.pointer("/spec/suspend") == Some(&json!(true));
        let due = super::cron::Schedule::parse(str_at(&cj, "spec.schedule"))
            .ok()
            .and_then(|s| s.latest_in(since, now));
        if let Some(at) = due.filter(|_| !suspended) {
            let policy = str_at(&cj, "spec.concurrencyPolicy");
            if policy == "Replace" {
                for j in &active {
                    let _ = c.store.delete(
                        def("batch", "jobs"),
                        &ns,
                        str_at(j, "metadata.name"),
                        Propagation::Cascade,
                    );
                }
                active.clear();
            }
            if policy != "Forbid" || active.is_empty() {
                start_scheduled_job(c, &cj, at);
            }
            status["lastScheduleTime"] = json!(crate::util::format_rfc3339(at));
        }
        let jobs: Vec<Value> = c.store.owned("jobs.batch", &ns, &uid);
        let refs: Vec<Value> = jobs
            .iter()
            .filter(|j| !finished(j))
            .map(|j| json!({"kind": "Job", "namespace": ns, "name": j["metadata"]["name"], "uid": j["metadata"]["uid"], "apiVersion": "batch/v1", "resourceVersion": j["metadata"]["resourceVersion"]}))
            .collect();
        if refs.is_empty() {
            status.as_object_mut().map(|m| m.remove("active"));
        } else {
            status["active"] = json!(refs);
        }
        if let Some(t) = jobs
            .iter()
            .filter_map(|j| j.pointer("/status/completionTime").and_then(Value::as_str))
            .max()
        {
            status["lastSuccessfulTime"] = json!(t);
        }
        // History limits: the oldest finished Jobs go first.
        for (failed, key, default) in [
            (false, "successfulJobsHistoryLimit", 3),
            (true, "failedJobsHistoryLimit", 1),
        ] {
            let limit = i64_at(&cj, &format!("spec.{key}"), default).max(0) as usize;
            let mut done: Vec<&Value> = jobs
                .iter()
                .filter(|j| {
                    if failed {
                        job_failed(j)
                    } else {
                        j.pointer("/status/completionTime").is_some()
                    }
                })
                .collect();
            done.sort_by_key(|j| str_at(j, "metadata.creationTimestamp").to_string());
            if done.len() > limit {
                for j in &done[..done.len() - limit] {
                    let _ = c.store.delete(
                        def("batch", "jobs"),
                        &ns,
                        str_at(j, "metadata.name"),
                        Propagation::Cascade,
                    );
                }
            }
        }
        if cj.get("status").cloned().unwrap_or(json!({})) != status {
            c.store.modify(
                def("batch", "cronjobs"),
                &ns,
                &name,
                UpdateMode::Status,
                |o| o["status"] = status,
            );
        }
    }
}

fn job_failed(j: &Value) -> bool {
    j.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "type") == "Failed" && str_at(c, "status") == "True")
        })
}

/// Creates the Job a CronJob schedules for the minute `at`.
fn start_scheduled_job(c: &Controllers, cj: &Value, at: u64) {
    let (ns, name) = ns_name(cj);
    let job_name = format!("{name}-{}", at / 60);
    let template = cj
        .pointer("/spec/jobTemplate")
        .cloned()
        .unwrap_or(json!({}));
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    meta["name"] = json!(job_name);
    meta["uid"] = json!(crate::util::random_uuid());
    meta["ownerReferences"] = json!([controller_ref(cj)]);
    crate::util::ensure_obj(&mut meta, "annotations").insert(
        "batch.kubernetes.io/cronjob-scheduled-timestamp".into(),
        json!(crate::util::format_rfc3339(at)),
    );
    let mut job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    });
    let job_def = def("batch", "jobs");
    if crate::admission::admit(job_def, &mut job, true).is_err() {
        return;
    }
    if c.store.create(job_def, &ns, job).is_ok() {
        c.event(
            cj,
            "Normal",
            "SuccessfulCreate",
            &format!("Created job {job_name}"),
            "cronjob-controller",
        );
    }
}

/// Jobs: run `completions` pods to completion, then mark the Job Complete (or Failed).
pub fn reconcile_job(c: &mut Controllers, job: &Value) {
    let (ns, name) = ns_name(job);
    if job.pointer("/status/completionTime").is_some()
        || job.pointer("/spec/suspend") == Some(&json!(true))
    {
        return;
    }
    let pods = owned_pods(c, job);
    let succeeded = pods
        .iter()
        .filter(|p| str_at(p, "status.phase") == "Succeeded")
        .count() as i64;
    let failed = pods
        .iter()
        .filter(|p| str_at(p, "status.phase") == "Failed")
        .count() as i64;
    let active = pods.iter().filter(|p| !pod_terminal(p)).count() as i64;
    let completions = i64_at(job, "spec.completions", 1);
    let parallelism = i64_at(job, "spec.parallelism", 1);
    let backoff = i64_at(job, "spec.backoffLimit", 6);
    let done = succeeded >= completions;
    let gave_up = failed > backoff;
    if !done && !gave_up {
        let want = parallelism.min(completions - succeeded) - active;
        for _ in 0..want.max(0) {
            let pod_name = format!("{name}-{}", random_suffix(5));
            let pod = pod_from_template(job, &job["spec"]["template"], &pod_name, &[]);
            if c.store.create(def("", "pods"), &ns, pod).is_ok() {
                c.event(
                    job,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {pod_name}"),
                    "job-controller",
                );
            }
        }
    }
    let now = now_rfc3339();
    let mut status = job.get("status").cloned().unwrap_or(json!({}));
    if status.get("startTime").is_none() {
        status["startTime"] = json!(now);
    }
    status["active"] = json!(active);
    status["succeeded"] = json!(succeeded);
    status["failed"] = json!(failed);
    status["ready"] = json!(pods.iter().filter(|p| pod_ready(p)).count());
    status["terminating"] = json!(0);
    status["uncountedTerminatedPods"] = json!({});
    if done {
        status["completionTime"] = json!(now);
        status["active"] = json!(0);
        status["conditions"] = json!([
            {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"},
            {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
        ]);
        c.event(
            job,
            "Normal",
            "Completed",
            "Job completed",
            "job-controller",
        );
    } else if gave_up && status.get("conditions").is_none() {
        status["conditions"] = json!([
            {"type": "Failed", "status": "True", "lastProbeTime": now, "lastTransitionTime": now, "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}
        ]);
    }
    for key in ["active", "succeeded", "failed"] {
        if status[key] == json!(0) {
            status.as_object_mut().map(|m| m.remove(key));
        }
    }
    if job.get("status") != Some(&status) {
        c.store
            .modify(def("batch", "jobs"), &ns, &name, UpdateMode::Status, |o| {
                o["status"] = status
            });
    }
}

/// Finds or creates the ControllerRevision for `owner`'s current template; returns its name.
fn current_revision(c: &Controllers, owner: &Value, hash: &str) -> String {
    let (ns, name) = ns_name(owner);
    let uid = str_at(owner, "metadata.uid");
    let rev_name = format!("{name}-{hash}");
    let cr_def = def("apps", "controllerrevisions");
    let revisions: Vec<Value> = c.store.owned(cr_def.storage, &ns, uid);
    let max = revisions
        .iter()
        .map(|r| i64_at(r, "revision", 0))
        .max()
        .unwrap_or(0);
    match revisions
        .iter()
        .find(|r| str_at(r, "metadata.name") == rev_name)
    {
        Some(r) if i64_at(r, "revision", 0) == max => {}
        Some(_) => {
            c.store
                .modify(cr_def, &ns, &rev_name, UpdateMode::Internal, |o| {
                    o["revision"] = json!(max + 1)
                });
        }
        None => {
            // What kubectl's `rollout undo` applies as a strategic merge patch.
            let mut template_data = owner["spec"]["template"].clone();
            if let Some(t) = template_data.as_object_mut() {
                t.insert("$patch".into(), json!("replace"));
            }
            let mut labels = owner
                .pointer("/spec/template/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            labels["controller.kubernetes.io/hash"] = json!(hash);
            let cr = json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {"name": rev_name, "labels": labels, "ownerReferences": [controller_ref(owner)]},
                "data": {"spec": {"template": template_data}},
                "revision": max + 1,
            });
            let _ = c.store.create(cr_def, &ns, cr);
        }
    }
    // Keep the history limit.
    let limit = i64_at(owner, "spec.revisionHistoryLimit", 10).max(0) as usize;
    let mut old: Vec<Value> = revisions
        .into_iter()
        .filter(|r| str_at(r, "metadata.name") != rev_name)
        .collect();
    old.sort_by_key(|r| i64_at(r, "revision", 0));
    if old.len() > limit {
        for r in &old[..old.len() - limit] {
            let _ = c.store.delete(
                cr_def,
                &ns,
                str_at(r, "metadata.name"),
                Propagation::Cascade,
            );
        }
    }
    rev_name
}

/// StatefulSets: ordinal pods `name-0..n`, replaced from the highest ordinal
/// down when their revision is outdated (RollingUpdate), one at a time once
/// the others are ready.
pub fn reconcile_statefulset(c: &mut Controllers, sts: &Value) {
    let (ns, name) = ns_name(sts);
    let replicas = i64_at(sts, "spec.replicas", 1).max(0);
    let hash = short_hash(&sts["spec"]["template"]);
    let update_rev = current_revision(c, sts, &hash);
    let pods = owned_pods(c, sts);
    let pod_def = def("", "pods");
    let rev_of = |p: &Value| {
        p.pointer("/metadata/labels/controller-revision-hash")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let all_ready = pods.iter().all(pod_ready);
    for i in 0..replicas {
        let pod_name = format!("{name}-{i}");
        if !pods.iter().any(|p| str_at(p, "metadata.name") == pod_name) {
            // OrderedReady: create one at a time once the previous ones are ready.
            if str_at(sts, "spec.podManagementPolicy") != "Parallel" && !all_ready {
                break;
            }
            let pod = pod_from_template(
                sts,
                &sts["spec"]["template"],
                &pod_name,
                &[
                    ("controller-revision-hash", update_rev.clone()),
                    ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                    ("apps.kubernetes.io/pod-index", i.to_string()),
                ],
            );
            if c.store.create(pod_def, &ns, pod).is_ok() {
                c.event(
                    sts,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("create Pod {pod_name} in StatefulSet {name} successful"),
                    "statefulset-controller",
                );
            }
            break;
        }
    }
    for p in &pods {
        let idx: i64 = str_at(p, "metadata.name")
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if idx >= replicas {
            let _ = c.store.delete(
                pod_def,
                &ns,
                str_at(p, "metadata.name"),
                Propagation::Cascade,
            );
        }
    }
    let partition = i64_at(sts, "spec.updateStrategy.rollingUpdate.partition", 0);
    if str_at(sts, "spec.updateStrategy.type") != "OnDelete"
        && all_ready
        && pods.len() as i64 == replicas
    {
        let mut outdated: Vec<&Value> = pods.iter().filter(|p| rev_of(p) != update_rev).collect();
        outdated.sort_by_key(|p| std::cmp::Reverse(str_at(p, "metadata.name").to_string()));
        if let Some(p) = outdated.into_iter().find(|p| {
            str_at(p, "metadata.name")
                .rsplit('-')
                .next()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
                >= partition
        }) {
            let _ = c.store.delete(
                pod_def,
                &ns,
                str_at(p, "metadata.name"),
                Propagation::Cascade,
            );
            c.event(
                sts,
                "Normal",
                "SuccessfulDelete",
                &format!(
                    "delete Pod {} in StatefulSet {name} successful",
                    str_at(p, "metadata.name")
                ),
                "statefulset-controller",
            );
        }
    }
    let pods = owned_pods(c, sts);
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let updated = pods.iter().filter(|p| rev_of(p) == update_rev).count() as i64;
    let current_rev = if updated == replicas {
        update_rev.clone()
    } else {
        sts.pointer("/status/currentRevision")
            .and_then(Value::as_str)
            .unwrap_or(&update_rev)
            .to_string()
    };
    let current = pods.iter().filter(|p| rev_of(p) == current_rev).count() as i64;
    let mut status = json!({
        "observedGeneration": i64_at(sts, "metadata.generation", 1),
        "replicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_rev,
        "updateRevision": update_rev,
        "collisionCount": 0,
    });
    for key in ["readyReplicas", "currentReplicas", "updatedReplicas"] {
        if status[key] == json!(0) {
            status.as_object_mut().map(|m| m.remove(key));
        }
    }
    if sts.get("status") != Some(&status) {
        c.store.modify(
            def("apps", "statefulsets"),
            &ns,
            &name,
            UpdateMode::Status,
            |o| o["status"] = status,
        );
    }
}

/// DaemonSets: one pod per node that fits; outdated pods are replaced one at
/// a time (maxUnavailable 1) once the rest are ready.
pub fn reconcile_daemonset(c: &mut Controllers, ds: &Value) {
    let (ns, name) = ns_name(ds);
    let hash = short_hash(&ds["spec"]["template"]);
    current_revision(c, ds, &hash);
    let pods = owned_pods(c, ds);
    let pod_def = def("", "pods");
    let template_pod = json!({"spec": ds["spec"]["template"]["spec"]});
    let nodes: Vec<NodeSpec> = c
        .nodes
        .iter()
        .filter(|n| super::kubelet::fits_node(&template_pod, n))
        .cloned()
        .collect();
    let rev_of = |p: &Value| {
        p.pointer("/metadata/labels/controller-revision-hash")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for n in &nodes {
        if !pods.iter().any(|p| str_at(p, "spec.nodeName") == n.name) {
            let pod_name = format!("{name}-{}", random_suffix(5));
            let mut pod = pod_from_template(
                ds,
                &ds["spec"]["template"],
                &pod_name,
                &[("controller-revision-hash", hash.clone())],
            );
            pod["spec"]["nodeName"] = json!(n.name);
            if c.store.create(pod_def, &ns, pod).is_ok() {
                c.event(
                    ds,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {pod_name}"),
                    "daemonset-controller",
                );
            }
        }
    }
    // A rolling update, as the real controller's: outdated pods that are not
    // available go at once (they cost no availability: how a DaemonSet stuck on a
    // broken revision recovers when its template is fixed); an available one only
    // when every pod is ready (maxUnavailable 1).
    let all_ready = pods.iter().all(pod_ready) && pods.len() == nodes.len();
    if str_at(ds, "spec.updateStrategy.type") != "OnDelete" {
        let outdated = pods.iter().filter(|p| rev_of(p) != hash);
        let unavailable: Vec<&Value> = outdated.clone().filter(|p| !pod_ready(p)).collect();
        let doomed: Vec<&Value> = if !unavailable.is_empty() {
            unavailable
        } else if all_ready {
            outdated.take(1).collect()
        } else {
            Vec::new()
        };
        for p in doomed {
            let _ = c.store.delete(
                pod_def,
                &ns,
                str_at(p, "metadata.name"),
                Propagation::Cascade,
            );
        }
    }
    let pods = owned_pods(c, ds);
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let updated = pods.iter().filter(|p| rev_of(p) == hash).count() as i64;
    let desired = nodes.len() as i64;
    let mut status = json!({
        "observedGeneration": i64_at(ds, "metadata.generation", 1),
        "currentNumberScheduled": pods.len(),
        "desiredNumberScheduled": desired,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": updated,
    });
    if desired - ready > 0 {
        status["numberUnavailable"] = json!(desired - ready);
    }
    if ready == 0 {
        status.as_object_mut().map(|m| m.remove("numberAvailable"));
    }
    if ds.get("status") != Some(&status) {
        c.store.modify(
            def("apps", "daemonsets"),
            &ns,
            &name,
            UpdateMode::Status,
            |o| o["status"] = status,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::images::FakeResolver;
    use crate::store::Store;

    fn controllers_with_cronjob(schedule: &str, extra: Value) -> (Controllers, u64) {
        let store = Arc::new(Store::new(100));
        store
            .create(
                def("", "namespaces"),
                "",
                json!({"metadata": {"name": "default"}}),
            )
            .unwrap();
        let mut cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": "registry.test/a:1"}]}}}}}});
        if let (Some(spec), Some(extra)) = (cj["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        crate::admission::admit(def("batch", "cronjobs"), &mut cj, true).unwrap();
        let created = store
            .create(def("batch", "cronjobs"), "default", cj)
            .unwrap();
        let at =
            crate::table::parse_rfc3339(str_at(&created, "metadata.creationTimestamp")).unwrap();
        let c = Controllers::new(
            store,
            Vec::new(),
            Arc::new(FakeResolver::default()),
            Vec::new(),
        );
        (c, at)
    }

    fn jobs(c: &Controllers) -> Vec<Value> {
        c.store.list("jobs.batch", Some("default")).0
    }

    #[test]
    fn a_due_schedule_starts_one_job_per_scheduled_minute() {
        let (mut c, created) = controllers_with_cronjob("* * * * *", json!({}));
        reconcile_cronjobs(&mut c, created);
        assert!(jobs(&c).is_empty(), "nothing is due at creation");
        let later = created + 150;
        reconcile_cronjobs(&mut c, later);
        reconcile_cronjobs(&mut c, later);
        let started = jobs(&c);
        assert_eq!(started.len(), 1);
        let minute = later / 60;
        assert_eq!(started[0]["metadata"]["name"], format!("nightly-{minute}"));
        assert_eq!(
            started[0]["metadata"]["ownerReferences"][0]["kind"],
            "CronJob"
        );
        assert!(started[0].pointer("/spec/selector/matchLabels").is_some());
        let cj = c.store.get("cronjobs.batch", "default", "nightly").unwrap();
        assert_eq!(
            cj["status"]["lastScheduleTime"],
            crate::util::format_rfc3339(minute * 60)
        );
        assert_eq!(
            cj["status"]["active"][0]["name"],
            format!("nightly-{minute}")
        );
    }

    #[test]
    fn suspended_and_forbidden_schedules_start_nothing() {
        let (mut c, created) = controllers_with_cronjob("* * * * *", json!({"suspend": true}));
        reconcile_cronjobs(&mut c, created + 600);
        assert!(jobs(&c).is_empty());

        let (mut c, created) =
            controllers_with_cronjob("* * * * *", json!({"concurrencyPolicy": "Forbid"}));
        reconcile_cronjobs(&mut c, created + 120);
        reconcile_cronjobs(&mut c, created + 240);
        assert_eq!(jobs(&c).len(), 1, "the first Job still runs");
    }
}
