//! The `webhooks:` configuration block: sources, where their secrets live, and limits.
//!
//! Owns the serde shape (unknown keys refused), its validation into [`ValidWebhooks`]
//! with an error that names the key and the fix, and the defaults. Secrets are never in
//! the config itself: each source names a file or an environment variable
//! ([`SecretLocation`]) that the shell reads. It must not read files or the environment.
//!
//! ```yaml
//! webhooks:
//!   max_body_bytes: 1048576   # default 1 MiB; larger bodies get 413
//!   debounce: 10s             # at most one re-check per image per interval
//!   sources:
//!     - name: hub             # URL: POST /webhooks/hub/<token>
//!       kind: dockerhub       # dockerhub | github | harbor | quay | generic
//!       secret: { file: /etc/freshet/webhooks/hub-token }
//!       rate: { burst: 10, per_minute: 60 }
//!       registries: [docker.io]  # which registries this source may name
//!     - name: gh              # URL: POST /webhooks/gh, X-Hub-Signature-256
//!       kind: github
//!       secret: { env: FRESHET_GITHUB_WEBHOOK_SECRET }
//! ```

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Rate, SourceKind};

/// Default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// The largest body limit accepted: 16 MiB.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 << 20;
/// Default debounce per image.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(10);
/// The most sources a config may declare.
pub const MAX_SOURCES: usize = 64;
/// The shortest secret accepted, in bytes (path tokens must not be guessable).
pub const MIN_SECRET_LEN: usize = 16;

/// The `webhooks:` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Body size limit in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Minimum interval between two re-checks of one image (`10s`, `1m`).
    #[serde(default)]
    pub debounce: Option<String>,
    /// The senders.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// One sender as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The URL path segment: `POST /webhooks/<name>`.
    pub name: String,
    /// Which payload shape and authentication.
    pub kind: SourceKind,
    /// Where the shared secret (HMAC key or token) lives.
    pub secret: SecretConfig,
    /// Deliveries allowed per source.
    #[serde(default)]
    pub rate: Option<RateConfig>,
    /// Registries this source may name; others are dropped and counted.
    #[serde(default)]
    pub registries: Option<Vec<String>>,
}

/// `secret: { file: … }` or `secret: { env: … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretConfig {
    /// A file holding the secret (a mounted Kubernetes Secret); one trailing newline
    /// is removed.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
}

/// `rate: { burst: 10, per_minute: 60 }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Deliveries that may arrive at once (1 to 1000).
    pub burst: u32,
    /// Deliveries refilled per minute (1 to 6000).
    pub per_minute: u32,
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLocation {
    /// A file path.
    File(PathBuf),
    /// An environment variable name.
    Env(String),
}

/// A validated source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSource {
    /// The URL path segment.
    pub name: String,
    /// The kind.
    pub kind: SourceKind,
    /// Where its secret lives.
    pub secret: SecretLocation,
    /// Its rate.
    pub rate: Rate,
    /// Registries it may name (`None`: any), normalised (`index.docker.io` → `docker.io`).
    pub registries: Option<Vec<String>>,
}

/// The validated block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidWebhooks {
    /// Body size limit in bytes.
    pub max_body_bytes: usize,
    /// Debounce per image.
    pub debounce: Duration,
    /// The sources, in config order.
    pub sources: Vec<ValidSource>,
}

/// Why the `webhooks:` block is invalid. Each message names the key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_body_bytes` out of range.
    #[error(
        "webhooks.max_body_bytes is {0}; set a value from 1024 to {MAX_BODY_BYTES_LIMIT} (default {DEFAULT_MAX_BODY_BYTES})"
    )]
    BodyLimit(usize),
    /// `debounce` is not a duration.
    #[error("webhooks.debounce {0:?} is not a duration; write e.g. 10s or 1m")]
    Debounce(String),
    /// Too many sources.
    #[error("webhooks.sources has {0} entries; the limit is {MAX_SOURCES}")]
    TooManySources(usize),
    /// A source name is not a plain path segment.
    #[error(
        "webhooks.sources[{index}].name {name:?} is invalid; use 1 to 63 lowercase letters, digits and '-'"
    )]
    Name {
        /// The entry's index.
        index: usize,
        /// The name as written.
        name: String,
    },
    /// Two sources share a name.
    #[error("webhooks.sources[{index}].name {name:?} is used twice; give each source its own name")]
    DuplicateName {
        /// The second entry's index.
        index: usize,
        /// The name.
        name: String,
    },
    /// `secret` names neither or both of `file` and `env`.
    #[error(
        "webhooks.sources[{index}] ({name}).secret must set exactly one of `file` or `env`; the secret itself never goes in the config"
    )]
    Secret {
        /// The entry's index.
        index: usize,
        /// The source name.
        name: String,
    },
    /// `rate` out of range.
    #[error(
        "webhooks.sources[{index}] ({name}).rate is out of range; set burst from 1 to 1000 and per_minute from 1 to 6000"
    )]
    Rate {
        /// The entry's index.
        index: usize,
        /// The source name.
        name: String,
    },
    /// A `registries` entry is not a registry host.
    #[error(
        "webhooks.sources[{index}] ({name}).registries has {registry:?}, which is not a registry host[:port]; write e.g. ghcr.io or harbor.example.com"
    )]
    Registry {
        /// The entry's index.
        index: usize,
        /// The source name.
        name: String,
        /// The entry as written.
        registry: String,
    },
}

impl WebhooksConfig {
    /// Validates the block and fills in defaults.
    pub fn validate(&self) -> Result<ValidWebhooks, ConfigError> {
        let max_body_bytes = self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=MAX_BODY_BYTES_LIMIT).contains(&max_body_bytes) {
            return Err(ConfigError::BodyLimit(max_body_bytes));
        }
        let debounce = match &self.debounce {
            None => DEFAULT_DEBOUNCE,
            Some(s) => {
                humantime::parse_duration(s.trim()).map_err(|_| ConfigError::Debounce(s.clone()))?
            }
        };
        if self.sources.len() > MAX_SOURCES {
            return Err(ConfigError::TooManySources(self.sources.len()));
        }
        let mut names = HashSet::new();
        let mut sources = Vec::with_capacity(self.sources.len());
        for (index, s) in self.sources.iter().enumerate() {
            let source = s.validate(index)?;
            if !names.insert(source.name.clone()) {
                return Err(ConfigError::DuplicateName {
                    index,
                    name: source.name,
                });
            }
            sources.push(source);
        }
        Ok(ValidWebhooks {
            max_body_bytes,
            debounce,
            sources,
        })
    }
}

impl SourceConfig {
    fn validate(&self, index: usize) -> Result<ValidSource, ConfigError> {
        let name = self.name.clone();
        let valid_name = (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(ConfigError::Name { index, name });
        }
        let secret = match (&self.secret.file, &self.secret.env) {
            (Some(f), None) if !f.as_os_str().is_empty() => SecretLocation::File(f.clone()),
            (None, Some(e)) if !e.is_empty() => SecretLocation::Env(e.clone()),
            _ => return Err(ConfigError::Secret { index, name }),
        };
        let rate = match self.rate {
            None => Rate::default(),
            Some(r) if (1..=1000).contains(&r.burst) && (1..=6000).contains(&r.per_minute) => {
                Rate {
                    burst: r.burst,
                    per_minute: r.per_minute,
                }
            }
            Some(_) => return Err(ConfigError::Rate { index, name }),
        };
        let registries = match &self.registries {
            Some(list) => Some(registries(index, &name, list)?),
            None => self
                .kind
                .default_registries()
                .map(|r| r.iter().map(|s| (*s).to_owned()).collect()),
        };
        Ok(ValidSource {
            name,
            kind: self.kind,
            secret,
            rate,
            registries,
        })
    }
}

fn registries(index: usize, name: &str, list: &[String]) -> Result<Vec<String>, ConfigError> {
    list.iter()
        .map(|r| {
            // A registry is valid when `<registry>/x` parses with that registry.
            let probe = format!("{}/x", r.trim());
            match crate::Reference::parse(&probe) {
                Ok(p) if p.registry().eq_ignore_ascii_case(r.trim()) || is_hub(r) => {
                    Ok(p.registry().to_owned())
                }
                _ => Err(ConfigError::Registry {
                    index,
                    name: name.to_owned(),
                    registry: r.clone(),
                }),
            }
        })
        .collect()
}

fn is_hub(r: &str) -> bool {
    let r = r.trim();
    r == crate::reference::DOCKER_HUB_LEGACY || r == crate::reference::DOCKER_HUB
}
