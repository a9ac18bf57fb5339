//! Webhook payload parsers: a delivery's body to the image references it names.
//!
//! Owns the shapes each vendor documents and the rules for reading them:
//! - Docker Hub (<https://docs.docker.com/docker-hub/repos/manage/webhooks/>):
//!   `repository.repo_name` and `push_data.tag`; `callback_url` is ignored.
//! - GitHub `package` and `registry_package` events (GHCR): `action` `published` or
//!   `updated`, a container `package_type`, `package_version.package_url` (GitHub
//!   sometimes leaves a trailing `:`) and `package_version.container_metadata.tag.name`.
//!   `ping` and other events are acknowledged and ignored.
//! - Harbor (<https://goharbor.io/docs/latest/working-with-projects/project-configuration/configure-webhooks/>):
//!   `type` `PUSH_ARTIFACT` and `event_data.resources[].resource_url`.
//! - Quay (Red Hat Quay "Repository Notifications", repository push): `docker_url` and
//!   `updated_tags`, a list of tags (an old form is an object of tag to image ID).
//! - Generic: `{"image": "repo:tag"}`, nothing else.
//!
//! It must not fetch anything: the result is only [`Reference`] values. Parse errors do
//! not echo the body (only the field that was wrong and where JSON broke).

use serde::Deserialize;
use serde_json::Value;

use super::SourceKind;
use crate::reference::{Reference, ReferenceError};

/// The most images one delivery may name (Harbor resources, Quay tags).
pub const MAX_IMAGES: usize = 100;

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Images were pushed: re-check these (if tracked).
    Push(Vec<Reference>),
    /// A well-formed delivery that asks for nothing (a ping, a pull, a deletion, an npm
    /// package); the label says which, for metrics.
    Ignored(&'static str),
}

/// Why a delivery's body cannot be read (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or JSON of another shape. Holds serde's position, never the body.
    #[error("the body is not a {kind} payload: {category} error at line {line}, column {column}")]
    Json {
        /// The source kind whose shape was expected.
        kind: &'static str,
        /// serde_json's error category (`syntax`, `data`, `eof`).
        category: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A field the push needs is absent or empty.
    #[error("the {kind} payload has no {field}")]
    Missing {
        /// The source kind.
        kind: &'static str,
        /// The JSON path of the field.
        field: &'static str,
    },
    /// A field does not hold an image reference.
    #[error("the {kind} payload's {field} is not an image reference: {source}")]
    Reference {
        /// The source kind.
        kind: &'static str,
        /// The JSON path of the field.
        field: &'static str,
        /// Why (the reference is quoted with `{:?}`, so escaped).
        #[source]
        source: ReferenceError,
    },
    /// More images than [`MAX_IMAGES`].
    #[error("the {kind} payload names {count} images; the limit is {MAX_IMAGES}")]
    TooMany {
        /// The source kind.
        kind: &'static str,
        /// How many it named.
        count: usize,
    },
}

impl PayloadError {
    /// A stable metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Json { .. } => "malformed_json",
            Self::Missing { .. } => "missing_field",
            Self::Reference { .. } => "bad_reference",
            Self::TooMany { .. } => "too_many_images",
        }
    }
}

/// Parses a delivery from a source of `kind`. `event` is GitHub's `X-GitHub-Event`
/// header (ignored for other kinds).
pub fn parse(kind: SourceKind, event: Option<&str>, body: &[u8]) -> Result<Parsed, PayloadError> {
    let label = kind.label();
    match kind {
        SourceKind::DockerHub => docker_hub(json(label, body)?),
        SourceKind::GitHub => github(event, body),
        SourceKind::Harbor => harbor(json(label, body)?),
        SourceKind::Quay => quay(json(label, body)?),
        SourceKind::Generic => generic(json(label, body)?),
    }
}

fn json<'a, T: Deserialize<'a>>(kind: &'static str, body: &'a [u8]) -> Result<T, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::Json {
        kind,
        category: match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        },
        line: e.line(),
        column: e.column(),
    })
}

fn reference(
    kind: &'static str,
    field: &'static str,
    text: &str,
) -> Result<Reference, PayloadError> {
    Reference::parse(text).map_err(|source| PayloadError::Reference {
        kind,
        field,
        source,
    })
}

fn tagged(
    kind: &'static str,
    field: &'static str,
    image: &Reference,
    tag: &str,
) -> Result<Reference, PayloadError> {
    image
        .with_tag(tag)
        .map_err(|source| PayloadError::Reference {
            kind,
            field,
            source,
        })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

#[derive(Deserialize)]
struct DockerHub {
    push_data: Option<DockerHubPush>,
    repository: Option<DockerHubRepository>,
}

#[derive(Deserialize)]
struct DockerHubPush {
    tag: Option<String>,
}

#[derive(Deserialize)]
struct DockerHubRepository {
    repo_name: Option<String>,
}

fn docker_hub(p: DockerHub) -> Result<Parsed, PayloadError> {
    const K: &str = "dockerhub";
    let name = non_empty(p.repository.and_then(|r| r.repo_name)).ok_or(PayloadError::Missing {
        kind: K,
        field: "repository.repo_name",
    })?;
    let image = reference(K, "repository.repo_name", &name)?;
    let image = match non_empty(p.push_data.and_then(|d| d.tag)) {
        Some(tag) => tagged(K, "push_data.tag", &image, &tag)?,
        None => image,
    };
    Ok(Parsed::Push(vec![image]))
}

#[derive(Deserialize)]
struct GitHubEvent {
    action: Option<String>,
    package: Option<GitHubPackage>,
    registry_package: Option<GitHubPackage>,
}

#[derive(Deserialize)]
struct GitHubPackage {
    package_type: Option<String>,
    package_version: Option<GitHubVersion>,
}

#[derive(Deserialize)]
struct GitHubVersion {
    package_url: Option<String>,
    container_metadata: Option<GitHubContainer>,
}

#[derive(Deserialize)]
struct GitHubContainer {
    tag: Option<GitHubTag>,
}

#[derive(Deserialize)]
struct GitHubTag {
    name: Option<String>,
}

fn github(event: Option<&str>, body: &[u8]) -> Result<Parsed, PayloadError> {
    const K: &str = "github";
    let event = event.map(str::trim).unwrap_or("");
    if event == "ping" {
        return Ok(Parsed::Ignored("ping"));
    }
    if event != "package" && event != "registry_package" {
        return Ok(Parsed::Ignored("other_event"));
    }
    let p: GitHubEvent = json(K, body)?;
    if !matches!(p.action.as_deref(), Some("published" | "updated")) {
        return Ok(Parsed::Ignored("other_action"));
    }
    let package = if event == "package" {
        p.package
    } else {
        p.registry_package
    };
    let package = package.ok_or(PayloadError::Missing {
        kind: K,
        field: "package",
    })?;
    let ty = package
        .package_type
        .unwrap_or_default()
        .to_ascii_lowercase();
    if ty != "container" && ty != "docker" {
        return Ok(Parsed::Ignored("not_a_container"));
    }
    let version = package.package_version.ok_or(PayloadError::Missing {
        kind: K,
        field: "package.package_version",
    })?;
    let url = non_empty(version.package_url).ok_or(PayloadError::Missing {
        kind: K,
        field: "package.package_version.package_url",
    })?;
    let image = reference(K, "package_version.package_url", &ghcr_url(&url))?;
    let tag = version
        .container_metadata
        .and_then(|c| c.tag)
        .and_then(|t| non_empty(t.name));
    let image = match tag {
        Some(tag) => tagged(K, "container_metadata.tag.name", &image, &tag)?,
        None => image,
    };
    Ok(Parsed::Push(vec![image]))
}

/// GHCR package URLs: drop a bare trailing `:` and lowercase the repository path
/// (GitHub owners may be mixed-case; GHCR names are lowercase). The tag keeps its case.
fn ghcr_url(url: &str) -> String {
    let url = url.trim().trim_end_matches(':');
    let slash = url.rfind('/').map_or(0, |i| i + 1);
    match url[slash..].find([':', '@']) {
        Some(i) => format!(
            "{}{}",
            url[..slash + i].to_ascii_lowercase(),
            &url[slash + i..]
        ),
        None => url.to_ascii_lowercase(),
    }
}

#[derive(Deserialize)]
struct Harbor {
    #[serde(rename = "type")]
    kind: Option<String>,
    event_data: Option<HarborData>,
}

#[derive(Deserialize)]
struct HarborData {
    #[serde(default)]
    resources: Vec<HarborResource>,
}

#[derive(Deserialize)]
struct HarborResource {
    resource_url: Option<String>,
}

fn harbor(p: Harbor) -> Result<Parsed, PayloadError> {
    const K: &str = "harbor";
    if p.kind.as_deref() != Some("PUSH_ARTIFACT") {
        return Ok(Parsed::Ignored("other_event"));
    }
    let resources = p.event_data.map(|d| d.resources).unwrap_or_default();
    if resources.len() > MAX_IMAGES {
        return Err(PayloadError::TooMany {
            kind: K,
            count: resources.len(),
        });
    }
    let mut images = Vec::with_capacity(resources.len());
    for r in resources {
        let url = non_empty(r.resource_url).ok_or(PayloadError::Missing {
            kind: K,
            field: "event_data.resources[].resource_url",
        })?;
        images.push(reference(K, "event_data.resources[].resource_url", &url)?);
    }
    if images.is_empty() {
        return Err(PayloadError::Missing {
            kind: K,
            field: "event_data.resources",
        });
    }
    Ok(Parsed::Push(images))
}

#[derive(Deserialize)]
struct Quay {
    docker_url: Option<String>,
    updated_tags: Option<Value>,
}

fn quay(p: Quay) -> Result<Parsed, PayloadError> {
    const K: &str = "quay";
    let url = non_empty(p.docker_url).ok_or(PayloadError::Missing {
        kind: K,
        field: "docker_url",
    })?;
    let image = reference(K, "docker_url", &url)?;
    let tags: Vec<&str> = match &p.updated_tags {
        Some(Value::Array(tags)) => tags.iter().filter_map(Value::as_str).collect(),
        Some(Value::Object(tags)) => tags.keys().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    if tags.len() > MAX_IMAGES {
        return Err(PayloadError::TooMany {
            kind: K,
            count: tags.len(),
        });
    }
    if tags.is_empty() {
        return Ok(Parsed::Push(vec![image]));
    }
    let images = tags
        .into_iter()
        .map(|t| tagged(K, "updated_tags", &image, t))
        .collect::<Result<_, _>>()?;
    Ok(Parsed::Push(images))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generic {
    image: String,
}

fn generic(p: Generic) -> Result<Parsed, PayloadError> {
    Ok(Parsed::Push(vec![reference("generic", "image", &p.image)?]))
}
