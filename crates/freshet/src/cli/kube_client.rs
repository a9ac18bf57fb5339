//! The Kubernetes client of `run` and `status`: the kubeconfig read once, and a
//! deadline on every API call.
//!
//! Owns [`connect`]: it reads the kubeconfig (or infers the config), bounds the
//! connection, every read and write on the socket, and each call's answer by the
//! `--api-timeout` value, and puts a layer in front of kube's stack that fails a
//! call with [`ApiTimeout`] (naming the server and the real timeout) when no answer
//! came in time. A server that accepts connections and never answers thus fails the
//! calls that needed it, never hangs a pass. Must not retry: the pass decides what a
//! failed call means (a listing fails the pass, a patch fails its workload).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;

/// An API call that got no answer within the timeout.
#[derive(Debug, thiserror::Error)]
#[error(
    "the Kubernetes API server {server} did not answer within {}: it or the network to it is slow or stuck (raise --api-timeout if it is only slow)",
    humantime::format_duration(*.after)
)]
pub struct ApiTimeout {
    /// The server (scheme, host and port of the kubeconfig's cluster).
    pub server: String,
    /// The timeout that expired.
    pub after: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A kubeconfig `exec` plugin failed (kube's own error carries the plugin's stdout
/// and stderr, which may hold its token: they are dropped here).
#[derive(Debug, thiserror::Error)]
#[error(
    "the kubeconfig's exec plugin {command} failed ({status}); its output is not shown as it may hold credentials: run it by hand to see it"
)]
pub struct ExecPluginFailed {
    /// The plugin's program (without its arguments, which may hold secrets).
    pub command: String,
    /// How it exited.
    pub status: std::process::ExitStatus,
}

/// `e`, with a failing `exec` plugin's output dropped.
fn without_plugin_output(e: BoxError) -> BoxError {
    match e.downcast::<kube::client::AuthError>() {
        Ok(auth) => match *auth {
            kube::client::AuthError::AuthExecRun { cmd, out } => Box::new(ExecPluginFailed {
                command: cmd.split_whitespace().next().unwrap_or("").to_owned(),
                status: out.status,
            }),
            other => Box::new(other),
        },
        Err(e) => e,
    }
}

/// A [`tower::Service`] that fails a call with [`ApiTimeout`] after `after`.
#[derive(Debug, Clone)]
struct Deadline<S> {
    inner: S,
    after: Duration,
    server: String,
}

impl<S, Req> tower::Service<Req> for Deadline<S>
where
    S: tower::Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let call = self.inner.call(req);
        let (after, server) = (self.after, self.server.clone());
        Box::pin(async move {
            match tokio::time::timeout(after, call).await {
                Ok(answer) => answer.map_err(|e| without_plugin_output(e.into())),
                Err(_) => Err(Box::new(ApiTimeout { server, after }) as BoxError),
            }
        })
    }
}

/// The client for `kubeconfig` (default: `$KUBECONFIG`, `~/.kube/config`, or the
/// in-cluster service account), every call bounded by `timeout`.
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    timeout: Duration,
) -> anyhow::Result<kube::Client> {
    connect_counted(kubeconfig, timeout, &freshet_cluster::ApiCounter::default()).await
}

/// [`connect`], with every request sent counted into `counter` (by verb, as the
/// pass report's `requests.api` shows them).
pub async fn connect_counted(
    kubeconfig: Option<&std::path::Path>,
    timeout: Duration,
    counter: &freshet_cluster::ApiCounter,
) -> anyhow::Result<kube::Client> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig found (pass --kubeconfig, set KUBECONFIG, or run in a pod)")?,
    };
    // The socket bounds are the backstop for a body that stalls after its head; they
    // are longer than the deadline so a silent server meets the deadline first, whose
    // message states the timeout.
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout.saturating_mul(2));
    config.write_timeout = Some(timeout.saturating_mul(2));
    config.reset_reader_on_write = true;
    let server = {
        let u = &config.cluster_url;
        format!(
            "{}://{}",
            u.scheme_str().unwrap_or("https"),
            u.authority().map(|a| a.as_str()).unwrap_or("")
        )
    };
    // An `exec` plugin runs here first (and again when its token expires, in the
    // layer below): either way its output never reaches a message.
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| match e {
            kube::Error::Auth(auth) => {
                anyhow::Error::from_boxed(without_plugin_output(Box::new(auth)))
            }
            other => anyhow::Error::from(other),
        })
        .context("building the Kubernetes client")?;
    let layer = tower::layer::layer_fn(move |inner| Deadline {
        inner,
        after: timeout,
        server: server.clone(),
    });
    Ok(builder.with_layer(&layer).with_layer(counter).build())
}
