//! What a tag names now (or named before): an index and its per-platform children,
//! or a single-platform image.
//!
//! Owns the question "which digest does a node of platform P get from this
//! target?", answered with the index's own child selection
//! ([`Manifest::select`](crate::manifest::Manifest::select): `linux/arm64` is
//! `linux/arm64/v8`, arm falls back to lower variants). A single-platform image's
//! platform comes from its config blob, which the registry shell reads; when it
//! could not, the answer is unknown and says so. It must not fetch anything.

use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::platform::Platform;

/// A resolved tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A multi-platform index (OCI index or Docker manifest list).
    Index {
        /// The index digest (what containerd reports for a pod that pulled the tag).
        digest: Digest,
        /// The parsed index ([`Manifest::Index`]).
        index: Manifest,
    },
    /// A single-platform image manifest.
    Image {
        /// The manifest digest.
        digest: Digest,
        /// Its platform, from the config blob; `None` when it was not read.
        platform: Option<Platform>,
    },
}

/// What a node of one platform gets from a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForPlatform {
    /// This manifest digest (an index's child, or the single image itself).
    Offered(Digest),
    /// The target offers no image for the platform.
    NotOffered,
    /// A single image whose platform is not known.
    Unknown,
}

impl Target {
    /// A target from a resolved digest and its manifest. `image_platform` is the
    /// single image's platform from its config blob (ignored for an index).
    pub fn new(digest: Digest, manifest: Manifest, image_platform: Option<Platform>) -> Self {
        match manifest {
            index @ Manifest::Index { .. } => Self::Index { digest, index },
            Manifest::Image { .. } => Self::Image {
                digest,
                platform: image_platform,
            },
        }
    }

    /// The digest the tag resolves to.
    pub fn digest(&self) -> &Digest {
        match self {
            Self::Index { digest, .. } | Self::Image { digest, .. } => digest,
        }
    }

    /// What a node of `platform` pulls.
    pub fn for_platform(&self, platform: &Platform) -> ForPlatform {
        match self {
            Self::Index { index, .. } => {
                index.select(platform).map_or(ForPlatform::NotOffered, |c| {
                    ForPlatform::Offered(c.digest.clone())
                })
            }
            Self::Image {
                digest,
                platform: Some(p),
            } => {
                if p == platform || arm_runs(platform, p) {
                    ForPlatform::Offered(digest.clone())
                } else {
                    ForPlatform::NotOffered
                }
            }
            Self::Image { platform: None, .. } => ForPlatform::Unknown,
        }
    }

    /// True when `digest` is this target's digest or one of its runnable children.
    pub fn names(&self, digest: &Digest) -> bool {
        self.digest() == digest
            || match self {
                Self::Index { index, .. } => index.platforms().any(|c| &c.digest == digest),
                Self::Image { .. } => false,
            }
    }

    /// The runnable platforms the target offers (empty for a single image whose
    /// platform is unknown).
    pub fn platforms(&self) -> Vec<Platform> {
        match self {
            Self::Index { index, .. } => index
                .platforms()
                .filter_map(|c| c.platform.clone())
                .collect(),
            Self::Image { platform, .. } => platform.iter().cloned().collect(),
        }
    }
}

/// A 32-bit arm node runs images of a lower variant (v7 runs v6 and v5).
fn arm_runs(node: &Platform, image: &Platform) -> bool {
    let n = |p: &Platform| p.variant.as_deref()?.strip_prefix('v')?.parse::<u32>().ok();
    node.os == image.os
        && node.architecture == "arm"
        && image.architecture == "arm"
        && matches!((n(node), n(image)), (Some(a), Some(b)) if b <= a)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Chainable targets for the tests of this module tree.
    use super::*;
    use crate::manifest::Child;

    /// The digest `sha256:nn…nn`.
    pub(crate) fn d(n: u8) -> Digest {
        Digest::from_sha256_hex(&format!("{n:02x}").repeat(32)).unwrap()
    }

    /// An index `d(n)` with the children `(platform, d(child))`.
    pub(crate) fn index(n: u8, children: &[(&str, u8)]) -> Target {
        let manifests = children
            .iter()
            .map(|(p, c)| Child {
                media_type: crate::manifest::OCI_MANIFEST.into(),
                digest: d(*c),
                platform: Some(Platform::parse(p).unwrap()),
                attestation: false,
            })
            .collect();
        Target::Index {
            digest: d(n),
            index: Manifest::Index {
                media_type: crate::manifest::OCI_INDEX.into(),
                manifests,
            },
        }
    }

    /// A single image `d(n)` of `platform`.
    pub(crate) fn image(n: u8, platform: Option<&str>) -> Target {
        Target::Image {
            digest: d(n),
            platform: platform.map(|p| Platform::parse(p).unwrap()),
        }
    }

    /// `Platform::parse(p)`.
    pub(crate) fn p(p: &str) -> Platform {
        Platform::parse(p).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{d, image, index, p};
    use super::*;

    #[test]
    fn answers_per_platform() {
        let multi = index(
            1,
            &[
                ("linux/amd64", 2),
                ("linux/arm64/v8", 3),
                ("linux/arm/v6", 4),
            ],
        );
        let table = [
            (&multi, "linux/amd64", ForPlatform::Offered(d(2))),
            (&multi, "linux/arm64", ForPlatform::Offered(d(3))),
            (&multi, "linux/arm/v7", ForPlatform::Offered(d(4))),
            (&multi, "linux/s390x", ForPlatform::NotOffered),
        ];
        for (t, plat, want) in table {
            assert_eq!(t.for_platform(&p(plat)), want, "{plat}");
        }
        let single = image(9, Some("linux/amd64"));
        assert_eq!(
            single.for_platform(&p("linux/amd64")),
            ForPlatform::Offered(d(9))
        );
        assert_eq!(
            single.for_platform(&p("linux/arm64")),
            ForPlatform::NotOffered
        );
        let arm6 = image(8, Some("linux/arm/v6"));
        assert_eq!(
            arm6.for_platform(&p("linux/arm/v7")),
            ForPlatform::Offered(d(8))
        );
        assert_eq!(
            arm6.for_platform(&p("linux/arm/v5")),
            ForPlatform::NotOffered
        );
        assert_eq!(
            image(9, None).for_platform(&p("linux/amd64")),
            ForPlatform::Unknown
        );
        assert!(multi.names(&d(1)) && multi.names(&d(3)) && !multi.names(&d(9)));
        assert_eq!(multi.platforms().len(), 3);
    }

    #[test]
    fn new_picks_the_shape_from_the_manifest() {
        let m = Manifest::Image {
            media_type: crate::manifest::OCI_MANIFEST.into(),
            config: d(7),
        };
        assert_eq!(
            Target::new(d(1), m, Some(p("linux/amd64"))),
            image(1, Some("linux/amd64"))
        );
    }
}
