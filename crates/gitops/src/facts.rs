//! Where registry facts come from.
//!
//! Owns the [`FactSource`] trait the binary implements over the registry client (and tests
//! implement over a table). The planner asks only for what a policy needs, and caches
//! answers per repository and tag within one run.
//!
//! Must not know about files or git.

use freshet_core::{Digest, Reference};

/// Why a fact could not be fetched. The message is shown to the user as the reason a
/// reference was kept, so it must not hold credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FactError {
    /// What went wrong, e.g. `listing tags of ghcr.io/acme/api: 401 unauthorized`.
    pub message: String,
}

impl FactError {
    /// A fact error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        FactError {
            message: message.into(),
        }
    }
}

/// Answers the registry questions a policy needs.
#[async_trait::async_trait]
pub trait FactSource: Send + Sync {
    /// All tags of the reference's repository (`reference.name()`); the tag and digest of
    /// `reference` are irrelevant.
    async fn tags(&self, reference: &Reference) -> Result<Vec<String>, FactError>;

    /// The digest `reference` (which has a tag) points to now: the manifest or index
    /// digest, as `docker pull` would pin it.
    async fn digest(&self, reference: &Reference) -> Result<Digest, FactError>;
}
