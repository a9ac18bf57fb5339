//! Resolution: from an image reference to its digest, its platforms, and the digest
//! of one platform.
//!
//! Owns the HEAD-first protocol: `HEAD /v2/<name>/manifests/<tag>` with all four
//! manifest types in `Accept`, reading `Docker-Content-Digest`. Only when that header
//! is missing (some caches drop it) or HEAD is not allowed does it GET, and then it
//! hashes the exact bytes and checks them against the header. An index body is fetched
//! by digest only when platforms are wanted, and once per digest per run. Manifests
//! over 4 MiB are refused. A single image's platform comes from its config blob,
//! which real registries serve through a redirect to a CDN (followed without
//! credentials by [`crate::transport`]). It talks to registries only through
//! [`Hosts::send`] and must not know about auth, retries or redirects.

use bytes::Bytes;
use freshet_core::manifest::{self, Manifest};
use freshet_core::{Digest, Platform, Reference};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::body::{body_detail, read_capped};
use crate::error::RegistryError;
use crate::host::{Ask, Host, Hosts};
use crate::memo::Memo;
use crate::stats::Kind;

/// Nested indexes followed at most when looking for one platform's image.
const MAX_INDEX_DEPTH: usize = 3;

/// The run-scoped answers of the resolver, keyed by (registry, repository, target).
pub(crate) struct Memos {
    heads: Memo<(String, String, String), Head>,
    manifests: Memo<(String, String, String), Manifest>,
    configs: Memo<(String, String, String), Platform>,
}

impl Memos {
    pub(crate) fn new() -> Self {
        Self {
            heads: Memo::new(),
            manifests: Memo::new(),
            configs: Memo::new(),
        }
    }
}

/// The resolver of one client: its hosts and memos.
pub(crate) struct Resolver<'a> {
    pub(crate) hosts: &'a Hosts,
    pub(crate) memos: &'a Memos,
}

/// What a caller wants to know besides the digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Want {
    /// List the platforms of a multi-arch image (costs one GET of the index).
    pub platforms: bool,
    /// The digest of this platform's image.
    pub platform: Option<Platform>,
}

/// One platform of a multi-arch image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformDigest {
    /// The platform.
    pub platform: Platform,
    /// The digest of that platform's image manifest.
    pub digest: Digest,
}

/// The answer for one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The tag's own digest: the index digest for a multi-arch image. This is what
    /// containerd reports as `imageID`.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The platforms of a multi-arch image (empty for a single image, or when not
    /// asked for).
    pub platforms: Vec<PlatformDigest>,
    /// The digest for the requested platform.
    pub platform_digest: Option<Digest>,
}

impl Resolved {
    /// True for an OCI index or Docker manifest list.
    pub fn is_index(&self) -> bool {
        is_index(&self.media_type)
    }
}

/// The outcome of a HEAD (or of the GET that replaced it).
#[derive(Debug, Clone)]
pub(crate) struct Head {
    digest: Digest,
    media_type: String,
    body: Option<Bytes>,
}

fn is_index(media_type: &str) -> bool {
    media_type == manifest::OCI_INDEX || media_type == manifest::DOCKER_LIST
}

fn is_image(media_type: &str) -> bool {
    media_type == manifest::OCI_MANIFEST || media_type == manifest::DOCKER_MANIFEST
}

fn sha256_digest(bytes: &[u8]) -> Digest {
    Digest::from_sha256_hex(&hex::encode(Sha256::digest(bytes))).expect("sha256 hex is valid")
}

impl Resolver<'_> {
    /// Resolves one reference. For `repo:tag@digest` the tag is resolved (what the tag
    /// points to now); for `repo@digest` the digest is checked to exist.
    pub(crate) async fn resolve(
        &self,
        reference: &Reference,
        want: &Want,
    ) -> Result<Resolved, RegistryError> {
        let host = self.hosts.get(reference.registry());
        let repo = reference.repository();
        let target = match reference.tag_or_latest() {
            Some(tag) => tag.to_owned(),
            None => reference
                .digest()
                .expect("a reference without tag has a digest")
                .to_string(),
        };
        let key = (
            reference.registry().to_owned(),
            repo.to_owned(),
            target.clone(),
        );
        let head = self
            .memos
            .heads
            .get_or_run(&key, || self.head(&host, repo, &target))
            .await?;
        let mut resolved = Resolved {
            digest: head.digest.clone(),
            media_type: head.media_type.clone(),
            platforms: Vec::new(),
            platform_digest: None,
        };
        if !want.platforms && want.platform.is_none() {
            return Ok(resolved);
        }
        if is_image(&head.media_type) && want.platform.is_none() {
            return Ok(resolved);
        }
        let manifest = self.manifest(&host, repo, &head).await?;
        if let Manifest::Index { media_type, .. } = &manifest {
            resolved.media_type = media_type.clone();
            resolved.platforms = platform_list(&manifest);
        }
        if let Some(platform) = &want.platform {
            let what = format!("{}:{target}", reference.name());
            let (digest, media_type) = self
                .platform_digest(&host, repo, &head, manifest, platform, &what)
                .await?;
            if let Some(media_type) = media_type {
                resolved.media_type = media_type;
            }
            resolved.platform_digest = Some(digest);
        }
        Ok(resolved)
    }

    /// The digest of `platform`'s image: a child of the index (following nested
    /// indexes, never answering with an index digest), or the image itself when its
    /// config says it is built for `platform`. Also the image's media type for a
    /// single image.
    async fn platform_digest(
        &self,
        host: &Host,
        repo: &str,
        head: &Head,
        mut manifest: Manifest,
        platform: &Platform,
        what: &str,
    ) -> Result<(Digest, Option<String>), RegistryError> {
        let no_match = |available: String| RegistryError::NoMatchingPlatform {
            host: host.name().to_owned(),
            what: what.to_owned(),
            platform: platform.to_string(),
            available,
        };
        for _ in 0..MAX_INDEX_DEPTH {
            match &manifest {
                Manifest::Index { .. } => {
                    let Some(child) = manifest.select(platform) else {
                        let available = platform_list(&manifest)
                            .iter()
                            .map(|p| p.platform.to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(no_match(available));
                    };
                    if !is_index(&child.media_type) {
                        return Ok((child.digest.clone(), None));
                    }
                    // The platform's entry is itself an index: look inside it.
                    let nested = Head {
                        digest: child.digest.clone(),
                        media_type: child.media_type.clone(),
                        body: None,
                    };
                    manifest = self.manifest(host, repo, &nested).await?;
                }
                Manifest::Image { config, media_type } => {
                    let image_platform = self.config_platform(host, repo, config).await?;
                    if &image_platform != platform {
                        return Err(no_match(image_platform.to_string()));
                    }
                    return Ok((head.digest.clone(), Some(media_type.clone())));
                }
            }
        }
        Err(RegistryError::Malformed {
            host: host.name().to_owned(),
            detail: format!(
                "{what}: indexes nested more than {MAX_INDEX_DEPTH} deep for {platform}"
            ),
        })
    }

    async fn head(&self, host: &Host, repo: &str, target: &str) -> Result<Head, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{target}", host.endpoint.base_url());
        let registry = host.name();
        let what = format!("{registry}/{repo}:{target}");
        let ask = Ask {
            method: Method::HEAD,
            url: &url,
            repository: repo,
            accept: Some(manifest::ACCEPT),
            kind: Kind::ManifestHead,
            what: &what,
        };
        let resp = self.hosts.send(host, &ask).await?;
        match resp.status() {
            StatusCode::OK => {
                if resp
                    .content_length()
                    .is_some_and(|n| n > manifest::MAX_MANIFEST_BYTES as u64)
                {
                    return Err(RegistryError::TooLarge {
                        host: registry.to_owned(),
                        what: format!("manifest for {what}"),
                        limit: manifest::MAX_MANIFEST_BYTES,
                        unit: "bytes",
                    });
                }
                let digest = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| Digest::parse(v.trim()).ok());
                let media_type = content_type(&resp);
                match digest {
                    Some(digest) => {
                        check_requested_digest(registry, target, &digest)?;
                        Ok(Head {
                            digest,
                            media_type,
                            body: None,
                        })
                    }
                    None => {
                        tracing::debug!(registry = %registry, repo, target, "no Docker-Content-Digest on HEAD: falling back to GET");
                        self.get_manifest(host, repo, target).await
                    }
                }
            }
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                host: registry.to_owned(),
                what: format!("manifest {repo}:{target}"),
            }),
            StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED
            | StatusCode::BAD_REQUEST => self.get_manifest(host, repo, target).await,
            other => Err(RegistryError::Malformed {
                host: registry.to_owned(),
                detail: format!("HEAD {what} answered {other}"),
            }),
        }
    }

    /// GETs a manifest and hashes the exact bytes; checks the digest header and the
    /// requested digest against them.
    async fn get_manifest(
        &self,
        host: &Host,
        repo: &str,
        target: &str,
    ) -> Result<Head, RegistryError> {
        let registry = host.name();
        let url = format!("{}/v2/{repo}/manifests/{target}", host.endpoint.base_url());
        let what = format!("{registry}/{repo}:{target}");
        let ask = Ask {
            method: Method::GET,
            url: &url,
            repository: repo,
            accept: Some(manifest::ACCEPT),
            kind: Kind::ManifestGet,
            what: &what,
        };
        let resp = self.hosts.send(host, &ask).await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    host: registry.to_owned(),
                    what: format!("manifest {repo}:{target}"),
                });
            }
            other => {
                return Err(RegistryError::Malformed {
                    host: registry.to_owned(),
                    detail: format!("GET {what} answered {other}{}", body_detail(resp).await),
                });
            }
        }
        let header = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_owned());
        let media_type = content_type(&resp);
        let timeout = self.hosts.transport().options().request_timeout;
        let body = read_capped(
            registry,
            resp,
            manifest::MAX_MANIFEST_BYTES,
            &format!("manifest for {what}"),
            timeout,
        )
        .await?;
        let digest = sha256_digest(&body);
        if let Some(header) = header
            && header != digest.as_str()
        {
            return Err(RegistryError::Malformed {
                host: registry.to_owned(),
                detail: format!(
                    "{what}: Docker-Content-Digest {} does not match the sha256 of the body ({digest}); a proxy may have altered or cut the manifest",
                    crate::text::quote(&header, 100)
                ),
            });
        }
        check_requested_digest(registry, target, &digest)?;
        let media_type = manifest_media_type(registry, &what, media_type, &body)?;
        Ok(Head {
            digest,
            media_type,
            body: Some(body),
        })
    }

    /// The parsed manifest behind a HEAD: from the GET body if there was one, else
    /// fetched by digest once per run.
    async fn manifest(
        &self,
        host: &Host,
        repo: &str,
        head: &Head,
    ) -> Result<Manifest, RegistryError> {
        let registry = host.name().to_owned();
        let parse = |body: &Bytes| {
            Manifest::parse(Some(&head.media_type), body).map_err(|e| RegistryError::Malformed {
                host: registry.clone(),
                detail: format!("{registry}/{repo}@{}: {e}", head.digest),
            })
        };
        if let Some(body) = &head.body {
            return parse(body);
        }
        let key = (registry.clone(), repo.to_owned(), head.digest.to_string());
        self.memos
            .manifests
            .get_or_run(&key, || async {
                let got = self.get_manifest(host, repo, head.digest.as_str()).await?;
                parse(got.body.as_ref().expect("GET keeps the body"))
            })
            .await
    }

    /// The platform recorded in a single image's config blob. Registries often
    /// answer the blob GET with a redirect to a CDN on another host.
    async fn config_platform(
        &self,
        host: &Host,
        repo: &str,
        config: &Digest,
    ) -> Result<Platform, RegistryError> {
        let registry = host.name().to_owned();
        let key = (registry.clone(), repo.to_owned(), config.to_string());
        self.memos
            .configs
            .get_or_run(&key, || self.fetch_config_platform(host, repo, config))
            .await
    }

    async fn fetch_config_platform(
        &self,
        host: &Host,
        repo: &str,
        config: &Digest,
    ) -> Result<Platform, RegistryError> {
        let registry = host.name();
        let url = format!("{}/v2/{repo}/blobs/{config}", host.endpoint.base_url());
        let what = format!("{registry}/{repo}@{config} (image config)");
        let ask = Ask {
            method: Method::GET,
            url: &url,
            repository: repo,
            accept: None,
            kind: Kind::BlobGet,
            what: &what,
        };
        let resp = self.hosts.send(host, &ask).await?;
        if resp.status() != StatusCode::OK {
            return Err(RegistryError::NotFound {
                host: registry.to_owned(),
                what: format!("{what} (answered {})", resp.status()),
            });
        }
        let timeout = self.hosts.transport().options().request_timeout;
        let body =
            read_capped(registry, resp, manifest::MAX_MANIFEST_BYTES, &what, timeout).await?;
        if sha256_digest(&body) != *config {
            return Err(RegistryError::Malformed {
                host: registry.to_owned(),
                detail: format!("{what}: body does not hash to its digest"),
            });
        }
        #[derive(serde::Deserialize)]
        struct Config {
            os: String,
            architecture: String,
            variant: Option<String>,
        }
        let c: Config = serde_json::from_slice(&body).map_err(|e| RegistryError::Malformed {
            host: registry.to_owned(),
            detail: format!("{what}: {e}"),
        })?;
        Ok(Platform::new(&c.os, &c.architecture, c.variant.as_deref()))
    }
}

/// The platforms an index lists (children without a platform left out).
fn platform_list(manifest: &Manifest) -> Vec<PlatformDigest> {
    manifest
        .platforms()
        .filter_map(|c| {
            Some(PlatformDigest {
                platform: c.platform.clone()?,
                digest: c.digest.clone(),
            })
        })
        .collect()
}

/// The media type of a GET body: the header's when it names a manifest type, else
/// the body's own `mediaType`.
fn manifest_media_type(
    registry: &str,
    what: &str,
    header: String,
    body: &[u8],
) -> Result<String, RegistryError> {
    if is_index(&header) || is_image(&header) {
        return Ok(header);
    }
    match Manifest::parse(None, body) {
        Ok(Manifest::Index { media_type, .. } | Manifest::Image { media_type, .. }) => {
            Ok(media_type)
        }
        Err(e) => Err(RegistryError::Malformed {
            host: registry.to_owned(),
            detail: format!("{what}: {e}"),
        }),
    }
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .unwrap_or_default()
}

fn check_requested_digest(registry: &str, target: &str, got: &Digest) -> Result<(), RegistryError> {
    if let Ok(want) = Digest::parse(target)
        && &want != got
    {
        return Err(RegistryError::Malformed {
            host: registry.to_owned(),
            detail: format!("asked for {want} but the registry answered with {got}"),
        });
    }
    Ok(())
}
