//! A minimal OpenAPI v3 surface: the `/openapi/v3` index and, per group
//! version, a document with one path per resource whose operations carry
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter.
//!
//! That is what kubectl reads to decide that the server validates fields
//! itself (so `kubectl apply` without `--validate=false` works). It holds no
//! schemas: kubectl then builds strategic merge patches from its compiled-in
//! types, as it does against servers without OpenAPI. It must not serve
//! objects.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::resources::{RESOURCES, ResourceDef};

/// An OpenAPI document was asked for that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// No such group version.
    #[error("no OpenAPI document for {0}")]
    UnknownGroupVersion(String),
}

/// `api/v1`, `apis/apps/v1`: the OpenAPI v3 path key of a resource's group version.
fn gv_path(r: &ResourceDef) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

/// `/openapi/v3`.
pub fn index() -> Value {
    let gvs: BTreeSet<String> = RESOURCES.iter().map(gv_path).collect();
    let paths: serde_json::Map<String, Value> = gvs
        .into_iter()
        .map(|gv| {
            let url = format!(
                "/openapi/v3/{gv}?hash={}",
                crate::util::short_hash(&json!(gv))
            );
            (gv, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

fn operation(r: &ResourceDef, verb: &str) -> Value {
    json!({
        "operationId": format!("{verb}{}", r.kind),
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ],
        "responses": {"200": {"description": "OK"}},
    })
}

/// `/openapi/v3/{gv}` where `gv` is `api/v1` or `apis/{group}/{version}`.
pub fn group_version(gv: &str) -> Result<Value, OpenApiError> {
    let rs: Vec<&ResourceDef> = RESOURCES.iter().filter(|r| gv_path(r) == gv).collect();
    if rs.is_empty() {
        return Err(OpenApiError::UnknownGroupVersion(gv.to_string()));
    }
    let mut paths = serde_json::Map::new();
    for r in rs {
        let base = if r.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{gv}/{}", r.plural)
        };
        paths.insert(base.clone(), json!({"post": operation(r, "post")}));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"put": operation(r, "put"), "patch": operation(r, "patch")}),
        );
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_every_group_version_document() {
        let idx = index();
        for gv in ["api/v1", "apis/apps/v1", "apis/argoproj.io/v1alpha1"] {
            let url = idx["paths"][gv]["serverRelativeURL"].as_str().unwrap();
            assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
            assert!(group_version(gv).is_ok());
        }
        assert!(group_version("apis/nope/v1").is_err());
    }

    #[test]
    fn patch_operations_declare_field_validation() {
        let doc = group_version("apis/apps/v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
    }
}
