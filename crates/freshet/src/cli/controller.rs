//! `freshet run` without `--once`: the controller mode's process edge.
//!
//! Owns what only a long-running process has: the HTTP endpoint for Prometheus
//! (`/metrics`) and probes (`/healthz`, `/readyz`), and the stop on SIGTERM or
//! Ctrl-C (the pass in flight finishes, the lease is released). The loop itself is
//! [`freshet_cluster::controller`]. Exit codes: `0` after a clean stop; `2` when the
//! metrics address cannot be bound; `1` when leader election cannot start.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use freshet_cluster::Refresher;
use freshet_cluster::controller::{self, ControllerOptions};
use freshet_cluster::metrics::Metrics;

use super::run::ControllerArgs;
use super::{EXIT_OK, Failure};

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(
    refresher: Refresher,
    interval: Duration,
    args: ControllerArgs,
) -> Result<u8, Failure> {
    let metrics = Arc::new(Metrics::new());
    let addr = args.metrics_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-addr {addr}: cannot listen there"))
        .map_err(Failure::usage)?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ok\n" }))
        .with_state(metrics.clone());
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
    let result = controller::run(refresher, options, metrics, shutdown_signal()).await;
    let _ = stop_http.send(());
    let _ = server.await;
    result.map_err(anyhow::Error::from)?;
    Ok(EXIT_OK)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
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
