//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}` and the
//! per group-version `APIResourceList`s, built from the resource table.
//!
//! Owns the shape of discovery answers (the legacy, non-aggregated form that
//! kubectl and kube-rs fall back to). It must not serve objects.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::resources::{RESOURCES, ResourceDef};

/// The Kubernetes version the test bed claims to be.
pub const KUBE_MINOR: &str = "32";

/// Discovery could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No such group or group-version.
    #[error("no group version {0}")]
    UnknownGroupVersion(String),
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-freshet-testbed"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn groups() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        let v = out.entry(r.group).or_default();
        if !v.contains(&r.version) {
            v.push(r.version);
        }
    }
    out
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

/// `/apis`.
pub fn group_list() -> Value {
    // Kubernetes lists built-in groups before custom ones.
    let mut gs: Vec<(&str, Vec<&str>)> = groups().into_iter().collect();
    let custom = |g: &str| RESOURCES.iter().any(|r| r.group == g && r.custom);
    gs.sort_by_key(|(g, _)| (custom(g), *g));
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": gs.iter().map(|(g, v)| group_json(g, v)).collect::<Vec<_>>(),
    })
}

/// `/apis/{group}`.
pub fn group(name: &str) -> Result<Value, DiscoveryError> {
    let gs = groups();
    let v = gs
        .get(name)
        .ok_or_else(|| DiscoveryError::UnknownGroupVersion(name.to_string()))?;
    let mut g = group_json(name, v);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Ok(g)
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(group: &str, version: &str) -> Result<Value, DiscoveryError> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let rs: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return Err(DiscoveryError::UnknownGroupVersion(gv));
    }
    let mut resources = Vec::new();
    for r in rs {
        let mut main = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        resources.push(main);
        if r.status {
            resources.push(
                json!({"name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        if r.kind == "ServiceAccount" {
            resources.push(json!({"name": "serviceaccounts/token", "singularName": "",
                "namespaced": true, "group": "authentication.k8s.io", "version": "v1",
                "kind": "TokenRequest", "verbs": ["create"]}));
        }
        if r.scale {
            resources.push(json!({"name": format!("{}/scale", r.plural), "singularName": "",
                "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"]}));
        }
    }
    Ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_v1_lists_deployments_with_subresources() {
        let l = resource_list("apps", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments"));
        assert!(names.contains(&"deployments/status"));
        assert!(names.contains(&"deployments/scale"));
        assert!(resource_list("nope", "v1").is_err());
    }

    #[test]
    fn group_list_has_every_group() {
        let l = group_list();
        let names: Vec<&str> = l["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for g in [
            "apps",
            "batch",
            "coordination.k8s.io",
            "events.k8s.io",
            "rbac.authorization.k8s.io",
            "argoproj.io",
        ] {
            assert!(names.contains(&g), "{g}");
        }
    }
}
