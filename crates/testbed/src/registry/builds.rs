//! Images as a CI build pushes them: tagged with a git SHA, with the build time in the
//! config's `created`, for testing `newest-build` (issue 15).
//!
//! Owns [`push_build`] only; it uses [`Pusher`]'s public blob and manifest uploads.
//! Must not be used for anything but tests.

use bytes::Bytes;
use serde_json::json;

use super::TestbedError;
use super::push::{
    OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Platform, Pusher, sha256_digest,
};

/// Pushes `repo:tag` built at `created` (RFC 3339) for `platforms`: one OCI image for
/// one platform, an OCI index over one image per platform otherwise. Returns the tag's
/// digest.
pub async fn push_build(
    pusher: &Pusher,
    repo: &str,
    tag: &str,
    created: &str,
    platforms: &[Platform],
) -> Result<String, TestbedError> {
    let mut children = Vec::new();
    for platform in platforms {
        let layer = Bytes::from(format!("build {repo}:{tag} {platform}\n"));
        let layer_digest = pusher.push_blob(repo, layer.clone()).await?;
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "created": created,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        let config = Bytes::from(serde_json::to_vec(&config).expect("config serialises"));
        let config_digest = pusher.push_blob(repo, config.clone()).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": OCI_LAYER, "size": layer.len(), "digest": layer_digest}],
        });
        let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("manifest serialises"));
        children.push((platform.clone(), manifest));
    }
    if let [(_, manifest)] = children.as_slice() {
        return pusher
            .push_manifest(repo, tag, OCI_MANIFEST, manifest.clone())
            .await;
    }
    let mut entries = Vec::new();
    for (platform, manifest) in &children {
        let digest = sha256_digest(manifest);
        pusher
            .push_manifest(repo, &digest, OCI_MANIFEST, manifest.clone())
            .await?;
        let mut p = json!({"os": platform.os, "architecture": platform.architecture});
        if let Some(v) = &platform.variant {
            p["variant"] = json!(v);
        }
        entries.push(json!({
            "mediaType": OCI_MANIFEST,
            "size": manifest.len(),
            "digest": digest,
            "platform": p,
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let index = Bytes::from(serde_json::to_vec(&index).expect("index serialises"));
    pusher.push_manifest(repo, tag, OCI_INDEX, index).await
}
