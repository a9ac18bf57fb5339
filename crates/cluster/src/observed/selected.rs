//! The focused read: what runs for a few workloads (a registry webhook's re-check),
//! from the pods and ReplicaSets each one's own label selector matches, instead of
//! every pod and ReplicaSet of its namespace.
//!
//! Owns the choice between the two reads and the selector lists. A workload's pods
//! and the ReplicaSets of a Deployment carry its pod template's labels, which its
//! selector must match, so the core's [`super::pods_of`] finds the same pods of it
//! either way; only the pods of other workloads, which no decision reads, are left
//! out. More than [`MAX_SELECTED`] workloads, a CronJob (its Jobs are not selected
//! by its own labels), a selector with expressions, or one that cannot be read:
//! the namespaces are read whole ([`Reader::read`]). Must not decide anything.

use std::collections::BTreeMap;

use freshet_core::refresh::WorkloadKind;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;

use super::{Observed, ObservedWarning, PODS, REPLICASETS, Reader, slim, warning};
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
                Some(labels) => selected.push((*w, labels)),
                None => return self.read(workloads).await,
            }
        }
        let mut out = Observed::default();
        if selected.is_empty() {
            return out;
        }
        match self.nodes().await {
            Ok(nodes) => {
                out.nodes = nodes;
                out.nodes_read = true;
            }
            Err(e) => out.warnings.push(ObservedWarning {
                namespace: None,
                message: crate::error_chain(&e),
            }),
        }
        // Keyed by namespace and name: two workloads' selectors may overlap.
        let mut pods = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for (w, labels) in &selected {
            let ns = w.workload.namespace.as_str();
            match self
                .list::<slim::SlimPod>(PODS, Some(ns), Some(labels))
                .await
            {
                Ok(list) => {
                    for p in list.into_iter().map(slim::SlimPod::into_fact) {
                        pods.insert((p.namespace.clone(), p.name.clone()), p);
                    }
                    out.pods_read.insert(ns.to_owned());
                }
                Err(e) => out.warnings.push(warning(ns, &e)),
            }
            if w.workload.kind == WorkloadKind::Deployment {
                match self
                    .intermediates_matching(REPLICASETS, ns, Some(labels))
                    .await
                {
                    Ok(list) => {
                        for i in list {
                            owners.insert((i.namespace.clone(), i.name.clone()), i);
                        }
                    }
                    Err(e) => out.warnings.push(warning(ns, &e)),
                }
            }
        }
        out.pods = pods.into_values().collect();
        out.intermediates = owners.into_values().collect();
        out
    }

    /// `w`'s label selector as read now (`None`: read its namespace whole).
    async fn selector(&self, w: &ReadWorkload) -> Option<String> {
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
        match_labels(&selector)
    }
}

/// A selector's `matchLabels` as a label selector (`k=v,k2=v2`); `None` for one
/// with expressions or no labels (an empty selector matches everything).
fn match_labels(s: &LabelSelector) -> Option<String> {
    if s.match_expressions.as_ref().is_some_and(|e| !e.is_empty()) {
        return None;
    }
    let labels = s.match_labels.as_ref().filter(|l| !l.is_empty())?;
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some(pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    /// Table: a selector, and the label selector a focused read lists with.
    #[test]
    fn focused_reads_list_by_match_labels_only() {
        let labels = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let expression = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["web".into()]),
        }]);
        let cases = [
            (labels(&[("app", "web")]), None, Some("app=web")),
            (
                labels(&[("app", "web"), ("app.kubernetes.io/part-of", "shop")]),
                None,
                Some("app=web,app.kubernetes.io/part-of=shop"),
            ),
            (labels(&[("app", "web")]), expression.clone(), None),
            (None, expression, None),
            (labels(&[]), None, None),
            (None, None, None),
        ];
        for (match_labels_, match_expressions, want) in cases {
            let s = LabelSelector {
                match_labels: match_labels_,
                match_expressions,
            };
            assert_eq!(match_labels(&s).as_deref(), want, "{s:?}");
        }
    }
}
