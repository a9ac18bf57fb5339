//! Pushing test images to a registry over the distribution API.
//!
//! Owns [`Pusher`] (reqwest, no Docker, no skopeo): blob uploads (`POST
//! /v2/<name>/blobs/uploads/`, then `PUT <Location>&digest=…`), manifest uploads
//! (`PUT /v2/<name>/manifests/<ref>` with the media type as `Content-Type`), and the
//! auth each registry mode needs (none, Basic, or a `pull,push` bearer token fetched
//! from the token server). Digests are computed locally from the exact bytes and
//! checked against `Docker-Content-Digest`. What a push put in the registry is a
//! [`PushedImage`].
//!
//! The bytes come from the image model (`registry::image`, re-exported here for the
//! tests that name `push::ImageSpec`). It must not read images back for assertions;
//! tests do that with their own client.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

pub use super::image::{
    ACCEPT_ALL, BuiltImage, BuiltManifest, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, ImageKind, ImageSpec, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
    Platform, VERSION_ANNOTATION, sha256_digest,
};
use super::{Credentials, RegistryMode, RegistryServer, TestbedError, http_client};
/// A child manifest of a pushed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedChild {
    /// The child's platform.
    pub platform: Platform,
    /// The child's digest.
    pub digest: String,
    /// The child's media type.
    pub media_type: String,
    /// The child's size in bytes.
    pub size: u64,
}

/// What a push put in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The repository, e.g. `team/api`.
    pub repo: String,
    /// The tag it was pushed under.
    pub tag: String,
    /// The spec it was built from (so the tag can be moved with a new generation).
    pub spec: ImageSpec,
    /// The top-level digest (the index digest for multi-arch images).
    pub digest: String,
    /// The top-level media type.
    pub media_type: String,
    /// The exact bytes of the top-level manifest.
    pub manifest: Bytes,
    /// The platform of a single-arch image.
    pub platform: Option<Platform>,
    /// The children of an index or manifest list, in index order.
    pub children: Vec<PushedChild>,
}

impl PushedImage {
    /// The digest a node of this platform runs: the child's for an index, the
    /// image's own for a single-arch image of that platform.
    pub fn platform_digest(&self, platform: &Platform) -> Option<&str> {
        if self.children.is_empty() {
            return (self.platform.as_ref() == Some(platform)).then_some(self.digest.as_str());
        }
        self.children
            .iter()
            .find(|c| &c.platform == platform)
            .map(|c| c.digest.as_str())
    }

    /// The child digests by platform string (`linux/arm64/v8`).
    pub fn child_digests(&self) -> BTreeMap<String, String> {
        self.children
            .iter()
            .map(|c| (c.platform.to_string(), c.digest.clone()))
            .collect()
    }
}

/// How the pusher authenticates.
#[derive(Debug, Clone)]
pub enum PushAuth {
    /// No credentials.
    Anonymous,
    /// `Authorization: Basic` on every request.
    Basic(Credentials),
    /// A bearer token per repository from `realm` with scope `pull,push`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter.
        service: String,
        /// Credentials for the token endpoint; `None` fetches anonymously.
        credentials: Option<Credentials>,
    },
}

/// Pushes images to one registry. Cheap to share by reference across tasks.
#[derive(Debug)]
pub struct Pusher {
    base_url: String,
    auth: PushAuth,
    client: reqwest::Client,
    tokens: Mutex<HashMap<String, String>>,
    known_blobs: Mutex<HashSet<(String, String)>>,
    concurrency: usize,
}

fn basic_header(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn body_start(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    text.chars().take(500).collect()
}

impl Pusher {
    /// A pusher for a test registry, authenticated as its first configured user
    /// (see [`RegistryServer::admin_credentials`]). A proxy is read-only: error.
    pub fn new(server: &RegistryServer) -> Result<Pusher, TestbedError> {
        Self::with_credentials(server, server.admin_credentials())
    }

    /// A pusher for a test registry with explicit credentials (`None` = anonymous).
    pub fn with_credentials(
        server: &RegistryServer,
        credentials: Option<Credentials>,
    ) -> Result<Pusher, TestbedError> {
        let auth = match (server.options().mode(), server.token_server()) {
            (RegistryMode::Proxy { .. }, _) => {
                return Err(TestbedError::Unsupported(
                    "a proxy registry is read-only: push to its upstream",
                ));
            }
            (RegistryMode::Token(_), Some(token)) => PushAuth::Bearer {
                realm: token.realm(),
                service: token.service().to_owned(),
                credentials,
            },
            _ => match credentials {
                Some(c) => PushAuth::Basic(c),
                None => PushAuth::Anonymous,
            },
        };
        Ok(Self::for_url(server.base_url(), auth))
    }

    /// A pusher for any registry base URL (`http://host:port`).
    pub fn for_url(base_url: impl Into<String>, auth: PushAuth) -> Pusher {
        Pusher {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            auth,
            client: http_client(),
            tokens: Mutex::new(HashMap::new()),
            known_blobs: Mutex::new(HashSet::new()),
            concurrency: 8,
        }
    }

    /// How many requests [`push_tag_many`](Self::push_tag_many) keeps in flight (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The registry base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn fetch_token(&self, repo: &str) -> Result<String, TestbedError> {
        let PushAuth::Bearer {
            realm,
            service,
            credentials,
        } = &self.auth
        else {
            return Err(TestbedError::Unsupported("no token realm configured"));
        };
        let scope = format!("repository:{repo}:pull,push");
        let url = url::Url::parse_with_params(
            realm,
            [("service", service.as_str()), ("scope", scope.as_str())],
        )
        .map_err(|e| TestbedError::TokenReply(format!("bad realm {realm}: {e}")))?;
        let mut request = self.client.get(url);
        if let Some(c) = credentials {
            request = request.header(reqwest::header::AUTHORIZATION, basic_header(c));
        }
        let response = request.send().await.map_err(|source| TestbedError::Http {
            method: "GET".into(),
            url: realm.clone(),
            source,
        })?;
        if !response.status().is_success() {
            return Err(TestbedError::UnexpectedStatus {
                method: "GET".into(),
                url: realm.clone(),
                status: response.status().as_u16(),
                body: body_start(response).await,
            });
        }
        let value: serde_json::Value = response
            .json()
            .await
            .map_err(|e| TestbedError::TokenReply(e.to_string()))?;
        let token = value
            .get("token")
            .or_else(|| value.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| TestbedError::TokenReply("no token or access_token".into()))?;
        Ok(token.to_owned())
    }

    async fn authorize(
        &self,
        repo: &str,
        request: RequestBuilder,
        refresh: bool,
    ) -> Result<RequestBuilder, TestbedError> {
        Ok(match &self.auth {
            PushAuth::Anonymous => request,
            PushAuth::Basic(c) => request.header(reqwest::header::AUTHORIZATION, basic_header(c)),
            PushAuth::Bearer { .. } => {
                let cached = if refresh {
                    None
                } else {
                    self.tokens.lock().expect("token cache").get(repo).cloned()
                };
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let t = self.fetch_token(repo).await?;
                        self.tokens
                            .lock()
                            .expect("token cache")
                            .insert(repo.to_owned(), t.clone());
                        t
                    }
                };
                request.bearer_auth(token)
            }
        })
    }

    /// Sends a request built by `build`, with auth; retries once with a fresh token on 401.
    async fn send(
        &self,
        repo: &str,
        method: Method,
        url: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, TestbedError> {
        let mut refresh = false;
        loop {
            let request = build(self.client.request(method.clone(), url));
            let request = self.authorize(repo, request, refresh).await?;
            let response = request.send().await.map_err(|source| TestbedError::Http {
                method: method.to_string(),
                url: url.to_owned(),
                source,
            })?;
            if response.status() == StatusCode::UNAUTHORIZED
                && !refresh
                && matches!(self.auth, PushAuth::Bearer { .. })
            {
                refresh = true;
                continue;
            }
            return Ok(response);
        }
    }

    async fn expect(
        response: Response,
        method: &str,
        url: &str,
        want: &[StatusCode],
    ) -> Result<Response, TestbedError> {
        if want.contains(&response.status()) {
            return Ok(response);
        }
        Err(TestbedError::UnexpectedStatus {
            method: method.into(),
            url: url.into(),
            status: response.status().as_u16(),
            body: body_start(response).await,
        })
    }

    fn check_digest(response: &Response, what: String, local: &str) -> Result<(), TestbedError> {
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        match header {
            Some(d) if d == local => Ok(()),
            other => Err(TestbedError::DigestMismatch {
                what,
                registry: other.unwrap_or("<no Docker-Content-Digest>").to_owned(),
                local: local.to_owned(),
            }),
        }
    }

    /// Uploads a blob unless the registry already has it; returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: Bytes) -> Result<String, TestbedError> {
        let digest = sha256_digest(&bytes);
        let key = (repo.to_owned(), digest.clone());
        if self.known_blobs.lock().expect("blob cache").contains(&key) {
            return Ok(digest);
        }
        let head_url = format!("{}/v2/{repo}/blobs/{digest}", self.base_url);
        let head = self.send(repo, Method::HEAD, &head_url, |r| r).await?;
        if head.status() != StatusCode::OK {
            let start_url = format!("{}/v2/{repo}/blobs/uploads/", self.base_url);
            let started = self
                .send(repo, Method::POST, &start_url, |r| {
                    r.header(reqwest::header::CONTENT_LENGTH, "0")
                })
                .await?;
            let started =
                Self::expect(started, "POST", &start_url, &[StatusCode::ACCEPTED]).await?;
            let location = started
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| TestbedError::MissingLocation {
                    url: start_url.clone(),
                })?;
            let location = if location.starts_with("http://") || location.starts_with("https://") {
                location.to_owned()
            } else {
                format!("{}{location}", self.base_url)
            };
            let separator = if location.contains('?') { '&' } else { '?' };
            let put_url = format!("{location}{separator}digest={digest}");
            let body = bytes.clone();
            let done = self
                .send(repo, Method::PUT, &put_url, |r| {
                    r.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(body.clone())
                })
                .await?;
            let done = Self::expect(done, "PUT", &put_url, &[StatusCode::CREATED]).await?;
            Self::check_digest(&done, format!("blob in {repo}"), &digest)?;
        }
        self.known_blobs.lock().expect("blob cache").insert(key);
        Ok(digest)
    }

    /// Uploads manifest bytes under `reference` (a tag or the digest); returns the
    /// digest, checked against the registry's `Docker-Content-Digest`.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String, TestbedError> {
        let digest = sha256_digest(&bytes);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base_url);
        let response = self
            .send(repo, Method::PUT, &url, |r| {
                r.header(reqwest::header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        let response = Self::expect(response, "PUT", &url, &[StatusCode::CREATED]).await?;
        Self::check_digest(&response, format!("manifest {repo}:{reference}"), &digest)?;
        Ok(digest)
    }

    /// Pushes an image (blobs, children, then the top manifest) under `repo:tag`.
    pub async fn push(
        &self,
        repo: &str,
        tag: &str,
        spec: &ImageSpec,
    ) -> Result<PushedImage, TestbedError> {
        let built = spec.build();
        futures::stream::iter(built.blobs.iter().cloned())
            .map(|blob| self.push_blob(repo, blob))
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        for child in &built.children {
            self.push_manifest(repo, &child.digest, child.media_type, child.bytes.clone())
                .await?;
        }
        let top = &built.top;
        self.push_manifest(repo, tag, top.media_type, top.bytes.clone())
            .await?;
        Ok(PushedImage {
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            spec: spec.clone(),
            digest: top.digest.clone(),
            media_type: top.media_type.to_owned(),
            manifest: top.bytes.clone(),
            platform: top.platform.clone(),
            children: built
                .children
                .iter()
                .map(|c| PushedChild {
                    platform: c.platform.clone().expect("children have platforms"),
                    digest: c.digest.clone(),
                    media_type: c.media_type.to_owned(),
                    size: c.bytes.len() as u64,
                })
                .collect(),
        })
    }

    /// Points another tag at an already pushed image (re-PUTs the same bytes: same digest).
    pub async fn tag(&self, image: &PushedImage, tag: &str) -> Result<PushedImage, TestbedError> {
        self.push_manifest(&image.repo, tag, &image.media_type, image.manifest.clone())
            .await?;
        Ok(PushedImage {
            tag: tag.to_owned(),
            ..image.clone()
        })
    }

    /// Moves `image`'s tag: pushes its spec with another generation under the same
    /// tag and returns the new digests.
    pub async fn move_tag(
        &self,
        image: &PushedImage,
        generation: &str,
    ) -> Result<PushedImage, TestbedError> {
        let spec = image.spec.clone().generation(generation);
        self.push(&image.repo, &image.tag, &spec).await
    }

    /// Pushes many tags cheaply: the blobs and children of `spec` once, then one
    /// top-level manifest per tag that differs only in the
    /// [`VERSION_ANNOTATION`] annotation (so every tag has its own digest), with
    /// [`concurrency`](Self::concurrency) PUTs in flight. Results are in tag order.
    pub async fn push_tag_many<I, S>(
        &self,
        repo: &str,
        tags: I,
        spec: &ImageSpec,
    ) -> Result<Vec<PushedImage>, TestbedError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tags: Vec<String> = tags.into_iter().map(Into::into).collect();
        let Some(first) = tags.first() else {
            return Ok(Vec::new());
        };
        // The first push uploads the blobs and children; the rest reuse them.
        let first_spec = spec.clone().annotation(VERSION_ANNOTATION, first.as_str());
        let first_image = self.push(repo, first, &first_spec).await?;
        let rest = futures::stream::iter(tags[1..].iter())
            .map(|tag| {
                let spec = spec.clone().annotation(VERSION_ANNOTATION, tag.as_str());
                let children = first_image.children.clone();
                async move {
                    let top = spec.build().top;
                    self.push_manifest(repo, tag, top.media_type, top.bytes.clone())
                        .await?;
                    Ok::<_, TestbedError>(PushedImage {
                        repo: repo.to_owned(),
                        tag: tag.clone(),
                        spec,
                        digest: top.digest,
                        media_type: top.media_type.to_owned(),
                        manifest: top.bytes,
                        platform: top.platform,
                        children,
                    })
                }
            })
            .buffered(self.concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        let mut all = Vec::with_capacity(tags.len());
        all.push(first_image);
        all.extend(rest);
        Ok(all)
    }

    /// Deletes a manifest by digest (the registry has `storage.delete.enabled`).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), TestbedError> {
        let url = format!("{}/v2/{repo}/manifests/{digest}", self.base_url);
        let response = self.send(repo, Method::DELETE, &url, |r| r).await?;
        Self::expect(response, "DELETE", &url, &[StatusCode::ACCEPTED]).await?;
        Ok(())
    }
}
