//! The controller's watched copies of what runs: pods, ReplicaSets, Jobs and nodes,
//! kept current by kube-runtime watchers ([`crate::watch::Watched`]), so a steady
//! controller pass reads them without a LIST.
//!
//! Owns [`ObservedStore`]: which watchers run (pods, ReplicaSets and Jobs across the
//! namespaces in scope, or per namespace when the scope names them; nodes
//! cluster-wide), each event slimmed at once into the core's facts (the same
//! [`super::slim`] shapes and bounds the one-shot reader uses), and how a pass's
//! [`Observed`] is cut from them: only the namespaces of the workloads the pass
//! looks at, and of the ReplicaSets and Jobs only those a pod names as its
//! controller (`PodOwners`). A ReplicaSet scaled to zero with no pods left is not
//! kept at all (most of a cluster's are: old revisions). A watcher whose list fails
//! (a 403 names the missing RBAC, as the one-shot reader does) becomes a warning on
//! the workloads it concerns, never a failed pass, and never a wait longer than
//! [`SYNC_TIMEOUT`]. Must not decide anything nor write.

use std::collections::BTreeSet;

use freshet_core::refresh::WorkloadKind;
use freshet_core::runs::{Intermediate, Node, Pod};
use kube::api::Api;
use kube::core::ApiResource;
use kube::runtime::watcher;

use super::slim::{SlimNode, SlimOwned, SlimPod};
use super::{
    JOBS, NODES, Observed, ObservedWarning, PAGE_SIZE, PODS, PodOwners, REPLICASETS, Resource,
    list_error, where_of,
};
use crate::watch::{SYNC_TIMEOUT, Watched};
use crate::workloads::ReadWorkload;

/// The watched pods, owners and nodes of one scope; clones share them.
#[derive(Debug, Clone, Default)]
pub struct ObservedStore {
    /// Pods, keyed by UID (one string, not a copy of namespace and name).
    pods: Watched<String, Pod>,
    /// ReplicaSets and Jobs, keyed by UID (each watcher has its own kind).
    owners: Watched<String, Intermediate>,
    nodes: Watched<String, Node>,
    /// Per pod watcher (in start order), its namespace (`None`: all).
    pod_scopes: Vec<Option<String>>,
    /// Per owner watcher (in start order), its namespace (`None`: all).
    owner_scopes: Vec<Option<String>>,
}

fn api_resource(resource: Resource) -> ApiResource {
    ApiResource {
        group: resource.group.into(),
        version: "v1".into(),
        api_version: if resource.group.is_empty() {
            "v1".into()
        } else {
            format!("{}/v1", resource.group)
        },
        kind: resource.kind.into(),
        plural: resource.name.into(),
    }
}

fn api<K>(client: &kube::Client, resource: Resource, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = ApiResource, Scope = kube::core::DynamicResourceScope>,
{
    let ar = api_resource(resource);
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// How a failed list or watch of `resource` reads in a warning.
fn describe(
    resource: Resource,
    namespace: Option<&str>,
) -> impl Fn(Option<kube::Error>) -> Option<String> + Send + use<> {
    let where_ = where_of(namespace);
    move |e| {
        Some(match e {
            Some(e) => crate::error_chain(&list_error(resource, &where_, e)),
            None => format!("watching {}{where_} failed", resource.name),
        })
    }
}

impl ObservedStore {
    /// Starts watching pods, ReplicaSets and Jobs in `namespaces` (`None`: all),
    /// and the nodes.
    pub fn start(client: &kube::Client, namespaces: Option<&[String]>) -> Self {
        let mut this = Self::default();
        let config = watcher::Config::default().page_size(PAGE_SIZE);
        let scopes: Vec<Option<String>> = match namespaces {
            None => vec![None],
            Some(ns) => ns.iter().cloned().map(Some).collect(),
        };
        for ns in &scopes {
            let ns = ns.as_deref();
            this.pods.watch(
                api::<SlimPod>(client, PODS, ns),
                config.clone(),
                |p: &SlimPod| kube::Resource::meta(p).uid.clone(),
                |p| Some(p.into_fact()),
                describe(PODS, ns),
            );
            this.pod_scopes.push(ns.map(str::to_owned));
            for resource in [REPLICASETS, JOBS] {
                let kind = resource.kind;
                this.owners.watch(
                    api::<SlimOwned>(client, resource, ns),
                    config.clone(),
                    |o: &SlimOwned| kube::Resource::meta(o).uid.clone(),
                    // A ReplicaSet scaled to zero with no pods left owns none:
                    // not kept (removed when one scales down), so the thousands of
                    // old revisions a cluster keeps cost nothing.
                    move |o| o.may_own_pods().then(|| o.into_fact(kind)),
                    describe(resource, ns),
                );
                this.owner_scopes.push(ns.map(str::to_owned));
            }
        }
        this.nodes.watch(
            api::<SlimNode>(client, NODES, None),
            config,
            |n: &SlimNode| kube::Resource::meta(n).name.clone(),
            |n| Some(n.into_fact()),
            describe(NODES, None),
        );
        this
    }

    /// What runs for `workloads`, from the stores: the nodes, and the pods and
    /// owners of the workloads' namespaces. Waits at most [`SYNC_TIMEOUT`] for the
    /// first lists; a watcher not in sync or failing is a warning.
    pub async fn read(&self, workloads: &[&ReadWorkload]) -> Observed {
        let mut out = Observed::default();
        let namespaces: BTreeSet<&str> = workloads
            .iter()
            .map(|w| w.workload.namespace.as_str())
            .collect();
        if namespaces.is_empty() {
            return out;
        }
        let synced = tokio::time::timeout(SYNC_TIMEOUT, async {
            self.pods.wait_synced().await;
            self.owners.wait_synced().await;
            self.nodes.wait_synced().await;
        })
        .await;
        if synced.is_err() {
            out.warnings.push(ObservedWarning {
                namespace: None,
                message: format!(
                    "the watched pods, owners and nodes did not complete their first lists within {}s; what runs is not known in this pass",
                    SYNC_TIMEOUT.as_secs()
                ),
            });
            return out;
        }
        let node_errors = self.nodes.errors();
        out.nodes_read = node_errors.is_empty();
        out.nodes = self.nodes.values();
        out.warnings
            .extend(node_errors.into_iter().map(|(_, message)| ObservedWarning {
                namespace: None,
                message,
            }));
        let mut failed: BTreeSet<Option<String>> = BTreeSet::new();
        for (slot, message) in self.pods.errors() {
            let scope = self.pod_scopes.get(slot).cloned().flatten();
            failed.insert(scope.clone());
            out.warnings.push(ObservedWarning {
                namespace: scope,
                message,
            });
        }
        for (slot, message) in self.owners.errors() {
            out.warnings.push(ObservedWarning {
                namespace: self.owner_scopes.get(slot).cloned().flatten(),
                message,
            });
        }
        let wanted = |ns: &str| namespaces.contains(ns);
        out.pods = self.pods.values_where(|p| wanted(&p.namespace));
        let owner_kinds: BTreeSet<&str> = workloads
            .iter()
            .filter_map(|w| match w.workload.kind {
                WorkloadKind::Deployment => Some("ReplicaSet"),
                WorkloadKind::CronJob => Some("Job"),
                _ => None,
            })
            .collect();
        let pod_owners = PodOwners::of(&out.pods);
        let intermediates = self.owners.values_where(|o| {
            wanted(&o.namespace)
                && owner_kinds.contains(o.kind.as_str())
                && pod_owners.names(&o.namespace, &o.kind, &o.name)
        });
        drop(pod_owners);
        out.intermediates = intermediates;
        if !failed.contains(&None) {
            out.pods_read = namespaces
                .iter()
                .filter(|ns| !failed.contains(&Some((**ns).to_owned())))
                .map(|ns| (*ns).to_owned())
                .collect();
        }
        out.by_namespace()
    }
}
