//! A container status's `imageID` reduced to the digest the runtime pulled.
//!
//! Owns the shapes runtimes report and what each means:
//! - containerd: `docker.io/library/nginx@sha256:…`; the digest is the index digest
//!   when the pod pulled a tag that names an index, and a `repo:tag@sha256:…`
//!   reference comes back without its tag;
//! - CRI-O and dockershim: `docker-pullable://nginx@sha256:…` (same meaning);
//! - dockershim without a repo digest: `docker://sha256:…`, and containerd for an
//!   image imported locally: a bare `sha256:…`. Those are **image IDs** (the digest
//!   of the image's config blob), not manifest digests: no registry answers a tag
//!   with them, so they cannot be compared with one and are reported as such.
//!
//! Anything else (empty, unknown prefix, malformed digest) is an [`ImageIdError`],
//! never a guess. It must not look at the pod's `image` field to fill gaps.

use crate::digest::Digest;
use crate::reference::Reference;

use super::text::{TOKEN_MAX_BYTES, bounded};

/// A repo digest a runtime reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoDigest {
    /// The repository as reported, normalised (`docker.io/library/nginx`); `None`
    /// when the part before `@` is not a valid name (the digest is still exact).
    pub repository: Option<String>,
    /// The manifest (or index) digest the runtime pulled.
    pub digest: Digest,
}

/// Why an `imageID` does not name a manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum ImageIdError {
    /// The status carries no `imageID` yet (the image is still being pulled, or the
    /// container has not been created).
    #[error("the container reports no imageID yet (not pulled or not created)")]
    Empty,
    /// A local image ID (`docker://sha256:…` or a bare `sha256:…`): the digest of the
    /// config blob, which no registry answers a tag with.
    #[error(
        "the container reports image ID {id} (a config digest, not a manifest digest: the image has no repo digest, for example it was built or loaded on the node)"
    )]
    LocalImageId {
        /// The config digest.
        id: String,
    },
    /// A `…@digest` whose digest part is malformed.
    #[serde(rename_all = "camelCase")]
    #[error("the container's imageID \"{image_id}\" has a malformed digest")]
    BadDigest {
        /// The imageID, escaped and bounded.
        image_id: String,
    },
    /// A shape no known runtime reports.
    #[serde(rename_all = "camelCase")]
    #[error("the container's imageID \"{image_id}\" is in no known form (expected repo@sha256:…)")]
    Unrecognised {
        /// The imageID, escaped and bounded.
        image_id: String,
    },
}

/// Reduces an `imageID` to the repo digest it names.
pub fn parse_image_id(image_id: &str) -> Result<RepoDigest, ImageIdError> {
    let trimmed = image_id.trim();
    if trimmed.is_empty() {
        return Err(ImageIdError::Empty);
    }
    let shown = || bounded(image_id, TOKEN_MAX_BYTES);
    if let Some(id) = trimmed.strip_prefix("docker://") {
        return match Digest::parse(id) {
            Ok(d) => Err(ImageIdError::LocalImageId { id: d.to_string() }),
            Err(_) => Err(ImageIdError::Unrecognised { image_id: shown() }),
        };
    }
    let rest = trimmed
        .strip_prefix("docker-pullable://")
        .unwrap_or(trimmed);
    if rest.contains("://") {
        return Err(ImageIdError::Unrecognised { image_id: shown() });
    }
    let Some((name, digest)) = rest.rsplit_once('@') else {
        return match Digest::parse(rest) {
            Ok(d) => Err(ImageIdError::LocalImageId { id: d.to_string() }),
            Err(_) => Err(ImageIdError::Unrecognised { image_id: shown() }),
        };
    };
    let digest =
        Digest::parse(digest).map_err(|_| ImageIdError::BadDigest { image_id: shown() })?;
    if name.is_empty() {
        return Err(ImageIdError::Unrecognised { image_id: shown() });
    }
    let repository = Reference::parse(name).ok().map(|r| r.name());
    Ok(RepoDigest { repository, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31";

    fn ok(repo: Option<&str>) -> Result<RepoDigest, ImageIdError> {
        Ok(RepoDigest {
            repository: repo.map(str::to_owned),
            digest: Digest::from_sha256_hex(H).unwrap(),
        })
    }

    #[test]
    fn reduces_real_world_image_ids() {
        let table: Vec<(String, Result<RepoDigest, ImageIdError>)> = vec![
            // containerd, pulled by tag
            (
                format!("docker.io/library/nginx@sha256:{H}"),
                ok(Some("docker.io/library/nginx")),
            ),
            // containerd, private registry with a port
            (
                format!("127.0.0.1:5000/team/app@sha256:{H}"),
                ok(Some("127.0.0.1:5000/team/app")),
            ),
            // a repo:tag@digest form (some runtimes and mirrors keep the tag)
            (
                format!("ghcr.io/o/a:v1@sha256:{H}"),
                ok(Some("ghcr.io/o/a")),
            ),
            // CRI-O and dockershim
            (
                format!("docker-pullable://nginx@sha256:{H}"),
                ok(Some("docker.io/library/nginx")),
            ),
            (
                format!("docker-pullable://quay.io/o/a@sha256:{H}"),
                ok(Some("quay.io/o/a")),
            ),
            // a repository part no grammar accepts: the digest is still exact
            (format!("Weird_Repo@sha256:{H}"), ok(None)),
            // dockershim, no repo digest: an image ID
            (
                format!("docker://sha256:{H}"),
                Err(ImageIdError::LocalImageId {
                    id: format!("sha256:{H}"),
                }),
            ),
            // containerd, image imported locally
            (
                format!("sha256:{H}"),
                Err(ImageIdError::LocalImageId {
                    id: format!("sha256:{H}"),
                }),
            ),
            (String::new(), Err(ImageIdError::Empty)),
            ("   ".into(), Err(ImageIdError::Empty)),
            (
                "nginx@sha256:abc".into(),
                Err(ImageIdError::BadDigest {
                    image_id: "nginx@sha256:abc".into(),
                }),
            ),
            (
                "nginx:1.25".into(),
                Err(ImageIdError::Unrecognised {
                    image_id: "nginx:1.25".into(),
                }),
            ),
            (
                format!("@sha256:{H}"),
                Err(ImageIdError::Unrecognised {
                    image_id: format!("@sha256:{H}"),
                }),
            ),
            (
                format!("oci://x@sha256:{H}"),
                Err(ImageIdError::Unrecognised {
                    image_id: format!("oci://x@sha256:{H}"),
                }),
            ),
            (
                "docker://nothex".into(),
                Err(ImageIdError::Unrecognised {
                    image_id: "docker://nothex".into(),
                }),
            ),
            (
                "a\u{1b}[2J@x".into(),
                Err(ImageIdError::BadDigest {
                    image_id: "a\\u{1b}[2J@x".into(),
                }),
            ),
        ];
        for (input, want) in table {
            assert_eq!(parse_image_id(&input), want, "{input:?}");
        }
    }

    #[test]
    fn an_image_id_is_explained_as_not_a_repo_digest() {
        let e = parse_image_id(&format!("docker://sha256:{H}")).unwrap_err();
        assert!(e.to_string().contains("not a manifest digest"), "{e}");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["reason"], "localImageId");
    }

    #[test]
    fn unrecognised_input_is_bounded() {
        let e = parse_image_id(&"x".repeat(10_000)).unwrap_err();
        let ImageIdError::Unrecognised { image_id } = e else {
            panic!("{e:?}")
        };
        assert!(image_id.len() <= TOKEN_MAX_BYTES);
    }
}
