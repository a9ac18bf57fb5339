//! The table of resources the test bed serves: group, version, kind, plural,
//! scope, subresources and storage, plus the per-kind conversions (the
//! `events.k8s.io/v1` view of core events).
//!
//! Owns the static description of the API surface; it must not touch the
//! store or HTTP.

use serde_json::{Map, Value, json};

/// One served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name used in paths.
    pub plural: &'static str,
    /// Singular name for discovery.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for discovery (`deploy`, `po`).
    pub short_names: &'static [&'static str],
    /// Storage key; two resources with the same key share one store.
    pub storage: &'static str,
    /// Custom resource (unstructured): strategic merge answers 415.
    pub custom: bool,
    /// Has a `status` subresource.
    pub status: bool,
    /// Has a `scale` subresource.
    pub scale: bool,
    /// `metadata.generation` is maintained.
    pub generation: bool,
    /// Discovery categories (`all`).
    pub categories: &'static [&'static str],
}

const ALL: &[&str] = &["all"];

macro_rules! res {
    ($g:expr, $v:expr, $k:expr, $p:expr, $s:expr, $ns:expr, $short:expr, $storage:expr,
     custom=$c:expr, status=$st:expr, scale=$sc:expr, gen=$gen:expr, cat=$cat:expr) => {
        ResourceDef {
            group: $g,
            version: $v,
            kind: $k,
            plural: $p,
            singular: $s,
            namespaced: $ns,
            short_names: $short,
            storage: $storage,
            custom: $c,
            status: $st,
            scale: $sc,
            generation: $gen,
            categories: $cat,
        }
    };
}

/// Every resource the test bed serves.
pub static RESOURCES: &[ResourceDef] = &[
    res!("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], "namespaces", custom=false, status=true, scale=false, gen=false, cat=&[]),
    res!("", "v1", "Node", "nodes", "node", false, &["no"], "nodes", custom=false, status=true, scale=false, gen=false, cat=&[]),
    res!("", "v1", "Pod", "pods", "pod", true, &["po"], "pods", custom=false, status=true, scale=false, gen=false, cat=ALL),
    res!("", "v1", "Secret", "secrets", "secret", true, &[], "secrets", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"], "serviceaccounts", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], "configmaps", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("", "v1", "Event", "events", "event", true, &["ev"], "events", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], "deployments.apps", custom=false, status=true, scale=true, gen=true, cat=ALL),
    res!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, &["sts"], "statefulsets.apps", custom=false, status=true, scale=true, gen=true, cat=ALL),
    res!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, &["ds"], "daemonsets.apps", custom=false, status=true, scale=false, gen=true, cat=ALL),
    res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], "replicasets.apps", custom=false, status=true, scale=true, gen=true, cat=ALL),
    res!("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, &[], "controllerrevisions.apps", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("batch", "v1", "CronJob", "cronjobs", "cronjob", true, &["cj"], "cronjobs.batch", custom=false, status=true, scale=false, gen=true, cat=ALL),
    res!("batch", "v1", "Job", "jobs", "job", true, &[], "jobs.batch", custom=false, status=true, scale=false, gen=true, cat=ALL),
    // Stored only (no endpoints, no eviction checks): enough for manifests that ship them.
    res!("", "v1", "Service", "services", "service", true, &["svc"], "services", custom=false, status=true, scale=false, gen=false, cat=ALL),
    res!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, &["pdb"], "poddisruptionbudgets.policy", custom=false, status=true, scale=false, gen=true, cat=&[]),
    res!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, &[], "leases.coordination.k8s.io", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("events.k8s.io", "v1", "Event", "events", "event", true, &["ev"], "events", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, &[], "roles.rbac.authorization.k8s.io", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, &[], "rolebindings.rbac.authorization.k8s.io", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, &[], "clusterroles.rbac.authorization.k8s.io", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, &[], "clusterrolebindings.rbac.authorization.k8s.io", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", false, &[], "selfsubjectaccessreviews.authorization.k8s.io", custom=false, status=false, scale=false, gen=false, cat=&[]),
    res!("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", false, &["crd", "crds"], "customresourcedefinitions.apiextensions.k8s.io", custom=false, status=true, scale=false, gen=true, cat=&[]),
    res!("argoproj.io", "v1alpha1", "Application", "applications", "application", true, &["app", "apps"], "applications.argoproj.io", custom=true, status=false, scale=false, gen=true, cat=&["argo"]),
    res!("argocd-image-updater.argoproj.io", "v1alpha1", "ImageUpdater", "imageupdaters", "imageupdater", true, &[], "imageupdaters.argocd-image-updater.argoproj.io", custom=true, status=true, scale=false, gen=true, cat=&[]),
];

impl ResourceDef {
    /// `apps/v1`, or `v1` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource as Kubernetes names it in messages: `deployments.apps`, `pods`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Finds the resource served at `group/version/plural`.
    pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource whose native representation is stored (the first with this storage key).
    pub fn by_storage(storage: &str) -> &'static ResourceDef {
        RESOURCES
            .iter()
            .find(|r| r.storage == storage)
            .expect("storage keys come from the table")
    }

    /// Finds a resource by kind and apiVersion.
    pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
        RESOURCES
            .iter()
            .find(|r| r.kind == kind && r.api_version() == api_version)
    }

    /// Whether this view differs from the stored representation.
    fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io"
    }

    /// Converts a stored object to this resource's view (sets `apiVersion`/`kind`).
    pub fn to_view(&self, stored: &Value) -> Value {
        let mut out = if self.is_events_v1() {
            core_event_to_events_v1(stored)
        } else {
            stored.clone()
        };
        if let Some(m) = out.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(self.api_version()));
            m.insert("kind".into(), Value::String(self.kind.into()));
        }
        out
    }

    /// Converts an object in this resource's view to the stored representation.
    pub fn to_storage(&self, view: &Value) -> Value {
        let native = Self::by_storage(self.storage);
        let mut out = if self.is_events_v1() {
            events_v1_to_core_event(view)
        } else {
            view.clone()
        };
        if let Some(m) = out.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(native.api_version()));
            m.insert("kind".into(), Value::String(native.kind.into()));
        }
        out
    }
}

/// Field pairs (core/v1 name, events.k8s.io/v1 name).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("related", "related"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("metadata", "metadata"),
];

fn core_event_to_events_v1(core: &Value) -> Value {
    let mut out = Map::new();
    for (c, e) in EVENT_FIELDS {
        if let Some(v) = core.get(*c) {
            out.insert((*e).to_string(), v.clone());
        }
    }
    if let Some(series) = core.get("series") {
        out.insert(
            "series".into(),
            json!({"count": series.get("count"), "lastObservedTime": series.get("lastObservedTime")}),
        );
    }
    Value::Object(out)
}

fn events_v1_to_core_event(v1: &Value) -> Value {
    let mut out = Map::new();
    for (c, e) in EVENT_FIELDS {
        if let Some(v) = v1.get(*e) {
            out.insert((*c).to_string(), v.clone());
        }
    }
    if let Some(series) = v1.get("series") {
        out.insert("series".into(), series.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_store_seen_two_ways() {
        let core = ResourceDef::find("", "v1", "events").unwrap();
        let v1 = ResourceDef::find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(core.storage, v1.storage);
        let stored = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "reason": "Pulled"});
        let view = v1.to_view(&stored);
        assert_eq!(view["regarding"]["name"], "p");
        assert_eq!(view["note"], "hi");
        assert_eq!(view["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1.to_storage(&view), stored);
    }

    #[test]
    fn qualified_names_match_kubernetes_messages() {
        assert_eq!(
            ResourceDef::find("apps", "v1", "deployments")
                .unwrap()
                .qualified(),
            "deployments.apps"
        );
        assert_eq!(
            ResourceDef::find("", "v1", "pods").unwrap().qualified(),
            "pods"
        );
    }
}
