//! Which nodes a workload's pods may be scheduled on.
//!
//! Owns the scheduler's hard filters that decide a pod's platform: `nodeSelector`
//! (every pair must match), required node affinity (`nodeSelectorTerms` ORed, the
//! requirements of one term ANDed; `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`,
//! `Lt`, and `matchFields` on `metadata.name`), and taints with effect `NoSchedule`
//! or `NoExecute` against the tolerations. Any label is evaluated, not only
//! `kubernetes.io/os` and `kubernetes.io/arch` (and their `beta.` forms): a pool
//! label narrows the platforms as surely as an arch label does.
//!
//! It must not model preferences (preferred affinity, `PreferNoSchedule`), resources,
//! pod (anti-)affinity or topology spread: they decide *where among* the allowed
//! nodes, not which platforms are possible, so leaving them out only widens the set.

use super::facts::{Node, Requirement, Scheduling, Taint, Toleration};

/// Why a node cannot host the workload's pods.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Mismatch {
    /// A `nodeSelector` pair does not match the node's labels.
    #[serde(rename_all = "camelCase")]
    NodeSelector {
        /// The label key.
        key: String,
    },
    /// No required node affinity term matches.
    RequiredAffinity,
    /// A taint no toleration tolerates.
    #[serde(rename_all = "camelCase")]
    Taint {
        /// The taint key.
        key: String,
        /// Its effect.
        effect: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NodeSelector { key } => write!(f, "nodeSelector {key} does not match"),
            Self::RequiredAffinity => f.write_str("no required node affinity term matches"),
            Self::Taint { key, effect } => write!(f, "taint {key}:{effect} is not tolerated"),
        }
    }
}

/// The tolerations the DaemonSet controller adds to every DaemonSet pod (for
/// `network-unavailable` only with `hostNetwork`, which is left to the caller).
pub fn daemonset_tolerations() -> Vec<Toleration> {
    [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    .into_iter()
    .map(|(key, effect)| Toleration {
        key: key.into(),
        operator: "Exists".into(),
        value: String::new(),
        effect: effect.into(),
    })
    .collect()
}

/// Whether the workload's pods may be scheduled on `node`; the first reason not.
pub fn node_fits(scheduling: &Scheduling, node: &Node) -> Result<(), Mismatch> {
    for (key, want) in &scheduling.node_selector {
        if node.labels.get(key) != Some(want) {
            return Err(Mismatch::NodeSelector { key: key.clone() });
        }
    }
    if let Some(terms) = &scheduling.required_terms
        && !terms.iter().any(|t| {
            // An empty term matches no node.
            (!t.match_expressions.is_empty() || !t.match_fields.is_empty())
                && t.match_expressions.iter().all(|r| label_matches(r, node))
                && t.match_fields.iter().all(|r| field_matches(r, node))
        })
    {
        return Err(Mismatch::RequiredAffinity);
    }
    if let Some(t) = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !scheduling.tolerations.iter().any(|tol| tolerates(tol, t)))
    {
        return Err(Mismatch::Taint {
            key: t.key.clone(),
            effect: t.effect.clone(),
        });
    }
    Ok(())
}

fn label_matches(r: &Requirement, node: &Node) -> bool {
    let value = node.labels.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| r.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, r.values.as_slice()) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if r.operator == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        // The API server rejects other operators; a term holding one matches nothing.
        _ => false,
    }
}

fn field_matches(r: &Requirement, node: &Node) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    match r.operator.as_str() {
        "In" => r.values.contains(&node.name),
        "NotIn" => !r.values.contains(&node.name),
        _ => false,
    }
}

fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if !tol.effect.is_empty() && tol.effect != taint.effect {
        return false;
    }
    if tol.key.is_empty() {
        return tol.operator == "Exists";
    }
    tol.key == taint.key
        && match tol.operator.as_str() {
            "Exists" => true,
            "" | "Equal" => tol.value == taint.value,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::facts::SelectorTerm;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str, &str)]) -> Node {
        Node {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            taints: taints
                .iter()
                .map(|(k, v, e)| Taint {
                    key: (*k).into(),
                    value: (*v).into(),
                    effect: (*e).into(),
                })
                .collect(),
            ..Node::default()
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| (*v).into()).collect(),
        }
    }

    fn affinity(terms: Vec<Vec<Requirement>>) -> Scheduling {
        Scheduling {
            required_terms: Some(
                terms
                    .into_iter()
                    .map(|e| SelectorTerm {
                        match_expressions: e,
                        match_fields: vec![],
                    })
                    .collect(),
            ),
            ..Scheduling::default()
        }
    }

    #[test]
    fn node_selector_and_required_affinity_on_os_and_arch() {
        let amd = node(
            "a",
            &[
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("beta.kubernetes.io/arch", "amd64"),
            ],
            &[],
        );
        let arm = node(
            "b",
            &[
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "arm64"),
                ("gen", "3"),
            ],
            &[],
        );
        let selector = Scheduling {
            node_selector: [("kubernetes.io/arch".into(), "arm64".into())]
                .into_iter()
                .collect(),
            ..Scheduling::default()
        };
        let table: Vec<(&str, Scheduling, bool, bool)> = vec![
            ("no constraints", Scheduling::default(), true, true),
            ("nodeSelector arm64", selector, false, true),
            (
                "In amd64",
                affinity(vec![vec![req("kubernetes.io/arch", "In", &["amd64"])]]),
                true,
                false,
            ),
            (
                "NotIn amd64",
                affinity(vec![vec![req("kubernetes.io/arch", "NotIn", &["amd64"])]]),
                false,
                true,
            ),
            (
                "beta Exists",
                affinity(vec![vec![req("beta.kubernetes.io/arch", "Exists", &[])]]),
                true,
                false,
            ),
            (
                "beta DoesNotExist",
                affinity(vec![vec![req(
                    "beta.kubernetes.io/arch",
                    "DoesNotExist",
                    &[],
                )]]),
                false,
                true,
            ),
            (
                "NotIn on a missing label matches",
                affinity(vec![vec![req("pool", "NotIn", &["gpu"])]]),
                true,
                true,
            ),
            (
                "terms are ORed",
                affinity(vec![
                    vec![req("kubernetes.io/arch", "In", &["s390x"])],
                    vec![req("kubernetes.io/os", "In", &["linux"])],
                ]),
                true,
                true,
            ),
            (
                "requirements are ANDed",
                affinity(vec![vec![
                    req("kubernetes.io/os", "In", &["linux"]),
                    req("kubernetes.io/arch", "In", &["s390x"]),
                ]]),
                false,
                false,
            ),
            (
                "Gt",
                affinity(vec![vec![req("gen", "Gt", &["2"])]]),
                false,
                true,
            ),
            (
                "Lt",
                affinity(vec![vec![req("gen", "Lt", &["2"])]]),
                false,
                false,
            ),
            (
                "empty term matches nothing",
                affinity(vec![vec![]]),
                false,
                false,
            ),
            (
                "unknown operator matches nothing",
                affinity(vec![vec![req("gen", "Near", &["2"])]]),
                false,
                false,
            ),
        ];
        for (what, s, want_amd, want_arm) in table {
            assert_eq!(node_fits(&s, &amd).is_ok(), want_amd, "{what} on amd64");
            assert_eq!(node_fits(&s, &arm).is_ok(), want_arm, "{what} on arm64");
        }
    }

    #[test]
    fn match_fields_on_node_name() {
        let s = Scheduling {
            required_terms: Some(vec![SelectorTerm {
                match_expressions: vec![],
                match_fields: vec![req("metadata.name", "In", &["a"])],
            }]),
            ..Scheduling::default()
        };
        assert!(node_fits(&s, &node("a", &[], &[])).is_ok());
        assert_eq!(
            node_fits(&s, &node("b", &[], &[])),
            Err(Mismatch::RequiredAffinity)
        );
    }

    #[test]
    fn taints_need_tolerations_for_noschedule_and_noexecute() {
        let tainted = node("t", &[], &[("arch", "arm64", "NoSchedule")]);
        let soft = node("s", &[], &[("x", "", "PreferNoSchedule")]);
        let tol = |key: &str, op: &str, value: &str, effect: &str| Scheduling {
            tolerations: vec![Toleration {
                key: key.into(),
                operator: op.into(),
                value: value.into(),
                effect: effect.into(),
            }],
            ..Scheduling::default()
        };
        assert_eq!(
            node_fits(&Scheduling::default(), &tainted),
            Err(Mismatch::Taint {
                key: "arch".into(),
                effect: "NoSchedule".into()
            })
        );
        assert!(node_fits(&Scheduling::default(), &soft).is_ok());
        assert!(node_fits(&tol("arch", "Equal", "arm64", "NoSchedule"), &tainted).is_ok());
        assert!(node_fits(&tol("arch", "", "arm64", ""), &tainted).is_ok());
        assert!(node_fits(&tol("arch", "Exists", "", ""), &tainted).is_ok());
        assert!(node_fits(&tol("", "Exists", "", ""), &tainted).is_ok());
        assert!(node_fits(&tol("arch", "Equal", "amd64", ""), &tainted).is_err());
        assert!(node_fits(&tol("arch", "Exists", "", "NoExecute"), &tainted).is_err());
        let cordoned = node(
            "c",
            &[],
            &[("node.kubernetes.io/unschedulable", "", "NoSchedule")],
        );
        let ds = Scheduling {
            tolerations: daemonset_tolerations(),
            ..Scheduling::default()
        };
        assert!(node_fits(&ds, &cordoned).is_ok());
        assert!(node_fits(&Scheduling::default(), &cordoned).is_err());
    }
}
