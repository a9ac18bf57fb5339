//! Field management for server-side apply: which manager owns which fields
//! (`metadata.managedFields`, FieldsV1), conflicts between managers, and the
//! removal of fields an applier stops sending.
//!
//! Owns field sets as pure data over JSON: computing them from objects,
//! comparing, encoding and decoding FieldsV1, and reading or removing the
//! value at a field path. Lists merge by the same keys as strategic merge
//! patch; other lists are atomic. It must not know about HTTP or the store.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::MERGE_KEYS;
use crate::util::{now_rfc3339, str_at};

/// Managed fields could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FieldManagerError {
    /// An apply conflicts with fields other managers own.
    #[error("{0}")]
    Conflict(String),
}

/// One step of a field path: `f:name`, `k:{"name":"api"}` or `.` (the list
/// element itself).
pub type Path = Vec<String>;

/// A set of field paths (leaves only).
pub type FieldSet = BTreeSet<Path>;

const METADATA_MANAGED: &[&str] = &["labels", "annotations", "ownerReferences", "finalizers"];

fn merge_key(field: &str) -> Option<&'static str> {
    MERGE_KEYS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, k)| *k)
}

fn key_step(mk: &str, v: &Value) -> String {
    let mut m = Map::new();
    m.insert(mk.to_string(), v.clone());
    format!("k:{}", Value::Object(m))
}

fn collect(v: &Value, field: &str, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(format!("f:{k}"));
                collect(child, k, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items)
            if merge_key(field).is_some_and(|mk| {
                !items.is_empty() && items.iter().all(|i| i.get(mk).is_some())
            }) =>
        {
            let mk = merge_key(field).unwrap_or("name");
            for item in items {
                prefix.push(key_step(mk, &item[mk]));
                prefix.push(".".into());
                out.insert(prefix.clone());
                prefix.pop();
                collect(item, "", prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The fields an object (or an apply body) sets. `apiVersion`, `kind`,
/// `status` and identity metadata are not managed.
pub fn fields_of(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for key in METADATA_MANAGED {
                    if let Some(child) = v.get(*key) {
                        let mut prefix = vec!["f:metadata".to_string(), format!("f:{key}")];
                        collect(child, key, &mut prefix, &mut out);
                    }
                }
            }
            _ => {
                let mut prefix = vec![format!("f:{k}")];
                collect(v, k, &mut prefix, &mut out);
            }
        }
    }
    out
}

/// The value at `path`, if present.
pub fn get_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        if step == "." {
            continue;
        }
        cur = if let Some(f) = step.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = step.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?
                .iter()
                .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the field or list element at `path`.
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let (target, parent) = match path.split_last() {
        Some((last, parent)) if last == "." => match parent.split_last() {
            Some((key, grand)) => (key.clone(), grand),
            None => return,
        },
        Some((last, parent)) => (last.clone(), parent),
        None => return,
    };
    let mut cur = obj;
    for step in parent {
        if step == "." {
            continue;
        }
        let next = if let Some(f) = step.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = step.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = target.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = target.strip_prefix("k:")
        && let Ok(key) = serde_json::from_str::<Map<String, Value>>(k)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|item| !key.iter().all(|(kk, kv)| item.get(kk) == Some(kv)));
    }
}

/// Encodes a field set as FieldsV1.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for step in path {
            cur = cur
                .entry(step.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("FieldsV1 nodes are objects");
        }
    }
    Value::Object(root)
}

/// Decodes FieldsV1 into a field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// `.spec.template.spec.containers[name="api"].image`, as Kubernetes prints a path.
pub fn render(path: &[String]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = key.iter().map(|(kk, kv)| format!("{kk}={kv}")).collect();
            out.push_str(&format!("[{}]", inner.join(",")));
        }
    }
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the manager wrote with.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// The fields it owns.
    pub fields: FieldSet,
    /// `status` for entries of the status subresource.
    pub subresource: String,
}

/// Reads `metadata.managedFields`.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: str_at(e, "manager").to_string(),
                    operation: str_at(e, "operation").to_string(),
                    api_version: str_at(e, "apiVersion").to_string(),
                    time: str_at(e, "time").to_string(),
                    fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    subresource: str_at(e, "subresource").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `metadata.managedFields` (entries without fields are dropped).
pub fn set_entries(obj: &mut Value, list: &[Entry]) {
    let encoded: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if encoded.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(encoded));
        }
    }
}

fn upsert(
    list: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
    fields: FieldSet,
) {
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == operation && e.subresource.is_empty())
    {
        Some(e) => {
            if e.fields != fields {
                e.fields = fields;
                e.time = now_rfc3339();
            }
            e.api_version = api_version.to_string();
        }
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            time: now_rfc3339(),
            fields,
            subresource: String::new(),
        }),
    }
}

/// Server-side apply of `applied` by `manager` onto `current`, whose result
/// after merging the body is `merged`. Returns the final object with
/// `managedFields`, or the conflicts with other managers unless `force`.
pub fn apply(
    current: &Value,
    applied: &Value,
    mut merged: Value,
    manager: &str,
    api_version: &str,
    force: bool,
) -> Result<Value, FieldManagerError> {
    let mut list = entries(current);
    let wanted = fields_of(applied);
    let mut conflicts: Vec<(String, String, Path)> = Vec::new();
    for e in list
        .iter()
        .filter(|e| e.manager != manager || e.operation != "Apply")
    {
        for p in e.fields.intersection(&wanted) {
            if p.last().is_some_and(|s| s == ".") {
                continue;
            }
            if get_at(current, p) != get_at(applied, p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(FieldManagerError::Conflict(conflict_message(&conflicts)));
    }
    // Fields this manager applied before and no longer applies go away,
    // unless another manager owns them too.
    if let Some(previous) = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
    {
        let dropped: Vec<Path> = previous.fields.difference(&wanted).cloned().collect();
        for p in dropped.iter().rev() {
            let shared = list
                .iter()
                .any(|e| !(e.manager == manager && e.operation == "Apply") && e.fields.contains(p));
            if !shared {
                remove_at(&mut merged, p);
            }
        }
    }
    for e in list.iter_mut() {
        if e.manager == manager && e.operation == "Apply" {
            continue;
        }
        let lost: Vec<Path> = conflicts
            .iter()
            .filter(|(m, _, _)| *m == e.manager)
            .map(|(_, _, p)| p.clone())
            .collect();
        for p in lost {
            e.fields.remove(&p);
        }
    }
    upsert(&mut list, manager, "Apply", api_version, wanted);
    set_entries(&mut merged, &list);
    Ok(merged)
}

/// Records a non-apply write (create, update, patch) by `manager`: it owns
/// every field it changed, and other managers lose them.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str) {
    let mut list = old.map(entries).unwrap_or_default();
    let after = fields_of(new);
    let changed: FieldSet = match old {
        None => after.clone(),
        Some(old) => {
            let before = fields_of(old);
            before
                .union(&after)
                .filter(|p| get_at(old, p) != get_at(new, p))
                .cloned()
                .collect()
        }
    };
    if changed.is_empty() && old.is_some() {
        set_entries(new, &list);
        return;
    }
    for e in list.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) || e.manager == manager && e.operation == "Update");
        e.fields.retain(|p| after.contains(p));
    }
    let mine: FieldSet = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource.is_empty())
        .map(|e| e.fields.clone())
        .unwrap_or_default()
        .union(&changed.intersection(&after).cloned().collect())
        .cloned()
        .collect();
    upsert(&mut list, manager, "Update", api_version, mine);
    set_entries(new, &list);
}

fn conflict_message(conflicts: &[(String, String, Path)]) -> String {
    let n = conflicts.len();
    let plural = if n == 1 { "" } else { "s" };
    if n == 1 {
        let (m, v, p) = &conflicts[0];
        return format!(
            "Apply failed with 1 conflict: conflict with \"{m}\" using {v}: {}",
            render(p)
        );
    }
    let lines: Vec<String> = conflicts
        .iter()
        .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: {}", render(p)))
        .collect();
    format!(
        "Apply failed with {n} conflict{plural}: {}",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(image: &str, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "api", "image": image}]}}}})
    }

    #[test]
    fn field_sets_key_lists_by_merge_key_and_round_trip_through_fields_v1() {
        let set = fields_of(&deployment("a:1", 1));
        let rendered: Vec<String> = set.iter().map(|p| render(p)).collect();
        assert!(
            rendered.contains(&".spec.template.spec.containers[name=\"api\"].image".to_string())
        );
        assert!(rendered.contains(&".metadata.labels.app".to_string()));
        assert!(!rendered.iter().any(|r| r.contains("metadata.name")));
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        let v1 = to_fields_v1(&set);
        assert!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"api\"}"]["."]
                .is_object()
        );
    }

    #[test]
    fn apply_conflicts_with_another_managers_field_unless_forced() {
        let mut current = deployment("a:1", 1);
        record_update(None, &mut current, "kubectl-create", "apps/v1");
        let applied = deployment("a:2", 1);
        let err = apply(
            &current,
            &applied,
            applied.clone(),
            "freshet",
            "apps/v1",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.template.spec.containers[name=\"api\"].image"
        );
        let forced = apply(
            &current,
            &applied,
            applied.clone(),
            "freshet",
            "apps/v1",
            true,
        )
        .unwrap();
        let list = entries(&forced);
        let freshet = list.iter().find(|e| e.manager == "freshet").unwrap();
        assert_eq!(freshet.operation, "Apply");
        let creator = list.iter().find(|e| e.manager == "kubectl-create").unwrap();
        assert!(!creator.fields.iter().any(|p| render(p).ends_with(".image")));
    }

    #[test]
    fn applying_without_a_field_removes_it_unless_someone_else_owns_it() {
        let first = json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}});
        let applied = apply(
            &json!({"metadata": {"name": "c"}}),
            &first,
            first.clone(),
            "m",
            "v1",
            false,
        )
        .unwrap();
        let second = json!({"metadata": {"name": "c", "labels": {"a": "1"}}});
        let merged = crate::patch::merge(&applied, &second);
        let out = apply(&applied, &second, merged, "m", "v1", false).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let mut old = deployment("a:1", 1);
        record_update(None, &mut old, "creator", "apps/v1");
        let mut new = deployment("a:1", 3);
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
        record_update(Some(&old), &mut new, "kubectl-scale", "apps/v1");
        let list = entries(&new);
        let scale = list.iter().find(|e| e.manager == "kubectl-scale").unwrap();
        assert_eq!(
            scale.fields.iter().map(|p| render(p)).collect::<Vec<_>>(),
            [".spec.replicas"]
        );
        let creator = list.iter().find(|e| e.manager == "creator").unwrap();
        assert!(!creator.fields.iter().any(|p| render(p) == ".spec.replicas"));
    }
}
