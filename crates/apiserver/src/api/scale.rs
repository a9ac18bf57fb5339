//! The `scale` subresource (`autoscaling/v1` `Scale`) of Deployments,
//! StatefulSets and ReplicaSets: its view of an object and writing it back.
//!
//! Owns the Scale representation. It must not touch anything but `spec.replicas`.

use axum::response::Response;
use serde_json::{Value, json};

use super::request::{AppState, Target, current, ok};
use crate::fieldmanager;
use crate::status::ApiError;
use crate::store::UpdateMode;
use crate::util::str_at;

pub(crate) fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub(crate) fn write_scale(st: &AppState, t: &Target, scale: &Value) -> Result<Response, ApiError> {
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let want_rv = str_at(scale, "metadata.resourceVersion").to_string();
    let cur = current(st, t)?;
    if !want_rv.is_empty() && want_rv != str_at(&cur, "metadata.resourceVersion") {
        return Err(ApiError::conflict(t.def, &t.name));
    }
    let mut new = cur.clone();
    new["spec"]["replicas"] = replicas;
    fieldmanager::record_update(Some(&cur), &mut new, &t.manager, &t.def.api_version());
    let updated = st.store.update_opt(
        t.def,
        &t.namespace,
        &t.name,
        new,
        UpdateMode::Main,
        t.dry_run,
    )?;
    ok(&scale_of(&updated))
}
