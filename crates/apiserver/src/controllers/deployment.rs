//! The deployment controller: one ReplicaSet per pod template (named by its
//! `pod-template-hash`, numbered by `deployment.kubernetes.io/revision`),
//! replicas moved by the Recreate or RollingUpdate strategy, and `status`
//! with the Available and Progressing conditions (including
//! `ProgressDeadlineExceeded`).
//!
//! Owns Deployment → ReplicaSet reconciliation. It must not touch pods (the
//! ReplicaSet controller does).

use std::time::Instant;

use serde_json::{Value, json};

use super::context::Controllers;
use super::objects::{controller_ref, def, int_or_percent, set_condition};
use crate::store::{Propagation, UpdateMode, ns_name};
use crate::util::{i64_at, short_hash, str_at};

const REVISION: &str = "deployment.kubernetes.io/revision";

/// The template without the `pod-template-hash` label, for comparing an RS with its Deployment.
pub fn template_without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
        if labels.is_empty() {
            t["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    t
}

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn scale_rs(c: &Controllers, d: &Value, rs: &Value, to: i64) {
    let from = i64_at(rs, "spec.replicas", 0);
    if from == to {
        return;
    }
    let (ns, name) = ns_name(rs);
    let replicas = i64_at(d, "spec.replicas", 1);
    c.store.modify(
        def("apps", "replicasets"),
        &ns,
        &name,
        UpdateMode::Main,
        |o| {
            o["spec"]["replicas"] = json!(to);
            let a = crate::util::ensure_obj(o, "metadata.annotations");
            a.insert(
                "deployment.kubernetes.io/desired-replicas".into(),
                json!(replicas.to_string()),
            );
        },
    );
    let verb = if to > from { "up" } else { "down" };
    c.event(
        d,
        "Normal",
        "ScalingReplicaSet",
        &format!("Scaled {verb} replica set {name} from {from} to {to}"),
        "deployment-controller",
    );
}

/// Reconciles one Deployment with its ReplicaSets.
pub fn reconcile(c: &mut Controllers, d: &Value) {
    let (ns, name) = ns_name(d);
    let uid = str_at(d, "metadata.uid").to_string();
    let replicas = i64_at(d, "spec.replicas", 1);
    let template = d["spec"]["template"].clone();
    let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    let rs_def = def("apps", "replicasets");
    let mut rss: Vec<Value> = c.store.owned(rs_def.storage, &ns, &uid);
    let max_rev = rss.iter().map(revision).max().unwrap_or(0);
    let mut new_rs = rss
        .iter()
        .find(|rs| {
            template_without_hash(&rs["spec"]["template"]) == template_without_hash(&template)
        })
        .cloned();
    let mut created_new = false;
    if new_rs.is_none() && !paused {
        let hash = short_hash(&template);
        let rs_name = format!("{name}-{hash}");
        let old_active = rss.iter().any(|rs| i64_at(rs, "spec.replicas", 0) > 0);
        let recreate = str_at(d, "spec.strategy.type") == "Recreate";
        let initial = if old_active || (recreate && !rss.is_empty()) {
            0
        } else {
            replicas
        };
        let mut t = template.clone();
        crate::util::ensure_obj(&mut t, "metadata.labels")
            .insert("pod-template-hash".into(), json!(hash));
        let mut selector = d["spec"]["selector"].clone();
        crate::util::ensure_obj(&mut selector, "matchLabels")
            .insert("pod-template-hash".into(), json!(hash));
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        labels["pod-template-hash"] = json!(hash);
        let mut annotations = json!({
            REVISION: (max_rev + 1).to_string(),
            "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
            "deployment.kubernetes.io/max-replicas": (replicas + int_or_percent(d.pointer("/spec/strategy/rollingUpdate/maxSurge"), replicas, true, 0)).to_string(),
        });
        if let Some(cause) = d.pointer("/metadata/annotations/kubernetes.io~1change-cause") {
            annotations["kubernetes.io/change-cause"] = cause.clone();
        }
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "labels": labels, "annotations": annotations, "ownerReferences": [controller_ref(d)]},
            "spec": {"replicas": initial, "selector": selector, "template": t},
        });
        match c.store.create(rs_def, &ns, rs) {
            Ok(created) => {
                if initial > 0 {
                    c.event(
                        d,
                        "Normal",
                        "ScalingReplicaSet",
                        &format!("Scaled up replica set {rs_name} from 0 to {initial}"),
                        "deployment-controller",
                    );
                }
                rss.push(created.clone());
                new_rs = Some(created);
                created_new = true;
            }
            Err(e) => tracing::debug!(error = %e, "creating a ReplicaSet failed"),
        }
    }
    // A rollback makes an old ReplicaSet new again: it gets the next revision.
    if let Some(rs) = &new_rs
        && revision(rs) < max_rev
    {
        let (rns, rname) = ns_name(rs);
        let old = revision(rs);
        if let Some(updated) = c.store.modify(rs_def, &rns, &rname, UpdateMode::Main, |o| {
            let a = crate::util::ensure_obj(o, "metadata.annotations");
            a.insert(REVISION.into(), json!((max_rev + 1).to_string()));
            a.insert(
                "deployment.kubernetes.io/revision-history".into(),
                json!(old.to_string()),
            );
        }) {
            new_rs = Some(updated);
        }
    }
    // Keep the Deployment's revision annotation in step with its new ReplicaSet.
    if let Some(rs) = &new_rs {
        let rev = revision(rs).to_string();
        if d.pointer("/metadata/annotations")
            .and_then(|a| a.get(REVISION))
            .and_then(Value::as_str)
            != Some(rev.as_str())
        {
            c.store.modify(
                def("apps", "deployments"),
                &ns,
                &name,
                UpdateMode::Main,
                |o| {
                    crate::util::ensure_obj(o, "metadata.annotations")
                        .insert(REVISION.into(), json!(rev));
                },
            );
        }
    }
    let new_uid = new_rs
        .as_ref()
        .map(|r| str_at(r, "metadata.uid").to_string())
        .unwrap_or_default();
    let mut old: Vec<Value> = rss
        .iter()
        .filter(|r| str_at(r, "metadata.uid") != new_uid)
        .cloned()
        .collect();
    old.sort_by_key(|r| {
        (
            revision(r),
            str_at(r, "metadata.creationTimestamp").to_string(),
        )
    });
    if !paused && let Some(new) = &new_rs {
        rollout(c, d, new, &old, replicas);
    }
    cleanup_history(c, d, &old);
    update_status(c, d, new_rs.as_ref(), created_new);
}

fn rollout(c: &Controllers, d: &Value, new: &Value, old: &[Value], replicas: i64) {
    let new_spec = i64_at(new, "spec.replicas", 0);
    if str_at(d, "spec.strategy.type") == "Recreate" {
        let mut old_running = false;
        for rs in old {
            if i64_at(rs, "spec.replicas", 0) > 0 {
                scale_rs(c, d, rs, 0);
                old_running = true;
            }
            if i64_at(rs, "status.replicas", 0) > 0 {
                old_running = true;
            }
        }
        if !old_running {
            scale_rs(c, d, new, replicas);
        }
        return;
    }
    let max_surge = int_or_percent(
        d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        replicas,
        true,
        1,
    );
    let mut max_unavailable = int_or_percent(
        d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        replicas,
        false,
        0,
    );
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let old_spec: i64 = old.iter().map(|r| i64_at(r, "spec.replicas", 0)).sum();
    // Scale up the new ReplicaSet within the surge.
    let mut target_new = new_spec;
    if old_spec == 0 {
        target_new = replicas;
    } else if new_spec < replicas {
        let allowed = replicas + max_surge - (old_spec + new_spec);
        if allowed > 0 {
            target_new = (new_spec + allowed).min(replicas);
        }
    } else if new_spec > replicas {
        target_new = replicas;
    }
    scale_rs(c, d, new, target_new);
    if old_spec == 0 {
        return;
    }
    // Scale down old ReplicaSets while keeping the minimum available.
    let min_available = replicas - max_unavailable;
    let new_unavailable = target_new - i64_at(new, "status.availableReplicas", 0);
    let all_pods = old_spec + target_new;
    let mut cleanup = all_pods - min_available - new_unavailable;
    let mut remaining: Vec<(Value, i64)> = old
        .iter()
        .map(|r| (r.clone(), i64_at(r, "spec.replicas", 0)))
        .collect();
    // First remove unhealthy old replicas.
    for (rs, spec) in remaining.iter_mut() {
        if cleanup <= 0 {
            break;
        }
        let unhealthy = *spec - i64_at(rs, "status.availableReplicas", 0);
        let down = unhealthy.min(cleanup).max(0);
        if down > 0 {
            *spec -= down;
            cleanup -= down;
        }
    }
    let available: i64 = old
        .iter()
        .map(|r| i64_at(r, "status.availableReplicas", 0))
        .sum::<i64>()
        + i64_at(new, "status.availableReplicas", 0);
    let mut budget = available - min_available;
    for (_, spec) in remaining.iter_mut() {
        if budget <= 0 {
            break;
        }
        let down = (*spec).min(budget);
        *spec -= down;
        budget -= down;
    }
    for (rs, spec) in remaining {
        scale_rs(c, d, &rs, spec);
    }
}

fn cleanup_history(c: &Controllers, d: &Value, old: &[Value]) {
    let limit = i64_at(d, "spec.revisionHistoryLimit", 10).max(0) as usize;
    let idle: Vec<&Value> = old
        .iter()
        .filter(|r| i64_at(r, "spec.replicas", 0) == 0 && i64_at(r, "status.replicas", 0) == 0)
        .collect();
    if idle.len() > limit {
        for rs in &idle[..idle.len() - limit] {
            let (ns, name) = ns_name(rs);
            let _ = c
                .store
                .delete(def("apps", "replicasets"), &ns, &name, Propagation::Cascade);
        }
    }
}

fn update_status(c: &mut Controllers, d: &Value, new: Option<&Value>, created_new: bool) {
    let (ns, name) = ns_name(d);
    let uid = str_at(d, "metadata.uid").to_string();
    let replicas = i64_at(d, "spec.replicas", 1);
    // Re-read ReplicaSets: the rollout step may have changed them.
    let rss: Vec<Value> = c.store.owned("replicasets.apps", &ns, &uid);
    let sum = |path: &str| -> i64 { rss.iter().map(|r| i64_at(r, path, 0)).sum() };
    let total = sum("status.replicas");
    let ready = sum("status.readyReplicas");
    let available = sum("status.availableReplicas");
    let new_name = new
        .map(|n| str_at(n, "metadata.name").to_string())
        .unwrap_or_default();
    let new_now = rss.iter().find(|r| str_at(r, "metadata.name") == new_name);
    let updated = new_now.map_or(0, |n| i64_at(n, "status.replicas", 0));
    let max_unavailable = if str_at(d, "spec.strategy.type") == "Recreate" {
        replicas
    } else {
        int_or_percent(
            d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
            replicas,
            false,
            0,
        )
    };
    let generation = i64_at(d, "metadata.generation", 1);
    let complete = updated == replicas && total == replicas && available == replicas;
    let signature = format!("{new_name}/{updated}/{ready}/{available}/{total}/{generation}");
    let deadline = i64_at(d, "spec.progressDeadlineSeconds", 600).max(0) as u64;
    let now = Instant::now();
    let entry = c
        .progress
        .entry(uid.clone())
        .or_insert_with(|| (String::new(), now));
    let progressed = entry.0 != signature;
    if progressed {
        *entry = (signature, now);
    }
    let stalled_for = now.duration_since(entry.1).as_secs();
    let deadline_at = entry.1 + std::time::Duration::from_secs(deadline);
    let mut status = d.get("status").cloned().unwrap_or(json!({}));
    let previous_reason = status
        .pointer("/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "type") == "Progressing"))
        .map(|c| str_at(c, "reason").to_string())
        .unwrap_or_default();
    status["observedGeneration"] = json!(generation);
    status["replicas"] = json!(total);
    status["updatedReplicas"] = json!(updated);
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(available);
    let unavailable = (replicas - available).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    } else {
        status
            .as_object_mut()
            .map(|m| m.remove("unavailableReplicas"));
    }
    for key in [
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "replicas",
    ] {
        if status[key] == json!(0) {
            status.as_object_mut().map(|m| m.remove(key));
        }
    }
    if available >= replicas - max_unavailable {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            false,
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            false,
        );
    }
    let rs_msg = |suffix: &str| format!("ReplicaSet \"{new_name}\" {suffix}");
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        set_condition(
            &mut status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            false,
        );
    } else if complete && !new_name.is_empty() {
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &rs_msg("has successfully progressed."),
            false,
        );
    } else if created_new {
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{new_name}\""),
            true,
        );
    } else if progressed {
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &rs_msg("is progressing."),
            true,
        );
    } else if previous_reason == "ProgressDeadlineExceeded" || stalled_for >= deadline {
        set_condition(
            &mut status,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &rs_msg("has timed out progressing."),
            false,
        );
    }
    // An unfinished rollout is looked at again when its progress deadline passes.
    let exceeded = status
        .pointer("/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "reason") == "ProgressDeadlineExceeded")
        });
    if !complete && !exceeded && d.pointer("/spec/paused").and_then(Value::as_bool) != Some(true) {
        let wait = deadline_at.saturating_duration_since(now);
        c.queue
            .add_after(("deployments.apps", ns.clone(), name.clone()), wait);
    }
    // Available first, then Progressing, as Kubernetes orders them.
    if let Some(conds) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        conds.sort_by_key(|c| str_at(c, "type") != "Available");
    }
    if d.get("status") != Some(&status) {
        c.store.modify(
            def("apps", "deployments"),
            &ns,
            &name,
            UpdateMode::Status,
            |o| {
                o["status"] = status;
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_rounds_like_kubernetes() {
        assert_eq!(int_or_percent(Some(&json!("25%")), 1, true, 0), 1);
        assert_eq!(int_or_percent(Some(&json!("25%")), 1, false, 0), 0);
        assert_eq!(int_or_percent(Some(&json!("25%")), 10, true, 0), 3);
        assert_eq!(int_or_percent(Some(&json!(2)), 10, true, 0), 2);
    }

    #[test]
    fn template_comparison_ignores_the_hash_label() {
        let a =
            json!({"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}}, "spec": {}});
        let b = json!({"metadata": {"labels": {"app": "x"}}, "spec": {}});
        assert_eq!(template_without_hash(&a), template_without_hash(&b));
    }
}
