//! Image resolution for the simulated kubelet: the [`ImageResolver`] trait the
//! test bed calls when a pod starts, the [`RegistryResolver`] that asks the
//! real registry through `freshet-registry`, and two simple implementations
//! for tests (a fixed map, and a deterministic fake).
//!
//! Owns the contract between the kubelet and a registry. It must not cache
//! (the kubelet keeps the per-node image cache) nor know about pods.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;

/// Why an image could not be pulled. The kubelet reports it as `ErrImagePull`
/// with this error's text as the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImagePullError {
    /// The repository or tag does not exist.
    #[error("failed to resolve reference \"{image}\": not found")]
    NotFound {
        /// The image reference.
        image: String,
    },
    /// The image exists but has no manifest for the node's platform.
    #[error("no match for platform in manifest: image \"{image}\" has no {platform} variant")]
    PlatformMissing {
        /// The image reference.
        image: String,
        /// `os/arch[/variant]`.
        platform: String,
    },
    /// The registry refused the pull.
    #[error("failed to authorize pulling \"{image}\": {reason}")]
    Unauthorized {
        /// The image reference.
        image: String,
        /// What the registry said.
        reason: String,
    },
    /// Any other failure (network, malformed manifest).
    #[error("failed to pull \"{image}\": {reason}")]
    Other {
        /// The image reference.
        image: String,
        /// What went wrong.
        reason: String,
    },
}

/// What a pull of one image on one node found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The digest the tag names (the index digest of a multi-arch image): what
    /// containerd reports in `imageID`.
    pub digest: String,
    /// The digest of the node platform's image manifest.
    pub platform_digest: String,
}

/// Resolves an image reference to the digest a node of a given platform would run.
///
/// Contract, as a container runtime behaves:
/// - `image` is the pod's `image` string exactly as written (`localhost:5000/app:1.2`,
///   `app@sha256:…`, `nginx`); a missing tag means `latest`, a missing registry
///   means Docker Hub.
/// - Return the digest (`sha256:…`) of the **platform-specific** image manifest
///   for `os`/`arch`/`variant` (from the image index if the tag names one; the
///   manifest's own digest if the tag names a single-platform manifest whose
///   config matches the platform).
/// - If the reference pins a digest, return the platform manifest's digest
///   when the pinned digest is an index, or the pinned digest itself.
/// - Return [`ImagePullError::PlatformMissing`] when no manifest matches the
///   platform, and [`ImagePullError::NotFound`] when the tag does not exist.
/// - Do not cache: the kubelet decides when to pull (`imagePullPolicy` and its
///   per-node cache).
#[async_trait]
pub trait ImageResolver: Send + Sync {
    /// Resolves `image` for the platform `os/arch[/variant]`.
    async fn resolve(
        &self,
        image: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
    ) -> Result<PulledImage, ImagePullError>;

    /// Like [`resolve`](Self::resolve), with the credentials of the pod's image
    /// pull secrets, tried in order: each is `(namespace/name, data)` where data is
    /// a `.dockerconfigjson` document or a legacy `.dockercfg` map. The default
    /// ignores them (resolvers that need no registry).
    async fn resolve_with_secrets(
        &self,
        image: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
        pull_secrets: &[(String, Vec<u8>)],
    ) -> Result<PulledImage, ImagePullError> {
        let _ = pull_secrets;
        self.resolve(image, os, arch, variant).await
    }
}

fn platform(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// A resolver over a fixed, changeable table: image → platform → digest.
#[derive(Debug, Default)]
pub struct MapResolver {
    table: std::sync::Mutex<HashMap<String, HashMap<String, String>>>,
}

impl MapResolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the digest `image` resolves to on `platform` (`linux/amd64`).
    pub fn set(&self, image: &str, platform: &str, digest: &str) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(image.to_string())
            .or_default()
            .insert(platform.to_string(), digest.to_string());
    }
}

#[async_trait]
impl ImageResolver for MapResolver {
    async fn resolve(
        &self,
        image: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
    ) -> Result<PulledImage, ImagePullError> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let platforms = table.get(image).ok_or_else(|| ImagePullError::NotFound {
            image: image.into(),
        })?;
        let wanted = platform(os, arch, variant);
        platforms
            .get(&wanted)
            .or_else(|| platforms.get(&platform(os, arch, None)))
            .map(|d| PulledImage {
                digest: d.clone(),
                platform_digest: d.clone(),
            })
            .ok_or(ImagePullError::PlatformMissing {
                image: image.into(),
                platform: wanted,
            })
    }
}

/// A resolver that needs no registry: every image exists for every platform,
/// and its digest is a hash of the reference, the platform and a generation
/// counter that [`FakeResolver::bump`] advances (a "push" of a new image).
#[derive(Default)]
pub struct FakeResolver {
    generations: std::sync::Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for FakeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeResolver").finish_non_exhaustive()
    }
}

impl FakeResolver {
    /// Makes `image` resolve to new digests from now on.
    pub fn bump(&self, image: &str) {
        *self
            .generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(image.to_string())
            .or_default() += 1;
    }
}

#[async_trait]
impl ImageResolver for FakeResolver {
    async fn resolve(
        &self,
        image: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
    ) -> Result<PulledImage, ImagePullError> {
        if let Some((_, d)) = image.split_once('@') {
            return Ok(PulledImage {
                digest: d.to_string(),
                platform_digest: d.to_string(),
            });
        }
        let g = self
            .generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(image)
            .copied()
            .unwrap_or(0);
        let text = format!("{image}|{}|{g}", platform(os, arch, variant));
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let d = format!("sha256:{hex}");
        Ok(PulledImage {
            digest: d.clone(),
            platform_digest: d,
        })
    }
}

/// The resolver the test bed uses by default: the real registry, through
/// freshet's registry client, anonymously or with the pod's image pull secrets
/// (as a real kubelet does). Each pull uses a fresh client,
/// because a client memoises every manifest it has asked for and a node must
/// see a moved tag.
pub struct RegistryResolver {
    _private: (),
}

impl fmt::Debug for RegistryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryResolver").finish_non_exhaustive()
    }
}

impl RegistryResolver {
    /// An anonymous client with default options (loopback registries may use
    /// plain http). Needs a rustls crypto provider installed.
    pub fn anonymous() -> Result<Self, ImagePullError> {
        Self::client("", &[]).map(|_| Self { _private: () })
    }

    fn client(
        image: &str,
        pull_secrets: &[(String, Vec<u8>)],
    ) -> Result<freshet_registry::Client, ImagePullError> {
        let other = |reason: String| ImagePullError::Other {
            image: image.into(),
            reason,
        };
        let mut store = freshet_registry::CredentialStore::anonymous();
        for (name, data) in pull_secrets {
            store = store
                .with_pull_secret(name, data)
                .map_err(|e| other(e.to_string()))?;
        }
        freshet_registry::Client::new(store, freshet_registry::ClientOptions::default())
            .map_err(|e| other(e.to_string()))
    }
}

#[async_trait]
impl ImageResolver for RegistryResolver {
    async fn resolve(
        &self,
        image: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
    ) -> Result<PulledImage, ImagePullError> {
        self.resolve_with_secrets(image, os, arch, variant, &[])
            .await
    }

    async fn resolve_with_secrets(
        &self,
        image: &str,
        os: &str,
        arch: &str,
        variant: Option<&str>,
        pull_secrets: &[(String, Vec<u8>)],
    ) -> Result<PulledImage, ImagePullError> {
        use freshet_registry::RegistryError as E;
        let parse = |text: &str| {
            freshet_core::Reference::parse(text).map_err(|e| ImagePullError::Other {
                image: image.into(),
                reason: e.to_string(),
            })
        };
        let mut reference = parse(image)?;
        // As containerd does: a digest wins over the tag beside it
        // (`repo:tag@sha256:…` pulls the digest, whatever the tag names now).
        if let (Some(_), Some(digest)) = (reference.tag(), reference.digest()) {
            reference = parse(&format!("{}@{digest}", reference.name()))?;
        }
        let platform = freshet_core::Platform::new(os, arch, variant);
        let want = freshet_registry::Want {
            platforms: false,
            platform: Some(platform.clone()),
        };
        match Self::client(image, pull_secrets)?
            .resolve(&reference, &want)
            .await
        {
            Ok(r) => {
                let digest = r.digest.as_str().to_string();
                let platform_digest = r
                    .platform_digest
                    .map_or_else(|| digest.clone(), |d| d.as_str().to_string());
                Ok(PulledImage {
                    digest,
                    platform_digest,
                })
            }
            Err(E::NoMatchingPlatform { .. }) => Err(ImagePullError::PlatformMissing {
                image: image.into(),
                platform: platform.to_string(),
            }),
            Err(E::NotFound { .. }) => Err(ImagePullError::NotFound {
                image: image.into(),
            }),
            Err(e @ (E::Unauthorized { .. } | E::Forbidden { .. })) => {
                Err(ImagePullError::Unauthorized {
                    image: image.into(),
                    reason: e.to_string(),
                })
            }
            Err(e) => Err(ImagePullError::Other {
                image: image.into(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn map_resolver_reports_missing_platform() {
        let r = MapResolver::new();
        r.set("app:1", "linux/amd64", "sha256:aa");
        assert_eq!(
            r.resolve("app:1", "linux", "amd64", None)
                .await
                .unwrap()
                .digest,
            "sha256:aa"
        );
        assert!(matches!(
            r.resolve("app:1", "linux", "arm64", None).await,
            Err(ImagePullError::PlatformMissing { .. })
        ));
        assert!(matches!(
            r.resolve("app:2", "linux", "amd64", None).await,
            Err(ImagePullError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn fake_resolver_changes_digest_on_bump() {
        let r = FakeResolver::default();
        let a = r.resolve("app:1", "linux", "amd64", None).await.unwrap();
        assert_ne!(a, r.resolve("app:1", "linux", "arm64", None).await.unwrap());
        r.bump("app:1");
        assert_ne!(a, r.resolve("app:1", "linux", "amd64", None).await.unwrap());
    }
}
