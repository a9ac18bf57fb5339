//! Build times for `newest-build`: when the image a tag names was built, for one
//! platform, from its config's `created`.
//!
//! Owns the cheapest path to a config blob and a per-run memo: a manifest `HEAD` of the
//! tag (shared with [`Client::resolve`]'s memo), the index by digest only when the tag
//! names a multi-arch image (memoised by the client too), then the platform's image
//! manifest and its config blob, each read once per run per digest however many tags
//! point at it. Per tag that is 1 HEAD plus, for each distinct image, 1 manifest GET and
//! 1 blob GET (and 1 index GET for a multi-arch tag).
//!
//! Config blobs are served from a CDN on another host on every large registry (a 307
//! to a presigned URL): the transport follows that redirect without any credential
//! (see [`crate::redirect`]), and bodies are capped here.
//!
//! Must not decide which tag is newest: that is `freshet_core::policy::build`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use freshet_core::manifest::{self, Manifest};
use freshet_core::policy::{BuildTime, build::parse_created};
use freshet_core::{Digest, Platform, Reference};
use reqwest::{Method, StatusCode};

use crate::body::read_capped;
use crate::host::Ask;
use crate::stats::Kind;
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

use crate::client::Client;
use crate::error::RegistryError;
use crate::resolve::Want;

/// The most bytes of an image config read (configs are a few KiB).
const MAX_CONFIG_BYTES: usize = manifest::MAX_MANIFEST_BYTES;

type Cell = Arc<OnceCell<Result<BuildTime, RegistryError>>>;

/// (registry, repository, image manifest digest).
type ImageKey = (String, String, String);

/// Reads build times through a [`Client`], each image's config once per run. Cheap to
/// clone; clones share the memo.
#[derive(Clone)]
pub struct BuildTimes {
    client: Client,
    /// Build time by (registry, repository, image manifest digest).
    memo: Arc<Mutex<HashMap<ImageKey, Cell>>>,
}

impl std::fmt::Debug for BuildTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildTimes").finish_non_exhaustive()
    }
}

impl BuildTimes {
    /// Wraps a client (one per run, so its memos are shared).
    pub fn new(client: Client) -> Self {
        BuildTimes {
            client,
            memo: Arc::default(),
        }
    }

    /// The client, for its request counters.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// When the image `reference` (with a tag) names was built for `platform`.
    pub async fn created(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<BuildTime, RegistryError> {
        let head = self.client.resolve(reference, &Want::default()).await?;
        let single = !head.is_index();
        let image_digest = if head.is_index() {
            let want = Want {
                platforms: false,
                platform: Some(platform.clone()),
            };
            let resolved = self.client.resolve(reference, &want).await?;
            resolved.platform_digest.unwrap_or(resolved.digest)
        } else {
            head.digest
        };
        let key = (
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            image_digest.to_string(),
        );
        let cell = {
            let mut memo = self.memo.lock().expect("build time memo");
            memo.entry(key).or_default().clone()
        };
        cell.get_or_init(|| self.read(reference, &image_digest, platform, single))
            .await
            .clone()
    }

    /// Reads the image manifest by digest, then its config blob.
    async fn read(
        &self,
        reference: &Reference,
        image: &Digest,
        platform: &Platform,
        check_platform: bool,
    ) -> Result<BuildTime, RegistryError> {
        let registry = reference.registry();
        let repo = reference.repository();
        let hosts = self.client.hosts();
        let host = hosts.get(registry);
        let base = host.endpoint.base_url();
        let timeout = hosts.transport().options().request_timeout;
        let what = format!("{registry}/{repo}@{image}");
        let url = format!("{base}/v2/{repo}/manifests/{image}");
        let ask = Ask {
            method: Method::GET,
            url: &url,
            repository: repo,
            accept: Some(manifest::ACCEPT),
            kind: Kind::ManifestGet,
            what: &what,
        };
        let resp = hosts.send(&host, &ask).await?;
        if resp.status() != StatusCode::OK {
            return Err(RegistryError::NotFound {
                host: registry.to_owned(),
                what: format!("manifest {what}"),
            });
        }
        let body =
            read_capped(registry, resp, manifest::MAX_MANIFEST_BYTES, &what, timeout).await?;
        check_hash(registry, &what, &body, image)?;
        let config = match Manifest::parse(None, &body) {
            Ok(Manifest::Image { config, .. }) => config,
            Ok(Manifest::Index { .. }) => {
                return Err(RegistryError::Malformed {
                    host: registry.to_owned(),
                    detail: format!("{what}: an index where an image manifest was expected"),
                });
            }
            Err(e) => {
                return Err(RegistryError::Malformed {
                    host: registry.to_owned(),
                    detail: format!("{what}: {e}"),
                });
            }
        };
        let what = format!("{registry}/{repo}@{config} (image config)");
        let url = format!("{base}/v2/{repo}/blobs/{config}");
        let ask = Ask {
            method: Method::GET,
            url: &url,
            repository: repo,
            accept: None,
            kind: Kind::BlobGet,
            what: &what,
        };
        let resp = hosts.send(&host, &ask).await?;
        if resp.status() != StatusCode::OK {
            return Err(RegistryError::NotFound {
                host: registry.to_owned(),
                what,
            });
        }
        let body = read_capped(registry, resp, MAX_CONFIG_BYTES, &what, timeout).await?;
        check_hash(registry, &what, &body, &config)?;
        parse_config(registry, &what, &body, platform, check_platform)
    }
}

/// Checks a body against the digest it was asked by.
fn check_hash(registry: &str, what: &str, body: &[u8], want: &Digest) -> Result<(), RegistryError> {
    let got = format!("sha256:{}", hex::encode(Sha256::digest(body)));
    if got != want.as_str() {
        return Err(RegistryError::Malformed {
            host: registry.to_owned(),
            detail: format!("{what}: body does not hash to its digest"),
        });
    }
    Ok(())
}

/// The `created` of an image config, checking its platform when the tag was a single
/// image (an index child's platform was chosen by the index).
fn parse_config(
    registry: &str,
    what: &str,
    body: &[u8],
    platform: &Platform,
    check_platform: bool,
) -> Result<BuildTime, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Config {
        created: Option<String>,
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let malformed = |detail: String| RegistryError::Malformed {
        host: registry.to_owned(),
        detail: format!("{what}: {detail}"),
    };
    let c: Config = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    if check_platform && let (Some(os), Some(arch)) = (&c.os, &c.architecture) {
        let image = Platform::new(os, arch, c.variant.as_deref());
        if &image != platform {
            return Err(RegistryError::NoMatchingPlatform {
                host: registry.to_owned(),
                what: what.to_owned(),
                platform: platform.to_string(),
                available: image.to_string(),
            });
        }
    }
    let created = c
        .created
        .ok_or_else(|| malformed("the image config has no `created` time".into()))?;
    parse_created(&created)
        .ok_or_else(|| malformed(format!("`created` {created:?} is not RFC 3339")))
}
