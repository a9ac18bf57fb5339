//! The scheduler: binds an unscheduled pod to the least loaded node it fits, or
//! marks it `Unschedulable` with the message a real scheduler writes.
//!
//! Owns `spec.nodeName` and the `PodScheduled` condition of unscheduled pods. It
//! must not start containers.

use serde_json::{Value, json};

use super::super::context::{Controllers, NodeSpec};
use super::super::objects::def;
use super::node::fits_node;
use crate::store::{UpdateMode, ns_name};
use crate::util::{now_rfc3339, str_at};

pub(crate) fn schedule(c: &mut Controllers, pod: Value) -> Option<Value> {
    if !str_at(&pod, "spec.nodeName").is_empty() {
        return Some(pod);
    }
    let (ns, name) = ns_name(&pod);
    let pod_def = def("", "pods");
    let mut candidates: Vec<&NodeSpec> = c.nodes.iter().filter(|n| fits_node(&pod, n)).collect();
    candidates.sort_by_key(|n| (c.kubelet.load(&n.name), n.name.clone()));
    match candidates.first() {
        Some(n) => {
            let node = n.name.clone();
            c.kubelet
                .pod_nodes
                .insert(str_at(&pod, "metadata.uid").to_string(), node.clone());
            let bound = c.store.modify(pod_def, &ns, &name, UpdateMode::Internal, |o| {
                o["spec"]["nodeName"] = json!(node);
                o["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}]);
            });
            if let Some(p) = &bound {
                c.event(
                    p,
                    "Normal",
                    "Scheduled",
                    &format!("Successfully assigned {ns}/{name} to {}", n.name),
                    "default-scheduler",
                );
            }
            bound
        }
        None => {
            let message = format!(
                "0/{} nodes are available: {} node(s) didn't match Pod's node affinity/selector.",
                c.nodes.len(),
                c.nodes.len()
            );
            let already = pod
                .pointer("/status/conditions/0/reason")
                .and_then(Value::as_str)
                == Some("Unschedulable");
            if !already {
                let updated = c.store.modify(pod_def, &ns, &name, UpdateMode::Status, |o| {
                    o["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                        "reason": "Unschedulable", "message": message, "lastTransitionTime": now_rfc3339()}]);
                });
                if let Some(p) = updated {
                    c.event(
                        &p,
                        "Warning",
                        "FailedScheduling",
                        &message,
                        "default-scheduler",
                    );
                }
            }
            None
        }
    }
}
