//! The per-run cache of registry answers for `plan`.
//!
//! Owns asking each unique question once: tag lists per repository, digests per
//! (repository, tag), build times per (repository, tag, platform). Questions are
//! gathered into a [`Wanted`] batch, deduplicated, and asked concurrently (the registry
//! client applies its per-registry limits below [`FETCH_CONCURRENCY`]). Failures are
//! kept with their class, so a failed lookup becomes an error naming it.
//!
//! Must not decide anything or read files.

use std::collections::{BTreeMap, HashMap};

use freshet_core::policy::{BuildTime, Builds, Facts};
use freshet_core::{Digest, Platform, Reference};
use futures::stream::{self, StreamExt as _};

use crate::facts::{FactError, FactSource};

/// How many registry questions are in flight at once. The registry client applies its
/// own per-registry limits below this.
pub(crate) const FETCH_CONCURRENCY: usize = 64;

/// Key of a build time: repository name, tag, platform.
type BuildKey = (String, String, String);

/// Per-run cache of registry answers.
#[derive(Default)]
pub(crate) struct Cache {
    /// Tag lists by repository name.
    tags: HashMap<String, Result<Vec<String>, FactError>>,
    /// Digests by (repository name, tag).
    digests: HashMap<(String, String), Result<Digest, FactError>>,
    /// Build times by (repository name, tag, platform).
    builds: HashMap<BuildKey, Result<Option<BuildTime>, FactError>>,
}

/// The questions of one batch, deduplicated: a reference to ask with, per repository,
/// per (repository, tag) and per (repository, tag, platform).
#[derive(Default)]
pub(crate) struct Wanted {
    pub(crate) tags: BTreeMap<String, Reference>,
    pub(crate) digests: BTreeMap<(String, String), Reference>,
    pub(crate) builds: BTreeMap<BuildKey, (Reference, Platform)>,
}

impl Wanted {
    pub(crate) fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.digests.is_empty() && self.builds.is_empty()
    }

    pub(crate) fn tag_list(&mut self, r: &Reference) {
        self.tags.entry(r.name()).or_insert_with(|| r.clone());
    }

    pub(crate) fn digest(&mut self, r: &Reference, tag: &str) {
        self.digests
            .entry((r.name(), tag.to_owned()))
            .or_insert_with(|| r.clone());
    }

    pub(crate) fn build(&mut self, r: &Reference, tag: &str, platform: &Platform) {
        self.builds
            .entry((r.name(), tag.to_owned(), platform.to_string()))
            .or_insert_with(|| (r.clone(), platform.clone()));
    }
}

/// What one reference asked for, to find its failures and its facts.
#[derive(Debug, Default, Clone)]
pub(crate) struct Asked {
    pub(crate) tag_list: bool,
    pub(crate) digest_tags: Vec<String>,
    pub(crate) build_tags: Vec<String>,
}

impl Cache {
    /// Fetches every answer in `wanted` that is not cached yet.
    pub(crate) async fn fill(&mut self, source: &dyn FactSource, wanted: &Wanted) {
        let tag_jobs: Vec<&Reference> = wanted
            .tags
            .iter()
            .filter(|(name, _)| !self.tags.contains_key(*name))
            .map(|(_, r)| r)
            .collect();
        let tag_answers: Vec<_> = stream::iter(tag_jobs)
            .map(|r| async move { (r.name(), source.tags(r).await) })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
        self.tags.extend(tag_answers);

        let digest_jobs: Vec<_> = wanted
            .digests
            .iter()
            .filter(|(key, _)| !self.digests.contains_key(*key))
            .collect();
        let digest_answers: Vec<_> = stream::iter(digest_jobs)
            .map(|(key, r)| async move {
                let answer = match r.with_tag(&key.1) {
                    Ok(tagged) => source.digest(&tagged).await,
                    Err(e) => Err(FactError::new(e.to_string()).with_class("invalid_reference")),
                };
                (key.clone(), answer)
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
        self.digests.extend(digest_answers);

        let build_jobs: Vec<_> = wanted
            .builds
            .iter()
            .filter(|(key, _)| !self.builds.contains_key(*key))
            .collect();
        let build_answers: Vec<_> = stream::iter(build_jobs)
            .map(|(key, (r, platform))| async move {
                let answer = match r.with_tag(&key.1) {
                    Ok(tagged) => source.created(&tagged, platform).await,
                    Err(e) => Err(FactError::new(e.to_string()).with_class("invalid_reference")),
                };
                (key.clone(), answer)
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
        self.builds.extend(build_answers);
    }

    /// The facts for one reference: what it asked for.
    pub(crate) fn facts(&self, reference: &Reference, asked: &Asked) -> Facts {
        let name = reference.name();
        let mut facts = Facts::default();
        if asked.tag_list {
            facts.tags = self
                .tags
                .get(&name)
                .map(|r| r.clone().map_err(|e| e.message));
        }
        for tag in &asked.digest_tags {
            if let Some(d) = self.digests.get(&(name.clone(), tag.clone())) {
                facts
                    .digests
                    .insert(tag.clone(), d.clone().map_err(|e| e.message));
            }
        }
        facts
    }

    /// The build times one reference asked for.
    pub(crate) fn builds(
        &self,
        reference: &Reference,
        asked: &Asked,
        platform: &Platform,
    ) -> Builds {
        let name = reference.name();
        let platform = platform.to_string();
        asked
            .build_tags
            .iter()
            .filter_map(|tag| {
                let answer = self
                    .builds
                    .get(&(name.clone(), tag.clone(), platform.clone()))?;
                Some((tag.clone(), answer.clone().map_err(|e| e.message)))
            })
            .collect()
    }

    /// The first failed lookup among those a reference asked for.
    pub(crate) fn failure(
        &self,
        reference: &Reference,
        asked: &Asked,
        platform: &Platform,
    ) -> Option<FactError> {
        let name = reference.name();
        if asked.tag_list
            && let Some(Err(e)) = self.tags.get(&name)
        {
            return Some(e.clone());
        }
        for tag in &asked.digest_tags {
            if let Some(Err(e)) = self.digests.get(&(name.clone(), tag.clone())) {
                return Some(e.clone());
            }
        }
        for tag in &asked.build_tags {
            if let Some(Err(e)) =
                self.builds
                    .get(&(name.clone(), tag.clone(), platform.to_string()))
            {
                return Some(e.clone());
            }
        }
        None
    }
}
