//! The `notifications` section of the config file: sinks, their filters and where
//! their secrets live.
//!
//! ```yaml
//! notifications:
//!   cluster: prod-eu            # shown in messages (optional)
//!   sinks:
//!     - name: ops               # [a-z0-9-], unique; the metrics label
//!       type: slack
//!       urlFrom: {file: /etc/freshet/slack-url}   # the URL is a secret
//!       level: warning          # minimum level (default info)
//!     - name: audit
//!       type: webhook
//!       url: https://hooks.example.com/freshet
//!       secretFrom: {env: FRESHET_WEBHOOK_KEY}   # the HMAC-SHA256 key
//!       events: [refresh, rollback]              # default: every kind
//!       maxEvents: 50           # per message (default 20, 1..=100)
//!       timeout: 5s             # per request (default 10s, 1s..=60s)
//!       retries: 3              # after the first attempt (default 3, 0..=10)
//! ```
//!
//! Owns the schema and strict validation: unknown keys, a secret written in the file
//! (`secret:`, or a Slack `url:`), bad names, levels, kinds, bounds and URLs are
//! errors naming the key path and the fix. Must not read the secrets: it only says
//! where they are ([`SecretSource`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::event::{EventKind, Level};

/// The section as written (embed it in the config file's schema as
/// `notifications: Option<RawNotifications>` and pass it to
/// [`NotifyConfig::from_raw`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNotifications {
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    sinks: Vec<RawSink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSink {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_from: Option<RawSecretSource>,
    #[serde(default)]
    secret_from: Option<RawSecretSource>,
    /// Accepted only to refuse it with a useful message.
    #[serde(default)]
    secret: Option<IgnoredAny>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    max_events: Option<i64>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretSource {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    env: Option<String>,
}

const KEYS: &str = "cluster, sinks[].name, sinks[].type, sinks[].url, sinks[].urlFrom.{file,env}, sinks[].secretFrom.{file,env}, sinks[].level, sinks[].events, sinks[].maxEvents, sinks[].timeout, sinks[].retries";

/// The most sinks a config may name.
pub const MAX_SINKS: usize = 16;
/// Events per message unless `maxEvents` says otherwise.
pub const DEFAULT_MAX_EVENTS: usize = 20;
/// The largest `maxEvents`.
pub const MAX_EVENTS_LIMIT: usize = 100;
/// Per-request timeout unless `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries after the first attempt unless `retries` says otherwise.
pub const DEFAULT_RETRIES: u32 = 3;

/// Why the `notifications` section was rejected. Never contains a secret: the
/// section holds none, and values are quoted only for non-secret keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyConfigError {
    /// The YAML does not parse or does not fit the schema (unknown key, wrong type).
    #[error("notifications: line {line}, column {column}: {message}; the keys are: {KEYS}")]
    Syntax {
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value is well-formed but invalid.
    #[error("{key}: {message}; fix: {fix}")]
    Invalid {
        /// The key path, e.g. `notifications.sinks[1].urlFrom`.
        key: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
}

/// Where a secret is read from when the notifier starts. The config names the
/// place, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file (e.g. a mounted Kubernetes Secret); surrounding whitespace is trimmed.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// A URL that is not secret (written in the config) or is (read from a file or env).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSetting {
    /// Written in the config file.
    Inline(String),
    /// Read from a file or env var.
    From(SecretSource),
}

/// What a sink is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// A Slack-compatible incoming webhook (`{"text": …}`); its URL is a secret.
    Slack {
        /// Where the webhook URL is.
        url: SecretSource,
    },
    /// A JSON webhook signed with HMAC-SHA256.
    Webhook {
        /// The endpoint.
        url: UrlSetting,
        /// Where the HMAC key is.
        secret: SecretSource,
    },
}

/// One validated sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// Unique name, `[a-z0-9-]`, 1 to 63 characters; the `sink` metrics label.
    pub name: String,
    /// What it is and where its secrets live.
    pub kind: SinkKind,
    /// Events below this level are not sent to this sink.
    pub min_level: Level,
    /// The kinds this sink receives.
    pub events: BTreeSet<EventKind>,
    /// The most events in one message; the rest are counted ("and N more").
    pub max_events: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt, on transient failures only.
    pub retries: u32,
}

impl SinkConfig {
    /// Whether this sink receives `event`'s kind at `level`.
    pub fn wants(&self, kind: EventKind, level: Level) -> bool {
        level >= self.min_level && self.events.contains(&kind)
    }
}

/// The validated section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// A name for this freshet (shown in messages).
    pub cluster: Option<String>,
    /// The sinks, in config order.
    pub sinks: Vec<SinkConfig>,
}

fn invalid(key: String, message: impl Into<String>, fix: impl Into<String>) -> NotifyConfigError {
    NotifyConfigError::Invalid {
        key,
        message: message.into(),
        fix: fix.into(),
    }
}

impl NotifyConfig {
    /// Parses and validates the section's YAML (the value under `notifications:`).
    pub fn parse(text: &str) -> Result<NotifyConfig, NotifyConfigError> {
        let raw: RawNotifications = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column, message) = crate::yaml_error(&e);
            NotifyConfigError::Syntax {
                line,
                column,
                message,
            }
        })?;
        NotifyConfig::from_raw(raw)
    }

    /// Validates a section already deserialised as part of the config file.
    pub fn from_raw(raw: RawNotifications) -> Result<NotifyConfig, NotifyConfigError> {
        if raw.sinks.len() > MAX_SINKS {
            return Err(invalid(
                "notifications.sinks".into(),
                format!("{} sinks; at most {MAX_SINKS} are allowed", raw.sinks.len()),
                "merge sinks that go to the same place",
            ));
        }
        if let Some(c) = &raw.cluster
            && (c.is_empty() || c.len() > 63 || c.chars().any(char::is_control))
        {
            return Err(invalid(
                "notifications.cluster".into(),
                "must be 1 to 63 printable characters",
                "use a short name such as prod-eu",
            ));
        }
        let mut names = BTreeSet::new();
        let mut sinks = Vec::with_capacity(raw.sinks.len());
        for (i, s) in raw.sinks.into_iter().enumerate() {
            let sink = sink(i, s)?;
            if !names.insert(sink.name.clone()) {
                return Err(invalid(
                    format!("notifications.sinks[{i}].name"),
                    format!("{:?} is used by an earlier sink", sink.name),
                    "give every sink a different name",
                ));
            }
            sinks.push(sink);
        }
        Ok(NotifyConfig {
            cluster: raw.cluster,
            sinks,
        })
    }
}

fn sink(i: usize, s: RawSink) -> Result<SinkConfig, NotifyConfigError> {
    let key = |k: &str| format!("notifications.sinks[{i}].{k}");
    let name_ok = !s.name.is_empty()
        && s.name.len() <= 63
        && s.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(invalid(
            key("name"),
            "must be 1 to 63 characters of a-z, 0-9 and -",
            "use a name such as ops-slack",
        ));
    }
    if s.secret.is_some() {
        return Err(invalid(
            key("secret"),
            "secrets are never read from the config file",
            "put the key in a file or env var and name it with secretFrom: {file: …} or {env: …}",
        ));
    }
    let kind = match s.kind.as_str() {
        "slack" => slack(&key, s.url, s.url_from, s.secret_from)?,
        "webhook" => webhook(&key, s.url, s.url_from, s.secret_from)?,
        other => {
            return Err(invalid(
                key("type"),
                format!("unknown sink type {other:?}"),
                "use slack or webhook",
            ));
        }
    };
    let min_level = match s.level.as_deref() {
        None => Level::Info,
        Some(l) => Level::parse(l).ok_or_else(|| {
            invalid(
                key("level"),
                format!("unknown level {l:?}"),
                "use info, warning or error",
            )
        })?,
    };
    let events = match s.events {
        None => EventKind::ALL.into_iter().collect(),
        Some(list) if list.is_empty() => {
            return Err(invalid(
                key("events"),
                "an empty list sends nothing",
                "remove the key to receive every kind, or name some",
            ));
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(j, e)| {
                EventKind::parse(e).ok_or_else(|| {
                    invalid(
                        format!("notifications.sinks[{i}].events[{j}]"),
                        format!("unknown event kind {e:?}"),
                        "use refresh, rollback, hold, approvalNeeded, failureStreak or recovered",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let max_events = bounded(
        s.max_events,
        DEFAULT_MAX_EVENTS as i64,
        1,
        MAX_EVENTS_LIMIT as i64,
        key("maxEvents"),
    )? as usize;
    let retries = bounded(s.retries, DEFAULT_RETRIES.into(), 0, 10, key("retries"))? as u32;
    let timeout = match s.timeout.as_deref() {
        None => DEFAULT_TIMEOUT,
        Some(t) => match humantime::parse_duration(t) {
            Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(60)).contains(&d) => d,
            _ => {
                return Err(invalid(
                    key("timeout"),
                    format!("{t:?} is not a duration from 1s to 60s"),
                    "write a duration such as 10s",
                ));
            }
        },
    };
    Ok(SinkConfig {
        name: s.name,
        kind,
        min_level,
        events,
        max_events,
        timeout,
        retries,
    })
}

fn bounded(
    v: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
    key: String,
) -> Result<i64, NotifyConfigError> {
    match v {
        None => Ok(default),
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(invalid(
            key,
            format!("{n} is out of range"),
            format!("use a number from {min} to {max} (default {default})"),
        )),
    }
}

fn slack(
    key: &dyn Fn(&str) -> String,
    url: Option<String>,
    url_from: Option<RawSecretSource>,
    secret_from: Option<RawSecretSource>,
) -> Result<SinkKind, NotifyConfigError> {
    if url.is_some() {
        return Err(invalid(
            key("url"),
            "a Slack webhook URL is a secret (its path is the credential) and is never read from the config file",
            "put the URL in a file or env var and name it with urlFrom: {file: …} or {env: …}",
        ));
    }
    if secret_from.is_some() {
        return Err(invalid(
            key("secretFrom"),
            "Slack webhooks are not signed",
            "remove secretFrom, or use type: webhook",
        ));
    }
    let Some(from) = url_from else {
        return Err(invalid(
            key("urlFrom"),
            "missing",
            "name where the webhook URL is: urlFrom: {file: …} or {env: …}",
        ));
    };
    Ok(SinkKind::Slack {
        url: source(&key("urlFrom"), from)?,
    })
}

fn webhook(
    key: &dyn Fn(&str) -> String,
    url: Option<String>,
    url_from: Option<RawSecretSource>,
    secret_from: Option<RawSecretSource>,
) -> Result<SinkKind, NotifyConfigError> {
    let url = match (url, url_from) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                key("url"),
                "both url and urlFrom are set",
                "keep one of them",
            ));
        }
        (None, None) => {
            return Err(invalid(
                key("url"),
                "missing",
                "set url: https://… (or urlFrom when the URL itself holds a token)",
            ));
        }
        (Some(u), None) => {
            check_url(&u).map_err(|m| {
                invalid(
                    key("url"),
                    m,
                    "write an http:// or https:// URL without user:password@ (use urlFrom if it carries a token)",
                )
            })?;
            UrlSetting::Inline(u)
        }
        (None, Some(from)) => UrlSetting::From(source(&key("urlFrom"), from)?),
    };
    let Some(secret) = secret_from else {
        return Err(invalid(
            key("secretFrom"),
            "missing: webhook payloads are signed with HMAC-SHA256",
            "name where the key is: secretFrom: {file: …} or {env: …}",
        ));
    };
    Ok(SinkKind::Webhook {
        url,
        secret: source(&key("secretFrom"), secret)?,
    })
}

fn source(key: &str, raw: RawSecretSource) -> Result<SecretSource, NotifyConfigError> {
    match (raw.file, raw.env) {
        (Some(f), None) if !f.is_empty() => Ok(SecretSource::File(PathBuf::from(f))),
        (None, Some(e))
            if !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(SecretSource::Env(e))
        }
        (None, Some(_)) => Err(invalid(
            key.to_owned(),
            "env must name a variable (letters, digits and _)",
            "write env: FRESHET_SLACK_URL",
        )),
        _ => Err(invalid(
            key.to_owned(),
            "needs exactly one of file or env",
            "write {file: /path} or {env: NAME}",
        )),
    }
}

/// Checks an inline URL's shape: http(s), a host, no credentials, no whitespace.
/// Returns a message that does not quote the URL.
pub fn check_url(u: &str) -> Result<(), &'static str> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if u.len() > 2048 || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be at most 2048 characters without spaces");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err("has no host");
    }
    if authority.contains('@') {
        return Err("must not carry user:password@");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_key(text: &str) -> (String, String) {
        match NotifyConfig::parse(text).unwrap_err() {
            NotifyConfigError::Invalid { key, fix, .. } => (key, fix),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn parses_both_sink_types_with_defaults() {
        let c = NotifyConfig::parse(
            "cluster: prod\nsinks:\n  - {name: ops, type: slack, urlFrom: {file: /s/url}, level: warning}\n  - {name: audit, type: webhook, url: 'https://h.example/x', secretFrom: {env: KEY}, events: [refresh], maxEvents: 5, timeout: 2s, retries: 0}\n",
        )
        .unwrap();
        assert_eq!(c.cluster.as_deref(), Some("prod"));
        let s = &c.sinks[0];
        assert_eq!(
            s.kind,
            SinkKind::Slack {
                url: SecretSource::File("/s/url".into())
            }
        );
        assert_eq!(
            (s.min_level, s.max_events, s.timeout, s.retries),
            (Level::Warning, 20, DEFAULT_TIMEOUT, 3)
        );
        assert!(s.wants(EventKind::Hold, Level::Warning));
        assert!(!s.wants(EventKind::Refresh, Level::Info));
        let w = &c.sinks[1];
        assert_eq!(
            w.kind,
            SinkKind::Webhook {
                url: UrlSetting::Inline("https://h.example/x".into()),
                secret: SecretSource::Env("KEY".into())
            }
        );
        assert_eq!(
            (w.max_events, w.timeout, w.retries),
            (5, Duration::from_secs(2), 0)
        );
        assert!(!w.wants(EventKind::Rollback, Level::Error));
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let cases = [
            (
                "sinks: [{name: a, type: slack, url: 'https://hooks.slack.com/services/T/B/X'}]",
                "notifications.sinks[0].url",
                "urlFrom",
            ),
            (
                "sinks: [{name: a, type: webhook, url: 'https://h/x', secret: abc}]",
                "notifications.sinks[0].secret",
                "secretFrom",
            ),
            (
                "sinks: [{name: a, type: webhook, url: 'https://h/x'}]",
                "notifications.sinks[0].secretFrom",
                "secretFrom",
            ),
            (
                "sinks: [{name: a, type: webhook, url: 'https://u:p@h/x', secretFrom: {env: K}}]",
                "notifications.sinks[0].url",
                "user:password",
            ),
            (
                "sinks: [{name: a, type: webhook, url: 'ftp://h/x', secretFrom: {env: K}}]",
                "notifications.sinks[0].url",
                "https://",
            ),
            (
                "sinks: [{name: A, type: slack, urlFrom: {env: K}}]",
                "notifications.sinks[0].name",
                "ops-slack",
            ),
            (
                "sinks: [{name: a, type: teams, urlFrom: {env: K}}]",
                "notifications.sinks[0].type",
                "slack or webhook",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K, file: /f}}]",
                "notifications.sinks[0].urlFrom",
                "{file: /path}",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: 'A B'}}]",
                "notifications.sinks[0].urlFrom",
                "env:",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K}, level: warn}]",
                "notifications.sinks[0].level",
                "info, warning or error",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K}, events: [refresh, deploy]}]",
                "notifications.sinks[0].events[1]",
                "approvalNeeded",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K}, events: []}]",
                "notifications.sinks[0].events",
                "remove the key",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K}, maxEvents: 0}]",
                "notifications.sinks[0].maxEvents",
                "1 to 100",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K}, retries: 11}]",
                "notifications.sinks[0].retries",
                "0 to 10",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K}, timeout: 5m}]",
                "notifications.sinks[0].timeout",
                "10s",
            ),
            (
                "sinks: [{name: a, type: slack, urlFrom: {env: K}}, {name: a, type: slack, urlFrom: {env: K}}]",
                "notifications.sinks[1].name",
                "different name",
            ),
        ];
        for (text, key, fix) in cases {
            let (k, f) = err_key(text);
            assert_eq!(k, key, "{text}");
            assert!(f.contains(fix), "{text}: {f}");
        }
    }

    #[test]
    fn a_slack_url_in_the_config_is_refused_without_quoting_it() {
        let e = NotifyConfig::parse(
            "sinks: [{name: a, type: slack, url: 'https://hooks.slack.com/services/T/B/TOPSECRET'}]",
        )
        .unwrap_err();
        assert!(!e.to_string().contains("TOPSECRET"), "{e}");
    }

    #[test]
    fn unknown_keys_are_syntax_errors_listing_the_keys() {
        let e =
            NotifyConfig::parse("sinks: [{name: a, type: slack, urlFrom: {env: K}, channel: x}]")
                .unwrap_err();
        assert!(matches!(e, NotifyConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains("sinks[].secretFrom"), "{e}");
    }
}
