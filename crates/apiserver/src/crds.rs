//! The CustomResourceDefinition objects of the custom resources the test bed
//! serves (Argo CD's `Application`, Argo CD Image Updater's `ImageUpdater`), so
//! `kubectl get crd` and clients that read a CRD before using its resource see
//! what a cluster with those controllers installed shows.
//!
//! Owns building those objects from the resource table. It must not register new
//! resources: the served resources are the static table in `resources`, and a
//! CRD created through the API is stored but serves nothing (see
//! `crates/testbed/DIVERGENCES.md`).

use serde_json::{Value, json};

use crate::resources::{RESOURCES, ResourceDef};

/// The CRD object for one custom resource of the table.
pub fn definition(r: &ResourceDef) -> Value {
    let mut names = json!({
        "plural": r.plural,
        "singular": r.singular,
        "kind": r.kind,
        "listKind": format!("{}List", r.kind),
    });
    if !r.short_names.is_empty() {
        names["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        names["categories"] = json!(r.categories);
    }
    let mut version = json!({
        "name": r.version,
        "served": true,
        "storage": true,
        // Unstructured, as Argo CD's own CRDs are for most of the spec.
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
    });
    if r.status {
        version["subresources"] = json!({"status": {}});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": r.qualified()},
        "spec": {
            "group": r.group,
            "names": names,
            "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
            "versions": [version],
        },
        "status": {
            "acceptedNames": names,
            "storedVersions": [r.version],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                    "message": "no conflicts found"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted"},
            ],
        },
    })
}

/// The CRD objects of every custom resource the test bed serves.
pub fn definitions() -> Vec<Value> {
    RESOURCES
        .iter()
        .filter(|r| r.custom)
        .map(definition)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_crd_names_its_resource() {
        let crds = definitions();
        let app = crds
            .iter()
            .find(|c| c["metadata"]["name"] == "applications.argoproj.io")
            .expect("the Application CRD");
        assert_eq!(app["spec"]["names"]["kind"], "Application");
        assert_eq!(app["spec"]["scope"], "Namespaced");
        assert_eq!(app["spec"]["versions"][0]["name"], "v1alpha1");
        assert!(
            crds.iter()
                .any(|c| c["metadata"]["name"] == "imageupdaters.argocd-image-updater.argoproj.io")
        );
    }
}
