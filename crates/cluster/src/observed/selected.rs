//! The focused read: what runs for a few workloads (a registry webhook's re-check),
//! from the pods and ReplicaSets their own label selectors match, instead of every
//! pod and ReplicaSet of their namespaces.
//!
//! Owns the choice between the two reads and the selector lists: per namespace, one
//! set-based list (`app in (a,b)`) when every focused selector there has the same
//! single key, else one list per workload ([`lists`], pure). A workload's pods and
//! the ReplicaSets of a Deployment carry its pod template's labels, which its
//! selector must match, so the core's [`super::pods_of`] finds the same pods of it
//! either way; only the pods of other workloads, which no decision reads, are left
//! out. More than [`MAX_SELECTED`] workloads, a CronJob (its Jobs are not selected
//! by its own labels), a selector with expressions or without labels, or one that
//! cannot be read: the namespaces are read whole ([`Reader::read`]). Must not
//! decide anything.

use std::collections::{BTreeMap, BTreeSet};

use freshet_core::refresh::WorkloadKind;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;

use super::{Observed, PODS, REPLICASETS, Reader, slim, warning};
use crate::workloads::ReadWorkload;

/// The most workloads a focused read lists by selector (more: whole namespaces).
pub const MAX_SELECTED: usize = 32;

impl Reader {
    /// [`Reader::read`] for a few workloads: the nodes, and per workload the pods
    /// (and for a Deployment the ReplicaSets) its label selector matches.
    pub async fn read_selected(&self, workloads: &[&ReadWorkload]) -> Observed {
        if workloads.len() > MAX_SELECTED {
            return self.read(workloads).await;
        }
        let mut selected = Vec::with_capacity(workloads.len());
        for w in workloads {
            match self.selector(w).await {
                Some(labels) => selected.push(Selected {
                    namespace: w.workload.namespace.clone(),
                    deployment: w.workload.kind == WorkloadKind::Deployment,
                    labels,
                }),
                None => return self.read(workloads).await,
            }
        }
        let mut out = Observed::default();
        if selected.is_empty() {
            return out;
        }
        self.read_nodes(&mut out).await;
        // Keyed by namespace and name: two workloads' selectors may overlap.
        let mut pods = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for list in lists(&selected) {
            let ns = list.namespace.as_str();
            match self
                .list::<slim::SlimPod>(PODS, Some(ns), Some(&list.pods))
                .await
            {
                Ok(items) => {
                    for p in items.into_iter().map(slim::SlimPod::into_fact) {
                        pods.insert((p.namespace.clone(), p.name.clone()), p);
                    }
                    out.pods_read.insert(ns.to_owned());
                }
                Err(e) => out.warnings.push(warning(ns, &e)),
            }
            let Some(replicasets) = &list.replicasets else {
                continue;
            };
            match self
                .intermediates_matching(REPLICASETS, ns, Some(replicasets), None)
                .await
            {
                Ok(items) => {
                    for i in items {
                        owners.insert((i.namespace.clone(), i.name.clone()), i);
                    }
                }
                Err(e) => out.warnings.push(warning(ns, &e)),
            }
        }
        out.pods = pods.into_values().collect();
        out.intermediates = owners.into_values().collect();
        out.by_namespace()
    }

    /// `w`'s selector's `matchLabels` as read now (`None`: read its namespace whole).
    async fn selector(&self, w: &ReadWorkload) -> Option<BTreeMap<String, String>> {
        let (ns, name) = (w.workload.namespace.as_str(), w.workload.name.as_str());
        let kube = self.kube.clone();
        let selector = match w.workload.kind {
            WorkloadKind::Deployment => {
                Api::<Deployment>::namespaced(kube, ns)
                    .get(name)
                    .await
                    .ok()?
                    .spec
                    .selector
            }
            WorkloadKind::StatefulSet => {
                Api::<StatefulSet>::namespaced(kube, ns)
                    .get(name)
                    .await
                    .ok()?
                    .spec
                    .selector
            }
            WorkloadKind::DaemonSet => {
                Api::<DaemonSet>::namespaced(kube, ns)
                    .get(name)
                    .await
                    .ok()?
                    .spec
                    .selector
            }
            WorkloadKind::CronJob => return None,
        };
        match_labels(selector)
    }
}

/// A selector's `matchLabels`; `None` for one with expressions or no labels (an
/// empty selector matches everything).
fn match_labels(s: LabelSelector) -> Option<BTreeMap<String, String>> {
    if s.match_expressions.as_ref().is_some_and(|e| !e.is_empty()) {
        return None;
    }
    s.match_labels.filter(|l| !l.is_empty())
}

/// One focused workload: its namespace, whether it is a Deployment (its pods hang
/// off ReplicaSets), and its selector's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selected {
    namespace: String,
    deployment: bool,
    labels: BTreeMap<String, String>,
}

/// The lists of one namespace: its pods and, for Deployments, its ReplicaSets
/// that a label selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct List {
    namespace: String,
    pods: String,
    replicasets: Option<String>,
}

/// The lists a focused read sends: one pair per namespace when every selector
/// there has the same single key (`app in (a,b)`), else one pair per workload.
fn lists(selected: &[Selected]) -> Vec<List> {
    let mut by_namespace: BTreeMap<&str, Vec<&Selected>> = BTreeMap::new();
    for s in selected {
        by_namespace.entry(&s.namespace).or_default().push(s);
    }
    let mut out = Vec::new();
    for (namespace, group) in by_namespace {
        let keys: BTreeSet<Vec<&String>> =
            group.iter().map(|s| s.labels.keys().collect()).collect();
        let one_key = match keys.iter().next() {
            Some(k) if keys.len() == 1 && k.len() == 1 && group.len() > 1 => Some(k[0]),
            _ => None,
        };
        let Some(key) = one_key else {
            out.extend(group.iter().map(|s| {
                let labels = render(&s.labels);
                List {
                    namespace: namespace.to_owned(),
                    replicasets: s.deployment.then(|| labels.clone()),
                    pods: labels,
                }
            }));
            continue;
        };
        let values = |only_deployments: bool| -> BTreeSet<&str> {
            group
                .iter()
                .filter(|s| s.deployment || !only_deployments)
                .filter_map(|s| s.labels.get(key).map(String::as_str))
                .collect()
        };
        let set = |values: BTreeSet<&str>| {
            format!(
                "{key} in ({})",
                values.into_iter().collect::<Vec<_>>().join(",")
            )
        };
        let deployments = values(true);
        out.push(List {
            namespace: namespace.to_owned(),
            pods: set(values(false)),
            replicasets: (!deployments.is_empty()).then(|| set(deployments)),
        });
    }
    out
}

/// `k=v,k2=v2`.
fn render(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Table: a selector, and the labels a focused read lists with.
    #[test]
    fn focused_reads_list_by_match_labels_only() {
        let expression = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["web".into()]),
        }]);
        let app = labels(&[("app", "web")]);
        let cases = [
            (Some(app.clone()), None, Some(app.clone())),
            (Some(app.clone()), expression.clone(), None),
            (None, expression, None),
            (Some(labels(&[])), None, None),
            (None, None, None),
        ];
        for (match_labels_, match_expressions, want) in cases {
            let s = LabelSelector {
                match_labels: match_labels_,
                match_expressions,
            };
            assert_eq!(match_labels(s.clone()), want, "{s:?}");
        }
    }

    /// Table: the focused workloads, and the lists sent for them.
    #[test]
    fn focused_reads_send_one_set_based_list_per_namespace_when_the_key_is_shared() {
        let w = |ns: &str, deployment: bool, pairs: &[(&str, &str)]| Selected {
            namespace: ns.into(),
            deployment,
            labels: labels(pairs),
        };
        let list = |ns: &str, pods: &str, rs: Option<&str>| List {
            namespace: ns.into(),
            pods: pods.into(),
            replicasets: rs.map(Into::into),
        };
        let cases = [
            (
                vec![w("a", true, &[("app", "web")])],
                vec![list("a", "app=web", Some("app=web"))],
            ),
            (
                vec![w("a", false, &[("app", "db"), ("tier", "data")])],
                vec![list("a", "app=db,tier=data", None)],
            ),
            (
                vec![
                    w("a", true, &[("app", "web")]),
                    w("a", true, &[("app", "api")]),
                    w("a", false, &[("app", "db")]),
                    w("b", true, &[("app", "web")]),
                ],
                vec![
                    list("a", "app in (api,db,web)", Some("app in (api,web)")),
                    list("b", "app=web", Some("app=web")),
                ],
            ),
            (
                vec![
                    w("a", false, &[("app", "db")]),
                    w("a", false, &[("app", "kv")]),
                ],
                vec![list("a", "app in (db,kv)", None)],
            ),
            (
                vec![
                    w("a", true, &[("app", "web")]),
                    w("a", true, &[("name", "api")]),
                ],
                vec![
                    list("a", "app=web", Some("app=web")),
                    list("a", "name=api", Some("name=api")),
                ],
            ),
        ];
        for (selected, want) in cases {
            assert_eq!(lists(&selected), want, "{selected:?}");
        }
    }
}
