//! Gathering registry facts: each unique tracked image is asked about once per run,
//! for exactly what its policy needs (the tag's digest, the tag list, or both).
//!
//! Owns the fan-out to the registry client and the folding of its answers into the
//! core's [`ImageFacts`]. A failure is recorded in the image's facts as the error's
//! public message (the host, the class and what to do, never text the registry
//! chose: the facts' messages reach annotations and Events), is logged in full, and
//! never stops the other images: each registry is asked concurrently and
//! independently. [`Streaming`] asks as images arrive (while later pages of
//! workloads are still being read), within a shared bound of requests in flight.
//! Must not decide anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use freshet_core::Reference;
use freshet_core::policy::{Facts, Policy};
use freshet_core::refresh::plan::ImageFacts;
use freshet_registry::{Client, Want};
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What to ask the registry about one image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wanted {
    /// Its tag list.
    pub tags: bool,
    /// The digest of its tag.
    pub digest: bool,
}

/// The images a run tracks, by canonical name, with what each needs.
#[derive(Debug, Clone, Default)]
pub struct Worklist {
    images: BTreeMap<String, (Reference, Wanted)>,
}

impl Worklist {
    /// Adds what `policy` needs of `reference` (merged with earlier asks).
    pub fn add(&mut self, reference: &Reference, policy: &Policy) {
        let tag = reference.tag_or_latest().unwrap_or("latest").to_owned();
        let needs = policy.needs(Some(&tag));
        let entry = self
            .images
            .entry(reference.canonical())
            .or_insert_with(|| (reference.clone(), Wanted::default()));
        entry.1.tags |= needs.tag_list;
        entry.1.digest |= needs.digest_of.is_some();
    }

    /// Adds a digest-only ask for `reference` (a set-image target).
    pub fn add_digest(&mut self, reference: &Reference) {
        let entry = self
            .images
            .entry(reference.canonical())
            .or_insert_with(|| (reference.clone(), Wanted::default()));
        entry.1.digest = true;
    }

    /// How many unique images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there is nothing to ask.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Asks the registries, `concurrency` images at a time.
    pub async fn resolve(&self, client: &Client, concurrency: usize) -> ImageFacts {
        futures::stream::iter(self.images.iter())
            .map(|(image, (reference, wanted))| async move {
                (image.clone(), fetch(client, reference, wanted).await)
            })
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}

/// Asks the registry about images as they are added, each unique ask once, at most
/// as many at a time as the shared `permits` allow; [`Streaming::finish`] waits for
/// every answer. An image whose needs grow after it was asked (a later workload
/// wants its tag list too) is asked again for the missing part only.
#[derive(Debug)]
pub struct Streaming {
    client: Client,
    permits: Arc<Semaphore>,
    asked: BTreeMap<String, Wanted>,
    tasks: JoinSet<(String, Facts)>,
}

impl Streaming {
    /// A resolver asking through `client`, within `permits`.
    pub fn new(client: Client, permits: Arc<Semaphore>) -> Self {
        Self {
            client,
            permits,
            asked: BTreeMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The client asked through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many unique images were asked about.
    pub fn len(&self) -> usize {
        self.asked.len()
    }

    /// Whether nothing was asked.
    pub fn is_empty(&self) -> bool {
        self.asked.is_empty()
    }

    /// Starts asking what `policy` needs of `reference`, unless already asked.
    pub fn add(&mut self, reference: &Reference, policy: &Policy) {
        let tag = reference.tag_or_latest().unwrap_or("latest").to_owned();
        let needs = policy.needs(Some(&tag));
        let wanted = Wanted {
            tags: needs.tag_list,
            digest: needs.digest_of.is_some(),
        };
        let image = reference.canonical();
        let had = self.asked.entry(image.clone()).or_default();
        let missing = Wanted {
            tags: wanted.tags && !had.tags,
            digest: wanted.digest && !had.digest,
        };
        had.tags |= wanted.tags;
        had.digest |= wanted.digest;
        if !missing.tags && !missing.digest {
            return;
        }
        let client = self.client.clone();
        let permits = self.permits.clone();
        let reference = reference.clone();
        // The asking future (kilobytes) is boxed once a permit is held, so the
        // tasks waiting for one stay small: a pass may queue thousands.
        self.tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let got = Box::pin(fetch(&client, &reference, &missing)).await;
            (image, got)
        });
    }

    /// Every answer, once all asks are done.
    pub async fn finish(mut self) -> ImageFacts {
        let mut facts = ImageFacts::new();
        while let Some(done) = self.tasks.join_next().await {
            let Ok((image, got)) = done else {
                tracing::error!("a registry ask ended without an answer");
                continue;
            };
            let entry: &mut Facts = facts.entry(image).or_default();
            if got.tags.is_some() {
                entry.tags = got.tags;
            }
            entry.digests.extend(got.digests);
        }
        facts
    }
}

async fn fetch(client: &Client, reference: &Reference, wanted: &Wanted) -> Facts {
    let tag = reference.tag_or_latest().unwrap_or("latest").to_owned();
    let digest = async {
        if !wanted.digest {
            return None;
        }
        Some(
            client
                .resolve(reference, &Want::default())
                .await
                .map(|r| r.digest)
                .map_err(|e| failed(reference, "resolve", &e)),
        )
    };
    let tags = async {
        if !wanted.tags {
            return None;
        }
        Some(
            client
                .list_tags(reference)
                .await
                .map_err(|e| failed(reference, "tag listing", &e)),
        )
    };
    let (digest, tags) = futures::join!(digest, tags);
    let mut facts = Facts {
        tags,
        digests: BTreeMap::new(),
    };
    if let Some(d) = digest {
        facts.digests.insert(tag, d);
    }
    facts
}

/// Logs a registry failure in full and gives the message kept in the facts.
fn failed(reference: &Reference, what: &str, e: &freshet_registry::RegistryError) -> String {
    tracing::info!(image = %reference, class = %e.class(), error = %e, "{what} failed");
    e.public_message()
}
