//! What a digest watch's tag names now, in full: an index with its per-platform
//! children, or a single image with the platform of its config blob, as the core's
//! [`Target`].
//!
//! Owns which images are asked in full and how: only digest watches whose tag
//! names something other than what a workload recorded (or nothing recorded yet),
//! so a steady pass asks nothing beyond the HEAD the digest already cost. An index
//! costs one GET of the index; a single image one GET of its manifest and of its
//! config blob (through the registry's CDN redirect), asked as "the digest for
//! `linux/amd64`" whose refusal names the platform the image offers. A failure
//! leaves the image out: the planner then acts as it did without runs facts. Must
//! not decide anything.

use std::collections::BTreeMap;

use freshet_core::manifest::{Child, Manifest, OCI_MANIFEST};
use freshet_core::refresh::audit::Audit;
use freshet_core::refresh::{Enrollment, ImageFacts, tracked_images};
use freshet_core::runs::Target;
use freshet_core::{Digest, Platform};
use freshet_registry::{Client, RegistryError, Want};
use futures::StreamExt as _;

use crate::workloads::ReadWorkload;

/// The platform asked for to learn a single image's platform from its config.
const PROBE: &str = "linux/amd64";

/// The targets of the images of `members` whose tag moved away from a record, or
/// that have none, by canonical name; `facts` holds their resolved digests.
pub async fn resolve(
    registry: &Client,
    members: &[(&ReadWorkload, &Enrollment)],
    facts: &ImageFacts,
    concurrency: usize,
) -> BTreeMap<String, Target> {
    let mut wanted: BTreeMap<String, (freshet_core::Reference, Digest)> = BTreeMap::new();
    for (w, e) in members {
        let audit = Audit::read(&w.workload.annotations);
        for (reference, policy) in tracked_images(&w.workload, e) {
            let tag = freshet_core::refresh::plan::tag_of(&reference);
            if policy.needs(Some(&tag)).digest_of.is_none() {
                continue;
            }
            let image = reference.canonical();
            let Some(Ok(digest)) = facts.get(&image).and_then(|f| f.digests.get(&tag)) else {
                continue;
            };
            let recorded = audit.record(&image).map(|r| r.digest.as_str());
            if recorded != Some(digest.as_str()) {
                wanted.insert(image, (reference, digest.clone()));
            }
        }
    }
    futures::stream::iter(wanted)
        .map(|(image, (reference, digest))| async move {
            let target = target(registry, &reference, digest).await;
            (image, target)
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|(image, t)| async move { Some((image, t?)) })
        .collect()
        .await
}

/// The full target of `reference`, whose tag resolved to `digest`.
async fn target(
    registry: &Client,
    reference: &freshet_core::Reference,
    digest: Digest,
) -> Option<Target> {
    let want = Want {
        platforms: true,
        platform: None,
    };
    let resolved = match registry.resolve(reference, &want).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(image = %reference, error = %e, "platforms not read");
            return None;
        }
    };
    if resolved.digest != digest {
        // The tag moved again between the two questions: act on neither.
        return None;
    }
    if resolved.is_index() {
        let manifests = resolved
            .platforms
            .into_iter()
            .map(|p| Child {
                media_type: OCI_MANIFEST.into(),
                digest: p.digest,
                platform: Some(p.platform),
                attestation: false,
            })
            .collect();
        let index = Manifest::Index {
            media_type: resolved.media_type,
            manifests,
        };
        return Some(Target::new(digest, index, None));
    }
    let probe = Platform::parse(PROBE).expect("a platform");
    let want = Want {
        platforms: false,
        platform: Some(probe.clone()),
    };
    let platform = match registry.resolve(reference, &want).await {
        Ok(_) => Some(probe),
        Err(RegistryError::NoMatchingPlatform { available, .. }) => {
            Platform::parse(&available).ok()
        }
        Err(e) => {
            tracing::debug!(image = %reference, error = %e, "single image's platform not read");
            None
        }
    };
    Some(Target::Image { digest, platform })
}
