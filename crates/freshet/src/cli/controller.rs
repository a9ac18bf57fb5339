//! `freshet run` without `--once`: the controller mode's process edge.
//!
//! Owns the controller's flags ([`ControllerArgs`]: metrics address, leader
//! election) and what only a long-running process has: the HTTP endpoint for
//! Prometheus (`/metrics`), probes (`/healthz`, `/readyz`: see
//! `freshet_cluster::ready`) and, with a `webhooks:` config section, the registry
//! webhooks (`crate::server::webhooks`, fed the tracked repositories by every full
//! pass, feeding the loop's re-checks), and the stop on
//! SIGTERM or Ctrl-C (the pass in flight finishes, the lease is released). The loop
//! itself is [`freshet_cluster::controller`]; without leader election this replica
//! leads until it stops. Exit codes: `0` after a clean stop; `2` when the metrics
//! address cannot be bound; `1` when leader election cannot start. Must not know
//! `run`'s other flags: `run` hands it a ready [`Refresher`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Args;
use std::collections::BTreeSet;

use freshet_cluster::controller::{self, ControllerOptions};
use freshet_cluster::lease::LeaseOptions;
use freshet_cluster::metrics::Metrics;
use freshet_cluster::{PassObserver, Refresher};

use super::{EXIT_OK, Failure};
use crate::server::webhooks::{self, ChannelSink, WebhookMetrics, WebhookState};

/// Flags of the controller mode (`freshet run` without `--once`).
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Run without leader election (only ever one replica!).
    #[arg(long)]
    no_leader_election: bool,
    /// The leader Lease's name.
    #[arg(long, value_name = "NAME", default_value = "freshet")]
    lease_name: String,
    /// The leader Lease's namespace. Default: $POD_NAMESPACE, else `freshet`.
    #[arg(long, value_name = "NS")]
    lease_namespace: Option<String>,
    /// How long the lease lasts unless renewed; a new leader takes over at most this
    /// long after the old one dies (at once when it stops cleanly). 1s to 1h.
    #[arg(long, value_name = "DURATION", value_parser = duration_in(1, 3600), default_value = "15s")]
    lease_duration: Duration,
}

impl ControllerArgs {
    /// The lease settings (`None` without leader election).
    pub fn lease(&self) -> Option<LeaseOptions> {
        if self.no_leader_election {
            return None;
        }
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "freshet".into());
        let identity = std::env::var("POD_NAME").ok().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "freshet".into());
            format!("{host}-{}", std::process::id())
        });
        Some(LeaseOptions {
            namespace,
            name: self.lease_name.clone(),
            identity,
            duration: self.lease_duration,
            grace: (self.lease_duration / 3).max(Duration::from_secs(1)),
        })
    }

    /// Where to serve metrics.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }
}

/// A parser for a duration flag between `min_secs` and `max_secs` seconds: a value
/// out of range is refused with the range in the message (clap exits 2).
pub fn duration_in(
    min_secs: u64,
    max_secs: u64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let (min, max) = (Duration::from_secs(min_secs), Duration::from_secs(max_secs));
        let d = humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 15m, 1h"))?;
        if !(min..=max).contains(&d) {
            return Err(format!(
                "{s:?} is out of range: write a duration between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ));
        }
        Ok(d)
    }
}

/// Re-checks queued by registry webhooks before the leader's loop drains them.
pub const RECHECK_QUEUE: usize = 1024;

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(
    refresher: Refresher,
    interval: Duration,
    args: ControllerArgs,
    mut metrics: Metrics,
) -> Result<u8, Failure> {
    let (sink, rechecks) = ChannelSink::new(RECHECK_QUEUE);
    let webhooks = match &refresher.options().config.webhooks {
        Some(config) => {
            let counters = WebhookMetrics::new();
            metrics.register_unprefixed(|r| counters.register(r));
            let state = WebhookState::from_config(config, Arc::new(sink.clone()), counters)
                .context("webhooks")
                .map_err(Failure::usage)?;
            tracing::info!(
                sources = config.sources.len(),
                "registry webhooks on /webhooks/<source>"
            );
            Some(webhooks::router(state))
        }
        None => None,
    };
    let refresher = refresher.with_observer(Arc::new(TrackedRepositories(sink)));
    let metrics = Arc::new(metrics);
    let addr = args.metrics_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-addr {addr}: cannot listen there"))
        .map_err(Failure::usage)?;
    let bound = listener.local_addr().unwrap_or(addr);
    let probes = Probes {
        metrics: metrics.clone(),
        refresher: refresher.clone(),
    };
    let mut app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(probes);
    if let Some(webhooks) = webhooks {
        app = app.merge(webhooks);
    }
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .await
    });
    tracing::info!(metrics = %bound, interval = ?interval, "freshet controller starting");
    let options = ControllerOptions {
        interval,
        lease: args.lease(),
    };
    let result =
        controller::run_with(refresher, options, metrics, rechecks, shutdown_signal()).await;
    let _ = stop_http.send(());
    let _ = server.await;
    result.map_err(anyhow::Error::from)?;
    Ok(EXIT_OK)
}

/// What the metrics and probe routes read.
#[derive(Clone)]
struct Probes {
    metrics: Arc<Metrics>,
    refresher: Refresher,
}

/// Keeps the webhook sink's allowlist on what the last full pass tracked.
struct TrackedRepositories(ChannelSink);

impl PassObserver for TrackedRepositories {
    fn tracked(&self, repositories: &BTreeSet<String>) {
        self.0.set_repositories(repositories.iter().cloned());
    }
}

async fn metrics_text(State(p): State<Probes>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        p.metrics.encode(),
    )
}

/// 200 once a list of workloads was read and while the API server answers; 503
/// otherwise (see `freshet_cluster::ready`).
async fn readyz(State(p): State<Probes>) -> (StatusCode, &'static str) {
    if p.metrics.readiness().check(&p.refresher).await {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no list of workloads read yet, or the API server does not answer\n",
        )
    }
}

/// Resolves on SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("stopping: finishing the pass in flight and releasing the lease");
}
