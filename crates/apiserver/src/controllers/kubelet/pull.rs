//! Image pulls: resolving an image for a node's platform with the pod's
//! `imagePullSecrets`, honouring `imagePullPolicy` and the node's image cache, in
//! tasks of their own so a slow registry never stalls the controllers; and
//! whether a pulled image is on the crash list or the pull-fail list (a pull of
//! an image on the pull-fail list fails as a registry error would, so its
//! container waits in `ErrImagePull`, then `ImagePullBackOff`).
//!
//! Owns the pulls in flight, the node image cache and the pull log. It must not
//! write pod status.

use futures::FutureExt as _;
use serde_json::Value;

use super::super::context::{Controllers, NodeSpec};
use super::reference::normalize;
use super::state::{Pull, PullRecord};
use crate::images::{ImagePullError, PulledImage};
use crate::store::ns_name;
use crate::util::{get_path, str_at};

/// Whether an image is on the crash list: by the reference as written, its
/// normalized form, or either digest (bare or as `repo@digest`).
pub(crate) fn crashes(c: &Controllers, image: &str, pulled: &PulledImage) -> bool {
    listed(&c.crash_images, image, pulled)
}

/// Whether `image`, as written or as `pulled`, is on `list` (references as
/// written, normalized, or either digest, bare or as `repo@digest`).
fn listed(list: &[String], image: &str, pulled: &PulledImage) -> bool {
    let (repo, suffix) = normalize(image);
    list.iter().any(|e| {
        e == image
            || *e == format!("{repo}{suffix}")
            || [&pulled.digest, &pulled.platform_digest]
                .iter()
                .any(|d| e == *d || *e == format!("{repo}@{d}"))
    })
}

/// Pulls `image` for pod `uid` on `node`, honouring `policy` and the node's
/// image cache. Pulls run in their own tasks so a slow registry never stalls
/// the controllers: `None` means "still pulling, look again next tick".
pub(crate) fn pull(
    c: &mut Controllers,
    uid: &str,
    node: &NodeSpec,
    image: &str,
    policy: &str,
    pull_secrets: &[(String, Vec<u8>)],
) -> Option<Result<PulledImage, ImagePullError>> {
    let cache_key = (node.name.clone(), image.to_string());
    let cached = c.kubelet.image_cache.get(&cache_key).cloned();
    match (policy, cached) {
        ("IfNotPresent", Some(d)) | ("Never", Some(d)) => return Some(Ok(d)),
        ("Never", None) => {
            return Some(Err(ImagePullError::Other {
                image: image.into(),
                reason: "image is not present with pull policy of Never (ErrImageNeverPull)".into(),
            }));
        }
        _ => {}
    }
    let key = (uid.to_string(), image.to_string());
    match c.kubelet.pulls.remove(&key) {
        Some(Pull::Done(result)) => {
            c.kubelet.pulls.insert(key, Pull::Done(result.clone()));
            Some(result)
        }
        Some(Pull::Running(mut handle)) => {
            if !handle.is_finished() {
                c.kubelet.pulls.insert(key, Pull::Running(handle));
                return None;
            }
            let result = match (&mut handle).now_or_never() {
                Some(Ok(r)) => r,
                Some(Err(e)) => Err(ImagePullError::Other {
                    image: image.into(),
                    reason: e.to_string(),
                }),
                None => return None,
            };
            let result = match result {
                Ok(p) if listed(&c.pull_fail_images, image, &p) => Err(ImagePullError::Other {
                    image: image.into(),
                    reason: "unexpected status code 500 Internal Server Error (on the test bed's pull-fail list)".into(),
                }),
                r => r,
            };
            if let Ok(p) = &result {
                c.kubelet.pull_log.push(PullRecord {
                    node: node.name.clone(),
                    image: image.to_string(),
                    pulled: p.clone(),
                });
                c.kubelet.image_cache.insert(cache_key, p.clone());
            }
            c.kubelet.pulls.insert(key, Pull::Done(result.clone()));
            Some(result)
        }
        None => {
            let resolver = c.resolver.clone();
            let (image, os, arch, variant, secrets) = (
                image.to_string(),
                node.os.clone(),
                node.arch.clone(),
                node.variant.clone(),
                pull_secrets.to_vec(),
            );
            let handle = tokio::spawn(async move {
                resolver
                    .resolve_with_secrets(&image, &os, &arch, variant.as_deref(), &secrets)
                    .await
            });
            c.kubelet.pulls.insert(key, Pull::Running(handle));
            None
        }
    }
}

/// The pod's `imagePullSecrets` that exist and are of a pull-secret type, as
/// `(namespace/name, .dockerconfigjson or .dockercfg data)`. A missing or unusable
/// secret is skipped (a real kubelet also records a `FailedToRetrieveImagePullSecret`
/// event, which the test bed does not).
pub(crate) fn pod_pull_secrets(c: &Controllers, pod: &Value) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    let (ns, _) = ns_name(pod);
    let names = get_path(pod, "spec.imagePullSecrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    names
        .iter()
        .filter_map(|r| {
            let name = r.get("name").and_then(Value::as_str)?;
            let secret = c.store.get("secrets", &ns, name)?;
            let key = match str_at(&secret, "type") {
                "kubernetes.io/dockerconfigjson" => ".dockerconfigjson",
                "kubernetes.io/dockercfg" => ".dockercfg",
                _ => return None,
            };
            let data = match secret
                .pointer(&format!("/data/{key}"))
                .and_then(Value::as_str)
            {
                Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
                None => secret
                    .pointer(&format!("/stringData/{key}"))
                    .and_then(Value::as_str)?
                    .as_bytes()
                    .to_vec(),
            };
            Some((format!("{ns}/{name}"), data))
        })
        .collect()
}

pub(crate) fn forget_pulls(c: &mut Controllers, uid: &str) {
    c.kubelet.pulls.retain(|(u, _), _| u != uid);
}
