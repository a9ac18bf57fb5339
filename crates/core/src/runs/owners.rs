//! Which pods belong to a workload, by owner references.
//!
//! Owns the walk `Deployment → ReplicaSet → Pod`, `CronJob → Job → Pod` and
//! `StatefulSet`/`DaemonSet → Pod`, following only *controller* owner references and
//! matching owners by UID. Labels are never enough: the shell may list pods by the
//! workload's selector, and every pod it passes that another owner controls (same
//! labels, other ReplicaSet; a recreated workload's leftovers; a bare pod) is
//! excluded with a reason. It must not read labels or selectors.

use std::collections::BTreeSet;

use serde::Serialize;

use super::facts::{
    Intermediate, MAX_NAMES, MAX_OWNERS_PER_WORKLOAD, MAX_PODS_PER_WORKLOAD, OwnerRef, Pod,
    Truncated, WorkloadRef,
};
use super::text::{TOKEN_MAX_BYTES, bounded};

/// Why a pod the shell passed is not one of the workload's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Excluded {
    /// The pod lives in another namespace.
    #[serde(rename_all = "camelCase")]
    OtherNamespace {
        /// The pod.
        pod: String,
    },
    /// No owner reference of the pod has `controller: true`.
    #[serde(rename_all = "camelCase")]
    NoController {
        /// The pod.
        pod: String,
    },
    /// Another object controls the pod (same labels, other owner).
    #[serde(rename_all = "camelCase")]
    OtherOwner {
        /// The pod.
        pod: String,
        /// The controller's kind.
        kind: String,
        /// The controller's name.
        name: String,
    },
    /// The controller has this workload's (or its ReplicaSet's/Job's) name but
    /// another UID: an earlier object of the same name.
    #[serde(rename_all = "camelCase")]
    StaleOwner {
        /// The pod.
        pod: String,
        /// The controller's kind.
        kind: String,
        /// The controller's name.
        name: String,
    },
}

impl std::fmt::Display for Excluded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OtherNamespace { pod } => write!(f, "pod {pod} is in another namespace"),
            Self::NoController { pod } => write!(f, "pod {pod} has no controller owner"),
            Self::OtherOwner { pod, kind, name } => {
                write!(
                    f,
                    "pod {pod} is controlled by {kind} {name}, not by this workload"
                )
            }
            Self::StaleOwner { pod, kind, name } => write!(
                f,
                "pod {pod} is controlled by an earlier {kind} named {name} (another UID)"
            ),
        }
    }
}

/// The pods of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedPods<'a> {
    /// The workload's pods, in name order, at most [`MAX_PODS_PER_WORKLOAD`].
    pub pods: Vec<&'a Pod>,
    /// Pods passed in that are not the workload's, at most [`MAX_NAMES`] listed.
    pub excluded: Vec<Excluded>,
    /// How many excluded pods were not listed.
    pub excluded_more: usize,
    /// Set when the workload has more pods (or owners) than the caps.
    pub truncated: Option<Truncated>,
}

/// The pods `workload` controls, directly or through the `intermediates`
/// (ReplicaSets of a Deployment, Jobs of a CronJob) that it controls.
///
/// `intermediates` and `pods` may hold objects of other owners (for example
/// everything the shell listed in the namespace): they are filtered here.
pub fn pods_of<'a>(
    workload: &WorkloadRef,
    intermediates: &[Intermediate],
    pods: &'a [Pod],
) -> OwnedPods<'a> {
    let owners = Owners::new(workload, intermediates);
    let mut out = OwnedPods::default();
    let mut mine: Vec<&Pod> = Vec::new();
    for pod in pods {
        match owners.classify(pod) {
            Ok(()) => mine.push(pod),
            Err(e) if out.excluded.len() < MAX_NAMES => out.excluded.push(e),
            Err(_) => out.excluded_more += 1,
        }
    }
    mine.sort_by(|a, b| a.name.cmp(&b.name));
    let total = mine.len();
    mine.truncate(MAX_PODS_PER_WORKLOAD);
    out.pods = mine;
    out.truncated = if total > MAX_PODS_PER_WORKLOAD {
        Some(Truncated {
            cap: "MAX_PODS_PER_WORKLOAD",
            kept: MAX_PODS_PER_WORKLOAD,
            total,
        })
    } else if owners.total > MAX_OWNERS_PER_WORKLOAD {
        Some(Truncated {
            cap: "MAX_OWNERS_PER_WORKLOAD",
            kept: MAX_OWNERS_PER_WORKLOAD,
            total: owners.total,
        })
    } else {
        None
    };
    out
}

/// The workload and the intermediates it controls (or an earlier workload of the
/// same name controlled).
struct Owners<'w> {
    workload: &'w WorkloadRef,
    uids: BTreeSet<&'w str>,
    names: BTreeSet<&'w str>,
    stale_uids: BTreeSet<&'w str>,
    total: usize,
}

impl<'w> Owners<'w> {
    fn new(workload: &'w WorkloadRef, intermediates: &'w [Intermediate]) -> Self {
        let mut owners = Self {
            workload,
            uids: BTreeSet::new(),
            names: BTreeSet::new(),
            stale_uids: BTreeSet::new(),
            total: 0,
        };
        let Some(kind) = workload.kind.intermediate() else {
            return owners;
        };
        for i in intermediates
            .iter()
            .filter(|i| i.kind == kind && i.namespace == workload.namespace)
        {
            let Some(c) = controller(&i.owners) else {
                continue;
            };
            if owners.is_workload(c) {
                owners.total += 1;
                if owners.uids.len() < MAX_OWNERS_PER_WORKLOAD {
                    owners.uids.insert(&i.uid);
                    owners.names.insert(&i.name);
                }
            } else if c.kind == workload.kind.as_str()
                && c.name == workload.name
                && owners.stale_uids.len() < MAX_OWNERS_PER_WORKLOAD
            {
                owners.stale_uids.insert(&i.uid);
            }
        }
        owners
    }

    fn is_workload(&self, o: &OwnerRef) -> bool {
        o.kind == self.workload.kind.as_str() && o.uid == self.workload.uid
    }

    /// `Ok` for the workload's pod, else why not.
    fn classify(&self, pod: &Pod) -> Result<(), Excluded> {
        let w = self.workload;
        let name = || bounded(&pod.name, TOKEN_MAX_BYTES);
        if pod.namespace != w.namespace {
            return Err(Excluded::OtherNamespace { pod: name() });
        }
        let Some(c) = controller(&pod.owners) else {
            return Err(Excluded::NoController { pod: name() });
        };
        let (owned, stale) = match w.kind.intermediate() {
            Some(kind) => (
                c.kind == kind && self.uids.contains(c.uid.as_str()),
                c.kind == kind
                    && (self.stale_uids.contains(c.uid.as_str())
                        || self.names.contains(c.name.as_str())),
            ),
            None => (
                self.is_workload(c),
                c.kind == w.kind.as_str() && c.name == w.name,
            ),
        };
        let (kind, owner) = (
            bounded(&c.kind, TOKEN_MAX_BYTES),
            bounded(&c.name, TOKEN_MAX_BYTES),
        );
        match (owned, stale) {
            (true, _) => Ok(()),
            (false, true) => Err(Excluded::StaleOwner {
                pod: name(),
                kind,
                name: owner,
            }),
            (false, false) => Err(Excluded::OtherOwner {
                pod: name(),
                kind,
                name: owner,
            }),
        }
    }
}

/// The controlling owner reference (the first with `controller: true`).
fn controller(owners: &[OwnerRef]) -> Option<&OwnerRef> {
    owners.iter().find(|o| o.controller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::facts::WorkloadKind;

    fn owner(kind: &str, name: &str, uid: &str) -> OwnerRef {
        OwnerRef {
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: true,
        }
    }

    fn pod(name: &str, owners: Vec<OwnerRef>) -> Pod {
        Pod {
            namespace: "ns".into(),
            name: name.into(),
            owners,
            ..Pod::default()
        }
    }

    fn rs(name: &str, uid: &str, owners: Vec<OwnerRef>) -> Intermediate {
        Intermediate {
            kind: "ReplicaSet".into(),
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
            owners,
        }
    }

    fn workload(kind: WorkloadKind) -> WorkloadRef {
        WorkloadRef {
            kind,
            namespace: "ns".into(),
            name: "web".into(),
            uid: "w1".into(),
        }
    }

    fn names(o: &OwnedPods<'_>) -> Vec<String> {
        o.pods.iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn deployment_pods_come_through_its_replicasets_only() {
        let rss = vec![
            rs("web-1", "rs1", vec![owner("Deployment", "web", "w1")]),
            rs("web-2", "rs2", vec![owner("Deployment", "web", "w1")]),
            rs("other-1", "rs3", vec![owner("Deployment", "other", "w2")]),
            rs("web-0", "rs0", vec![owner("Deployment", "web", "w0-old")]),
        ];
        let mut not_controller = owner("ReplicaSet", "web-1", "rs1");
        not_controller.controller = false;
        let pods = vec![
            pod("web-2-b", vec![owner("ReplicaSet", "web-2", "rs2")]),
            pod("web-1-a", vec![owner("ReplicaSet", "web-1", "rs1")]),
            pod("other-1-a", vec![owner("ReplicaSet", "other-1", "rs3")]),
            pod("web-0-a", vec![owner("ReplicaSet", "web-0", "rs0")]),
            pod("bare", vec![]),
            pod("adopted-loosely", vec![not_controller]),
            Pod {
                namespace: "elsewhere".into(),
                ..pod("web-1-z", vec![owner("ReplicaSet", "web-1", "rs1")])
            },
        ];
        let got = pods_of(&workload(WorkloadKind::Deployment), &rss, &pods);
        assert_eq!(names(&got), ["web-1-a", "web-2-b"]);
        assert_eq!(
            got.excluded,
            vec![
                Excluded::OtherOwner {
                    pod: "other-1-a".into(),
                    kind: "ReplicaSet".into(),
                    name: "other-1".into()
                },
                Excluded::StaleOwner {
                    pod: "web-0-a".into(),
                    kind: "ReplicaSet".into(),
                    name: "web-0".into()
                },
                Excluded::NoController { pod: "bare".into() },
                Excluded::NoController {
                    pod: "adopted-loosely".into()
                },
                Excluded::OtherNamespace {
                    pod: "web-1-z".into()
                },
            ]
        );
        assert_eq!(got.truncated, None);
        assert!(got.excluded[0].to_string().contains("not by this workload"));
    }

    #[test]
    fn statefulset_and_daemonset_own_pods_directly_and_by_uid() {
        for kind in [WorkloadKind::StatefulSet, WorkloadKind::DaemonSet] {
            let pods = vec![
                pod("web-0", vec![owner(kind.as_str(), "web", "w1")]),
                pod("web-old", vec![owner(kind.as_str(), "web", "w0")]),
                pod("same-labels", vec![owner("ReplicaSet", "x-1", "r9")]),
            ];
            let got = pods_of(&workload(kind), &[], &pods);
            assert_eq!(names(&got), ["web-0"]);
            assert_eq!(
                got.excluded[0],
                Excluded::StaleOwner {
                    pod: "web-old".into(),
                    kind: kind.as_str().into(),
                    name: "web".into()
                }
            );
            assert!(matches!(got.excluded[1], Excluded::OtherOwner { .. }));
        }
    }

    #[test]
    fn cronjob_pods_come_through_its_jobs() {
        let jobs = vec![Intermediate {
            kind: "Job".into(),
            namespace: "ns".into(),
            name: "web-28000".into(),
            uid: "j1".into(),
            owners: vec![owner("CronJob", "web", "w1")],
        }];
        let pods = vec![
            pod("web-28000-x", vec![owner("Job", "web-28000", "j1")]),
            pod("manual-x", vec![owner("Job", "manual", "j2")]),
        ];
        let got = pods_of(&workload(WorkloadKind::CronJob), &jobs, &pods);
        assert_eq!(names(&got), ["web-28000-x"]);
        assert_eq!(got.excluded.len(), 1);
    }

    #[test]
    fn a_workload_without_pods_has_none_and_excluded_is_bounded() {
        let pods: Vec<Pod> = (0..50).map(|i| pod(&format!("p{i}"), vec![])).collect();
        let got = pods_of(&workload(WorkloadKind::Deployment), &[], &pods);
        assert!(got.pods.is_empty());
        assert_eq!(got.excluded.len(), MAX_NAMES);
        assert_eq!(got.excluded_more, 50 - MAX_NAMES);
    }

    #[test]
    fn pods_beyond_the_cap_are_counted_not_kept() {
        let pods: Vec<Pod> = (0..MAX_PODS_PER_WORKLOAD + 5)
            .map(|i| {
                pod(
                    &format!("web-{i:05}"),
                    vec![owner("DaemonSet", "web", "w1")],
                )
            })
            .collect();
        let got = pods_of(&workload(WorkloadKind::DaemonSet), &[], &pods);
        assert_eq!(got.pods.len(), MAX_PODS_PER_WORKLOAD);
        assert_eq!(
            got.truncated,
            Some(Truncated {
                cap: "MAX_PODS_PER_WORKLOAD",
                kept: MAX_PODS_PER_WORKLOAD,
                total: MAX_PODS_PER_WORKLOAD + 5
            })
        );
    }
}
