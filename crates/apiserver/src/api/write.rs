//! Writes: create, update, the four patch kinds (JSON merge, JSON patch,
//! strategic merge, server-side apply), delete and deletecollection, each with
//! admission (and the simulated image-denying webhook), managed fields, `resourceVersion` preconditions and dry run.
//!
//! Owns the write verbs. It must not answer reads or watches, and it writes only
//! through the store, which keeps versions and history.

use std::collections::HashMap;

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::request::{
    AppState, ListFilter, Target, current, incoming, json_response, ok, parse_body,
};
use super::scale::{scale_of, write_scale};
use crate::admission::{admit, deny_images};
use crate::fieldmanager;
use crate::patch::{self, PatchError, PatchKind};
use crate::resources::ResourceDef;
use crate::schema::{self, Decoder};
use crate::status::ApiError;
use crate::store::{Propagation, UpdateMode};
use crate::util::{random_uuid, str_at};

pub(crate) fn create(st: &AppState, t: &Target, body: &Bytes) -> Result<Response, ApiError> {
    if t.def.namespaced && t.namespace.is_empty() {
        return Err(ApiError::MethodNotAllowed);
    }
    let mut obj = incoming(t, parse_body(body)?)?;
    schema::check_write(t.def, &obj, Decoder::Json, None)?;
    crate::util::ensure_obj(&mut obj, "metadata").insert("uid".into(), json!(random_uuid()));
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    admit(t.def, &mut obj, true)?;
    deny_images(&obj, &st.denied_images)?;
    fieldmanager::record_update(None, &mut obj, &t.manager, &t.def.api_version());
    let created = st.store.create_opt(t.def, &t.namespace, obj, t.dry_run)?;
    Ok(json_response(StatusCode::CREATED, &t.def.to_view(&created)))
}

pub(crate) fn mode_for(t: &Target) -> UpdateMode {
    if t.subresource == "status" {
        UpdateMode::Status
    } else {
        UpdateMode::Main
    }
}

pub(crate) fn update(st: &AppState, t: &Target, body: &Bytes) -> Result<Response, ApiError> {
    let view = parse_body(body)?;
    if t.subresource == "scale" {
        return write_scale(st, t, &view);
    }
    let mut obj = incoming(t, view)?;
    schema::check_write(t.def, &obj, Decoder::Json, None)?;
    let cur = current(st, t)?;
    crate::util::ensure_obj(&mut obj, "metadata")
        .insert("uid".into(), cur["metadata"]["uid"].clone());
    if t.subresource.is_empty() {
        admit(t.def, &mut obj, false)?;
        deny_images(&obj, &st.denied_images)?;
        fieldmanager::record_update(Some(&cur), &mut obj, &t.manager, &t.def.api_version());
    }
    let updated = st
        .store
        .update_opt(t.def, &t.namespace, &t.name, obj, mode_for(t), t.dry_run)?;
    ok(&t.def.to_view(&updated))
}

pub(crate) fn apply_patch(
    def: &ResourceDef,
    kind: PatchKind,
    view: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let out = match kind {
        PatchKind::Merge => patch::merge(view, patch),
        PatchKind::Json => patch::json_patch(view, patch).map_err(|e| match e {
            PatchError::JsonPatch(inner) => {
                ApiError::invalid(def, str_at(view, "metadata.name"), inner.to_string())
            }
            other => ApiError::from(other),
        })?,
        PatchKind::Strategic => patch::strategic(view, patch)?,
        PatchKind::Apply => {
            if def.custom {
                patch::merge(view, patch)
            } else {
                patch::strategic(view, patch)?
            }
        }
    };
    Ok(out)
}

pub(crate) fn patch_object(
    st: &AppState,
    t: &Target,
    content_type: &str,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let kind = PatchKind::from_content_type(content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
            if t.def.custom { "" } else { ", application/strategic-merge-patch+json" }
        ))
    })?;
    if kind == PatchKind::Strategic && t.def.custom {
        return Err(ApiError::UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
        ));
    }
    let patch_doc = parse_body(body)?;
    if kind == PatchKind::Apply {
        if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(ApiError::BadRequest(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set".into(),
            ));
        }
        if st.store.get(t.def.storage, &t.namespace, &t.name).is_none() && t.subresource.is_empty()
        {
            let mut obj = incoming(t, patch_doc.clone())?;
            crate::util::ensure_obj(&mut obj, "metadata").insert("name".into(), json!(t.name));
            schema::check_write(t.def, &obj, Decoder::Apply, Some(&patch_doc))?;
            crate::util::ensure_obj(&mut obj, "metadata")
                .insert("uid".into(), json!(random_uuid()));
            admit(t.def, &mut obj, true)?;
            deny_images(&obj, &st.denied_images)?;
            let applied = t.def.to_storage(&patch_doc);
            let obj = fieldmanager::apply(
                &json!({}),
                &applied,
                obj,
                &t.manager,
                &t.def.api_version(),
                t.force,
            )
            .map_err(|e| ApiError::ApplyConflict(e.to_string()))?;
            let created = st.store.create_opt(t.def, &t.namespace, obj, t.dry_run)?;
            return Ok(json_response(StatusCode::CREATED, &t.def.to_view(&created)));
        }
    }
    // Retry on a race with another writer unless the patch itself pins a version.
    for _ in 0..10 {
        let cur = current(st, t)?;
        if t.subresource == "scale" {
            let scale = scale_of(&cur);
            let new_scale = apply_patch(t.def, kind, &scale, &patch_doc)?;
            return write_scale(st, t, &new_scale);
        }
        let view = t.def.to_view(&cur);
        let read_rv = str_at(&view, "metadata.resourceVersion").to_string();
        let patched = apply_patch(t.def, kind, &view, &patch_doc)?;
        let pinned = str_at(&patched, "metadata.resourceVersion") != read_rv;
        let mut obj = incoming(t, patched)?;
        let decoder = match kind {
            PatchKind::Merge | PatchKind::Json => Decoder::Json,
            PatchKind::Strategic => Decoder::Unstructured,
            PatchKind::Apply => Decoder::Apply,
        };
        schema::check_write(t.def, &obj, decoder, Some(&patch_doc))?;
        crate::util::ensure_obj(&mut obj, "metadata")
            .insert("uid".into(), cur["metadata"]["uid"].clone());
        if !pinned {
            crate::util::ensure_obj(&mut obj, "metadata")
                .insert("resourceVersion".into(), json!(read_rv));
        }
        if t.subresource.is_empty() {
            admit(t.def, &mut obj, false)?;
            deny_images(&obj, &st.denied_images)?;
            if kind == PatchKind::Apply {
                let applied = t.def.to_storage(&patch_doc);
                obj = fieldmanager::apply(
                    &cur,
                    &applied,
                    obj,
                    &t.manager,
                    &t.def.api_version(),
                    t.force,
                )
                .map_err(|e| ApiError::ApplyConflict(e.to_string()))?;
            } else {
                fieldmanager::record_update(Some(&cur), &mut obj, &t.manager, &t.def.api_version());
            }
        }
        match st
            .store
            .update_opt(t.def, &t.namespace, &t.name, obj, mode_for(t), t.dry_run)
        {
            Ok(updated) => return ok(&t.def.to_view(&updated)),
            Err(ApiError::Conflict { .. }) if !pinned => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(t.def, &t.name))
}

pub(crate) fn propagation(q: &HashMap<String, String>, body: &Bytes) -> Propagation {
    let from_body = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let policy = q.get("propagationPolicy").cloned().or(from_body);
    let orphan_flag = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("orphanDependents").and_then(Value::as_bool));
    if policy.as_deref() == Some("Orphan") || orphan_flag == Some(true) {
        Propagation::Orphan
    } else {
        Propagation::Cascade
    }
}

/// `DeleteOptions.dryRun` in a DELETE body (where kubectl puts it).
pub(crate) fn body_dry_run(body: &Bytes) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("dryRun")
                .and_then(Value::as_array)
                .map(|a| !a.is_empty())
        })
        .unwrap_or(false)
}

pub(crate) fn delete(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if !t.subresource.is_empty() {
        return Err(ApiError::MethodNotAllowed);
    }
    if let Ok(opts) = serde_json::from_slice::<Value>(body)
        && let Some(want) = opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
    {
        let cur = current(st, t)?;
        if str_at(&cur, "metadata.resourceVersion") != want {
            return Err(ApiError::conflict(t.def, &t.name));
        }
    }
    let deleted = st.store.delete_opt(
        t.def,
        &t.namespace,
        &t.name,
        propagation(q, body),
        t.dry_run || body_dry_run(body),
    )?;
    ok(&t.def.to_view(&deleted))
}

pub(crate) fn delete_collection(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filter = ListFilter::from_query(q)?;
    let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
    let (items, _) = st.store.list(t.def.storage, ns);
    let mut deleted = Vec::new();
    for o in items {
        let v = t.def.to_view(&o);
        if filter.matches(&v) {
            let (n, name) = crate::store::ns_name(&o);
            if let Ok(d) = st
                .store
                .delete_opt(t.def, &n, &name, Propagation::Cascade, t.dry_run)
            {
                deleted.push(t.def.to_view(&d));
            }
        }
    }
    ok(&json!({
        "kind": format!("{}List", t.def.kind),
        "apiVersion": t.def.api_version(),
        "metadata": {"resourceVersion": st.store.current_rv().to_string()},
        "items": deleted,
    }))
}
