//! A pod template's scheduling constraints (`nodeSelector`, required node affinity,
//! tolerations), read from the template's JSON into the core's
//! [`freshet_core::runs::Scheduling`], bounded.
//!
//! Owns that one reading, shared by the workload reader (which keeps it on each
//! [`crate::workloads::ReadWorkload`]) and the reader of what runs. Must not read
//! anything from the API nor decide where pods may run (the core's `node_fits`).

use std::collections::BTreeMap;

use freshet_core::runs::{Requirement, Scheduling, SelectorTerm, Toleration};
use serde::Deserialize;

/// The most selector terms, requirements, values or tolerations kept.
pub const MAX_TERMS: usize = 64;
/// The most bytes kept of one string.
const MAX_FIELD_BYTES: usize = 4096;
/// The most `nodeSelector` pairs kept.
const MAX_LABELS: usize = 256;

/// A pod template's scheduling constraints, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SlimScheduling {
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    affinity: Option<Affinity>,
    #[serde(default)]
    tolerations: Vec<SlimToleration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Affinity {
    #[serde(default)]
    node_affinity: Option<NodeAffinity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeAffinity {
    #[serde(default)]
    required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeSelector {
    #[serde(default)]
    node_selector_terms: Vec<Term>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Term {
    #[serde(default)]
    match_expressions: Vec<SlimRequirement>,
    #[serde(default)]
    match_fields: Vec<SlimRequirement>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SlimRequirement {
    #[serde(default)]
    key: String,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SlimToleration {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    effect: Option<String>,
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn requirements(list: Vec<SlimRequirement>) -> Vec<Requirement> {
    list.into_iter()
        .take(MAX_TERMS)
        .map(|r| Requirement {
            key: cut(r.key),
            operator: cut(r.operator),
            values: r.values.into_iter().take(MAX_TERMS).map(cut).collect(),
        })
        .collect()
}

/// The core's scheduling constraints from the three fields of a slim pod template
/// ([`crate::workloads::SlimPodSpec`]).
pub(crate) fn from_parts(
    node_selector: BTreeMap<String, String>,
    affinity: Option<Affinity>,
    tolerations: Vec<SlimToleration>,
) -> Scheduling {
    SlimScheduling {
        node_selector,
        affinity,
        tolerations,
    }
    .into_fact()
}

impl SlimScheduling {
    /// The core's scheduling constraints.
    fn into_fact(self) -> Scheduling {
        let required_terms = self
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .map(|s| {
                s.node_selector_terms
                    .into_iter()
                    .take(MAX_TERMS)
                    .map(|t| SelectorTerm {
                        match_expressions: requirements(t.match_expressions),
                        match_fields: requirements(t.match_fields),
                    })
                    .collect()
            });
        Scheduling {
            node_selector: freshet_core::labels_of(
                self.node_selector
                    .into_iter()
                    .take(MAX_LABELS)
                    .map(|(k, v)| (cut(k), cut(v))),
            ),
            required_terms,
            tolerations: self
                .tolerations
                .into_iter()
                .take(MAX_TERMS)
                .map(|t| Toleration {
                    key: cut(t.key.unwrap_or_default()),
                    operator: cut(t.operator.unwrap_or_default()),
                    value: cut(t.value.unwrap_or_default()),
                    effect: cut(t.effect.unwrap_or_default()),
                })
                .collect(),
        }
    }
}

/// The scheduling constraints of a pod template's `spec` (a JSON value, as the
/// workload reader holds it). A malformed part reads as absent.
pub fn scheduling_of(pod_spec: &serde_json::Value) -> Scheduling {
    SlimScheduling::deserialize(pod_spec)
        .unwrap_or_default()
        .into_fact()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_reads_selector_affinity_and_tolerations_and_junk_reads_as_none() {
        let s = scheduling_of(&json!({
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}]}}},
            "tolerations": [{"operator": "Exists"}]
        }));
        assert_eq!(
            s.node_selector
                .get("kubernetes.io/arch")
                .map(String::as_str),
            Some("amd64")
        );
        assert_eq!(s.required_terms.unwrap()[0].match_expressions[0].key, "a");
        assert_eq!(s.tolerations[0].operator, "Exists");
        assert_eq!(
            scheduling_of(&json!({"nodeSelector": 5})),
            Scheduling::default()
        );
    }
}
