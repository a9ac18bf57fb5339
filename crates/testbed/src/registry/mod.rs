//! The real CNCF distribution registry (Debian `docker-registry`, 2.8) as a test fixture.
//!
//! Owns launching `/usr/bin/docker-registry serve CONFIG` on `127.0.0.1:<free port>`
//! with a generated configuration in a temporary directory, waiting until `GET /v2/`
//! answers, reading the registry's own access log, stopping and restarting it on the
//! same port with the same data, and killing it when the handle drops. Four
//! configurations exist ([`RegistryOptions`]): open, htpasswd basic auth, token auth
//! (with a [`token::TokenServer`] started alongside), and pull-through proxy.
//!
//! Submodules: [`token`] (the Docker token server), [`image`] (the deterministic
//! test image model), [`push`] (an image pusher that speaks the distribution API
//! with reqwest), [`fixtures`] (the standard image set
//! shared by tests, the benchmark and the demo), [`access_log`] (log parsing).
//!
//! This module must not fake registry behaviour: anything the real registry cannot
//! do (faults, odd headers) belongs to the `faults` module.
//!
//! ```no_run
//! # async fn demo() -> Result<(), freshet_testbed::registry::TestbedError> {
//! use freshet_testbed::registry::{RegistryOptions, RegistryServer, fixtures, push::Pusher};
//! let registry = RegistryServer::start(RegistryOptions::open()).await?;
//! let pusher = Pusher::new(&registry)?;
//! let alpine = fixtures::seed_alpine(&pusher).await?;
//! println!("{} serves library/alpine:latest = {}", registry.host(), alpine.digest("latest"));
//! # Ok(()) }
//! ```

pub mod access_log;
pub mod builds;
mod config;
mod error;
pub mod fixtures;
pub mod image;
pub mod push;
pub mod token;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use access_log::AccessLogEntry;
pub use error::TestbedError;
use token::{TokenOptions, TokenServer};

/// The default location of the distribution registry binary.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// The project's one redacting secret type (`Debug` and `Display` print `***`).
pub use freshet_core::secret::Secret;

/// A user name and password (for htpasswd, the token server, a proxy's upstream, or a client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

impl Credentials {
    /// Builds credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: Secret::new(password),
        }
    }
}

/// Which of the four registry configurations to run.
#[derive(Debug, Clone)]
pub enum RegistryMode {
    /// No authentication: anyone may pull and push.
    Open,
    /// `auth.htpasswd` with these users (bcrypt hashes); every user may pull and push.
    Basic {
        /// The users written to the htpasswd file.
        users: Vec<Credentials>,
    },
    /// `auth.token`, trusting a [`TokenServer`] started with these options.
    Token(TokenOptions),
    /// A read-only pull-through cache of `remote_url`.
    Proxy {
        /// The upstream registry, e.g. another [`RegistryServer::base_url`].
        remote_url: String,
        /// Credentials the proxy uses towards the upstream.
        credentials: Option<Credentials>,
    },
}

/// How to start a [`RegistryServer`]: a mode plus a few knobs. Build with
/// [`RegistryOptions::open`], [`basic`](RegistryOptions::basic),
/// [`token`](RegistryOptions::token) or [`proxy`](RegistryOptions::proxy) and chain.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    mode: RegistryMode,
    binary: PathBuf,
    log_level: String,
    startup_timeout: Duration,
    blob_redirect: Option<String>,
}

/// The htpasswd realm the basic-auth registry announces.
pub const BASIC_REALM: &str = "freshet-testbed";

impl RegistryOptions {
    fn with_mode(mode: RegistryMode) -> Self {
        RegistryOptions {
            mode,
            binary: PathBuf::from(REGISTRY_BINARY),
            log_level: "info".into(),
            startup_timeout: Duration::from_secs(15),
            blob_redirect: None,
        }
    }

    /// No authentication.
    pub fn open() -> Self {
        Self::with_mode(RegistryMode::Open)
    }

    /// htpasswd basic auth; add users with [`user`](Self::user).
    pub fn basic() -> Self {
        Self::with_mode(RegistryMode::Basic { users: Vec::new() })
    }

    /// Token auth; the [`TokenServer`] is started by [`RegistryServer::start`].
    pub fn token(options: TokenOptions) -> Self {
        Self::with_mode(RegistryMode::Token(options))
    }

    /// A pull-through cache of another test registry (use
    /// [`proxy_credentials`](Self::proxy_credentials) when the upstream needs basic auth).
    pub fn proxy(upstream: &RegistryServer) -> Self {
        Self::proxy_url(upstream.base_url())
    }

    /// A pull-through cache of any registry URL.
    pub fn proxy_url(remote_url: impl Into<String>) -> Self {
        Self::with_mode(RegistryMode::Proxy {
            remote_url: remote_url.into(),
            credentials: None,
        })
    }

    /// Adds a user that may pull and push: to the htpasswd file in basic mode, to the
    /// token server in token mode. Ignored in the open and proxy modes.
    pub fn user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        match &mut self.mode {
            RegistryMode::Basic { users } => users.push(Credentials::new(username, password)),
            RegistryMode::Token(options) => {
                *options = std::mem::take(options).user(username, password);
            }
            RegistryMode::Open | RegistryMode::Proxy { .. } => {}
        }
        self
    }

    /// The credentials a proxy uses towards its upstream. Ignored outside proxy mode.
    pub fn proxy_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        if let RegistryMode::Proxy { credentials, .. } = &mut self.mode {
            *credentials = Some(Credentials::new(username, password));
        }
        self
    }

    /// Another registry binary (default [`REGISTRY_BINARY`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = path.into();
        self
    }

    /// The registry's `log.level` (default `info`). The access log is on at any level.
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    /// How long to wait for `GET /v2/` to answer (default 15 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Answers every blob GET with a `307` to `base_url` + the blob's storage path
    /// (`/docker/registry/v2/blobs/sha256/ab/abcd…/data` under [`RegistryServer::dir`]
    /// `/data`), as real registries redirect blobs to a CDN. Uses the registry's
    /// `redirect` storage middleware.
    pub fn redirect_blobs_to(mut self, base_url: impl Into<String>) -> Self {
        self.blob_redirect = Some(base_url.into());
        self
    }

    /// The configured mode.
    pub fn mode(&self) -> &RegistryMode {
        &self.mode
    }
}

/// Builds a reqwest client for plain-http loopback use, installing ring as the
/// rustls crypto provider first (the workspace builds reqwest without one).
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .build()
        .expect("a reqwest client with default settings builds")
}

/// Like [`http_client`], for callers who want to set more options.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent("freshet-testbed")
        .pool_max_idle_per_host(16)
}

/// A running (or stopped) distribution registry. Killed, and its temporary
/// directory removed, when dropped.
#[derive(Debug)]
pub struct RegistryServer {
    options: RegistryOptions,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    port: u16,
    child: Option<Child>,
    token: Option<TokenServer>,
    log_mark: AtomicUsize,
    client: reqwest::Client,
}

fn free_port() -> Result<u16, TestbedError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| TestbedError::Bind {
        what: "the registry",
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| TestbedError::Bind {
            what: "the registry",
            source,
        })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl RegistryServer {
    /// Starts the registry (and, in token mode, its token server) and waits until
    /// `GET /v2/` answers.
    pub async fn start(options: RegistryOptions) -> Result<RegistryServer, TestbedError> {
        if !options.binary.exists() {
            return Err(TestbedError::RegistryBinaryMissing {
                path: options.binary.clone(),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("freshet-registry-")
            .tempdir()
            .map_err(|e| TestbedError::io("creating a temporary directory", "/tmp", e))?;
        let root = dir.path().join("data");
        std::fs::create_dir_all(&root)
            .map_err(|e| TestbedError::io("creating the storage directory", &root, e))?;

        let mut token = None;
        let auth = match &options.mode {
            RegistryMode::Open | RegistryMode::Proxy { .. } => config::AuthConfig::None,
            RegistryMode::Basic { users } => {
                let path = dir.path().join("htpasswd");
                let text = config::htpasswd(users)
                    .map_err(|e| TestbedError::Crypto(format!("bcrypt: {e}")))?;
                std::fs::write(&path, text)
                    .map_err(|e| TestbedError::io("writing the htpasswd file", &path, e))?;
                config::AuthConfig::Htpasswd {
                    realm: BASIC_REALM.into(),
                    path,
                }
            }
            RegistryMode::Token(token_options) => {
                let server = TokenServer::start(token_options.clone()).await?;
                let path = dir.path().join("token-root.pem");
                std::fs::write(&path, server.root_cert_pem())
                    .map_err(|e| TestbedError::io("writing the rootcertbundle", &path, e))?;
                let auth = config::AuthConfig::Token {
                    realm: server.realm(),
                    service: server.service().into(),
                    issuer: server.issuer().into(),
                    rootcertbundle: path,
                };
                token = Some(server);
                auth
            }
        };
        let proxy = match &options.mode {
            RegistryMode::Proxy {
                remote_url,
                credentials,
            } => Some(config::ProxyConfig {
                remote_url: remote_url.clone(),
                credentials: credentials.clone(),
            }),
            _ => None,
        };

        let config_path = dir.path().join("config.yml");
        let mut server = RegistryServer {
            stdout_path: dir.path().join("registry.stdout.log"),
            stderr_path: dir.path().join("registry.stderr.log"),
            config_path,
            port: 0,
            child: None,
            token,
            log_mark: AtomicUsize::new(0),
            client: http_client(),
            options,
            dir,
        };

        // A free port can be taken by someone else between probing and the
        // registry's bind; try a few ports before giving up.
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.port = free_port()?;
            let text = config::RegistryConfig {
                addr: server.host(),
                root_directory: root.clone(),
                log_level: server.options.log_level.clone(),
                auth: auth.clone(),
                proxy: proxy.clone(),
                blob_redirect: server.options.blob_redirect.clone(),
            }
            .render();
            std::fs::write(&server.config_path, text).map_err(|e| {
                TestbedError::io("writing the registry config", &server.config_path, e)
            })?;
            match server.spawn_and_wait().await {
                Err(TestbedError::RegistryExited { log_tail, .. })
                    if attempt < 5 && log_tail.contains("address already in use") =>
                {
                    continue;
                }
                other => return other.map(|()| server),
            }
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), TestbedError> {
        let open_log = |path: &Path| {
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| TestbedError::io("opening the registry log", path, e))
        };
        let stdout = open_log(&self.stdout_path)?;
        let stderr = open_log(&self.stderr_path)?;
        let child = Command::new(&self.options.binary)
            .arg("serve")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .current_dir(self.dir.path())
            .spawn()
            .map_err(|source| TestbedError::Spawn {
                path: self.options.binary.clone(),
                source,
            })?;
        self.child = Some(child);

        let deadline = tokio::time::Instant::now() + self.options.startup_timeout;
        let url = format!("{}/v2/", self.base_url());
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(TestbedError::RegistryExited {
                    status: status.to_string(),
                    log_tail: tail(&self.stderr_path, 20),
                });
            }
            let probe = self
                .client
                .get(&url)
                .timeout(Duration::from_millis(500))
                .send()
                .await;
            if probe.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                return Err(TestbedError::RegistryNotReady {
                    base_url: self.base_url(),
                    seconds: self.options.startup_timeout.as_secs(),
                    log_tail: tail(&self.stderr_path, 20),
                });
            }
            // Poll interval while waiting for the condition, not a fixed sleep.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // Reap synchronously, so the port is closed when this returns.
            let _ = child.wait();
        }
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port the registry listens on (kept across [`stop`](Self::stop) and
    /// [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The options the registry was started with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The token server, in token mode.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The first configured user (basic and token modes): the identity a
    /// [`push::Pusher::new`] uses.
    pub fn admin_credentials(&self) -> Option<Credentials> {
        match &self.options.mode {
            RegistryMode::Basic { users } => users.first().cloned(),
            RegistryMode::Token(options) => options.first_user(),
            RegistryMode::Open | RegistryMode::Proxy { .. } => None,
        }
    }

    /// Whether the registry process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The temporary directory that holds config, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's own log (stderr), for debugging a failed test.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Every request the registry logged since start (or since
    /// [`clear_access_log`](Self::clear_access_log)), across restarts, in order.
    ///
    /// The registry writes the line before it flushes the response, so a request
    /// whose response the caller has read is already in the log.
    pub fn access_log(&self) -> Vec<AccessLogEntry> {
        let text = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let mut entries = access_log::parse(&text);
        let mark = self.log_mark.load(Ordering::SeqCst).min(entries.len());
        entries.drain(..mark);
        entries
    }

    /// Forgets the access log so far: later calls see only newer requests.
    pub fn clear_access_log(&self) {
        let text = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        self.log_mark
            .store(access_log::parse(&text).len(), Ordering::SeqCst);
    }

    /// How many logged requests have this method and a path starting with `path_prefix`.
    pub fn request_count(&self, method: &str, path_prefix: &str) -> usize {
        self.access_log()
            .iter()
            .filter(|e| e.matches(method, path_prefix))
            .count()
    }

    /// Kills the registry (it becomes unreachable) and keeps its data and port.
    pub async fn stop(&mut self) {
        self.kill();
    }

    /// Starts the registry again on the same port with the same data and config.
    /// Does nothing if it is running.
    pub async fn restart(&mut self) -> Result<(), TestbedError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn_and_wait().await
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.kill();
    }
}
