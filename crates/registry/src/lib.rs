//! freshet's OCI registry client.
//!
//! Answers "what does this image reference point to right now?" against any OCI
//! distribution registry, cheaply (HEAD first, one request per unique question per
//! run, connection reuse, per-registry limits) and loudly (every failure has a class,
//! an `is_transient()` answer and a message that names the host and the fix).
//!
//! Modules, each importing only modules listed before it (no cycles):
//! `text` (escaping foreign text), [`secret`] (credential forms; the redacted
//! `Secret`), [`helper`] (credential helper protocol), [`credentials`] (docker
//! config, helpers, pull secrets), [`error`] (taxonomy), `classify` (the
//! transient/permanent decision from error types), `body` (capped body reads),
//! [`endpoint`] (API hosts and schemes), [`auth`] (challenges, realm trust, token
//! answers), [`options`] (tunables), `stats` (counters), `memo` (run-scoped
//! answers), `limits` (concurrency, pace, 429 pauses), `redirect` (which redirects
//! are followed), `transport` (HTTP, retries, redirects), `token` (token fetch and
//! cache), `host` (per-registry state, ping, authenticated requests), [`resolve`]
//! (digests and platforms), [`tags`] (paged tag lists), and [`client`] (the facade).
#![forbid(unsafe_code)]

pub mod auth;
mod body;
mod classify;
pub mod client;
pub mod created;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod helper;
mod host;
mod limits;
mod memo;
pub mod options;
mod redirect;
pub mod resolve;
pub mod secret;
mod stats;
pub mod tags;
mod text;
mod token;
mod transport;

pub use client::{Client, ClientOptions, RateLimit, SharedTokens, StatsSnapshot};
pub use created::BuildTimes;
pub use credentials::CredentialStore;
pub use error::{ErrorClass, RegistryError};
pub use options::{Recorder, TagLimits, requests_per_second};
pub use resolve::{PlatformDigest, Resolved, Want};
pub use secret::{Credential, Secret};
