//! The one error type of the `registry` test support: [`TestbedError`].
//!
//! Owns the names of what can fail while launching the real registry, serving
//! tokens, pushing images and seeding fixtures. It must not hide the cause: every
//! variant that wraps another error keeps it as `#[source]`.

use std::path::PathBuf;

/// What failed in the registry test support.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestbedError {
    /// The distribution registry binary is not installed.
    #[error(
        "the registry binary {path} is missing: run `apt-get install -y docker-registry` \
         (Debian package docker-registry, distribution 2.8)"
    )]
    RegistryBinaryMissing {
        /// Where the binary was looked for.
        path: PathBuf,
    },

    /// Reading or writing a file of the test bed (config, htpasswd, logs) failed.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Binding a local port (to find a free one, or to serve) failed.
    #[error("binding 127.0.0.1 for {what}: {source}")]
    Bind {
        /// The server that wanted the port.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The registry process could not be spawned.
    #[error("spawning {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The registry process exited before it answered `GET /v2/`.
    #[error("the registry exited during start-up ({status}); its log ends with:\n{log_tail}")]
    RegistryExited {
        /// The exit status as printed by the OS.
        status: String,
        /// The last lines of the registry's stderr.
        log_tail: String,
    },

    /// The registry did not answer `GET /v2/` before the deadline.
    #[error(
        "the registry at {base_url} did not answer GET /v2/ within {seconds} s; its log ends with:\n{log_tail}"
    )]
    RegistryNotReady {
        /// The registry's base URL.
        base_url: String,
        /// The deadline in seconds.
        seconds: u64,
        /// The last lines of the registry's stderr.
        log_tail: String,
    },

    /// The operation needs a running registry, and it was stopped.
    #[error("the registry is stopped; call restart() first")]
    RegistryStopped,

    /// Generating the token server's key or certificate failed.
    #[error("generating the token signing key or certificate: {0}")]
    Crypto(String),

    /// An HTTP request to the registry or token server failed in transport.
    #[error("{method} {url}: {source}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The registry or token server answered with an unexpected status.
    #[error("{method} {url} answered {status}: {body}")]
    UnexpectedStatus {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },

    /// The registry answered a push without a usable `Location` header.
    #[error("{url} answered without a usable Location header")]
    MissingLocation {
        /// The upload URL.
        url: String,
    },

    /// The registry computed another digest than the pusher did for the same bytes.
    #[error("{what}: the registry says {registry}, the pushed bytes hash to {local}")]
    DigestMismatch {
        /// What was pushed (blob or manifest, with repository and reference).
        what: String,
        /// The registry's `Docker-Content-Digest`.
        registry: String,
        /// The local sha256 of the exact bytes.
        local: String,
    },

    /// The token server's reply could not be used.
    #[error("the token server's reply is unusable: {0}")]
    TokenReply(String),

    /// The requested operation does not fit the registry's configuration.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl TestbedError {
    /// Whether retrying the same call may succeed (transport errors and 5xx answers).
    pub fn is_transient(&self) -> bool {
        match self {
            TestbedError::Http { .. } | TestbedError::RegistryNotReady { .. } => true,
            TestbedError::UnexpectedStatus { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TestbedError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
