//! Registry webhooks, the pure half: who may call, what a delivery names, and how often.
//!
//! Owns the vocabulary of the webhook receiver that the controller mounts next to
//! `/metrics`: the kinds of source ([`SourceKind`]), how each one authenticates
//! ([`auth`]: GitHub's `X-Hub-Signature-256` HMAC, bearer and path tokens compared in
//! constant time, the redacting [`Secret`]), the payload parsers that turn a
//! delivery into image references ([`payload`]), the token bucket, per-image debounce
//! and replay guard ([`limit`]), and the configuration block ([`config`]).
//!
//! It must not fetch anything. A delivery is only ever turned into [`Reference`]
//! values; hosts named in a body (Docker Hub's `callback_url`, Quay's `docker_url`,
//! Harbor's `resource_url`, GitHub's `package_url`) are never contacted here, and the
//! shell hands the references to a sink that drops every image freshet does not already
//! track. Time is an input (`Instant` arguments); secrets never reach an error or `Debug`.
//!
//! [`Reference`]: crate::reference::Reference

pub mod auth;
pub mod config;
pub mod limit;
pub mod payload;

#[cfg(test)]
mod tests;

pub use auth::{AuthError, Secret};
pub use config::{ConfigError, SecretLocation, ValidSource, ValidWebhooks, WebhooksConfig};
pub use limit::{Debouncer, Rate, Refusal, ReplayGuard, TokenBucket};
pub use payload::{Parsed, PayloadError, parse};

use serde::Deserialize;

/// A kind of webhook sender. Each kind has one payload shape and one way to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Docker Hub repository webhooks: no signature, so a token in the URL path.
    DockerHub,
    /// GitHub `package` / `registry_package` events for GHCR, signed with
    /// `X-Hub-Signature-256`.
    GitHub,
    /// Harbor `PUSH_ARTIFACT` events, with Harbor's "Auth Header" as a shared token.
    Harbor,
    /// Quay repository push notifications: no signature, so a token in the URL path.
    Quay,
    /// freshet's own `{"image": "repo:tag"}` with `Authorization: Bearer <token>`.
    Generic,
}

/// How a kind of source proves a delivery is genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`.
    HubSignature,
    /// The token as the last URL path segment: `/webhooks/<source>/<token>`.
    PathToken,
    /// `Authorization: <token>` or `Authorization: Bearer <token>`.
    AuthorizationHeader,
}

impl SourceKind {
    /// A short, stable name for metric labels and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::DockerHub => "dockerhub",
            Self::GitHub => "github",
            Self::Harbor => "harbor",
            Self::Quay => "quay",
            Self::Generic => "generic",
        }
    }

    /// How deliveries of this kind authenticate.
    pub fn auth_scheme(self) -> AuthScheme {
        match self {
            Self::GitHub => AuthScheme::HubSignature,
            Self::DockerHub | Self::Quay => AuthScheme::PathToken,
            Self::Harbor | Self::Generic => AuthScheme::AuthorizationHeader,
        }
    }

    /// The registries this kind may name when the config lists none: Docker Hub only
    /// speaks for `docker.io`, GitHub for `ghcr.io`; the self-hostable ones for any.
    pub fn default_registries(self) -> Option<&'static [&'static str]> {
        match self {
            Self::DockerHub => Some(&["docker.io"]),
            Self::GitHub => Some(&["ghcr.io"]),
            Self::Harbor | Self::Quay | Self::Generic => None,
        }
    }
}
