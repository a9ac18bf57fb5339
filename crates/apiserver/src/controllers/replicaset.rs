//! The ReplicaSet controller: creates and deletes pods from the template to
//! match `spec.replicas`, and keeps `status` (replicas, ready, available).
//!
//! Owns ReplicaSet → Pod reconciliation. It must not start pods (the kubelet
//! does).

use serde_json::{Value, json};

use super::context::Controllers;
use super::objects::{controller_ref, def, pod_ready, pod_terminal};
use crate::store::{Propagation, UpdateMode, ns_name};
use crate::util::{i64_at, random_suffix, str_at};

/// A pod object from a template, owned by `owner`.
pub fn pod_from_template(
    owner: &Value,
    template: &Value,
    name: &str,
    extra_labels: &[(&str, String)],
) -> Value {
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(name);
    meta["ownerReferences"] = json!([controller_ref(owner)]);
    for (k, v) in extra_labels {
        crate::util::ensure_obj(&mut meta, "labels").insert((*k).to_string(), json!(v));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    })
}

/// The pods `owner` controls in its namespace.
pub fn owned_pods(c: &Controllers, owner: &Value) -> Vec<Value> {
    let (ns, _) = ns_name(owner);
    let uid = str_at(owner, "metadata.uid");
    c.store.owned("pods", &ns, uid)
}

/// Reconciles one ReplicaSet with its pods.
pub fn reconcile(c: &mut Controllers, rs: &Value) {
    let (ns, name) = ns_name(rs);
    let want = i64_at(rs, "spec.replicas", 1).max(0) as usize;
    let mut pods: Vec<Value> = owned_pods(c, rs)
        .into_iter()
        .filter(|p| !pod_terminal(p))
        .collect();
    let pod_def = def("", "pods");
    if pods.len() < want {
        for _ in pods.len()..want {
            let pod_name = format!("{name}-{}", random_suffix(5));
            let pod = pod_from_template(rs, &rs["spec"]["template"], &pod_name, &[]);
            match c.store.create(pod_def, &ns, pod) {
                Ok(p) => {
                    c.event(
                        rs,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {pod_name}"),
                        "replicaset-controller",
                    );
                    pods.push(p);
                }
                Err(e) => tracing::debug!(error = %e, "creating a pod failed"),
            }
        }
    } else if pods.len() > want {
        // Delete unscheduled, then not-ready, then the newest pods first.
        pods.sort_by_key(|p| {
            (
                !str_at(p, "spec.nodeName").is_empty(),
                pod_ready(p),
                std::cmp::Reverse(str_at(p, "metadata.creationTimestamp").to_string()),
            )
        });
        let extra = pods.len() - want;
        for p in pods.drain(..extra) {
            let (pns, pname) = ns_name(&p);
            if c.store
                .delete(pod_def, &pns, &pname, Propagation::Cascade)
                .is_ok()
            {
                c.event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {pname}"),
                    "replicaset-controller",
                );
            }
        }
    }
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let mut status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": i64_at(rs, "metadata.generation", 1),
    });
    for key in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
        if status[key] == json!(0) {
            status.as_object_mut().map(|m| m.remove(key));
        }
    }
    if rs.get("status") != Some(&status) {
        c.store.modify(
            def("apps", "replicasets"),
            &ns,
            &name,
            UpdateMode::Status,
            |o| {
                o["status"] = status;
            },
        );
    }
}
