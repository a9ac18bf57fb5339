//! Manifest media types and the parsing of manifest bodies.
//!
//! Owns the four media types a resolver must ask for, the decoding of an image index
//! or manifest list into its per-platform children, and the choice of a child for a
//! platform. Hashing and fetching the bytes is the registry shell's job.

use crate::digest::Digest;
use crate::platform::Platform;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (schema 2).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header every manifest request sends: all four types, so that no
/// registry converts the manifest (which changes the digest) or answers 404 for OCI
/// content, and so that a multi-arch tag answers with its index, not the amd64 child.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest freshet reads (4 MiB, as containerd and distribution cap them).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What a manifest body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// A multi-platform index (OCI index or Docker manifest list).
    Index {
        /// The media type it was served or declared as.
        media_type: String,
        /// The children, in the order the index lists them.
        manifests: Vec<Child>,
    },
    /// A single-platform image manifest.
    Image {
        /// The media type it was served or declared as.
        media_type: String,
        /// The digest of the image config blob.
        config: Digest,
    },
}

/// One entry of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The child's media type.
    pub media_type: String,
    /// The child's digest.
    pub digest: Digest,
    /// The child's platform; `None` for entries without one.
    pub platform: Option<Platform>,
    /// True for attestation and signature entries (`unknown/unknown`, or an
    /// `vnd.docker.reference.type` annotation), which are not runnable images.
    pub attestation: bool,
}

/// Why a manifest body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the shape of any manifest.
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    /// JSON, but of a media type freshet does not read (for example schema 1).
    #[error(
        "manifest has unsupported media type {0:?}; freshet reads OCI and Docker schema 2 manifests"
    )]
    UnsupportedMediaType(String),
    /// A descriptor carries a malformed digest.
    #[error("manifest lists an invalid digest: {0}")]
    BadDigest(String),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<Vec<RawDescriptor>>,
    config: Option<RawDescriptor>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Manifest {
    /// Parses a manifest body. `content_type` is the response's `Content-Type`, used
    /// when the body has no `mediaType` field (allowed for OCI).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, ManifestError> {
        let raw: RawManifest =
            serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
        if raw.schema_version == Some(1) {
            return Err(ManifestError::UnsupportedMediaType(
                "application/vnd.docker.distribution.manifest.v1+json".into(),
            ));
        }
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
            .filter(|c| !c.is_empty() && c != "application/json");
        let media_type = raw.media_type.or(header).unwrap_or_else(|| {
            if raw.manifests.is_some() {
                OCI_INDEX.to_owned()
            } else {
                OCI_MANIFEST.to_owned()
            }
        });
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let manifests = raw
                    .manifests
                    .unwrap_or_default()
                    .into_iter()
                    .map(Child::from_raw)
                    .collect::<Result<_, _>>()?;
                Ok(Self::Index {
                    media_type,
                    manifests,
                })
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let config = raw
                    .config
                    .ok_or_else(|| ManifestError::Json("image manifest has no config".into()))?;
                let config = Digest::parse(&config.digest)
                    .map_err(|e| ManifestError::BadDigest(e.to_string()))?;
                Ok(Self::Image { media_type, config })
            }
            other => Err(ManifestError::UnsupportedMediaType(other.to_owned())),
        }
    }

    /// The runnable platforms of an index, in index order; empty for a single image.
    pub fn platforms(&self) -> impl Iterator<Item = &Child> {
        let children = match self {
            Self::Index { manifests, .. } => manifests.as_slice(),
            Self::Image { .. } => &[],
        };
        children
            .iter()
            .filter(|c| !c.attestation && c.platform.is_some())
    }

    /// The child for `platform`: an exact match (after normalisation, so
    /// `linux/arm64/v8` equals `linux/arm64`), else for `arm` the nearest lower variant
    /// the CPU can run (v7 runs v6 and v5).
    pub fn select(&self, platform: &Platform) -> Option<&Child> {
        if let Some(exact) = self
            .platforms()
            .find(|c| c.platform.as_ref() == Some(platform))
        {
            return Some(exact);
        }
        if platform.architecture != "arm" {
            return None;
        }
        let want = variant_number(platform.variant.as_deref())?;
        self.platforms()
            .filter_map(|c| {
                let p = c.platform.as_ref()?;
                let v = variant_number(p.variant.as_deref())?;
                (p.os == platform.os && p.architecture == "arm" && v <= want).then_some((v, c))
            })
            .max_by_key(|(v, _)| *v)
            .map(|(_, c)| c)
    }
}

fn variant_number(v: Option<&str>) -> Option<u32> {
    v?.strip_prefix('v')?.parse().ok()
}

impl Child {
    fn from_raw(raw: RawDescriptor) -> Result<Self, ManifestError> {
        let digest =
            Digest::parse(&raw.digest).map_err(|e| ManifestError::BadDigest(e.to_string()))?;
        let platform = raw
            .platform
            .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref()));
        let attestation = raw.annotations.contains_key("vnd.docker.reference.type")
            || platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
        Ok(Self {
            media_type: raw.media_type.unwrap_or_default(),
            digest,
            platform,
            attestation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn index(media: &str, entries: &[(&str, &str, Option<&str>, u8)]) -> String {
        let items: Vec<String> = entries
            .iter()
            .map(|(os, arch, variant, n)| {
                let v = variant.map(|v| format!(",\"variant\":\"{v}\"")).unwrap_or_default();
                format!(
                    "{{\"mediaType\":\"{OCI_MANIFEST}\",\"digest\":\"{}\",\"size\":1,\"platform\":{{\"os\":\"{os}\",\"architecture\":\"{arch}\"{v}}}}}",
                    d(*n)
                )
            })
            .collect();
        format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{media}\",\"manifests\":[{}]}}",
            items.join(",")
        )
    }

    #[test]
    fn reads_index_platforms_and_skips_attestations() {
        let body = index(
            OCI_INDEX,
            &[
                ("linux", "amd64", None, 1),
                ("linux", "arm64", Some("v8"), 2),
                ("unknown", "unknown", None, 3),
            ],
        );
        let m = Manifest::parse(None, body.as_bytes()).unwrap();
        let platforms: Vec<String> = m
            .platforms()
            .map(|c| c.platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        let arm = m
            .select(&Platform::parse("linux/arm64/v8").unwrap())
            .unwrap();
        assert_eq!(arm.digest.as_str(), d(2));
        assert_eq!(
            m.select(&Platform::parse("linux/arm64").unwrap())
                .unwrap()
                .digest
                .as_str(),
            d(2)
        );
        assert!(m.select(&Platform::parse("linux/s390x").unwrap()).is_none());
    }

    #[test]
    fn arm_selects_nearest_lower_variant() {
        let body = index(
            DOCKER_LIST,
            &[
                ("linux", "arm", Some("v6"), 1),
                ("linux", "arm", Some("v5"), 2),
            ],
        );
        let m = Manifest::parse(Some(DOCKER_LIST), body.as_bytes()).unwrap();
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(m.select(&v7).unwrap().digest.as_str(), d(1));
        let v5 = Platform::parse("linux/arm/v5").unwrap();
        assert_eq!(m.select(&v5).unwrap().digest.as_str(), d(2));
    }

    #[test]
    fn reads_single_image_and_uses_content_type_when_body_has_no_media_type() {
        let body = format!(
            "{{\"schemaVersion\":2,\"config\":{{\"digest\":\"{}\",\"size\":2}},\"layers\":[]}}",
            d(9)
        );
        let m = Manifest::parse(
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            m,
            Manifest::Image {
                media_type: DOCKER_MANIFEST.into(),
                config: Digest::parse(&d(9)).unwrap()
            }
        );
        assert_eq!(m.platforms().count(), 0);
    }

    #[test]
    fn rejects_schema1_garbage_and_bad_digests() {
        let e = Manifest::parse(None, br#"{"schemaVersion":1,"name":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unsupported media type"));
        assert!(matches!(
            Manifest::parse(None, b"<html>"),
            Err(ManifestError::Json(_))
        ));
        let bad = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:zz"}]}"#;
        assert!(matches!(
            Manifest::parse(None, bad),
            Err(ManifestError::BadDigest(_))
        ));
    }
}
