//! The test image model: [`ImageSpec`] (kind, platforms, seed, generation), the
//! media types, and the exact bytes a spec builds into ([`BuiltImage`]).
//!
//! The same spec always gives the same bytes and so the same digest; another
//! generation gives another digest (that is how a tag moves). Layers are small
//! deterministic byte strings, not real tarballs: the registry does not look inside
//! them, and freshet only resolves digests.
//!
//! It must not do I/O: pushing these bytes is `registry::push`'s job.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The `Accept` value that asks for any of the four manifest types.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The annotation [`Pusher::push_tag_many`] sets to the tag, so each tag has its own digest.
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";

/// The sha256 digest (`sha256:<hex>`) of exactly these bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OS/architecture/variant triple.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Platform {
    /// `architecture`, e.g. `amd64`.
    pub architecture: String,
    /// `os`, e.g. `linux`.
    pub os: String,
    /// `variant`, e.g. `v8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Builds a platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
        }
    }

    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64", None)
    }

    /// `linux/arm64/v8`.
    pub fn linux_arm64_v8() -> Self {
        Self::new("linux", "arm64", Some("v8"))
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next();
        if parts.next().is_some() {
            return None;
        }
        Some(Self::new(os, arch, variant))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The four manifest shapes the pusher can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// One Docker schema 2 manifest.
    DockerV2,
    /// One OCI image manifest.
    Oci,
    /// An OCI index of OCI manifests, one per platform.
    OciIndex,
    /// A Docker manifest list of Docker schema 2 manifests, one per platform.
    DockerManifestList,
}

impl ImageKind {
    /// The media type of the top-level manifest.
    pub fn media_type(self) -> &'static str {
        match self {
            ImageKind::DockerV2 => DOCKER_MANIFEST,
            ImageKind::Oci => OCI_MANIFEST,
            ImageKind::OciIndex => OCI_INDEX,
            ImageKind::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// Whether this is an index or manifest list.
    pub fn is_multi_arch(self) -> bool {
        matches!(self, ImageKind::OciIndex | ImageKind::DockerManifestList)
    }

    fn is_oci(self) -> bool {
        matches!(self, ImageKind::Oci | ImageKind::OciIndex)
    }
}

/// What to push: a kind, its platforms, and the seed and generation that make the
/// bytes (and so the digests) unique and reproducible.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageSpec {
    /// The manifest shape.
    pub kind: ImageKind,
    /// One platform for single-arch kinds; one child per platform for multi-arch kinds.
    pub platforms: Vec<Platform>,
    /// Identifies the image (goes into every config blob).
    pub seed: String,
    /// Identifies a build of the image; a new generation gives new digests.
    pub generation: String,
    /// Annotations on the top-level manifest (changes its digest only).
    pub annotations: BTreeMap<String, String>,
}

impl ImageSpec {
    /// A spec of any kind; single-arch kinds use the first platform.
    pub fn new(kind: ImageKind, seed: impl Into<String>, platforms: Vec<Platform>) -> Self {
        ImageSpec {
            kind,
            platforms,
            seed: seed.into(),
            generation: "1".into(),
            annotations: BTreeMap::new(),
        }
    }

    /// Single-arch Docker schema 2, linux/amd64.
    pub fn docker_v2(seed: impl Into<String>) -> Self {
        Self::new(ImageKind::DockerV2, seed, vec![Platform::linux_amd64()])
    }

    /// Single-arch OCI manifest, linux/amd64.
    pub fn oci(seed: impl Into<String>) -> Self {
        Self::new(ImageKind::Oci, seed, vec![Platform::linux_amd64()])
    }

    /// OCI index with one child per platform.
    pub fn oci_index(seed: impl Into<String>, platforms: Vec<Platform>) -> Self {
        Self::new(ImageKind::OciIndex, seed, platforms)
    }

    /// Docker manifest list with one child per platform.
    pub fn docker_manifest_list(seed: impl Into<String>, platforms: Vec<Platform>) -> Self {
        Self::new(ImageKind::DockerManifestList, seed, platforms)
    }

    /// The platform of a single-arch spec.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platforms = vec![platform];
        self
    }

    /// Another generation (default `"1"`).
    pub fn generation(mut self, generation: impl Into<String>) -> Self {
        self.generation = generation.into();
        self
    }

    /// Adds an annotation to the top-level manifest.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Builds every blob and manifest, children first, without any I/O.
    pub fn build(&self) -> BuiltImage {
        let platforms: &[Platform] = if self.kind.is_multi_arch() {
            &self.platforms
        } else {
            let n = self.platforms.len().min(1);
            &self.platforms[..n]
        };
        let default = [Platform::linux_amd64()];
        let platforms = if platforms.is_empty() {
            &default[..]
        } else {
            platforms
        };
        let single_kind = match self.kind {
            ImageKind::DockerV2 | ImageKind::DockerManifestList => ImageKind::DockerV2,
            ImageKind::Oci | ImageKind::OciIndex => ImageKind::Oci,
        };
        let mut blobs = Vec::new();
        let mut children = Vec::new();
        for platform in platforms {
            let top_annotations = if self.kind.is_multi_arch() {
                None
            } else {
                Some(&self.annotations)
            };
            let (manifest, mut child_blobs) = single_manifest(
                single_kind,
                &self.seed,
                &self.generation,
                platform,
                top_annotations,
            );
            blobs.append(&mut child_blobs);
            children.push((platform.clone(), manifest));
        }
        if !self.kind.is_multi_arch() {
            let (_, top) = children.pop().expect("one platform");
            return BuiltImage {
                blobs,
                children: Vec::new(),
                top,
            };
        }
        let index = IndexJson {
            schema_version: 2,
            media_type: self.kind.media_type(),
            manifests: children
                .iter()
                .map(|(p, m)| DescriptorJson {
                    media_type: m.media_type,
                    size: m.bytes.len() as u64,
                    digest: m.digest.clone(),
                    platform: Some(p.clone()),
                })
                .collect(),
            annotations: (!self.annotations.is_empty()).then_some(&self.annotations),
        };
        let bytes = Bytes::from(serde_json::to_vec(&index).expect("index serialises"));
        let top = BuiltManifest {
            media_type: self.kind.media_type(),
            digest: sha256_digest(&bytes),
            bytes,
            platform: None,
        };
        BuiltImage {
            blobs,
            children: children.into_iter().map(|(_, m)| m).collect(),
            top,
        }
    }
}

/// One manifest's exact bytes.
#[derive(Debug, Clone)]
pub struct BuiltManifest {
    /// Its media type (the `Content-Type` of the PUT).
    pub media_type: &'static str,
    /// `sha256:` of `bytes`.
    pub digest: String,
    /// The exact bytes.
    pub bytes: Bytes,
    /// The platform of a single-arch manifest.
    pub platform: Option<Platform>,
}

/// Everything an [`ImageSpec`] turns into, in push order.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Config and layer blobs.
    pub blobs: Vec<Bytes>,
    /// Child manifests of an index (empty for single-arch).
    pub children: Vec<BuiltManifest>,
    /// The top-level manifest.
    pub top: BuiltManifest,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorJson<'a> {
    media_type: &'a str,
    size: u64,
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: DescriptorJson<'a>,
    layers: Vec<DescriptorJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<DescriptorJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct ConfigJson<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    created: &'a str,
    config: ConfigConfig<'a>,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct ConfigConfig<'a> {
    #[serde(rename = "Labels")]
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// A single-arch manifest plus its config and layer blobs.
fn single_manifest(
    kind: ImageKind,
    seed: &str,
    generation: &str,
    platform: &Platform,
    annotations: Option<&BTreeMap<String, String>>,
) -> (BuiltManifest, Vec<Bytes>) {
    let oci = kind.is_oci();
    let layer = Bytes::from(format!(
        "freshet-testbed layer\nseed: {seed}\ngeneration: {generation}\nplatform: {platform}\n"
    ));
    let layer_digest = sha256_digest(&layer);
    let mut labels = BTreeMap::new();
    labels.insert("org.freshet.testbed.seed", seed);
    labels.insert("org.freshet.testbed.generation", generation);
    let config = ConfigJson {
        architecture: &platform.architecture,
        os: &platform.os,
        variant: platform.variant.as_deref(),
        created: "2024-01-01T00:00:00Z",
        config: ConfigConfig { labels },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![layer_digest.clone()],
        },
    };
    let config = Bytes::from(serde_json::to_vec(&config).expect("config serialises"));
    let manifest = ManifestJson {
        schema_version: 2,
        media_type: kind.media_type(),
        config: DescriptorJson {
            media_type: if oci { OCI_CONFIG } else { DOCKER_CONFIG },
            size: config.len() as u64,
            digest: sha256_digest(&config),
            platform: None,
        },
        layers: vec![DescriptorJson {
            media_type: if oci { OCI_LAYER } else { DOCKER_LAYER },
            size: layer.len() as u64,
            digest: layer_digest,
            platform: None,
        }],
        annotations: annotations.filter(|a| !a.is_empty()),
    };
    let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("manifest serialises"));
    (
        BuiltManifest {
            media_type: kind.media_type(),
            digest: sha256_digest(&bytes),
            bytes,
            platform: Some(platform.clone()),
        },
        vec![config, layer],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_spec_same_digest_new_generation_new_digest() {
        let spec = ImageSpec::oci_index(
            "x",
            vec![Platform::linux_amd64(), Platform::linux_arm64_v8()],
        );
        let a = spec.build();
        let b = spec.build();
        let c = spec.clone().generation("2").build();
        assert_eq!(a.top.digest, b.top.digest);
        assert_ne!(a.top.digest, c.top.digest);
        assert_eq!(a.children.len(), 2);
        assert_ne!(a.children[0].digest, c.children[0].digest);
        assert_eq!(a.top.digest, sha256_digest(&a.top.bytes));
    }

    #[test]
    fn media_types_per_kind() {
        for (spec, top, child) in [
            (ImageSpec::docker_v2("s"), DOCKER_MANIFEST, None),
            (ImageSpec::oci("s"), OCI_MANIFEST, None),
            (
                ImageSpec::oci_index("s", vec![Platform::linux_amd64()]),
                OCI_INDEX,
                Some(OCI_MANIFEST),
            ),
            (
                ImageSpec::docker_manifest_list("s", vec![Platform::linux_amd64()]),
                DOCKER_MANIFEST_LIST,
                Some(DOCKER_MANIFEST),
            ),
        ] {
            let built = spec.build();
            assert_eq!(built.top.media_type, top);
            let json: serde_json::Value = serde_json::from_slice(&built.top.bytes).unwrap();
            assert_eq!(json["mediaType"], top);
            assert_eq!(json["schemaVersion"], 2);
            assert_eq!(built.children.first().map(|c| c.media_type), child);
        }
    }

    #[test]
    fn index_children_carry_platforms() {
        let built = ImageSpec::docker_manifest_list(
            "s",
            vec![Platform::linux_amd64(), Platform::linux_arm64_v8()],
        )
        .build();
        let json: serde_json::Value = serde_json::from_slice(&built.top.bytes).unwrap();
        assert_eq!(json["manifests"][0]["platform"]["architecture"], "amd64");
        assert!(json["manifests"][0]["platform"].get("variant").is_none());
        assert_eq!(json["manifests"][1]["platform"]["variant"], "v8");
        assert_eq!(json["manifests"][1]["digest"], built.children[1].digest);
    }

    #[test]
    fn platform_parse_and_display_round_trip() {
        for s in ["linux/amd64", "linux/arm64/v8", "windows/amd64"] {
            assert_eq!(Platform::parse(s).unwrap().to_string(), s);
        }
        for bad in ["", "linux", "linux/", "a/b/c/d"] {
            assert_eq!(Platform::parse(bad), None, "{bad}");
        }
    }
}
