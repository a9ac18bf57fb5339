//! A sink ready to send: its validated config, its URL and HMAC key read from the
//! files or env vars the config names, held as secrets.
//!
//! Owns reading those secrets once at start-up ([`load`]) and the scrubbed form of a
//! sink's URL used in logs (`scheme://host:port/***`). Must never format a secret:
//! errors name the sink, the file or the variable, and what to do.

use std::fmt;
use std::path::PathBuf;

use freshet_core::notify::config::UrlSetting;
use freshet_core::notify::{NotifyConfig, SecretSource, SinkConfig, SinkKind};
use url::Url;

use freshet_core::secret::Secret;

/// The largest secret file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A sink with its secrets loaded. `Debug` shows its name and scrubbed URL only.
#[derive(Clone)]
pub struct Sink {
    pub(crate) config: SinkConfig,
    pub(crate) url: Secret,
    pub(crate) key: Option<Secret>,
    pub(crate) shown: String,
}

impl Sink {
    /// The sink's validated config.
    pub fn config(&self) -> &SinkConfig {
        &self.config
    }

    /// The sink's name (the `sink` metrics label).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The URL without its path, query or credentials, for logs.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.config.name)
            .field("url", &self.shown)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Where a secret was to be read from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File(p) => write!(f, "file {}", p.display()),
            Place::Env(v) => write!(f, "env var {v}"),
        }
    }
}

/// Why a sink's secrets could not be loaded. Never holds a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The secret file could not be read.
    #[error(
        "notification sink {sink}: cannot read {place}: {source}; fix: mount the file or correct the path in the config"
    )]
    Unreadable {
        /// The sink.
        sink: String,
        /// The file.
        place: Place,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The env var is not set.
    #[error(
        "notification sink {sink}: {place} is not set; fix: set it (e.g. from a Kubernetes Secret) or correct the name in the config"
    )]
    Missing {
        /// The sink.
        sink: String,
        /// The variable.
        place: Place,
    },
    /// The file or variable is empty, too large or not UTF-8.
    #[error("notification sink {sink}: {place} {problem}; fix: put the value alone in it")]
    Unusable {
        /// The sink.
        sink: String,
        /// Where.
        place: Place,
        /// What is wrong (never the value).
        problem: &'static str,
    },
    /// The URL read is not an http(s) URL with a host and no credentials.
    #[error(
        "notification sink {sink}: the URL from {place} {problem}; fix: store the full https:// webhook URL"
    )]
    BadUrl {
        /// The sink.
        sink: String,
        /// Where it came from (`config` for an inline URL).
        place: String,
        /// What is wrong (never the URL).
        problem: &'static str,
    },
}

fn read(
    sink: &str,
    source: &SecretSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, SinkError> {
    let (place, value) = match source {
        SecretSource::File(path) => {
            let place = Place::File(path.clone());
            let unreadable = |source| SinkError::Unreadable {
                sink: sink.to_owned(),
                place: place.clone(),
                source,
            };
            let len = std::fs::metadata(path).map_err(unreadable)?.len();
            if len > MAX_SECRET_FILE {
                return Err(SinkError::Unusable {
                    sink: sink.to_owned(),
                    place,
                    problem: "is larger than 64 KiB",
                });
            }
            let bytes = std::fs::read(path).map_err(unreadable)?;
            let text = String::from_utf8(bytes).map_err(|_| SinkError::Unusable {
                sink: sink.to_owned(),
                place: place.clone(),
                problem: "is not UTF-8",
            })?;
            (place, text)
        }
        SecretSource::Env(var) => {
            let place = Place::Env(var.clone());
            let value = env(var).ok_or_else(|| SinkError::Missing {
                sink: sink.to_owned(),
                place: place.clone(),
            })?;
            (place, value)
        }
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(SinkError::Unusable {
            sink: sink.to_owned(),
            place,
            problem: "is empty",
        });
    }
    Ok(Secret::new(trimmed.to_owned()))
}

fn parse_url(sink: &str, place: String, text: &str) -> Result<(Url, String), SinkError> {
    let bad = |problem| SinkError::BadUrl {
        sink: sink.to_owned(),
        place: place.clone(),
        problem,
    };
    freshet_core::notify::config::check_url(text).map_err(bad)?;
    let url = Url::parse(text).map_err(|_| bad("does not parse"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry user:password@"));
    }
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    let shown = match url.port() {
        Some(p) => format!("{}://{host}:{p}/***", url.scheme()),
        None => format!("{}://{host}/***", url.scheme()),
    };
    Ok((url, shown))
}

/// Reads every sink's secrets. `env` looks an environment variable up (pass
/// `|k| std::env::var(k).ok()` in the binary); files are read here, once.
pub fn load(
    config: &NotifyConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Sink>, SinkError> {
    config.sinks.iter().map(|c| load_one(c, env)).collect()
}

fn load_one(c: &SinkConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Sink, SinkError> {
    let place_of = |s: &SecretSource| match s {
        SecretSource::File(p) => Place::File(p.clone()).to_string(),
        SecretSource::Env(v) => Place::Env(v.clone()).to_string(),
    };
    let (url_source, key) = match &c.kind {
        SinkKind::Slack { url } => (UrlSetting::From(url.clone()), None),
        SinkKind::Webhook { url, secret } => (url.clone(), Some(read(&c.name, secret, env)?)),
    };
    let (url, shown) = match &url_source {
        UrlSetting::Inline(u) => parse_url(&c.name, "config".into(), u)?,
        UrlSetting::From(s) => {
            let text = read(&c.name, s, env)?;
            parse_url(&c.name, place_of(s), text.expose())?
        }
    };
    Ok(Sink {
        config: c.clone(),
        url: Secret::new(url.to_string()),
        key,
        shown,
    })
}
