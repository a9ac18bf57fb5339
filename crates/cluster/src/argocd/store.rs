//! The controller's watched copies of Argo CD's objects: `Application`s and
//! `ImageUpdater`s, kept current by kube-runtime watchers
//! ([`crate::watch::Watched`]), so a steady controller pass reads them without a
//! LIST.
//!
//! Owns [`ArgoStore`]: one watcher per kind (per namespace when the scope names
//! them), each object converted at once ([`App::from_object`],
//! [`ImageUpdater::from_value`]) and how a pass's [`Read`] is taken from them. A
//! cluster that does not serve a kind, or forbids freshet to read it (`404`,
//! `403`), has none of it, as in the one-shot listing; any other failure is one of
//! the read's errors. Must not decide anything nor write.

use freshet_core::argocd::crd::ImageUpdater;
use kube::api::DynamicObject;
use kube::runtime::watcher;

use super::Read;
use super::list::{App, ArgoKind, PAGE_SIZE};
use crate::watch::{SYNC_TIMEOUT, Watched};

/// The watched Applications and `ImageUpdater`s of one scope; clones share them.
#[derive(Debug, Clone, Default)]
pub struct ArgoStore {
    apps: Watched<(String, String), App>,
    /// Valid `ImageUpdater`s, or the message of an invalid one.
    updaters: Watched<(String, String), Result<ImageUpdater, String>>,
}

fn key(o: &DynamicObject) -> Option<(String, String)> {
    Some((o.metadata.namespace.clone()?, o.metadata.name.clone()?))
}

/// A watcher's failure as a message; `None` when it only means "none here" (the
/// cluster does not serve the kind, or freshet may not read it).
fn describe(kind: ArgoKind) -> impl Fn(Option<kube::Error>) -> Option<String> + Send + use<> {
    move |e| match e {
        Some(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => None,
        Some(e) => Some(format!(
            "watching {}s failed: {}",
            kind.name(),
            crate::errors::error_chain(&e)
        )),
        None => Some(format!("watching {}s failed", kind.name())),
    }
}

impl ArgoStore {
    /// Starts watching both kinds in `namespaces` (`None`: all).
    pub fn start(client: &kube::Client, namespaces: Option<&[String]>) -> Self {
        let this = Self::default();
        let config = watcher::Config::default().page_size(PAGE_SIZE);
        let scopes: Vec<Option<&str>> = match namespaces {
            None => vec![None],
            Some(ns) => ns.iter().map(|n| Some(n.as_str())).collect(),
        };
        for ns in scopes {
            this.apps.watch(
                ArgoKind::Application.api(client, ns),
                config.clone(),
                key,
                |o| App::from_object(&o),
                describe(ArgoKind::Application),
            );
            this.updaters.watch(
                ArgoKind::ImageUpdater.api(client, ns),
                config.clone(),
                key,
                |o| {
                    let value = serde_json::to_value(&o).unwrap_or_default();
                    Some(ImageUpdater::from_value(&value).map_err(|e| e.to_string()))
                },
                describe(ArgoKind::ImageUpdater),
            );
        }
        this
    }

    /// The Applications and `ImageUpdater`s now, as [`Refresher::argocd_read`]
    /// would list them. Waits at most [`SYNC_TIMEOUT`] for the first lists.
    ///
    /// [`Refresher::argocd_read`]: crate::pass::Refresher::argocd_read
    pub async fn read(&self) -> Read {
        let mut read = Read::default();
        let synced = tokio::time::timeout(SYNC_TIMEOUT, async {
            self.apps.wait_synced().await;
            self.updaters.wait_synced().await;
        })
        .await;
        if synced.is_err() {
            read.errors.push(format!(
                "the watched Applications did not complete their first list within {}s",
                SYNC_TIMEOUT.as_secs()
            ));
            return read;
        }
        read.errors
            .extend(self.apps.errors().into_iter().map(|(_, m)| m));
        read.apps = self.apps.values();
        for u in self.updaters.values() {
            match u {
                Ok(cr) => read.updaters.push(cr),
                Err(e) => {
                    tracing::error!(error = %e, "invalid ImageUpdater; its Applications are not updated");
                    read.errors.push(e);
                }
            }
        }
        read.errors
            .extend(self.updaters.errors().into_iter().map(|(_, m)| m));
        read.apps
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        read
    }
}
