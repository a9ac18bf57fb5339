//! What a command reads besides the workload: the digests its pods run (their
//! `imageID`) and, for `--to-revision`, a Deployment's ReplicaSet of that revision.
//!
//! Owns the reading of pods by the workload's `spec.selector.matchLabels` and of
//! ReplicaSets by owner and `deployment.kubernetes.io/revision`. Must not decide:
//! which digest to pin or hold is `freshet_core::safety::command`'s.

use std::collections::{BTreeMap, BTreeSet};

use freshet_core::refresh::WorkloadKind;
use freshet_core::{Digest, Reference};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::CommandError;

/// The annotation a Deployment's ReplicaSets carry their revision in.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Pods listed per command, at most.
const MAX_PODS: u32 = 500;

/// The label selector of a workload (`spec.selector.matchLabels`), `None` when it
/// has none (a CronJob).
pub fn selector(object: &DynamicObject) -> Option<String> {
    let labels = object.data["spec"]["selector"]["matchLabels"].as_object()?;
    let terms: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    (!terms.is_empty()).then(|| terms.join(","))
}

/// The digest in an `imageID` (`repo@sha256:…`, `docker-pullable://repo@sha256:…`).
pub fn digest_of_image_id(image_id: &str) -> Option<Digest> {
    let (_, digest) = image_id.rsplit_once('@')?;
    Digest::parse(digest).ok()
}

/// Per container name, the digests the pods matching `selector` run.
pub async fn running(
    kube: &kube::Client,
    namespace: &str,
    selector: Option<&str>,
) -> Result<BTreeMap<String, BTreeSet<Digest>>, CommandError> {
    let mut out: BTreeMap<String, BTreeSet<Digest>> = BTreeMap::new();
    let Some(selector) = selector else {
        return Ok(out);
    };
    let pods: Api<Pod> = Api::namespaced(kube.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(selector).limit(MAX_PODS))
        .await
        .map_err(|source| CommandError::Read {
            what: format!("pods in {namespace} ({selector})"),
            source: Box::new(source),
        })?;
    for pod in list.items {
        let Some(status) = pod.status else { continue };
        let statuses = status
            .container_statuses
            .into_iter()
            .flatten()
            .chain(status.init_container_statuses.into_iter().flatten());
        for s in statuses {
            if let Some(d) = digest_of_image_id(&s.image_id) {
                out.entry(s.name).or_default().insert(d);
            }
        }
    }
    Ok(out)
}

/// For `--to-revision N`: the digest container `container` ran in revision
/// `revision` of Deployment `object`: the digest its image names there, else the one
/// digest that revision's pods still report.
pub async fn revision_digest(
    kube: &kube::Client,
    kind: WorkloadKind,
    object: &DynamicObject,
    revision: u64,
    container: &str,
) -> Result<Digest, CommandError> {
    if kind != WorkloadKind::Deployment {
        return Err(CommandError::Revision {
            revision,
            reason: "only a Deployment keeps revisions (ReplicaSets); use --to DIGEST".into(),
        });
    }
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(kube.clone(), &namespace);
    let mut params = ListParams::default().limit(MAX_PODS);
    if let Some(s) = selector(object) {
        params = params.labels(&s);
    }
    let list = api
        .list(&params)
        .await
        .map_err(|source| CommandError::Read {
            what: format!("replicasets in {namespace}"),
            source: Box::new(source),
        })?;
    let wanted = revision.to_string();
    let rs = list
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .find(|rs| {
            rs.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                == Some(&wanted)
        })
        .ok_or_else(|| CommandError::Revision {
            revision,
            reason: "no ReplicaSet of this Deployment has that revision (kubectl rollout history lists them)".into(),
        })?;
    let template = serde_json::to_value(rs.spec.template.as_ref()).unwrap_or(Value::Null);
    let image = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| template["spec"][k].as_array())
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c["image"].as_str())
        .ok_or_else(|| CommandError::Revision {
            revision,
            reason: format!("container {container} is not in that revision"),
        })?;
    if let Some(d) = Reference::parse(image)
        .ok()
        .and_then(|r| r.digest().cloned())
    {
        return Ok(d);
    }
    let hash = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned();
    let ran = match hash {
        Some(h) => running(kube, &namespace, Some(&format!("pod-template-hash={h}"))).await?,
        None => BTreeMap::new(),
    };
    let digests = ran.get(container).cloned().unwrap_or_default();
    match digests.len() {
        1 => Ok(digests.into_iter().next().expect("one")),
        _ => Err(CommandError::Revision {
            revision,
            reason: format!(
                "it names {image:?}, a tag without a digest, and {} of its pods report which digest they ran; use --to DIGEST",
                if digests.is_empty() {
                    "none"
                } else {
                    "several"
                }
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_give_their_digest() {
        let hex = "a".repeat(64);
        for id in [
            format!("registry:5000/team/api@sha256:{hex}"),
            format!("docker-pullable://nginx@sha256:{hex}"),
        ] {
            assert_eq!(
                digest_of_image_id(&id).unwrap().as_str(),
                format!("sha256:{hex}")
            );
        }
        assert_eq!(digest_of_image_id(""), None);
        assert_eq!(digest_of_image_id("nginx:1"), None);
    }
}
