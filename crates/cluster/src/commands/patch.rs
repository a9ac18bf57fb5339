//! The one patch a command sends: a strategic-merge body with the
//! `resourceVersion` the decision was made on, the annotations to set or remove,
//! and the pod-template changes ([`Restore`]s) by container name.
//!
//! Owns only the spelling (the same shape as the refresh's patch: containers and
//! init containers by name under the kind's template path; an env var that was
//! unset before is removed with `$patch: delete`). Must not decide anything.

use std::collections::BTreeMap;

use freshet_core::refresh::Workload;
use freshet_core::safety::Restore;
use serde_json::{Map, Value, json};

/// The body that writes `restores` and `annotations` to `w`, with its
/// `resourceVersion` as the precondition.
pub fn body(
    w: &Workload,
    restores: &[Restore],
    annotations: &BTreeMap<String, Option<String>>,
) -> Value {
    let mut containers: BTreeMap<(bool, String), Map<String, Value>> = BTreeMap::new();
    for r in restores {
        let (init, name) = match r {
            Restore::Image {
                container, init, ..
            }
            | Restore::Env {
                container, init, ..
            } => (*init, container.clone()),
        };
        let c = containers.entry((init, name.clone())).or_insert_with(|| {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            m
        });
        match r {
            Restore::Image { to, .. } => {
                c.insert("image".into(), to.as_str().into());
            }
            Restore::Env { var, to, .. } => {
                let entry = match to {
                    Some(v) => json!({"name": var, "value": v}),
                    None => json!({"name": var, "$patch": "delete"}),
                };
                if let Value::Array(list) = c.entry("env").or_insert_with(|| json!([])) {
                    list.push(entry);
                }
            }
        }
    }
    let mut root = json!({
        "metadata": {"resourceVersion": w.resource_version, "annotations": annotations}
    });
    if containers.is_empty() {
        return root;
    }
    let mut spec = Map::new();
    for ((init, _), c) in containers {
        let key = if init { "initContainers" } else { "containers" };
        if let Value::Array(list) = spec.entry(key).or_insert_with(|| json!([])) {
            list.push(Value::Object(c));
        }
    }
    let mut node = json!({ "spec": spec });
    for key in w.kind.template_path().iter().rev() {
        node = json!({ *key: node });
    }
    if let (Value::Object(root), Value::Object(node)) = (&mut root, node) {
        root.extend(node);
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_core::refresh::WorkloadKind;

    #[test]
    fn a_pin_and_a_hold_are_one_body_under_the_template_path() {
        let w = Workload {
            kind: WorkloadKind::CronJob,
            namespace: "ops".into(),
            name: "nightly".into(),
            resource_version: "42".into(),
            annotations: freshet_core::Labels::new(),
            containers: Vec::new(),
        };
        let restores = [
            Restore::Image {
                container: "job".into(),
                init: false,
                from: "acme/job:1".into(),
                to: "acme/job:1@sha256:aa".into(),
            },
            Restore::Env {
                container: "init".into(),
                init: true,
                var: "D".into(),
                from: Some("x".into()),
                to: None,
            },
        ];
        let annotations = [("freshet.io/hold".to_owned(), Some("{}".to_owned()))].into();
        assert_eq!(
            body(&w, &restores, &annotations),
            json!({
                "metadata": {"resourceVersion": "42", "annotations": {"freshet.io/hold": "{}"}},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "containers": [{"name": "job", "image": "acme/job:1@sha256:aa"}],
                    "initContainers": [{"name": "init", "env": [{"name": "D", "$patch": "delete"}]}]
                }}}}}
            })
        );
        let only = body(&w, &[], &BTreeMap::new());
        assert_eq!(
            only,
            json!({"metadata": {"resourceVersion": "42", "annotations": {}}})
        );
    }
}
