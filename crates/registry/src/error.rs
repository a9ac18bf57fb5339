//! The registry client's error taxonomy.
//!
//! Owns [`RegistryError`]: one variant per way talking to a registry fails, each with
//! a stable [`ErrorClass`] (for JSON output and metrics), an [`is_transient`] answer
//! (retry, or count towards a failure streak without alarm), and a message that names
//! the host and says what to do. Messages never contain credentials or tokens.
//!
//! [`is_transient`]: RegistryError::is_transient

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A stable, machine-readable class for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The reference itself is malformed.
    InvalidReference,
    /// The host name does not resolve.
    Dns,
    /// No TCP connection (refused, reset, unreachable).
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// The registry did not answer in time.
    Timeout,
    /// Credentials missing or rejected.
    Unauthorized,
    /// Authenticated, but not allowed.
    Forbidden,
    /// Repository, tag or manifest does not exist.
    NotFound,
    /// `429 Too Many Requests`.
    RateLimited,
    /// A `5xx` answer.
    ServerError,
    /// The answer does not follow the distribution API (bad JSON, digest mismatch,
    /// truncated body).
    MalformedResponse,
    /// A manifest larger than the cap.
    TooLarge,
    /// A token realm or `Link` on a host freshet will not send credentials to.
    ForeignRealm,
    /// A credential helper or config file failed.
    Credentials,
}

impl ErrorClass {
    /// The label used in JSON output and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidReference => "invalid_reference",
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::MalformedResponse => "malformed_response",
            Self::TooLarge => "too_large",
            Self::ForeignRealm => "foreign_realm",
            Self::Credentials => "credentials",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A transport error kept as the source of a variant (shared, so results can be cloned
/// to every caller that asked for the same reference).
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error(transparent)]
    InvalidReference(#[from] freshet_core::reference::ReferenceError),
    /// DNS lookup failed.
    #[error(
        "{host}: DNS lookup failed: check the registry name, and the DNS and egress/proxy allowlists for {host}"
    )]
    Dns {
        host: String,
        #[source]
        source: Source,
    },
    /// The TCP connection failed.
    #[error(
        "{host}: connection failed ({detail}): check egress/proxy allowlists for {host} and its token endpoint, and that the registry is up"
    )]
    Connect {
        host: String,
        detail: String,
        #[source]
        source: Source,
    },
    /// TLS failed.
    #[error(
        "{host}: TLS handshake failed ({detail}): check the registry's certificate and this machine's trust store, or list a plain-http registry with --insecure-registry {host}"
    )]
    Tls {
        host: String,
        detail: String,
        #[source]
        source: Source,
    },
    /// No answer in time.
    #[error(
        "{host}: no answer within {after:?}: the registry or a proxy in between is slow or dropping traffic; check egress for {host}"
    )]
    Timeout {
        host: String,
        after: Duration,
        #[source]
        source: Option<Source>,
    },
    /// Credentials are missing or were rejected.
    #[error("{host}: unauthorized for {repository}{detail}: {hint}")]
    Unauthorized {
        host: String,
        repository: String,
        detail: String,
        hint: String,
    },
    /// Authenticated but not allowed.
    #[error(
        "{host}: access to {repository} denied{detail}: the credentials for {host} lack pull permission on {repository} (or stale credentials in the docker config shadow anonymous access)"
    )]
    Forbidden {
        host: String,
        repository: String,
        detail: String,
    },
    /// The manifest or repository does not exist.
    #[error(
        "{host}: {what} not found: check the repository and tag spelling, and that the tag was pushed"
    )]
    NotFound { host: String, what: String },
    /// The image exists but not for the wanted platform.
    #[error(
        "{host}: {what} has no image for {platform} (it offers: {available}); pick an image built for {platform}, or schedule onto nodes of an offered platform"
    )]
    NoMatchingPlatform {
        host: String,
        what: String,
        platform: String,
        available: String,
    },
    /// Rate limited.
    #[error("{host}: rate limited (429 Too Many Requests{retry}): {hint}")]
    RateLimited {
        host: String,
        retry: String,
        hint: String,
    },
    /// A 5xx answer.
    #[error(
        "{host}: server error {status}{detail}: the registry is failing; retry later or check its status page"
    )]
    Server {
        host: String,
        status: u16,
        detail: String,
    },
    /// The answer is not what the distribution API says.
    #[error("{host}: malformed response: {detail}")]
    Malformed { host: String, detail: String },
    /// The response head exceeded the HTTP client's limit (not retried: it will
    /// not shrink by asking again).
    #[error(
        "{host}: the response headers exceed the HTTP client's limit: the registry or a proxy in front of it sends headers no registry needs"
    )]
    HeadersTooLarge {
        host: String,
        #[source]
        source: Source,
    },
    /// The body ended early or the connection dropped while reading it.
    #[error("{host}: response body was cut off ({detail}); the connection or a proxy dropped it")]
    Truncated {
        host: String,
        detail: String,
        #[source]
        source: Option<Source>,
    },
    /// A body (manifest, error body, token answer, tag list) exceeds its cap.
    #[error(
        "{host}: {what} is larger than {limit} {unit}: refusing to read more (an answer this large is not what the distribution API sends)"
    )]
    TooLarge {
        host: String,
        what: String,
        limit: usize,
        /// What `limit` counts: `bytes`, `tags`, `pages`.
        unit: &'static str,
    },
    /// A token realm or Link on a host freshet will not send credentials to.
    #[error("{host}: {detail}")]
    ForeignRealm { host: String, detail: String },
    /// A redirect freshet does not follow: to another host for anything but a blob
    /// (credentials and manifests never cross hosts), or to plain http.
    #[error("{host}: {what} redirected to {target}: {reason}")]
    Redirect {
        host: String,
        what: String,
        target: String,
        reason: String,
    },
    /// Redirects that go round in a circle or do not end.
    #[error(
        "{host}: {what} was redirected {hops} times without an answer ({chain}): the registry or a proxy in front of it loops"
    )]
    RedirectLoop {
        host: String,
        what: String,
        hops: usize,
        chain: String,
    },
    /// The credential source failed.
    #[error("{host}: could not read credentials: {source}")]
    Credentials {
        host: String,
        #[source]
        source: Arc<crate::credentials::CredentialsError>,
    },
}

impl RegistryError {
    /// The stable class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidReference(_) => ErrorClass::InvalidReference,
            Self::Dns { .. } => ErrorClass::Dns,
            Self::Connect { .. } => ErrorClass::Connect,
            Self::Tls { .. } => ErrorClass::Tls,
            Self::Timeout { .. } => ErrorClass::Timeout,
            Self::Unauthorized { .. } => ErrorClass::Unauthorized,
            Self::Forbidden { .. } => ErrorClass::Forbidden,
            Self::NotFound { .. } | Self::NoMatchingPlatform { .. } => ErrorClass::NotFound,
            Self::RateLimited { .. } => ErrorClass::RateLimited,
            Self::Server { .. } => ErrorClass::ServerError,
            Self::Malformed { .. }
            | Self::HeadersTooLarge { .. }
            | Self::Truncated { .. }
            | Self::RedirectLoop { .. } => ErrorClass::MalformedResponse,
            Self::TooLarge { .. } => ErrorClass::TooLarge,
            Self::ForeignRealm { .. } | Self::Redirect { .. } => ErrorClass::ForeignRealm,
            Self::Credentials { .. } => ErrorClass::Credentials,
        }
    }

    /// Whether trying again later may succeed without anyone changing anything.
    ///
    /// Network trouble, timeouts, rate limits, 5xx and cut-off bodies are transient;
    /// bad references, auth failures, missing tags and protocol violations are not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Dns { .. }
                | Self::Connect { .. }
                | Self::Timeout { .. }
                | Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Truncated { .. }
        )
    }

    /// `401` after authenticating: the hint depends on whether credentials were sent.
    pub(crate) fn unauthorized(
        registry: &str,
        repository: &str,
        detail: String,
        had_credentials: bool,
    ) -> Self {
        let hint = if had_credentials {
            format!(
                "the credentials for {registry} were rejected or lack pull access to {repository}: check the user and password or token in the docker config or pull secret"
            )
        } else {
            format!(
                "{registry} requires credentials for {repository}: run `docker login {registry}`, pass --docker-config DIR, or give the workload a pull secret"
            )
        };
        Self::Unauthorized {
            host: registry.to_owned(),
            repository: repository.to_owned(),
            detail,
            hint,
        }
    }

    /// The message with no text the registry or its token realm chose: error
    /// bodies, realm answers, redirect targets and offered platforms are left out,
    /// so what remains names the host, the class and what to do, in freshet's own
    /// words. For annotations and Kubernetes Events, which outlive the run and are
    /// read by people who did not ask the registry; logs keep the full message.
    pub fn public_message(&self) -> String {
        const SEE_LOG: &str = "details in freshet's log";
        let mut e = self.clone();
        match &mut e {
            Self::Unauthorized { detail, .. }
            | Self::Forbidden { detail, .. }
            | Self::Server { detail, .. } => detail.clear(),
            Self::Malformed { detail, .. } => {
                *detail = format!("the answer does not follow the distribution API ({SEE_LOG})")
            }
            Self::ForeignRealm { detail, .. } => {
                *detail = format!(
                    "refused to send credentials to a token realm or link on another host ({SEE_LOG})"
                )
            }
            Self::Redirect { target, reason, .. } => {
                *target = "another location".into();
                *reason = format!("not followed ({SEE_LOG})");
            }
            Self::RedirectLoop { chain, .. } => *chain = SEE_LOG.into(),
            Self::NoMatchingPlatform { available, .. } => *available = SEE_LOG.into(),
            _ => {}
        }
        e.to_string()
    }

    /// The registry host the error is about, when there is one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::InvalidReference(_) => None,
            Self::Dns { host, .. }
            | Self::Connect { host, .. }
            | Self::Tls { host, .. }
            | Self::Timeout { host, .. }
            | Self::Unauthorized { host, .. }
            | Self::Forbidden { host, .. }
            | Self::NotFound { host, .. }
            | Self::NoMatchingPlatform { host, .. }
            | Self::RateLimited { host, .. }
            | Self::Server { host, .. }
            | Self::Malformed { host, .. }
            | Self::HeadersTooLarge { host, .. }
            | Self::Truncated { host, .. }
            | Self::TooLarge { host, .. }
            | Self::ForeignRealm { host, .. }
            | Self::Redirect { host, .. }
            | Self::RedirectLoop { host, .. }
            | Self::Credentials { host, .. } => Some(host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_message_keeps_registry_text_out_of_annotations() {
        let foreign = "SENTINEL \u{1b}[2J realm said hi".to_owned();
        let cases = [
            RegistryError::unauthorized("r.io", "o/a", format!(": {foreign}"), true),
            RegistryError::Forbidden {
                host: "r.io".into(),
                repository: "o/a".into(),
                detail: format!(": {foreign}"),
            },
            RegistryError::Server {
                host: "r.io".into(),
                status: 500,
                detail: format!(": {foreign}"),
            },
            RegistryError::Malformed {
                host: "r.io".into(),
                detail: foreign.clone(),
            },
            RegistryError::ForeignRealm {
                host: "r.io".into(),
                detail: foreign.clone(),
            },
            RegistryError::Redirect {
                host: "r.io".into(),
                what: "manifest".into(),
                target: foreign.clone(),
                reason: foreign.clone(),
            },
            RegistryError::RedirectLoop {
                host: "r.io".into(),
                what: "manifest".into(),
                hops: 10,
                chain: foreign.clone(),
            },
            RegistryError::NoMatchingPlatform {
                host: "r.io".into(),
                what: "o/a:1".into(),
                platform: "linux/arm64".into(),
                available: foreign.clone(),
            },
        ];
        for e in cases {
            let m = e.public_message();
            assert!(!m.contains("SENTINEL"), "{m}");
            assert!(m.starts_with("r.io: "), "{m}");
            assert!(
                e.to_string().contains("SENTINEL"),
                "the full message keeps it"
            );
        }
    }

    #[test]
    fn classes_and_transience_table() {
        let h = || "ghcr.io".to_owned();
        let src: Source = Arc::new(std::io::Error::other("x"));
        let cases: Vec<(RegistryError, &str, bool)> = vec![
            (
                RegistryError::Dns {
                    host: h(),
                    source: src.clone(),
                },
                "dns",
                true,
            ),
            (
                RegistryError::Connect {
                    host: h(),
                    detail: "connection refused".into(),
                    source: src.clone(),
                },
                "connect",
                true,
            ),
            (
                RegistryError::Tls {
                    host: h(),
                    detail: "bad cert".into(),
                    source: src,
                },
                "tls",
                false,
            ),
            (
                RegistryError::Timeout {
                    host: h(),
                    after: Duration::from_secs(1),
                    source: None,
                },
                "timeout",
                true,
            ),
            (
                RegistryError::Unauthorized {
                    host: h(),
                    repository: "o/a".into(),
                    detail: String::new(),
                    hint: "log in".into(),
                },
                "unauthorized",
                false,
            ),
            (
                RegistryError::Forbidden {
                    host: h(),
                    repository: "o/a".into(),
                    detail: String::new(),
                },
                "forbidden",
                false,
            ),
            (
                RegistryError::NotFound {
                    host: h(),
                    what: "o/a:1".into(),
                },
                "not_found",
                false,
            ),
            (
                RegistryError::RateLimited {
                    host: h(),
                    retry: String::new(),
                    hint: "wait".into(),
                },
                "rate_limited",
                true,
            ),
            (
                RegistryError::Server {
                    host: h(),
                    status: 503,
                    detail: String::new(),
                },
                "server_error",
                true,
            ),
            (
                RegistryError::Malformed {
                    host: h(),
                    detail: "x".into(),
                },
                "malformed_response",
                false,
            ),
            (
                RegistryError::HeadersTooLarge {
                    host: h(),
                    source: Arc::new(std::io::Error::other("x")),
                },
                "malformed_response",
                false,
            ),
            (
                RegistryError::Truncated {
                    host: h(),
                    detail: "x".into(),
                    source: None,
                },
                "malformed_response",
                true,
            ),
            (
                RegistryError::TooLarge {
                    host: h(),
                    what: "o/a:1".into(),
                    limit: 4,
                    unit: "bytes",
                },
                "too_large",
                false,
            ),
            (
                RegistryError::ForeignRealm {
                    host: h(),
                    detail: "x".into(),
                },
                "foreign_realm",
                false,
            ),
            (
                RegistryError::Credentials {
                    host: h(),
                    source: Arc::new(crate::credentials::CredentialsError::HelperTimeout {
                        host: h(),
                        helper: "docker-credential-x".into(),
                        after: Duration::from_secs(5),
                    }),
                },
                "credentials",
                false,
            ),
            (
                RegistryError::Redirect {
                    host: h(),
                    what: "manifest o/a:1".into(),
                    target: "cdn.example".into(),
                    reason: "manifests are served by the registry itself".into(),
                },
                "foreign_realm",
                false,
            ),
            (
                RegistryError::RedirectLoop {
                    host: h(),
                    what: "blob".into(),
                    hops: 6,
                    chain: "a -> b -> a".into(),
                },
                "malformed_response",
                false,
            ),
        ];
        for (err, class, transient) in cases {
            assert_eq!(err.class().label(), class, "{err}");
            assert_eq!(err.is_transient(), transient, "{err}");
            assert_eq!(err.host(), Some("ghcr.io"));
            assert!(err.to_string().starts_with("ghcr.io: "), "{err}");
        }
    }

    #[test]
    fn every_variant_that_wraps_an_error_keeps_it_as_source() {
        use std::error::Error as _;
        let src: Source = Arc::new(std::io::Error::other("inner"));
        let wrapping = [
            RegistryError::Dns {
                host: "h".into(),
                source: src.clone(),
            },
            RegistryError::Connect {
                host: "h".into(),
                detail: "d".into(),
                source: src.clone(),
            },
            RegistryError::Tls {
                host: "h".into(),
                detail: "d".into(),
                source: src.clone(),
            },
            RegistryError::Timeout {
                host: "h".into(),
                after: Duration::from_secs(1),
                source: Some(src.clone()),
            },
            RegistryError::Truncated {
                host: "h".into(),
                detail: "d".into(),
                source: Some(src.clone()),
            },
            RegistryError::HeadersTooLarge {
                host: "h".into(),
                source: src,
            },
            RegistryError::Credentials {
                host: "h".into(),
                source: Arc::new(crate::credentials::CredentialsError::HelperMissing {
                    host: "h".into(),
                    helper: "docker-credential-gone".into(),
                }),
            },
        ];
        for err in wrapping {
            assert!(err.source().is_some(), "{err:?} lost its source");
        }
    }

    #[test]
    fn connect_message_names_host_and_egress() {
        let err = RegistryError::Connect {
            host: "ghcr.io".into(),
            detail: "connection refused".into(),
            source: Arc::new(std::io::Error::other("x")),
        };
        assert_eq!(
            err.to_string(),
            "ghcr.io: connection failed (connection refused): check egress/proxy allowlists for ghcr.io and its token endpoint, and that the registry is up"
        );
    }
}
