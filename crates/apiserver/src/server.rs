//! Starting and stopping the test bed: the listener on 127.0.0.1 (TLS with a
//! generated CA, or plain http), the bootstrap objects (namespaces, nodes),
//! the controller loop, the admin kubeconfig, and the `serve` command.
//!
//! Owns the lifetime of every task the test bed spawns: they all stop when the
//! [`TestCluster`] drops. It must not interpret requests (that is `api`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::api::{AppState, WriteHook, router};
use crate::auth::{Authenticator, Token, User};
use crate::controllers::{Controllers, NodeSpec, kubelet};
use crate::images::{ImagePullError, ImageResolver, RegistryResolver};
use crate::kubeconfig::{self, KubeconfigError};
use crate::resources::ResourceDef;
use crate::store::Store;
use crate::tls::{TlsError, TlsMaterial};
use crate::util::random_hex;

/// Starting or running the test bed failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address is not a loopback address.
    #[error("the test bed listens on loopback only, not {0}")]
    NotLoopback(SocketAddr),
    /// Binding the listener failed.
    #[error("binding {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Generating TLS material failed.
    #[error("preparing TLS failed")]
    Tls(#[from] TlsError),
    /// The registry client could not be built.
    #[error("building the registry client failed")]
    Resolver(#[source] ImagePullError),
    /// A node specification does not parse.
    #[error(
        "invalid node {0:?}: expected ARCH, OS/ARCH or OS/ARCH/VARIANT (amd64, linux/arm64/v8)"
    )]
    BadNode(String),
    /// Writing the kubeconfig failed.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// Waiting for a termination signal failed.
    #[error("waiting for a signal failed")]
    Signal(#[source] std::io::Error),
    /// Creating a bootstrap object failed.
    #[error("creating bootstrap object {what} failed")]
    Bootstrap {
        /// What.
        what: String,
        /// The API error.
        #[source]
        source: Box<crate::status::ApiError>,
    },
}

/// How to start a [`TestCluster`].
pub struct ClusterOptions {
    /// The address to listen on (loopback only; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated CA (the default) or plain http. Over plain
    /// http every request acts as the admin, as kubectl sends no credentials.
    pub tls: bool,
    /// The simulated nodes.
    pub nodes: Vec<NodeSpec>,
    /// Images whose containers crash (CrashLoopBackOff): references as
    /// written, normalized (`docker.io/library/x:1`), or digests.
    pub crash_images: Vec<String>,
    /// Images whose pulls fail (`ErrImagePull`, then `ImagePullBackOff`), matched
    /// like `crash_images`: a pull failure that does not depend on the image's
    /// platforms or on timing.
    pub pull_fail_images: Vec<String>,
    /// A simulated validating admission webhook refuses (400) every API write of
    /// a pod, workload or CronJob naming an image that contains one of these
    /// strings (e.g. `@sha256:…`): a policy engine refusing an image.
    pub denied_images: Vec<String>,
    /// How images are resolved; `None` means the real registry ([`RegistryResolver`]).
    pub resolver: Option<Arc<dyn ImageResolver>>,
    /// How often the controllers and kubelet run.
    pub tick: Duration,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// How many changes the store keeps for watch resume.
    pub history_limit: usize,
    /// Where to write the admin kubeconfig; `None` means a temporary file that
    /// lives as long as the cluster.
    pub kubeconfig_path: Option<PathBuf>,
    /// Runs before every write request is handled (tests only).
    pub before_write: Option<WriteHook>,
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterOptions")
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("nodes", &self.nodes)
            .field("crash_images", &self.crash_images)
            .field("pull_fail_images", &self.pull_fail_images)
            .field("denied_images", &self.denied_images)
            .field("custom_resolver", &self.resolver.is_some())
            .field("tick", &self.tick)
            .field("kubeconfig_path", &self.kubeconfig_path)
            .finish_non_exhaustive()
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            nodes: default_nodes(),
            crash_images: Vec::new(),
            pull_fail_images: Vec::new(),
            denied_images: Vec::new(),
            resolver: None,
            tick: Duration::from_millis(100),
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
            kubeconfig_path: None,
            before_write: None,
        }
    }
}

impl ClusterOptions {
    /// Runs `hook` before every write request is handled: a test's "other writer"
    /// that changes an object between a client's read and its write.
    pub fn before_write(mut self, hook: WriteHook) -> Self {
        self.before_write = Some(hook);
        self
    }

    /// Plain http instead of TLS.
    pub fn plain_http(mut self) -> Self {
        self.tls = false;
        self
    }

    /// Uses `resolver` for image pulls instead of the real registry.
    pub fn resolver(mut self, resolver: Arc<dyn ImageResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Sets the nodes.
    pub fn nodes(mut self, nodes: Vec<NodeSpec>) -> Self {
        self.nodes = nodes;
        self
    }

    /// Adds an image to the crash list.
    pub fn crash_image(mut self, image: impl Into<String>) -> Self {
        self.crash_images.push(image.into());
        self
    }

    /// Adds an image to the pull-fail list.
    pub fn pull_fail_image(mut self, image: impl Into<String>) -> Self {
        self.pull_fail_images.push(image.into());
        self
    }

    /// Makes the simulated admission webhook refuse images containing `image`.
    pub fn deny_image(mut self, image: impl Into<String>) -> Self {
        self.denied_images.push(image.into());
        self
    }

    /// Writes the admin kubeconfig to `path`.
    pub fn kubeconfig_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig_path = Some(path.into());
        self
    }
}

/// Two amd64 nodes and one arm64 node.
pub fn default_nodes() -> Vec<NodeSpec> {
    parse_nodes(&["amd64", "amd64", "arm64"]).unwrap_or_default()
}

/// Parses node platforms (`amd64`, `linux/arm64`, `linux/arm64/v8`) into
/// nodes named `testbed-node-1`, `testbed-node-2`, ….
pub fn parse_nodes<S: AsRef<str>>(specs: &[S]) -> Result<Vec<NodeSpec>, ServerError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.as_ref().trim();
            let parts: Vec<&str> = s.split('/').collect();
            let (os, arch, variant) = match parts.as_slice() {
                [arch] => ("linux", *arch, None),
                [os, arch] => (*os, *arch, None),
                [os, arch, v] => (*os, *arch, Some(*v)),
                _ => return Err(ServerError::BadNode(s.to_string())),
            };
            if [os, arch].iter().any(|p| p.is_empty()) || variant.is_some_and(str::is_empty) {
                return Err(ServerError::BadNode(s.to_string()));
            }
            Ok(NodeSpec {
                name: format!("testbed-node-{}", i + 1),
                os: os.to_string(),
                arch: arch.to_string(),
                variant: variant.map(str::to_string),
            })
        })
        .collect()
}

/// A running test bed. Every task stops when it drops.
pub struct TestCluster {
    addr: SocketAddr,
    url: String,
    ca_pem: Option<String>,
    store: Arc<Store>,
    auth: Arc<Authenticator>,
    admin_token: Token,
    kubeconfig_path: PathBuf,
    _dir: Option<tempfile::TempDir>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pulls: crate::controllers::PullLog,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("url", &self.url)
            .field("kubeconfig_path", &self.kubeconfig_path)
            .finish_non_exhaustive()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn bootstrap(store: &Store, nodes: &[NodeSpec]) -> Result<(), ServerError> {
    let ns_def = ResourceDef::find("", "v1", "namespaces").expect("namespaces are served");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        crate::admission::admit(ns_def, &mut obj, true).map_err(|source| {
            ServerError::Bootstrap {
                what: format!("namespace {ns}"),
                source: Box::new(source),
            }
        })?;
        store
            .create(ns_def, "", obj)
            .map_err(|source| ServerError::Bootstrap {
                what: format!("namespace {ns}"),
                source: Box::new(source),
            })?;
    }
    let crd_def = ResourceDef::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are served");
    for crd in crate::crds::definitions() {
        let what = format!("CRD {}", crd["metadata"]["name"]);
        store
            .create(crd_def, "", crd)
            .map_err(|source| ServerError::Bootstrap {
                what,
                source: Box::new(source),
            })?;
    }
    let node_def = ResourceDef::find("", "v1", "nodes").expect("nodes are served");
    for (i, n) in nodes.iter().enumerate() {
        store
            .create(node_def, "", kubelet::node_object(n, i))
            .map_err(|source| ServerError::Bootstrap {
                what: format!("node {}", n.name),
                source: Box::new(source),
            })?;
    }
    Ok(())
}

impl TestCluster {
    /// Starts a test bed: binds the listener, creates the namespaces
    /// `default`, `kube-system`, `kube-public`, `kube-node-lease` and the
    /// nodes, starts the controllers, and writes the admin kubeconfig.
    pub async fn start(options: ClusterOptions) -> Result<Self, ServerError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ClusterOptions {
            listen,
            tls,
            nodes,
            crash_images,
            pull_fail_images,
            denied_images,
            resolver,
            tick,
            bookmark_interval,
            history_limit,
            kubeconfig_path,
            before_write,
        } = options;
        if !listen.ip().is_loopback() {
            return Err(ServerError::NotLoopback(listen));
        }
        let resolver: Arc<dyn ImageResolver> = match resolver {
            Some(r) => r,
            None => Arc::new(RegistryResolver::anonymous().map_err(ServerError::Resolver)?),
        };
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
        let material = if tls {
            Some(TlsMaterial::generate()?)
        } else {
            None
        };
        let acceptor = match &material {
            Some(m) => Some(tokio_rustls::TlsAcceptor::from(m.server_config()?)),
            None => None,
        };
        let url = format!("{}://{addr}", if tls { "https" } else { "http" });

        let store = Arc::new(Store::new(history_limit));
        bootstrap(&store, &nodes)?;
        let auth = Arc::new(Authenticator::default());
        let admin_token = Token::new(random_hex(24));
        auth.add(admin_token.clone(), User::admin());

        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            store: store.clone(),
            auth: auth.clone(),
            anonymous_admin: !tls,
            bookmark_interval,
            shutdown: shutdown_rx.clone(),
            server_address: addr.to_string(),
            before_write,
            denied_images,
        });
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(accept_loop(
            listener,
            acceptor,
            router(state),
            shutdown_rx.clone(),
        )));
        let controllers = Controllers::new(store.clone(), nodes, resolver, crash_images)
            .with_pull_failures(pull_fail_images);
        let pulls = controllers.pull_log();
        tasks.push(tokio::spawn(controllers.run(tick, shutdown_rx)));

        let (kubeconfig_path, dir) = match kubeconfig_path {
            Some(p) => (p, None),
            None => {
                let dir = tempfile::tempdir().map_err(|source| KubeconfigError::Write {
                    path: std::env::temp_dir(),
                    source,
                })?;
                (dir.path().join("kubeconfig"), Some(dir))
            }
        };
        let cluster = Self {
            addr,
            url,
            ca_pem: material.map(|m| m.ca_pem),
            store,
            auth,
            admin_token,
            kubeconfig_path,
            _dir: dir,
            shutdown,
            tasks,
            pulls,
        };
        kubeconfig::write(&cluster.kubeconfig_path, &cluster.admin_kubeconfig())?;
        Ok(cluster)
    }

    /// Every image pull the simulated kubelets completed, in order: which node
    /// fetched which platform manifest. A test-only view (see `PullRecord`).
    pub fn pulls(&self) -> Vec<crate::controllers::PullRecord> {
        self.pulls.snapshot()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA certificate (PEM) clients must trust, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The path of the admin kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The admin kubeconfig (JSON), whose user bypasses RBAC.
    pub fn admin_kubeconfig(&self) -> Value {
        let token = self.ca_pem.is_some().then_some(&self.admin_token);
        kubeconfig::kubeconfig(&self.url, self.ca_pem(), "admin", token, "default")
    }

    /// Mints a bearer token for the ServiceAccount `ns/name` (which need not
    /// exist yet) and returns a kubeconfig that uses it, with `ns` as the
    /// default namespace. Meaningful over TLS only: over plain http kubectl
    /// sends no token and every request is the admin.
    pub fn service_account_kubeconfig(&self, ns: &str, name: &str) -> Value {
        let token = Token::new(random_hex(24));
        self.auth
            .add(token.clone(), User::service_account(ns, name));
        let user = format!("system:serviceaccount:{ns}:{name}");
        kubeconfig::kubeconfig(&self.url, self.ca_pem(), &user, Some(&token), ns)
    }

    /// Writes a kubeconfig (from [`Self::admin_kubeconfig`] or
    /// [`Self::service_account_kubeconfig`]) to `path`.
    pub fn write_kubeconfig(&self, path: &Path, config: &Value) -> Result<(), ServerError> {
        Ok(kubeconfig::write(path, config)?)
    }

    /// The object store, for assertions and setup that bypass HTTP.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Forgets every change so far: a watch from an older `resourceVersion`
    /// now gets `410 Gone`, as after etcd compaction.
    pub fn compact(&self) {
        self.store.compact();
    }
}

async fn serve_connection<I>(io: I, app: axum::Router)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    // Connections live in this set: when the loop ends or is aborted, they end too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let app = app.clone();
                conns.spawn(async move {
                    match acceptor {
                        Some(a) => match a.accept(stream).await {
                            Ok(tls) => serve_connection(tls, app).await,
                            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                        },
                        None => serve_connection(stream, app).await,
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// `freshet-apiserver serve`: run the test bed until killed.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Write the admin kubeconfig here.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "freshet-apiserver.kubeconfig"
    )]
    pub write_kubeconfig: PathBuf,
    /// Serve plain http instead of TLS (every request acts as the admin).
    #[arg(long)]
    pub plain_http: bool,
    /// Node platforms, one node each: ARCH, OS/ARCH or OS/ARCH/VARIANT.
    #[arg(long, value_delimiter = ',', default_value = "amd64,amd64,arm64")]
    pub nodes: Vec<String>,
    /// An image whose containers crash (CrashLoopBackOff); repeatable.
    #[arg(long = "crash-image", value_name = "IMAGE")]
    pub crash_images: Vec<String>,
    /// An image whose pulls fail (ErrImagePull); repeatable.
    #[arg(long = "pull-fail-image", value_name = "IMAGE")]
    pub pull_fail_images: Vec<String>,
    /// Resolve every image to a made-up digest without contacting a registry
    /// (for measurements and demos that need no real images).
    #[arg(long)]
    pub fake_images: bool,
}

/// Runs the test bed until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), ServerError> {
    let ServeArgs {
        listen,
        write_kubeconfig,
        plain_http,
        nodes,
        crash_images,
        pull_fail_images,
        fake_images,
    } = args;
    let resolver: Option<Arc<dyn ImageResolver>> =
        fake_images.then(|| Arc::new(crate::images::FakeResolver::default()) as _);
    let options = ClusterOptions {
        listen,
        tls: !plain_http,
        nodes: parse_nodes(&nodes)?,
        crash_images,
        pull_fail_images,
        resolver,
        kubeconfig_path: Some(write_kubeconfig),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start(options).await?;
    println!(
        "freshet test bed serving {} (kubeconfig: {})",
        cluster.url(),
        cluster.kubeconfig_path().display()
    );
    println!(
        "try: KUBECONFIG={} kubectl get nodes",
        cluster.kubeconfig_path().display()
    );
    wait_for_termination().await?;
    drop(cluster);
    Ok(())
}

async fn wait_for_termination() -> Result<(), ServerError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(ServerError::Signal),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(ServerError::Signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_args_parse_with_defaults() {
        use clap::Parser as _;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::parse_from([
            "x",
            "--listen",
            "127.0.0.1:6443",
            "--crash-image",
            "a:1",
            "--crash-image",
            "b:2",
        ]);
        assert_eq!(cli.serve.listen, SocketAddr::from(([127, 0, 0, 1], 6443)));
        assert_eq!(cli.serve.nodes, ["amd64", "amd64", "arm64"]);
        assert_eq!(cli.serve.crash_images, ["a:1", "b:2"]);
        assert!(!cli.serve.plain_http);
        assert_eq!(
            cli.serve.write_kubeconfig,
            PathBuf::from("freshet-apiserver.kubeconfig")
        );
        let cli = Cli::parse_from(["x", "--plain-http", "--nodes", "arm64,linux/arm64/v8"]);
        assert!(cli.serve.plain_http);
        assert_eq!(cli.serve.nodes, ["arm64", "linux/arm64/v8"]);
    }

    #[tokio::test]
    async fn refuses_non_loopback_addresses() {
        let options = ClusterOptions {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            ..ClusterOptions::default()
        };
        assert!(matches!(
            TestCluster::start(options).await,
            Err(ServerError::NotLoopback(_))
        ));
    }

    #[test]
    fn node_specs_parse() {
        let nodes = parse_nodes(&["amd64", "linux/arm64/v8", "windows/amd64"]).unwrap();
        assert_eq!(nodes[0], NodeSpec::linux("testbed-node-1", "amd64"));
        assert_eq!(nodes[1].variant.as_deref(), Some("v8"));
        assert_eq!(nodes[2].os, "windows");
        assert!(parse_nodes(&["a/b/c/d"]).is_err());
        assert!(parse_nodes(&[""]).is_err());
    }
}
