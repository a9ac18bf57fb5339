//! What a tag names now (or named before): an index and its per-platform children,
//! or a single-platform image.
//!
//! Owns the question "which digest does a node of platform P get from this
//! target?", answered with the index's own child selection
//! ([`Manifest::select`](crate::manifest::Manifest::select): `linux/arm64` is
//! `linux/arm64/v8`, arm falls back to lower variants). A single-platform image's
//! platform comes from its config blob, which the registry shell reads; when it
//! could not, the answer is unknown and says so.
//!
//! An earlier target need not be fetched again: [`Target::record`] keeps the
//! per-platform digests that matter (to store next to the recorded digest, for
//! example in `freshet.io/refreshed`), and [`Target::Recorded`] answers from them,
//! "unknown" for any platform not recorded. It must not fetch anything.

use std::collections::BTreeMap;

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
    /// An earlier target, as recorded: its digest and the image it offered for the
    /// platforms that were recorded. Other platforms are unknown, not missing.
    Recorded {
        /// The digest the tag named.
        digest: Digest,
        /// Platform → the digest a node of it pulled; `None` when not offered.
        platforms: BTreeMap<Platform, Option<Digest>>,
    },
}

/// What a node of one platform gets from a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForPlatform {
    /// This manifest digest (an index's child, or the single image itself).
    Offered(Digest),
    /// The target offers no image for the platform.
    NotOffered,
    /// Not known: a single image whose platform was not read, or a recorded target
    /// without that platform.
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
            Self::Index { digest, .. }
            | Self::Image { digest, .. }
            | Self::Recorded { digest, .. } => digest,
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
            Self::Recorded { platforms, .. } => match platforms.get(platform) {
                Some(Some(d)) => ForPlatform::Offered(d.clone()),
                Some(None) => ForPlatform::NotOffered,
                None => ForPlatform::Unknown,
            },
        }
    }

    /// What to keep of this target for `platforms` (for example the platforms a
    /// workload runs on), so that [`Target::Recorded`] can answer for them later
    /// without fetching the manifest again. Platforms whose answer is unknown are
    /// left out. The keys are platform strings (`linux/arm64`), for JSON.
    pub fn record<'p>(
        &self,
        platforms: impl IntoIterator<Item = &'p Platform>,
    ) -> BTreeMap<String, Option<Digest>> {
        platforms
            .into_iter()
            .filter_map(|p| match self.for_platform(p) {
                ForPlatform::Offered(d) => Some((p.to_string(), Some(d))),
                ForPlatform::NotOffered => Some((p.to_string(), None)),
                ForPlatform::Unknown => None,
            })
            .collect()
    }

    /// A [`Target::Recorded`] from what [`Target::record`] kept; entries whose key
    /// is not a platform are dropped (so stored text cannot make one up).
    pub fn recorded(digest: Digest, platforms: &BTreeMap<String, Option<Digest>>) -> Self {
        let platforms = platforms
            .iter()
            .filter_map(|(k, v)| Some((Platform::parse(k).ok()?, v.clone())))
            .collect();
        Self::Recorded { digest, platforms }
    }

    /// True when `digest` is this target's digest or one of its runnable children.
    pub fn names(&self, digest: &Digest) -> bool {
        self.digest() == digest
            || match self {
                Self::Index { index, .. } => index.platforms().any(|c| &c.digest == digest),
                Self::Image { .. } => false,
                Self::Recorded { platforms, .. } => {
                    platforms.values().any(|d| d.as_ref() == Some(digest))
                }
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
            Self::Recorded { platforms, .. } => platforms
                .iter()
                .filter(|(_, d)| d.is_some())
                .map(|(p, _)| p.clone())
                .collect(),
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
    fn a_recorded_target_answers_for_recorded_platforms_only() {
        let multi = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
        let kept = multi.record([&p("linux/amd64"), &p("linux/s390x")]);
        let json = serde_json::to_string(&kept).unwrap();
        assert_eq!(
            json,
            format!("{{\"linux/amd64\":\"{}\",\"linux/s390x\":null}}", d(2))
        );
        let mut stored: BTreeMap<String, Option<Digest>> = serde_json::from_str(&json).unwrap();
        stored.insert("not a platform".into(), Some(d(9)));
        let again = Target::recorded(d(1), &stored);
        assert_eq!(again.digest(), &d(1));
        assert_eq!(
            again.for_platform(&p("linux/amd64")),
            ForPlatform::Offered(d(2))
        );
        assert_eq!(
            again.for_platform(&p("linux/s390x")),
            ForPlatform::NotOffered
        );
        assert_eq!(again.for_platform(&p("linux/arm64")), ForPlatform::Unknown);
        assert!(again.names(&d(2)) && !again.names(&d(9)));
        assert_eq!(again.platforms(), [p("linux/amd64")]);
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
