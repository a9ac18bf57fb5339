//! The transient/permanent decision, made from error types and status codes.
//!
//! Owns [`classify`], a pure function from a transport error's source chain to a
//! [`Failure`] (downcasting to `reqwest::Error`, `hyper::Error`, `rustls::Error` and
//! `std::io::Error` and reading their kinds), [`Failure::into_error`] which turns it
//! into a [`RegistryError`] that keeps the original as its `#[source]`, and
//! [`status_verdict`], which says which HTTP statuses are retried. It never looks at
//! the text of an error message to decide, and it sends nothing.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use reqwest::StatusCode;

use crate::error::{RegistryError, Source};

/// What went wrong below HTTP, as far as the error types tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request or the body read ran out of time.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// TLS handshake or certificate failure.
    Tls,
    /// The connection ended before the message was complete.
    Truncated,
    /// The response head exceeded the HTTP stack's limit.
    HeadersTooLarge,
    /// No usable connection; the detail says which way it failed.
    Connect(ConnectFailure),
}

/// How a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    Refused,
    Reset,
    Unreachable,
    /// Any other connection failure (the message carries the last cause).
    Other,
}

impl Failure {
    /// Whether trying again may succeed without anyone changing anything.
    pub(crate) fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Dns | Self::Truncated | Self::Connect(_)
        )
    }

    /// The error this failure becomes, keeping `err` as its source. `timeout` is the
    /// limit that applied, for the message.
    pub(crate) fn into_error(self, host: &str, err: Source, timeout: Duration) -> RegistryError {
        let host = host.to_owned();
        let detail = last_cause(&*err);
        match self {
            Self::Timeout => RegistryError::Timeout {
                host,
                after: timeout,
                source: Some(err),
            },
            Self::Dns => RegistryError::Dns { host, source: err },
            Self::Tls => RegistryError::Tls {
                host,
                detail,
                source: err,
            },
            Self::Truncated => RegistryError::Truncated {
                host,
                detail,
                source: Some(err),
            },
            Self::HeadersTooLarge => RegistryError::HeadersTooLarge { host, source: err },
            Self::Connect(how) => RegistryError::Connect {
                host,
                detail: match how {
                    ConnectFailure::Refused => "connection refused".into(),
                    ConnectFailure::Reset => "connection reset".into(),
                    ConnectFailure::Unreachable => "network unreachable".into(),
                    ConnectFailure::Other => detail,
                },
                source: err,
            },
        }
    }
}

/// Classifies an error by walking its source chain, outermost first, and returning
/// the first decisive type found. `io::Error`s are looked through (`get_ref`), since
/// their `source()` skips the error they wrap.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> Failure {
    let mut body = false;
    for e in chain(err) {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return Failure::Timeout;
            }
            if r.is_dns() {
                return Failure::Dns;
            }
            body |= r.is_body() || r.is_decode();
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return Failure::HeadersTooLarge;
            }
            if h.is_timeout() {
                return Failure::Timeout;
            }
            if h.is_incomplete_message() || h.is_body_write_aborted() {
                return Failure::Truncated;
            }
        }
        if e.is::<rustls::Error>() {
            return Failure::Tls;
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(f) = io_kind(io.kind())
        {
            return f;
        }
    }
    if body {
        Failure::Truncated
    } else {
        Failure::Connect(ConnectFailure::Other)
    }
}

/// The failure an `io::ErrorKind` decides, if it decides one.
fn io_kind(kind: io::ErrorKind) -> Option<Failure> {
    use io::ErrorKind as K;
    Some(match kind {
        K::TimedOut => Failure::Timeout,
        K::UnexpectedEof => Failure::Truncated,
        K::ConnectionRefused => Failure::Connect(ConnectFailure::Refused),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::NotConnected => {
            Failure::Connect(ConnectFailure::Reset)
        }
        K::NetworkUnreachable | K::HostUnreachable | K::AddrNotAvailable => {
            Failure::Connect(ConnectFailure::Unreachable)
        }
        _ => return None,
    })
}

/// The errors of a source chain, outermost first, looking through `io::Error`.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let cur = next?;
        let inner = cur
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &(dyn StdError + 'static));
        next = inner.or_else(|| cur.source());
        Some(cur)
    })
}

/// The innermost message of a chain, for the human-readable detail only.
fn last_cause(err: &(dyn StdError + 'static)) -> String {
    chain(err)
        .last()
        .map(|e| crate::text::quote(&e.to_string(), 200))
        .unwrap_or_default()
}

/// What a status code means for retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusVerdict {
    /// `429`: wait (`Retry-After` or backoff) and retry.
    RateLimited,
    /// `5xx`: back off and retry.
    ServerError,
    /// Anything else: the caller interprets it.
    Answer,
}

/// Which statuses are transient.
pub(crate) fn status_verdict(status: StatusCode) -> StatusVerdict {
    if status == StatusCode::TOO_MANY_REQUESTS {
        StatusVerdict::RateLimited
    } else if status.is_server_error() {
        StatusVerdict::ServerError
    } else {
        StatusVerdict::Answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;
    use std::sync::Arc;

    /// A layer of some HTTP stack wrapping a cause, as hyper-util and reqwest do.
    #[derive(Debug)]
    struct Layer(&'static str, Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.1)
        }
    }

    fn wrapped(e: impl StdError + Send + Sync + 'static) -> Layer {
        Layer(
            "client error (Connect)",
            Box::new(Layer("tcp connect error", Box::new(e))),
        )
    }

    #[test]
    fn failures_from_error_types_table() {
        use ConnectFailure as C;
        let io = |k: io::ErrorKind| io::Error::new(k, "whatever the OS says");
        let cases: Vec<(Box<dyn StdError + Send + Sync>, Failure)> = vec![
            (
                Box::new(wrapped(io(io::ErrorKind::ConnectionRefused))),
                Failure::Connect(C::Refused),
            ),
            (
                Box::new(wrapped(io(io::ErrorKind::ConnectionReset))),
                Failure::Connect(C::Reset),
            ),
            (
                Box::new(wrapped(io(io::ErrorKind::BrokenPipe))),
                Failure::Connect(C::Reset),
            ),
            (
                Box::new(wrapped(io(io::ErrorKind::HostUnreachable))),
                Failure::Connect(C::Unreachable),
            ),
            (
                Box::new(wrapped(io(io::ErrorKind::NetworkUnreachable))),
                Failure::Connect(C::Unreachable),
            ),
            (
                Box::new(wrapped(io(io::ErrorKind::TimedOut))),
                Failure::Timeout,
            ),
            (
                Box::new(wrapped(io(io::ErrorKind::UnexpectedEof))),
                Failure::Truncated,
            ),
            (
                Box::new(wrapped(io(io::ErrorKind::Other))),
                Failure::Connect(C::Other),
            ),
            // A message that *says* "certificate" or "dns error" decides nothing.
            (
                Box::new(Layer(
                    "dns error: certificate tls handshake",
                    Box::new(io(io::ErrorKind::Other)),
                )),
                Failure::Connect(C::Other),
            ),
            // rustls errors arrive inside an io::Error (tokio-rustls), behind layers.
            (
                Box::new(wrapped(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ))),
                Failure::Tls,
            ),
            (
                Box::new(wrapped(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                ))),
                Failure::Tls,
            ),
            (Box::new(rustls::Error::HandshakeNotComplete), Failure::Tls),
        ];
        for (err, want) in cases {
            assert_eq!(classify(&*err), want, "{err:?}");
        }
    }

    #[test]
    fn transience_table() {
        use ConnectFailure as C;
        let table = [
            (Failure::Timeout, true),
            (Failure::Dns, true),
            (Failure::Truncated, true),
            (Failure::Connect(C::Refused), true),
            (Failure::Connect(C::Other), true),
            (Failure::Tls, false),
            (Failure::HeadersTooLarge, false),
        ];
        for (f, transient) in table {
            assert_eq!(f.is_transient(), transient, "{f:?}");
            let err = f.into_error(
                "ghcr.io",
                Arc::new(io::Error::other("x")),
                Duration::from_secs(3),
            );
            assert_eq!(err.is_transient(), transient, "{f:?} -> {err}");
            assert!(err.to_string().starts_with("ghcr.io: "), "{err}");
        }
    }

    #[test]
    fn oversized_headers_are_not_a_retried_connect_failure() {
        let err = Failure::HeadersTooLarge.into_error(
            "r.example",
            Arc::new(io::Error::other("x")),
            Duration::ZERO,
        );
        assert_ne!(err.class(), crate::ErrorClass::Connect);
        assert!(!err.is_transient());
    }

    #[test]
    fn timeouts_state_the_real_limit_and_keep_their_source() {
        let err = Failure::Timeout.into_error(
            "r.example",
            Arc::new(io::Error::new(io::ErrorKind::TimedOut, "t")),
            Duration::from_secs(30),
        );
        assert!(err.to_string().contains("30s"), "{err}");
        assert!(StdError::source(&err).is_some());
    }

    #[test]
    fn status_verdicts_table() {
        let table = [
            (200, StatusVerdict::Answer),
            (307, StatusVerdict::Answer),
            (401, StatusVerdict::Answer),
            (404, StatusVerdict::Answer),
            (429, StatusVerdict::RateLimited),
            (500, StatusVerdict::ServerError),
            (503, StatusVerdict::ServerError),
        ];
        for (code, want) in table {
            assert_eq!(
                status_verdict(StatusCode::from_u16(code).unwrap()),
                want,
                "{code}"
            );
        }
    }
}
