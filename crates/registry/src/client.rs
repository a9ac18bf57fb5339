//! The registry client facade: what other crates call.
//!
//! Owns [`Client`] (cheap to clone; clones share connections, tokens and memos),
//! its construction from [`ClientOptions`] and a [`CredentialStore`], and the public
//! entry points: [`Client::resolve`], [`Client::resolve_all`], [`Client::list_tags`],
//! [`Client::stats`] and [`Client::rate_limits`]. It only wires the layers below:
//! transport ([`crate::transport`]), hosts and auth ([`crate::host`]), resolution
//! ([`crate::resolve`]) and tag listing ([`crate::tags`]); it decides nothing itself.

use std::sync::Arc;

use freshet_core::Reference;

pub use crate::limits::RateLimit;
pub use crate::options::ClientOptions;
pub use crate::stats::{Stats, StatsSnapshot};

use crate::credentials::CredentialStore;
use crate::error::RegistryError;
use crate::host::Hosts;
use crate::resolve::{Memos, Resolved, Resolver, Want};
use crate::transport::Transport;

pub use crate::token::SharedTokens;

struct Inner {
    hosts: Hosts,
    memos: Memos,
}

/// The registry client. Cheap to clone; clones share connections, tokens and memos.
/// Use one client per run: its memos make every unique question asked once.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", self.inner.hosts.transport().options())
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The TLS stack or HTTP client failed to initialise.
    #[error("cannot initialise the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

impl Client {
    /// Builds a client with the given credentials and options.
    pub fn new(
        credentials: CredentialStore,
        options: ClientOptions,
    ) -> Result<Self, ClientBuildError> {
        Self::with_shared_tokens(credentials, options, SharedTokens::default())
    }

    /// A client whose bearer tokens and learned challenges live in `tokens`, shared
    /// with every other client built with it, while its answers (digests, tags)
    /// stay its own. `tokens` must belong to the same credentials: a controller
    /// keeps one per credential set, so passes reuse tokens until they expire
    /// without any token crossing sets.
    pub fn with_shared_tokens(
        credentials: CredentialStore,
        options: ClientOptions,
        tokens: SharedTokens,
    ) -> Result<Self, ClientBuildError> {
        let transport = Transport::new(options).map_err(ClientBuildError::Http)?;
        Ok(Self {
            inner: Arc::new(Inner {
                hosts: Hosts::new(transport, credentials, tokens),
                memos: Memos::new(),
            }),
        })
    }

    /// An anonymous client with default options.
    pub fn anonymous() -> Result<Self, ClientBuildError> {
        Self::new(CredentialStore::anonymous(), ClientOptions::default())
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.hosts.transport().stats().snapshot()
    }

    /// The last rate-limit state each registry reported.
    pub fn rate_limits(&self) -> Vec<(String, RateLimit)> {
        self.inner.hosts.rate_limits()
    }

    /// The registries this client talks to, for crate-internal readers built on top
    /// of the client (build times).
    pub(crate) fn hosts(&self) -> &Hosts {
        &self.inner.hosts
    }

    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            hosts: &self.inner.hosts,
            memos: &self.inner.memos,
        }
    }

    /// Resolves one reference. For `repo:tag@digest` the tag is resolved (what the tag
    /// points to now); for `repo@digest` the digest is checked to exist.
    pub async fn resolve(
        &self,
        reference: &Reference,
        want: &Want,
    ) -> Result<Resolved, RegistryError> {
        self.resolver().resolve(reference, want).await
    }

    /// Resolves many references concurrently. Each unique question is asked once;
    /// results come back in input order.
    pub async fn resolve_all(
        &self,
        inputs: &[(Reference, Want)],
    ) -> Vec<Result<Resolved, RegistryError>> {
        use futures::stream::{self, StreamExt};
        let mut results: Vec<Option<Result<Resolved, RegistryError>>> = vec![None; inputs.len()];
        let done: Vec<(usize, Result<Resolved, RegistryError>)> =
            stream::iter(inputs.iter().enumerate())
                .map(|(i, (r, w))| async move { (i, self.resolve(r, w).await) })
                .buffer_unordered(256)
                .collect()
                .await;
        for (i, r) in done {
            results[i] = Some(r);
        }
        results
            .into_iter()
            .map(|r| r.expect("every input resolved"))
            .collect()
    }

    /// Every tag of the reference's repository, across all pages, within the
    /// options' [`crate::options::TagLimits`].
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        let limits = self.inner.hosts.transport().options().tag_limits;
        crate::tags::list_tags(&self.inner.hosts, reference, limits).await
    }
}
