//! The pod conditions a kubelet reports (`PodReadyToStartContainers`,
//! `Initialized`, `Ready`, `ContainersReady`, `PodScheduled`).
//!
//! Owns their shape. It must not write to the store.

use serde_json::{Value, json};

pub(crate) fn pod_conditions(ready: bool, now: &str) -> Value {
    let r = if ready { "True" } else { "False" };
    let mut conds = vec![
        json!({"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now}),
        json!({"type": "Initialized", "status": "True", "lastTransitionTime": now}),
        json!({"type": "Ready", "status": r, "lastTransitionTime": now}),
        json!({"type": "ContainersReady", "status": r, "lastTransitionTime": now}),
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now}),
    ];
    if !ready {
        for i in [2, 3] {
            conds[i]["reason"] = json!("ContainersNotReady");
        }
    }
    json!(conds)
}
