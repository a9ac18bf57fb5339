//! Reading what runs: the pods of the namespaces in scope, the ReplicaSets and Jobs
//! between workloads and their pods, and the nodes, as the core's slim
//! [`freshet_core::runs`] facts.
//!
//! Owns the LISTs behind them: each one paginated (`limit`/`continue`, pages of
//! [`Reader::page_size`] items, at most [`MAX_PAGES`] pages and [`MAX_ITEMS`] items
//! per list), each page deserialised into the slim shapes of [`slim`] (no
//! `managedFields`, no status freshet does not read). Pods are read first, and of
//! the ReplicaSets and Jobs only those a pod names as its controller are kept
//! (`PodOwners`). A list the ServiceAccount may
//! not read (403) becomes a warning naming the missing RBAC, never a failed pass:
//! decisions that need those facts then say "no pods" or "node not listed", which
//! the core explains. A registry webhook's focused pass reads by the workloads'
//! selectors instead ([`Reader::read_selected`]). Must not decide anything (which
//! pods belong to a workload is the core's [`pods_of`]) nor write.

pub mod report;
mod selected;
pub mod slim;
pub mod store;
pub mod targets;

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use freshet_core::refresh::{RunsFacts, WorkloadKind};
use freshet_core::runs::{
    Intermediate, Node, NodeIndex, NodePlatformRules, OwnedPods, Pod, Target,
    WorkloadKind as RunsKind, WorkloadRef, pods_of, workload_platforms,
};
use serde::de::DeserializeOwned;

pub use crate::scheduling::scheduling_of;
use crate::workloads::ReadWorkload;
pub use selected::MAX_SELECTED;

/// Items asked for per page.
pub const PAGE_SIZE: u32 = 500;
/// Pages read at most per list.
pub const MAX_PAGES: usize = 400;
/// Items kept at most per list (pods of one namespace, nodes, ...).
pub const MAX_ITEMS: usize = 100_000;
/// From how many namespaces on pods, ReplicaSets and Jobs are listed once across
/// all namespaces (when freshet may) rather than once per namespace.
pub const CLUSTER_WIDE_FROM: usize = 8;

/// Why one list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObservedError {
    /// The ServiceAccount may not list the resource.
    #[error(
        "freshet may not list {resource}{where_}: grant its ServiceAccount get, list and watch on {resource} (API group \"{group}\"){scope}"
    )]
    Forbidden {
        /// `pods`, `nodes`, `replicasets`, `jobs`.
        resource: &'static str,
        /// Its API group (empty for the core group).
        group: &'static str,
        /// ` in namespace X`, or nothing.
        where_: String,
        /// `; nodes need a ClusterRole`, or nothing.
        scope: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API failed the list.
    #[error("listing {resource}{where_} failed")]
    Api {
        /// The resource.
        resource: &'static str,
        /// ` in namespace X`, or nothing.
        where_: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The list is longer than freshet reads.
    #[error(
        "listing {resource}{where_} stopped after {items} items in {pages} pages: more than freshet reads (MAX_ITEMS {max_items}, MAX_PAGES {max_pages})"
    )]
    TooLarge {
        /// The resource.
        resource: &'static str,
        /// ` in namespace X`, or nothing.
        where_: String,
        /// Items read.
        items: usize,
        /// Pages read.
        pages: usize,
        /// [`MAX_ITEMS`].
        max_items: usize,
        /// [`MAX_PAGES`].
        max_pages: usize,
    },
}

impl ObservedError {
    /// Whether trying again may help (a failed request; not a refusal or a size).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Api { .. })
    }
}

/// What runs in the namespaces read, with the warnings of the lists that failed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The pods, as read.
    pub pods: Vec<Pod>,
    /// The ReplicaSets and Jobs, as read.
    pub intermediates: Vec<Intermediate>,
    /// The nodes, as read.
    pub nodes: Vec<Node>,
    /// Namespaces whose pods were read.
    pub pods_read: BTreeSet<String>,
    /// Whether the nodes were read.
    pub nodes_read: bool,
    /// One per list that failed (names the missing RBAC on a 403).
    pub warnings: Vec<ObservedWarning>,
    /// Whether `pods` and `intermediates` are in namespace order
    /// ([`Observed::by_namespace`]), so a workload's are found by bisection.
    sorted: bool,
}

/// A list that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedWarning {
    /// The namespace it was read in (`None`: cluster-scoped, the nodes).
    pub namespace: Option<String>,
    /// What failed, with the RBAC to grant on a 403.
    pub message: String,
}

/// The ReplicaSets and Jobs some pod names as its controller, by namespace, kind
/// and name. An owner no pod names changes no workload's pods (see the core's
/// [`pods_of`]), so only these are kept: at 10,000 Deployments, each with its
/// ReplicaSets, most own no pod, and keeping them all would dominate the pass's
/// memory. Matching by name (not UID) keeps the owner a pod of an earlier object of
/// the same name points to, so such a pod is still explained as a stale owner's.
#[derive(Debug, Default)]
pub(crate) struct PodOwners<'a>(std::collections::HashSet<(&'a str, &'a str, &'a str)>);

impl<'a> PodOwners<'a> {
    /// The controlling owners of `pods`.
    pub(crate) fn of(pods: &'a [Pod]) -> Self {
        Self(
            pods.iter()
                .filter_map(|p| {
                    let c = p.owners.iter().find(|o| o.controller)?;
                    Some((p.namespace.as_str(), c.kind.as_str(), c.name.as_str()))
                })
                .collect(),
        )
    }

    /// Whether a pod names the `kind` `name` of `namespace` as its controller.
    pub(crate) fn names(&self, namespace: &str, kind: &str, name: &str) -> bool {
        self.0.contains(&(namespace, kind, name))
    }
}

impl Observed {
    /// The pods of `workload`, by controller owner references (see the core's
    /// [`pods_of`]), with the pods of the same namespace that are not its own.
    pub fn owned<'a>(&'a self, workload: &WorkloadRef) -> OwnedPods<'a> {
        if !self.sorted {
            return pods_of(workload, &self.intermediates, &self.pods);
        }
        // Only the workload's namespace: thousands of workloads each looking at
        // every pod and ReplicaSet of the cluster would be quadratic.
        let ns = workload.namespace.as_str();
        let pods = &self.pods[self.pods.partition_point(|p| p.namespace.as_str() < ns)
            ..self.pods.partition_point(|p| p.namespace.as_str() <= ns)];
        let owners = &self.intermediates[self
            .intermediates
            .partition_point(|o| o.namespace.as_str() < ns)
            ..self
                .intermediates
                .partition_point(|o| o.namespace.as_str() <= ns)];
        pods_of(workload, owners, pods)
    }

    /// The same facts with pods and intermediates in namespace order (stable:
    /// the order within a namespace is kept).
    pub fn by_namespace(mut self) -> Self {
        self.pods.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        self.intermediates
            .sort_by(|a, b| a.namespace.cmp(&b.namespace));
        self.sorted = true;
        self
    }

    /// The nodes indexed by name with their platforms.
    pub fn node_index(&self) -> NodeIndex<'_> {
        NodeIndex::new(&self.nodes, &NodePlatformRules::default())
    }

    /// The warnings that concern a workload in `namespace`: its namespace's pods or
    /// owners, or the nodes, could not be read.
    pub fn warnings_for(&self, namespace: &str) -> Vec<String> {
        self.warnings
            .iter()
            .filter(|w| w.namespace.as_deref().is_none_or(|n| n == namespace))
            .map(|w| w.message.clone())
            .collect()
    }
}

/// The core's identity of a read workload (`None` without a UID, which the API
/// always sets).
pub fn workload_ref(w: &ReadWorkload) -> Option<WorkloadRef> {
    Some(WorkloadRef {
        kind: runs_kind(w.workload.kind),
        namespace: w.workload.namespace.clone(),
        name: w.workload.name.clone(),
        uid: w.uid.clone()?,
    })
}

/// The planner's facts of what runs for `w`: its pods, the platforms it runs and may
/// run on, the nodes, its set's `targets`, and the warnings of lists that failed
/// for it. `None` without a UID.
pub fn runs_facts<'a>(
    observed: &'a Observed,
    nodes: &'a NodeIndex<'a>,
    w: &ReadWorkload,
    targets: &'a BTreeMap<String, Target>,
) -> Option<RunsFacts<'a>> {
    let owned = observed.owned(&workload_ref(w)?);
    let platforms = workload_platforms(&owned.pods, &w.scheduling, nodes);
    Some(RunsFacts {
        owned,
        platforms,
        nodes,
        targets,
        warnings: observed.warnings_for(&w.workload.namespace),
    })
}

/// The core's runs kind of a refresh kind.
pub fn runs_kind(kind: WorkloadKind) -> RunsKind {
    match kind {
        WorkloadKind::Deployment => RunsKind::Deployment,
        WorkloadKind::StatefulSet => RunsKind::StatefulSet,
        WorkloadKind::DaemonSet => RunsKind::DaemonSet,
        WorkloadKind::CronJob => RunsKind::CronJob,
    }
}

/// Reads pods, owners and nodes with one client.
#[derive(Clone)]
pub struct Reader {
    kube: kube::Client,
    page_size: u32,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// One resource the reader lists.
#[derive(Debug, Clone, Copy)]
struct Resource {
    name: &'static str,
    kind: &'static str,
    group: &'static str,
    prefix: &'static str,
}

const PODS: Resource = Resource {
    name: "pods",
    kind: "Pod",
    group: "",
    prefix: "/api/v1",
};
const NODES: Resource = Resource {
    name: "nodes",
    kind: "Node",
    group: "",
    prefix: "/api/v1",
};
const REPLICASETS: Resource = Resource {
    name: "replicasets",
    kind: "ReplicaSet",
    group: "apps",
    prefix: "/apis/apps/v1",
};
const JOBS: Resource = Resource {
    name: "jobs",
    kind: "Job",
    group: "batch",
    prefix: "/apis/batch/v1",
};

impl Reader {
    /// A reader asking for [`PAGE_SIZE`] items per page.
    pub fn new(kube: kube::Client) -> Self {
        Self {
            kube,
            page_size: PAGE_SIZE,
        }
    }

    /// The same reader asking for `n` items per page (at least 1).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Items asked for per page.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Reads the nodes, and per namespace of `workloads` its pods and the owners
    /// its kinds need (ReplicaSets for Deployments, Jobs for CronJobs). Failures
    /// become [`Observed::warnings`].
    pub async fn read(&self, workloads: &[&ReadWorkload]) -> Observed {
        let mut out = Observed::default();
        let mut namespaces: BTreeSet<&str> = BTreeSet::new();
        let mut rs: BTreeSet<&str> = BTreeSet::new();
        let mut jobs: BTreeSet<&str> = BTreeSet::new();
        for w in workloads {
            let ns = w.workload.namespace.as_str();
            namespaces.insert(ns);
            match w.workload.kind {
                WorkloadKind::Deployment => rs.insert(ns),
                WorkloadKind::CronJob => jobs.insert(ns),
                _ => false,
            };
        }
        if namespaces.is_empty() {
            return out;
        }
        self.read_nodes(&mut out).await;
        // Many namespaces: one paged list across all of them per resource (kept
        // items filtered page by page), instead of one list per namespace. Without
        // cluster-wide read access (RoleBindings per namespace), per namespace.
        let across = namespaces.len() > CLUSTER_WIDE_FROM;
        if across
            && let Ok(pods) = self
                .across(PODS, &namespaces, slim::SlimPod::into_fact)
                .await
        {
            out.pods = pods;
            out.pods_read = namespaces.iter().map(|n| (*n).to_owned()).collect();
        }
        for ns in &namespaces {
            if out.pods_read.contains(*ns) {
                continue;
            }
            match self.pods(Some(ns)).await {
                Ok(pods) => {
                    out.pods.extend(pods);
                    out.pods_read.insert((*ns).to_owned());
                }
                Err(e) => out.warnings.push(warning(ns, &e)),
            }
        }
        // Pods first: of their owners, only those a pod names are kept.
        let owners = PodOwners::of(&out.pods);
        for (wanted, resource) in [(&mut rs, REPLICASETS), (&mut jobs, JOBS)] {
            if !across || wanted.is_empty() {
                continue;
            }
            if let Ok(list) = self.owners_across(resource, wanted, &owners).await {
                out.intermediates.extend(list);
                wanted.clear();
            }
        }
        for ns in &namespaces {
            for (wanted, resource) in [(&rs, REPLICASETS), (&jobs, JOBS)] {
                if !wanted.contains(ns) {
                    continue;
                }
                match self
                    .intermediates_matching(resource, ns, None, Some(&owners))
                    .await
                {
                    Ok(list) => out.intermediates.extend(list),
                    Err(e) => out.warnings.push(warning(ns, &e)),
                }
            }
        }
        drop(owners);
        out.by_namespace()
    }

    /// The ReplicaSets or Jobs (`resource`) of `namespaces` that a pod names as its
    /// controller ([`PodOwners`]), listed across all namespaces and filtered page
    /// by page.
    async fn owners_across(
        &self,
        resource: Resource,
        namespaces: &BTreeSet<&str>,
        owners: &PodOwners<'_>,
    ) -> Result<Vec<Intermediate>, ObservedError> {
        self.list_keeping(resource, None, None, |o: slim::SlimOwned| {
            let meta = kube::Resource::meta(&o);
            let ns = meta.namespace.as_deref()?;
            (namespaces.contains(ns) && owners.names(ns, resource.kind, meta.name.as_deref()?))
                .then(|| o.into_fact(resource.kind))
        })
        .await
    }

    /// `resource` across all namespaces, keeping only the items of `namespaces`
    /// as `fact`s (filtered and converted page by page, so memory follows what is
    /// kept).
    async fn across<T, U>(
        &self,
        resource: Resource,
        namespaces: &BTreeSet<&str>,
        fact: impl Fn(T) -> U,
    ) -> Result<Vec<U>, ObservedError>
    where
        T: DeserializeOwned + kube::Resource,
    {
        self.list_keeping(resource, None, None, |item: T| {
            item.meta()
                .namespace
                .as_deref()
                .is_some_and(|n| namespaces.contains(n))
                .then(|| fact(item))
        })
        .await
    }

    /// Reads the nodes into `out` (a failure becomes its warning).
    async fn read_nodes(&self, out: &mut Observed) {
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
    }

    /// The pods of `namespace` (all namespaces with `None`).
    pub async fn pods(&self, namespace: Option<&str>) -> Result<Vec<Pod>, ObservedError> {
        self.list_keeping(PODS, namespace, None, |p: slim::SlimPod| {
            Some(p.into_fact())
        })
        .await
    }

    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<Node>, ObservedError> {
        self.list_keeping(NODES, None, None, |n: slim::SlimNode| Some(n.into_fact()))
            .await
    }

    /// The ReplicaSets or Jobs (`resource`) of `namespace` that `labels` (a label
    /// selector) matches and, given `owners`, a pod names as its controller
    /// ([`PodOwners`]); `None` for either: no such filter.
    async fn intermediates_matching(
        &self,
        resource: Resource,
        namespace: &str,
        labels: Option<&str>,
        owners: Option<&PodOwners<'_>>,
    ) -> Result<Vec<Intermediate>, ObservedError> {
        self.list_keeping(resource, Some(namespace), labels, |o: slim::SlimOwned| {
            let name = kube::Resource::meta(&o).name.as_deref()?;
            owners
                .is_none_or(|owners| owners.names(namespace, resource.kind, name))
                .then(|| o.into_fact(resource.kind))
        })
        .await
    }

    /// Lists `resource` page by page into slim items (those `labels` matches, when
    /// given).
    async fn list<T: DeserializeOwned>(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Vec<T>, ObservedError> {
        self.list_keeping(resource, namespace, labels, Some).await
    }

    /// Lists `resource` page by page into slim items (those `labels` matches, when
    /// given), keeping what `keep` makes of each (`None`: not kept), page by page.
    async fn list_keeping<T: DeserializeOwned, U>(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        labels: Option<&str>,
        keep: impl Fn(T) -> Option<U>,
    ) -> Result<Vec<U>, ObservedError> {
        let path = match namespace {
            Some(ns) => format!("{}/namespaces/{ns}/{}", resource.prefix, resource.name),
            None => format!("{}/{}", resource.prefix, resource.name),
        };
        let where_ = where_of(namespace);
        let fail = |source: kube::Error| list_error(resource, &where_, source);
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for pages in 1..=MAX_PAGES {
            let mut params = kube::api::ListParams::default().limit(self.page_size);
            if let Some(labels) = labels {
                params = params.labels(labels);
            }
            if let Some(t) = token.take() {
                params = params.continue_token(&t);
            }
            let request = kube::core::Request::new(path.clone())
                .list(&params)
                .map_err(|e| fail(kube::Error::BuildRequest(e)))?;
            let page: slim::Page<T> = self.kube.request(request).await.map_err(fail)?;
            items.extend(page.items.into_iter().filter_map(&keep));
            if items.len() > MAX_ITEMS {
                return Err(too_large(resource, &where_, items.len(), pages));
            }
            match page.metadata.continue_.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(items),
            }
        }
        Err(too_large(resource, &where_, items.len(), MAX_PAGES))
    }
}

/// ` in namespace X`, or nothing.
fn where_of(namespace: Option<&str>) -> String {
    namespace
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default()
}

/// What a failed list or watch of `resource` means: on a 403, the RBAC to grant.
fn list_error(resource: Resource, where_: &str, source: kube::Error) -> ObservedError {
    match &source {
        kube::Error::Api(s) if s.code == 403 => ObservedError::Forbidden {
            resource: resource.name,
            group: resource.group,
            where_: where_.to_owned(),
            scope: if resource.name == NODES.name {
                "; nodes are cluster-scoped and need a ClusterRole"
            } else {
                ""
            },
            source,
        },
        _ => ObservedError::Api {
            resource: resource.name,
            where_: where_.to_owned(),
            source,
        },
    }
}

fn warning(namespace: &str, e: &ObservedError) -> ObservedWarning {
    ObservedWarning {
        namespace: Some(namespace.to_owned()),
        message: crate::error_chain(e),
    }
}

fn too_large(resource: Resource, where_: &str, items: usize, pages: usize) -> ObservedError {
    ObservedError::TooLarge {
        resource: resource.name,
        where_: where_.to_owned(),
        items,
        pages,
        max_items: MAX_ITEMS,
        max_pages: MAX_PAGES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_core::runs::{Intermediate, OwnerRef, Pod};

    fn owner(kind: &str, name: &str, uid: &str) -> OwnerRef {
        OwnerRef {
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: true,
        }
    }

    /// A Deployment `web` with one ReplicaSet and one pod in namespace `ns`.
    fn web_in(ns: &str) -> (WorkloadRef, Intermediate, Pod) {
        let deployment = WorkloadRef {
            kind: RunsKind::Deployment,
            namespace: ns.into(),
            name: "web".into(),
            uid: format!("{ns}-dep"),
        };
        let rs = Intermediate {
            kind: "ReplicaSet".into(),
            namespace: ns.into(),
            name: "web-1".into(),
            uid: format!("{ns}-rs"),
            owners: vec![owner("Deployment", "web", &format!("{ns}-dep"))],
        };
        let pod = Pod {
            namespace: ns.into(),
            name: "web-1-a".into(),
            owners: vec![owner("ReplicaSet", "web-1", &format!("{ns}-rs"))],
            ..Pod::default()
        };
        (deployment, rs, pod)
    }

    #[test]
    fn a_workload_sees_only_its_own_namespace_once_sorted() {
        let (a, rs_a, pod_a) = web_in("a");
        let (c, rs_c, pod_c) = web_in("c");
        let (b, rs_b, pod_b) = web_in("b");
        let observed = Observed {
            pods: vec![pod_c, pod_a, pod_b.clone()],
            intermediates: vec![rs_b, rs_c, rs_a],
            ..Observed::default()
        };
        let unsorted = observed.owned(&b);
        assert_eq!(unsorted.pods, [&pod_b]);
        let sorted = observed.clone().by_namespace();
        for w in [&a, &b, &c] {
            let owned = sorted.owned(w);
            assert_eq!(owned.pods.len(), 1, "{w:?}");
            assert_eq!(owned.pods[0].namespace, w.namespace);
            assert!(
                owned.excluded.is_empty() && owned.excluded_more == 0,
                "{owned:?}"
            );
        }
        let (other, ..) = web_in("zz");
        assert!(sorted.owned(&other).pods.is_empty());
    }

    #[test]
    fn only_owners_a_pod_names_are_kept_and_the_pods_stay_explained() {
        let (web, rs, pod) = web_in("a");
        // An older ReplicaSet of `web` without pods: keeping it changes nothing.
        let idle = Intermediate {
            name: "web-0".into(),
            uid: "a-rs-0".into(),
            ..rs.clone()
        };
        // A pod of an earlier `web-1` (another UID): its owner is matched by name.
        let stale = Pod {
            name: "web-1-old".into(),
            owners: vec![owner("ReplicaSet", "web-1", "gone")],
            ..pod.clone()
        };
        let pods = vec![pod.clone(), stale];
        let owners = PodOwners::of(&pods);
        assert!(owners.names("a", "ReplicaSet", "web-1"));
        assert!(!owners.names("a", "ReplicaSet", "web-0"), "no pod names it");
        assert!(
            !owners.names("b", "ReplicaSet", "web-1"),
            "another namespace"
        );
        assert!(!owners.names("a", "Job", "web-1"), "another kind");
        let all = Observed {
            pods: pods.clone(),
            intermediates: vec![idle.clone(), rs.clone()],
            ..Observed::default()
        };
        let kept = Observed {
            intermediates: vec![idle, rs]
                .into_iter()
                .filter(|i| owners.names(&i.namespace, &i.kind, &i.name))
                .collect(),
            ..all.clone()
        };
        assert_eq!(kept.intermediates.len(), 1);
        let (before, after) = (all.owned(&web), kept.owned(&web));
        assert_eq!(before.pods, after.pods);
        assert_eq!(
            before.excluded, after.excluded,
            "the stale pod is still explained"
        );
        assert_eq!(after.pods, [&pod]);
    }
}
