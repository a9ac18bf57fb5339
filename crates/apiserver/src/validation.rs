//! Validation a real server applies to every object before admission's
//! kind-specific checks, with its messages: object names (RFC 1123), label
//! keys and values, annotation keys and their total size (also on pod
//! templates), and Events (`involvedObject.namespace` against the Event's
//! namespace, and the reporting fields that an Event with `eventTime` needs;
//! events.k8s.io/v1 adds its stricter rules).
//!
//! Owns these rules, written after `k8s.io/apimachinery`'s `ValidateObjectMeta`,
//! `ValidateLabels`, `ValidateAnnotations` and Kubernetes'
//! `ValidateEventCreate`. Each returns every failed field as a [`Cause`]; it
//! must not default anything nor touch the store.

use serde_json::Value;

use crate::gotext::quote;
use crate::resources::ResourceDef;
use crate::status::Cause;
use crate::util::{get_path, str_at};

const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
/// The total size of an object's annotations (keys and values), in bytes.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_label_name_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && edge(&b[0]) && edge(&b[b.len() - 1]) && b.iter().all(|c| edge(c) || *c == b'-')
}

/// `IsDNS1123Label`.
pub fn dns_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_dns_label_chars(s) {
        if !dns_subdomain(s)
            .iter()
            .any(|e| e.starts_with("a lowercase"))
        {
            errs.push("must not contain dots".into());
        } else {
            errs.push(regex_error(
                DNS_LABEL_MSG,
                DNS_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn dns_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !s.split('.').all(is_dns_label_chars) {
        errs.push(regex_error(
            DNS_SUBDOMAIN_MSG,
            &format!("{DNS_LABEL_FMT}(\\.{DNS_LABEL_FMT})*"),
            &["example.com"],
        ));
    }
    errs
}

/// `IsQualifiedName` (a label or annotation key).
pub fn qualified_name(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".into());
            } else {
                errs.extend(
                    dns_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    LABEL_KEY_MSG,
                    LABEL_KEY_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_label_name_chars(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MSG,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !v.is_empty() && !is_label_name_chars(v) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &format!("({LABEL_KEY_FMT})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn invalid(field: &str, value: &str, msg: &str) -> Cause {
    Cause::new(field, format!("Invalid value: {}: {msg}", quote(value)))
}

fn required(field: &str) -> Cause {
    Cause::new(field, "Required value")
}

/// Labels and annotations of the metadata at `path` (`metadata`,
/// `spec.template.metadata`).
fn labels_and_annotations(obj: &Value, path: &str, out: &mut Vec<Cause>) {
    let field = format!("{path}.labels");
    if let Some(labels) = get_path(obj, &field).and_then(Value::as_object) {
        for (k, v) in labels {
            for m in qualified_name(k) {
                out.push(invalid(&field, k, &m));
            }
            let v = v.as_str().unwrap_or_default();
            for m in label_value(v) {
                out.push(invalid(&field, v, &m));
            }
        }
    }
    let field = format!("{path}.annotations");
    if let Some(annotations) = get_path(obj, &field).and_then(Value::as_object) {
        let mut size = 0;
        for (k, v) in annotations {
            for m in qualified_name(&k.to_lowercase()) {
                out.push(invalid(&field, k, &m));
            }
            size += k.len() + v.as_str().map_or(0, str::len);
        }
        if size > ANNOTATIONS_LIMIT {
            out.push(Cause::new(
                &field,
                format!("Too long: may not be more than {ANNOTATIONS_LIMIT} bytes"),
            ));
        }
    }
}

/// Where the pod template of a kind lives, if it has one.
fn template_metadata(def: &ResourceDef) -> Option<&'static str> {
    match (def.group, def.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") | ("batch", "Job") => {
            Some("spec.template.metadata")
        }
        ("batch", "CronJob") => Some("spec.jobTemplate.spec.template.metadata"),
        _ => None,
    }
}

/// `ValidateObjectMeta` (name on create, labels, annotations) and the pod
/// template's labels and annotations. Core/v1 Events skip it, as on a real
/// server; RBAC objects and CRDs keep their own name rules (not checked).
pub fn object_meta(def: &ResourceDef, obj: &Value, creating: bool) -> Vec<Cause> {
    let mut out = Vec::new();
    let storage_is_event = def.storage == "events";
    if storage_is_event && def.group.is_empty() {
        return out;
    }
    let name = str_at(obj, "metadata.name");
    let plain_names = !def.custom
        && !matches!(
            def.group,
            "rbac.authorization.k8s.io" | "apiextensions.k8s.io" | "authorization.k8s.io"
        );
    if creating && plain_names && !name.is_empty() {
        let errs = if def.kind == "Namespace" {
            dns_label(name)
        } else {
            dns_subdomain(name)
        };
        for m in errs {
            out.push(invalid("metadata.name", name, &m));
        }
    }
    labels_and_annotations(obj, "metadata", &mut out);
    if let Some(path) = template_metadata(def) {
        labels_and_annotations(obj, path, &mut out);
    }
    out
}

fn has_time(obj: &Value, field: &str) -> bool {
    !str_at(obj, field).is_empty()
}

/// `ValidateEventCreate`/`ValidateEventUpdate` for an Event in its stored
/// (core/v1) form, written through `def` (core/v1 or events.k8s.io/v1).
pub fn event(def: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let core = def.group.is_empty();
    let ns = str_at(obj, "metadata.namespace");
    let involved_ns = str_at(obj, "involvedObject.namespace");
    let mismatch = || {
        Cause::new(
            "involvedObject.namespace",
            format!(
                "Invalid value: {}: does not match event.namespace",
                quote(involved_ns)
            ),
        )
    };
    if !has_time(obj, "eventTime") {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                out.push(mismatch());
            }
        } else if ns != involved_ns {
            out.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            out.push(mismatch());
        }
        let controller_field = if core {
            "reportingComponent"
        } else {
            "reportingController"
        };
        let controller = str_at(obj, "reportingComponent");
        if controller.is_empty() {
            out.push(required(controller_field));
        }
        for m in qualified_name(controller) {
            out.push(invalid(controller_field, controller, &m));
        }
        let limited = [
            ("reportingInstance", 128, true),
            ("action", 128, true),
            ("reason", 128, true),
            ("message", 1024, false),
        ];
        for (field, limit, needed) in limited {
            let v = str_at(obj, field);
            if needed && v.is_empty() {
                out.push(required(field));
            }
            if v.len() > limit {
                out.push(invalid(
                    field,
                    "",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
    }
    for m in dns_subdomain(ns) {
        out.push(invalid("namespace", ns, &m));
    }
    if core {
        return out;
    }
    // events.k8s.io/v1 is stricter.
    out.extend(object_meta(def, obj, false));
    if let Some(series) = obj.get("series") {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            out.push(invalid("series.count", "", "should be at least 2"));
        }
        if !has_time(series, "lastObservedTime") {
            out.push(required("series.lastObservedTime"));
        }
    }
    if !has_time(obj, "eventTime") {
        out.push(required("eventTime"));
    }
    let kind = str_at(obj, "type");
    if kind != "Normal" && kind != "Warning" {
        out.push(invalid("type", "", &format!("has invalid value: {kind}")));
    }
    for field in ["firstTimestamp", "lastTimestamp"] {
        if has_time(obj, field) {
            out.push(invalid(field, "", "needs to be unset"));
        }
    }
    if obj.get("count").and_then(Value::as_i64).unwrap_or(0) != 0 {
        out.push(invalid("count", "", "needs to be unset"));
    }
    if !str_at(obj, "source.component").is_empty() || !str_at(obj, "source.host").is_empty() {
        out.push(invalid("source", "", "needs to be unset"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_values_and_keys_fail_in_apimachinery_words() {
        assert_eq!(label_value("ok.value-1"), Vec::<String>::new());
        assert_eq!(label_value(""), Vec::<String>::new());
        assert_eq!(
            label_value("bad value!"),
            vec![
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ]
        );
        assert_eq!(
            label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(qualified_name("freshet.io/policy"), Vec::<String>::new());
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert!(qualified_name("a/b/c")[0].starts_with("a valid label key must consist"));
    }

    #[test]
    fn object_meta_reports_every_bad_field() {
        let def = ResourceDef::find("apps", "v1", "deployments").unwrap();
        let obj = json!({"metadata": {"name": "Web_1", "labels": {"app": "bad value!"}},
            "spec": {"template": {"metadata": {"annotations": {"bad key!": "x"}}}}});
        let causes = object_meta(def, &obj, true);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "metadata.labels",
                "spec.template.metadata.annotations"
            ]
        );
        assert!(
            causes[0]
                .body
                .starts_with("Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain")
        );
    }

    #[test]
    fn events_need_a_matching_namespace_and_reporting_fields_with_event_time() {
        let core = ResourceDef::find("", "v1", "events").unwrap();
        let v1 = ResourceDef::find("events.k8s.io", "v1", "events").unwrap();
        let ok = json!({"metadata": {"name": "e", "namespace": "apps"}, "type": "Normal",
            "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "apps"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingComponent": "freshet",
            "reportingInstance": "freshet-0", "action": "Refresh", "reason": "Refreshed"});
        assert_eq!(event(core, &ok), vec![]);
        assert_eq!(event(v1, &ok), vec![]);
        // Without eventTime the namespaces must match; with it, only an
        // empty one outside default and kube-system is refused.
        let mut other_ns = ok.clone();
        other_ns["involvedObject"]["namespace"] = json!("web");
        assert_eq!(event(core, &other_ns), vec![]);
        other_ns.as_object_mut().unwrap().remove("eventTime");
        assert_eq!(
            event(core, &other_ns)[0].to_string(),
            "involvedObject.namespace: Invalid value: \"web\": does not match event.namespace"
        );
        let mut bare = ok.clone();
        for f in ["reportingComponent", "reportingInstance", "action"] {
            bare.as_object_mut().unwrap().remove(f);
        }
        let fields: Vec<String> = event(v1, &bare).iter().map(|c| c.to_string()).collect();
        assert_eq!(fields[0], "reportingController: Required value");
        assert_eq!(
            fields[1],
            "reportingController: Invalid value: \"\": name part must be non-empty"
        );
        assert!(fields.contains(&"reportingInstance: Required value".to_string()));
        assert!(fields.contains(&"action: Required value".to_string()));
    }
}
