//! Where registry facts come from.
//!
//! Owns the [`FactSource`] trait the binary implements over the registry client (and tests
//! implement over a table). The planner asks only for what a policy needs, and caches
//! answers per repository and tag within one run.
//!
//! Must not know about files or git.

use freshet_core::policy::BuildTime;
use freshet_core::{Digest, Platform, Reference};

/// Why a fact could not be fetched. The message is shown to the user in the plan's
/// errors, so it must not hold credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FactError {
    /// What went wrong, e.g. `listing tags of ghcr.io/acme/api: 401 unauthorized`.
    pub message: String,
    /// The failure class (`dns`, `connect`, `unauthorized`, `not_found`, …), when known.
    pub class: Option<String>,
}

impl FactError {
    /// A fact error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        FactError {
            message: message.into(),
            class: None,
        }
    }

    /// The same error with its failure class.
    pub fn with_class(mut self, class: impl Into<String>) -> Self {
        self.class = Some(class.into());
        self
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

    /// When the image `reference` (which has a tag) names was built, for `platform`:
    /// its config's `created`; `None` when the tag has no image for that platform.
    /// Sources that cannot tell say so.
    async fn created(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Option<BuildTime>, FactError> {
        let _ = platform;
        Err(FactError::new(format!(
            "this source cannot read build times ({})",
            reference.familiar()
        )))
    }

    /// Registry requests made so far, for the plan's cost report (`None`: unknown).
    fn requests(&self) -> Option<serde_json::Value> {
        None
    }
}
