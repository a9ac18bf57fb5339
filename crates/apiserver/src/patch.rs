//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902, through
//! `json-patch`), and Kubernetes strategic merge patch with its directives
//! (`$patch`, `$setElementOrder`, `$retainKeys`, `$deleteFromPrimitiveList`).
//!
//! Owns the patch algebra over JSON values, keyed by a small table of merge
//! keys per field name. It must not know about resources, HTTP or the store.

use serde_json::{Map, Value};

/// A patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not the JSON the content type promises.
    #[error("the body of the request could not be parsed: {0}")]
    Parse(#[source] serde_json::Error),
    /// A JSON patch operation failed (including a failed `test`).
    #[error("the server rejected our request due to an error in our request: {0}")]
    JsonPatch(#[source] json_patch::PatchError),
    /// A strategic merge directive is malformed.
    #[error("invalid strategic merge patch: {0}")]
    Strategic(String),
}

/// The patch formats the server understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// Reads the `Content-Type` of a PATCH request.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies a JSON merge patch.
pub fn merge(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// Applies a JSON patch (RFC 6902); a failed `test` is an error.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(PatchError::Parse)?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &p).map_err(PatchError::JsonPatch)?;
    Ok(out)
}

/// Merge keys for lists of objects, by field name (as in the Kubernetes Go
/// types' `patchMergeKey` tags for the fields freshet's workloads use).
pub const MERGE_KEYS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("env", "name"),
    ("volumes", "name"),
    ("ports", "containerPort"),
    ("imagePullSecrets", "name"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
    ("hostAliases", "ip"),
    ("topologySpreadConstraints", "topologyKey"),
    ("resourceClaims", "name"),
    ("ownerReferences", "uid"),
    ("conditions", "type"),
    ("secrets", "name"),
    ("addresses", "type"),
];

/// Lists of scalars merged as sets rather than replaced.
pub const MERGED_PRIMITIVE_LISTS: &[&str] = &["finalizers"];

fn merge_key(field: &str) -> Option<&'static str> {
    MERGE_KEYS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, k)| *k)
}

/// Applies a strategic merge patch.
pub fn strategic(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => Ok(Value::Object(merge_map(d, p)?)),
        (_, Value::Object(p)) => Ok(Value::Object(merge_map(&Map::new(), p)?)),
        (_, other) => Ok(other.clone()),
    }
}

fn strip_directives(p: &Map<String, Value>) -> Map<String, Value> {
    p.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m)),
        Value::Array(a) => Value::Array(a.iter().map(strip_value).collect()),
        other => other.clone(),
    }
}

fn merge_map(
    doc: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => return Ok(strip_directives(patch)),
        Some("delete") => return Ok(Map::new()),
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Strategic(format!(
                "unknown $patch value {other:?}"
            )));
        }
    }
    let mut out = doc.clone();
    for (key, pv) in patch {
        if key.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            out.remove(key);
            continue;
        }
        let merged = match (out.get(key), pv) {
            (Some(Value::Object(d)), Value::Object(p)) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(key);
                    continue;
                }
                Value::Object(merge_map(d, p)?)
            }
            (_, Value::Object(p)) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(key);
                    continue;
                }
                Value::Object(merge_map(&Map::new(), p)?)
            }
            (Some(Value::Array(d)), Value::Array(p)) => Value::Array(merge_list(key, d, p)?),
            (_, Value::Array(p)) => Value::Array(merge_list(key, &[], p)?),
            (_, other) => other.clone(),
        };
        out.insert(key.clone(), merged);
    }
    // Directives that refer to sibling lists.
    for (key, pv) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<Value> = pv.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
        }
    }
    for (key, pv) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            let order = pv
                .as_array()
                .ok_or_else(|| PatchError::Strategic(format!("{key} must be a list")))?;
            if let Some(Value::Array(list)) = out.get_mut(field) {
                reorder(field, list, order);
            }
        }
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| PatchError::Strategic("$retainKeys must be a list".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(out)
}

fn key_of<'a>(v: &'a Value, mk: &str) -> Option<&'a Value> {
    v.as_object().and_then(|m| m.get(mk))
}

fn merge_list(field: &str, doc: &[Value], patch: &[Value]) -> Result<Vec<Value>, PatchError> {
    // `{"$patch": "replace"}` as a list element replaces the whole list.
    if patch
        .iter()
        .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|v| v.get("$patch").is_none())
            .map(strip_value)
            .collect());
    }
    if let Some(mk) = merge_key(field) {
        let mut out: Vec<Value> = doc.to_vec();
        for p in patch {
            let Some(pm) = p.as_object() else {
                out.push(p.clone());
                continue;
            };
            let Some(k) = pm.get(mk) else {
                return Err(PatchError::Strategic(format!(
                    "map: {p} does not contain declared merge key: {mk}"
                )));
            };
            let pos = out.iter().position(|d| key_of(d, mk) == Some(k));
            match (pm.get("$patch").and_then(Value::as_str), pos) {
                (Some("delete"), Some(i)) => {
                    out.remove(i);
                }
                (Some("delete"), None) => {}
                (_, Some(i)) => {
                    let d = out[i].as_object().cloned().unwrap_or_default();
                    out[i] = Value::Object(merge_map(&d, pm)?);
                }
                (_, None) => out.push(Value::Object(merge_map(&Map::new(), pm)?)),
            }
        }
        Ok(out)
    } else if MERGED_PRIMITIVE_LISTS.contains(&field) {
        let mut out = doc.to_vec();
        for p in patch {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        Ok(out)
    } else {
        Ok(patch.iter().map(strip_value).collect())
    }
}

/// Orders `list` as `order` says; elements the order does not name keep
/// their relative positions after the named ones.
fn reorder(field: &str, list: &mut Vec<Value>, order: &[Value]) {
    let mk = merge_key(field);
    let ident = |v: &Value| -> Value {
        match mk {
            Some(k) => key_of(v, k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(&ident).collect();
    let mut named: Vec<(usize, Value)> = Vec::new();
    let mut rest = Vec::new();
    for v in list.drain(..) {
        match wanted.iter().position(|w| *w == ident(&v)) {
            Some(i) => named.push((i, v)),
            None => rest.push(v),
        }
    }
    named.sort_by_key(|(i, _)| *i);
    list.extend(named.into_iter().map(|(_, v)| v));
    list.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {
            "containers": [
                {"name": "api", "image": "api:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80, "name": "http"}]},
                {"name": "sidecar", "image": "side:1"}
            ],
            "volumes": [{"name": "v1", "emptyDir": {}}],
            "imagePullSecrets": [{"name": "reg"}]
        }}}})
    }

    #[test]
    fn strategic_merge_table() {
        type Check = Box<dyn Fn(&Value)>;
        let cases: Vec<(&str, Value, Check)> = vec![
            (
                "kubectl set image keeps the other container",
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "api"}, {"name": "sidecar"}],
                    "containers": [{"image": "api:2", "name": "api"}]}}}}),
                Box::new(|v: &Value| {
                    let c = &v["spec"]["template"]["spec"]["containers"];
                    assert_eq!(c[0]["image"], "api:2");
                    assert_eq!(c[0]["env"][1]["value"], "2");
                    assert_eq!(c[1]["image"], "side:1");
                }),
            ),
            (
                "kubectl set env adds to env by name",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "api",
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "FOO"}],
                    "env": [{"name": "FOO", "value": "bar"}]}]}}}}),
                Box::new(|v: &Value| {
                    let env = &v["spec"]["template"]["spec"]["containers"][0]["env"];
                    assert_eq!(env.as_array().unwrap().len(), 3);
                    assert_eq!(env[2], json!({"name": "FOO", "value": "bar"}));
                }),
            ),
            (
                "$patch delete removes one env entry",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "api",
                    "env": [{"name": "A", "$patch": "delete"}]}]}}}}),
                Box::new(|v: &Value| {
                    let env = &v["spec"]["template"]["spec"]["containers"][0]["env"];
                    assert_eq!(env, &json!([{"name": "B", "value": "2"}]));
                }),
            ),
            (
                "$patch replace on a list replaces it",
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "v2", "emptyDir": {}}, {"$patch": "replace"}]}}}}),
                Box::new(|v: &Value| {
                    assert_eq!(
                        v["spec"]["template"]["spec"]["volumes"],
                        json!([{"name": "v2", "emptyDir": {}}])
                    );
                }),
            ),
            (
                "$patch replace on a map replaces it",
                json!({"spec": {"template": {"metadata": {"labels": {"x": "y", "$patch": "replace"}}}}}),
                Box::new(|v: &Value| {
                    assert_eq!(
                        v["spec"]["template"]["metadata"]["labels"],
                        json!({"x": "y"})
                    );
                }),
            ),
            (
                "restartedAt annotation is added",
                json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}),
                Box::new(|v: &Value| {
                    assert_eq!(v["spec"]["template"]["metadata"]["labels"]["app"], "api");
                    assert_eq!(
                        v["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
                        "2026-01-01T00:00:00Z"
                    );
                }),
            ),
            (
                "ports merge on containerPort",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]}}}}),
                Box::new(|v: &Value| {
                    let p = &v["spec"]["template"]["spec"]["containers"][0]["ports"];
                    assert_eq!(
                        p,
                        &json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}])
                    );
                }),
            ),
            (
                "imagePullSecrets merge by name",
                json!({"spec": {"template": {"spec": {"imagePullSecrets": [{"name": "other"}]}}}}),
                Box::new(|v: &Value| {
                    assert_eq!(
                        v["spec"]["template"]["spec"]["imagePullSecrets"],
                        json!([{"name": "reg"}, {"name": "other"}])
                    );
                }),
            ),
            (
                "null deletes a field",
                json!({"spec": {"template": {"spec": {"imagePullSecrets": null}}}}),
                Box::new(|v: &Value| {
                    assert!(
                        v["spec"]["template"]["spec"]
                            .get("imagePullSecrets")
                            .is_none()
                    );
                }),
            ),
            (
                "$setElementOrder reorders containers",
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "api"}]}}}}),
                Box::new(|v: &Value| {
                    assert_eq!(
                        v["spec"]["template"]["spec"]["containers"][0]["name"],
                        "sidecar"
                    );
                }),
            ),
            (
                "$retainKeys drops unlisted keys",
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                Box::new(|v: &Value| {
                    assert_eq!(v["spec"]["strategy"], json!({"type": "Recreate"}));
                }),
            ),
        ];
        for (name, patch, check) in cases {
            let mut doc = deployment();
            if name.contains("retainKeys") {
                doc["spec"]["strategy"] =
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
            }
            let out = strategic(&doc, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            check(&out);
        }
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let out = strategic(&json!({"metadata": {"finalizers": ["a"]}}),
            &json!({"metadata": {"finalizers": ["a", "b"], "$deleteFromPrimitiveList/finalizers": ["a"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn json_patch_test_op_fails_on_mismatch() {
        let doc = json!({"metadata": {"resourceVersion": "5"}, "spec": {"x": 1}});
        let ok = json_patch(&doc, &json!([{"op": "test", "path": "/spec/x", "value": 1}, {"op": "replace", "path": "/spec/x", "value": 2}])).unwrap();
        assert_eq!(ok["spec"]["x"], 2);
        assert!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/spec/x", "value": 9}])
            )
            .is_err()
        );
    }

    #[test]
    fn merge_patch_replaces_lists() {
        let out = merge(
            &json!({"a": [1, 2], "b": {"c": 1, "d": 2}}),
            &json!({"a": [3], "b": {"c": null}}),
        );
        assert_eq!(out, json!({"a": [3], "b": {"d": 2}}));
    }
}
