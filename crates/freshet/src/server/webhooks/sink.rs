//! Where accepted webhook images go: a sink that knows what freshet tracks.
//!
//! Owns the [`RecheckSink`] contract and a ready-made [`ChannelSink`] (a tracked set
//! plus a bounded channel). A sink only ever accepts images freshet already tracks; it
//! must not contact anything, block, or grow without bound: the controller's pass does
//! the registry work, for tracked images only.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use freshet_core::Reference;
use tokio::sync::mpsc;

/// The controller's side of the webhook receiver.
pub trait RecheckSink: Send + Sync + 'static {
    /// Whether freshet tracks the repository of `image` (its `registry/repository`;
    /// a push of any tag may matter to a tag policy).
    fn is_tracked(&self, image: &Reference) -> bool;

    /// Queues an immediate re-check of a tracked image. Must not block; false when the
    /// queue is full (counted as `queue_full`; the next regular pass covers it).
    fn recheck(&self, image: Reference) -> bool;
}

/// A [`RecheckSink`] over a set of tracked repositories and a bounded channel.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tracked: Arc<RwLock<HashSet<String>>>,
    tx: mpsc::Sender<Reference>,
}

impl ChannelSink {
    /// A sink with an empty tracked set and a queue of `capacity` (at least 1), and the
    /// receiver the controller drains.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Reference>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sink = Self {
            tracked: Arc::default(),
            tx,
        };
        (sink, rx)
    }

    /// Replaces the tracked set: the images of the watched workloads (each is reduced to
    /// its `registry/repository`, e.g. `docker.io/library/nginx`).
    pub fn set_tracked<'a>(&self, images: impl IntoIterator<Item = &'a Reference>) {
        let set: HashSet<String> = images.into_iter().map(Reference::name).collect();
        *self.tracked.write().unwrap_or_else(PoisonError::into_inner) = set;
    }
}

impl ChannelSink {
    /// Replaces the tracked set with repositories already reduced to
    /// `registry/repository`.
    pub fn set_repositories(&self, repositories: impl IntoIterator<Item = String>) {
        let set: HashSet<String> = repositories.into_iter().collect();
        *self.tracked.write().unwrap_or_else(PoisonError::into_inner) = set;
    }
}

impl RecheckSink for ChannelSink {
    fn is_tracked(&self, image: &Reference) -> bool {
        self.tracked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&image.name())
    }

    fn recheck(&self, image: Reference) -> bool {
        self.tx.try_send(image).is_ok()
    }
}
