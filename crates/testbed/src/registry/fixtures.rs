//! The standard fixture images shared by tests, the benchmark and the README demo.
//!
//! Owns which repositories and tags exist and what shape each image has. It must not
//! start registries; it pushes through a [`Pusher`] the caller made.
//!
//! | repository | tags | kind | platforms |
//! |---|---|---|---|
//! | `library/alpine` | `3.18.0` `3.18.4` `3.19.0` `3.19.1`, and `latest` (= `3.19.1`, same digest) | OCI index | linux/amd64, linux/arm64/v8 |
//! | `team/api` | `1.0.0` `1.0.1` `1.1.0` `1.2.0-rc.1` `2.0.0`, `v1.3.0`, `1.0.0-alpine` `1.0.1-alpine`, and `stable` (= `1.1.0`, same digest) | Docker schema 2 | linux/amd64 |
//! | `team/multi` | `latest` | Docker manifest list | linux/amd64, linux/arm64/v8 |
//! | `team/amd64only` | `latest` | OCI index | linux/amd64 only |
//! | `team/many` | 2,600 tags `M.m.p` for M in 0..=12, m in 0..=19, p in 0..=9 (highest `12.19.9`) | OCI manifest, one digest per tag | linux/amd64 |
//!
//! Every image's seed is `repo:tag` (aliases share their target's seed), generation
//! `1`, so digests are the same in every run. [`move_tag`] pushes a new generation to
//! an existing tag. [`seed_standard`] pushes all of it (a few seconds); the `seed_*`
//! functions push one repository each.

use std::collections::BTreeMap;

use super::TestbedError;
use super::image::{ImageSpec, Platform};
use super::push::{PushedImage, Pusher};

/// `library/alpine`.
pub const ALPINE: &str = "library/alpine";
/// The tags of `library/alpine`, `latest` last.
pub const ALPINE_TAGS: &[&str] = &["3.18.0", "3.18.4", "3.19.0", "3.19.1", "latest"];
/// `team/api`.
pub const API: &str = "team/api";
/// The tags of `team/api`, `stable` last.
pub const API_TAGS: &[&str] = &[
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.2.0-rc.1",
    "2.0.0",
    "v1.3.0",
    "1.0.0-alpine",
    "1.0.1-alpine",
    "stable",
];
/// `team/multi`.
pub const MULTI: &str = "team/multi";
/// `team/amd64only`.
pub const AMD64_ONLY: &str = "team/amd64only";
/// `team/many`.
pub const MANY: &str = "team/many";
/// How many tags `team/many` has.
pub const MANY_TAG_COUNT: usize = 2_600;

/// The images of one repository, by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFixture {
    /// The repository name.
    pub repo: String,
    /// The pushed images by tag.
    pub tags: BTreeMap<String, PushedImage>,
}

impl RepoFixture {
    fn new(repo: &str, images: impl IntoIterator<Item = PushedImage>) -> Self {
        RepoFixture {
            repo: repo.to_owned(),
            tags: images.into_iter().map(|i| (i.tag.clone(), i)).collect(),
        }
    }

    /// The image under `tag`. Panics if the fixture has no such tag (a test bug).
    pub fn image(&self, tag: &str) -> &PushedImage {
        self.tags
            .get(tag)
            .unwrap_or_else(|| panic!("fixture {} has no tag {tag}", self.repo))
    }

    /// The top-level digest of `tag` (the index digest for multi-arch images).
    pub fn digest(&self, tag: &str) -> &str {
        &self.image(tag).digest
    }

    /// The digest a node of `platform` (`linux/arm64/v8`) runs for `tag`.
    pub fn platform_digest(&self, tag: &str, platform: &str) -> &str {
        let p = Platform::parse(platform).unwrap_or_else(|| panic!("bad platform {platform}"));
        self.image(tag)
            .platform_digest(&p)
            .unwrap_or_else(|| panic!("{}:{tag} has no {platform} image", self.repo))
    }

    /// The tag names.
    pub fn tag_names(&self) -> Vec<&str> {
        self.tags.keys().map(String::as_str).collect()
    }
}

/// The whole standard set, as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardFixtures {
    /// `library/alpine`.
    pub alpine: RepoFixture,
    /// `team/api`.
    pub api: RepoFixture,
    /// `team/multi`.
    pub multi: RepoFixture,
    /// `team/amd64only`.
    pub amd64only: RepoFixture,
    /// `team/many`.
    pub many: RepoFixture,
}

fn two_platforms() -> Vec<Platform> {
    vec![Platform::linux_amd64(), Platform::linux_arm64_v8()]
}

/// The spec of `library/alpine:<tag>` (`latest` is `3.19.1`).
pub fn alpine_spec(tag: &str) -> ImageSpec {
    let tag = if tag == "latest" { "3.19.1" } else { tag };
    ImageSpec::oci_index(format!("{ALPINE}:{tag}"), two_platforms())
}

/// The spec of `team/api:<tag>` (`stable` is `1.1.0`).
pub fn api_spec(tag: &str) -> ImageSpec {
    let tag = if tag == "stable" { "1.1.0" } else { tag };
    ImageSpec::docker_v2(format!("{API}:{tag}"))
}

/// The tags of `team/many`, in push order: `0.0.0` … `12.19.9`.
pub fn many_tags() -> Vec<String> {
    let mut tags = Vec::with_capacity(MANY_TAG_COUNT);
    for major in 0..=12 {
        for minor in 0..=19 {
            for patch in 0..=9 {
                tags.push(format!("{major}.{minor}.{patch}"));
            }
        }
    }
    tags
}

async fn push_with_alias(
    pusher: &Pusher,
    repo: &str,
    tags: &[&str],
    alias: &str,
    spec: impl Fn(&str) -> ImageSpec,
) -> Result<RepoFixture, TestbedError> {
    let images = futures::future::try_join_all(
        tags.iter()
            .filter(|t| **t != alias)
            .map(|tag| async { pusher.push(repo, tag, &spec(tag)).await }),
    )
    .await?;
    let mut fixture = RepoFixture::new(repo, images);
    let target = spec(alias);
    let aliased = fixture
        .tags
        .values()
        .find(|i| i.spec == target)
        .cloned()
        .ok_or(TestbedError::Unsupported("alias target missing"))?;
    let alias_image = pusher.tag(&aliased, alias).await?;
    fixture.tags.insert(alias.to_owned(), alias_image);
    Ok(fixture)
}

/// Pushes `library/alpine` (see the table).
pub async fn seed_alpine(pusher: &Pusher) -> Result<RepoFixture, TestbedError> {
    push_with_alias(pusher, ALPINE, ALPINE_TAGS, "latest", alpine_spec).await
}

/// Pushes `team/api` (see the table).
pub async fn seed_api(pusher: &Pusher) -> Result<RepoFixture, TestbedError> {
    push_with_alias(pusher, API, API_TAGS, "stable", api_spec).await
}

/// Pushes `team/multi:latest`, a Docker manifest list (amd64, arm64/v8).
pub async fn seed_multi(pusher: &Pusher) -> Result<RepoFixture, TestbedError> {
    let spec = ImageSpec::docker_manifest_list(format!("{MULTI}:latest"), two_platforms());
    let image = pusher.push(MULTI, "latest", &spec).await?;
    Ok(RepoFixture::new(MULTI, [image]))
}

/// Pushes `team/amd64only:latest`, an OCI index with only linux/amd64.
pub async fn seed_amd64only(pusher: &Pusher) -> Result<RepoFixture, TestbedError> {
    let spec = ImageSpec::oci_index(
        format!("{AMD64_ONLY}:latest"),
        vec![Platform::linux_amd64()],
    );
    let image = pusher.push(AMD64_ONLY, "latest", &spec).await?;
    Ok(RepoFixture::new(AMD64_ONLY, [image]))
}

/// Pushes the 2,600 tags of `team/many` with [`Pusher::push_tag_many`].
pub async fn seed_many(pusher: &Pusher) -> Result<RepoFixture, TestbedError> {
    let spec = ImageSpec::oci(MANY);
    let images = pusher.push_tag_many(MANY, many_tags(), &spec).await?;
    Ok(RepoFixture::new(MANY, images))
}

/// Pushes the whole standard set.
pub async fn seed_standard(pusher: &Pusher) -> Result<StandardFixtures, TestbedError> {
    let (alpine, api, multi, amd64only, many) = futures::try_join!(
        seed_alpine(pusher),
        seed_api(pusher),
        seed_multi(pusher),
        seed_amd64only(pusher),
        seed_many(pusher),
    )?;
    Ok(StandardFixtures {
        alpine,
        api,
        multi,
        amd64only,
        many,
    })
}

/// Moves `repo:tag` in `fixture` to a new generation (new digests for the image
/// and every child) and updates the fixture; returns the new image.
pub async fn move_tag(
    pusher: &Pusher,
    fixture: &mut RepoFixture,
    tag: &str,
    generation: &str,
) -> Result<PushedImage, TestbedError> {
    let old = fixture.image(tag).clone();
    let new = pusher.move_tag(&old, generation).await?;
    fixture.tags.insert(tag.to_owned(), new.clone());
    Ok(new)
}
