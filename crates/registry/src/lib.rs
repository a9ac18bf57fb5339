//! freshet's OCI registry client.
//!
//! Answers "what does this image reference point to right now?" against any OCI
//! distribution registry, cheaply (HEAD first, one request per unique question per
//! run, connection reuse, per-registry limits) and loudly (every failure has a class,
//! an `is_transient()` answer and a message that names the host and the fix).
//!
//! Modules: [`error`] (taxonomy), [`secret`] (redacted secrets), [`credentials`]
//! (docker config, helpers, pull secrets), [`endpoint`] (API hosts and schemes),
//! [`auth`] (challenges, realm trust, tokens), [`client`] (transport, retries, limits,
//! memos), [`resolve`] (digests and platforms), [`tags`] (paged tag lists).
#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod created;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod resolve;
pub mod secret;
pub mod tags;

pub use client::{Client, ClientOptions, RateLimit, StatsSnapshot};
pub use created::BuildTimes;
pub use credentials::CredentialStore;
pub use error::{ErrorClass, RegistryError};
pub use resolve::{PlatformDigest, Resolved, Want};
pub use secret::{Credential, Secret};
