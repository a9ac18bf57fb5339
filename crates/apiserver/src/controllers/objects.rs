//! Helpers every simulated controller shares for reading and shaping objects:
//! resource definitions by name, owner references, pod readiness, int-or-percent
//! values and status conditions.
//!
//! Owns these pure functions over JSON objects. It must not touch the store.

use serde_json::{Value, json};

use crate::resources::ResourceDef;
use crate::util::{now_rfc3339, str_at};

/// Looks up a resource definition by group and plural (panics only on a typo in this crate).
pub(crate) fn def(group: &str, plural: &str) -> &'static ResourceDef {
    crate::resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .expect("resource is in the table")
}

/// An owner reference to `owner` with `controller: true`.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether a pod's Ready condition is True.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "type") == "Ready" && str_at(c, "status") == "True")
        })
}

/// Whether a pod has finished (Succeeded or Failed).
pub(crate) fn pod_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "status.phase"), "Succeeded" | "Failed")
}

/// Resolves an int-or-percent (`25%`, `1`) against `total`.
pub(crate) fn int_or_percent(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// Sets a condition in `status.conditions`, keeping timestamps when nothing changed.
/// Returns whether the condition changed.
pub(crate) fn set_condition(
    status: &mut Value,
    ctype: &str,
    cstatus: &str,
    reason: &str,
    message: &str,
    touch: bool,
) -> bool {
    let now = now_rfc3339();
    if !status.is_object() {
        *status = json!({});
    }
    let conds = status
        .as_object_mut()
        .expect("object")
        .entry("conditions")
        .or_insert(json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("array");
    if let Some(c) = list.iter_mut().find(|c| str_at(c, "type") == ctype) {
        let same = str_at(c, "status") == cstatus
            && str_at(c, "reason") == reason
            && str_at(c, "message") == message;
        if same && !touch {
            return false;
        }
        if str_at(c, "status") != cstatus {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(cstatus);
        c["reason"] = json!(reason);
        c["message"] = json!(message);
        if c.get("lastUpdateTime").is_some() {
            c["lastUpdateTime"] = json!(now);
        }
        return !same;
    }
    list.push(json!({
        "type": ctype,
        "status": cstatus,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }));
    true
}
