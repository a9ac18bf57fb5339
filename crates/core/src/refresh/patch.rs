//! The one patch that performs a [`WorkloadPlan`]: a strategic-merge body with the
//! workload's `resourceVersion` as its precondition.
//!
//! Owns the shape of what freshet sends to the API server for a workload: the audit
//! annotations, container images and env vars by container name (init containers
//! under `initContainers`), and `kubectl.kubernetes.io/restartedAt` on the pod
//! template for a restart, all under the kind's template path. Must not decide
//! anything: the plan says what changes; this only spells it. Patches are data, so
//! tests compare them with `==`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::plan::{Change, WorkloadPlan};
use super::time::Timestamp;
use super::workload::Workload;

/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

type ContainerPatches = BTreeMap<(bool, String), Map<String, Value>>;

impl WorkloadPlan {
    /// The strategic-merge patch that performs the plan, with the resource-version
    /// precondition; `None` when there is nothing to write. `now` stamps a restart.
    pub fn patch(&self, workload: &Workload, now: Timestamp) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut template = Map::new();
        if self
            .changes
            .iter()
            .any(|c| matches!(c, Change::Restart { .. }))
        {
            template.insert(
                "metadata".into(),
                json!({"annotations": {RESTARTED_AT: now.to_string()}}),
            );
        }
        let spec = pod_spec(&self.changes);
        if !spec.is_empty() {
            template.insert("spec".into(), Value::Object(spec));
        }
        let mut root = json!({
            "metadata": {
                "resourceVersion": workload.resource_version,
                "annotations": self.annotations,
            }
        });
        if !template.is_empty() {
            let mut node = Value::Object(template);
            for key in workload.kind.template_path().iter().rev() {
                node = json!({ *key: node });
            }
            merge(&mut root, node);
        }
        Some(root)
    }
}

/// The pod spec part: each touched container once, by name, with its new image and
/// env vars.
fn pod_spec(changes: &[Change]) -> Map<String, Value> {
    let mut containers = ContainerPatches::new();
    for change in changes {
        match change {
            Change::Restart { .. } => {}
            Change::SetImage {
                container,
                init,
                to,
                ..
            } => {
                entry(&mut containers, *init, container).insert("image".into(), to.as_str().into());
            }
            Change::SetEnv {
                container,
                init,
                var,
                to,
                ..
            } => {
                let c = entry(&mut containers, *init, container);
                let env = c.entry("env").or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = env {
                    list.push(json!({"name": var, "value": to}));
                }
            }
        }
    }
    let mut spec = Map::new();
    for ((init, _), c) in containers {
        let key = if init { "initContainers" } else { "containers" };
        let list = spec.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(Value::Object(c));
        }
    }
    spec
}

fn entry<'a>(
    containers: &'a mut ContainerPatches,
    init: bool,
    name: &str,
) -> &'a mut Map<String, Value> {
    containers
        .entry((init, name.to_owned()))
        .or_insert_with(|| {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            m
        })
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;
    use crate::refresh::workload::{Workload, WorkloadKind};

    fn workload(kind: WorkloadKind) -> Workload {
        Workload {
            kind,
            namespace: "team".into(),
            name: "api".into(),
            resource_version: "41".into(),
            annotations: crate::Labels::new(),
            containers: Vec::new(),
        }
    }

    fn d(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    #[test]
    fn an_empty_plan_has_no_patch() {
        let now = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(
            WorkloadPlan::default().patch(&workload(WorkloadKind::Deployment), now),
            None
        );
    }

    /// Every change kind at once, in a StatefulSet: one body, compared whole.
    #[test]
    fn one_patch_carries_every_change_under_the_template_path() {
        let now = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let plan = WorkloadPlan {
            changes: vec![
                Change::SetImage {
                    container: "init".into(),
                    init: true,
                    from: "busybox:1".into(),
                    to: format!("busybox:1@{}", d(2)),
                    reason: "pin".into(),
                },
                Change::SetEnv {
                    container: "api".into(),
                    init: false,
                    var: "D".into(),
                    from: None,
                    to: d(3).to_string(),
                    image: "ghcr.io/a/b:1".into(),
                },
                Change::Restart {
                    image: "ghcr.io/a/api:stable".into(),
                    containers: vec!["api".into()],
                    from: d(4),
                    to: d(5),
                },
            ],
            annotations: BTreeMap::from([("freshet.io/refreshed".to_owned(), Some("{}".into()))]),
            ..WorkloadPlan::default()
        };
        let patch = plan
            .patch(&workload(WorkloadKind::StatefulSet), now)
            .unwrap();
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "41", "annotations": {"freshet.io/refreshed": "{}"}},
                "spec": {"template": {
                    "metadata": {"annotations": {RESTARTED_AT: "2026-11-23T10:00:00Z"}},
                    "spec": {
                        "containers": [{"name": "api", "env": [{"name": "D", "value": d(3).as_str()}]}],
                        "initContainers": [{"name": "init", "image": format!("busybox:1@{}", d(2))}]
                    }
                }}
            })
        );
    }
}
