//! Request counters: what a client sent, for tests, benchmarks and metrics.
//!
//! Owns [`Stats`] (atomic counters), its [`StatsSnapshot`] and the [`Kind`] of a
//! request. It only counts; it must not decide anything or hold other state.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what a client sent, for tests, benchmarks and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Every HTTP request sent (retries included).
    pub requests: AtomicU64,
    /// `GET /v2/` pings.
    pub pings: AtomicU64,
    /// Manifest HEADs.
    pub manifest_heads: AtomicU64,
    /// Manifest GETs.
    pub manifest_gets: AtomicU64,
    /// Blob GETs (image configs, for single-arch platform checks).
    pub blob_gets: AtomicU64,
    /// Token endpoint requests.
    pub token_requests: AtomicU64,
    /// Tag list pages.
    pub tag_pages: AtomicU64,
    /// Retries after transient failures.
    pub retries: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub pings: u64,
    pub manifest_heads: u64,
    pub manifest_gets: u64,
    pub blob_gets: u64,
    pub token_requests: u64,
    pub tag_pages: u64,
    pub retries: u64,
}

/// What kind of request, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ping,
    ManifestHead,
    ManifestGet,
    BlobGet,
    TagPage,
    Token,
}

impl Stats {
    /// Counts one attempt of a request of this kind.
    pub(crate) fn count(&self, kind: Kind) {
        let counter = match kind {
            Kind::Ping => &self.pings,
            Kind::ManifestHead => &self.manifest_heads,
            Kind::ManifestGet => &self.manifest_gets,
            Kind::BlobGet => &self.blob_gets,
            Kind::TagPage => &self.tag_pages,
            Kind::Token => &self.token_requests,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one HTTP request sent.
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one retry.
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: l(&self.requests),
            pings: l(&self.pings),
            manifest_heads: l(&self.manifest_heads),
            manifest_gets: l(&self.manifest_gets),
            blob_gets: l(&self.blob_gets),
            token_requests: l(&self.token_requests),
            tag_pages: l(&self.tag_pages),
            retries: l(&self.retries),
        }
    }
}
