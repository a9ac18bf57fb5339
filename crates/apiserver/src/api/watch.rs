//! Watches: the replay from a `resourceVersion` (or of the current objects),
//! then every change as a JSON line, with bookmarks, `sendInitialEvents`,
//! `timeoutSeconds`, selector entry and exit (`ADDED`/`DELETED` as a real server
//! sends them) and `410 Gone` as an `ERROR` event.
//!
//! Owns the watch stream of one request. It must not write to the store, and a
//! watcher that falls behind is closed (its client re-lists) rather than buffered
//! without bound.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::request::{AppState, ListFilter, Output, Target, partial};
use crate::resources::ResourceDef;
use crate::status::ApiError;
use crate::store::{Change, ChangeKind};
use crate::table;
use crate::util::str_at;

pub(crate) fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

pub(crate) fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    watch_line(
        "BOOKMARK",
        &json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}),
    )
}

pub(crate) struct WatchFilter {
    pub(crate) def: &'static ResourceDef,
    pub(crate) namespace: String,
    pub(crate) filter: ListFilter,
    pub(crate) output: Output,
}

impl WatchFilter {
    pub(crate) fn visible(&self, stored: &Value) -> Option<Value> {
        if !self.namespace.is_empty() && str_at(stored, "metadata.namespace") != self.namespace {
            return None;
        }
        let view = self.def.to_view(stored);
        self.filter.matches(&view).then_some(view)
    }

    pub(crate) fn encode(&self, kind: &str, view: Value) -> Bytes {
        match self.output {
            Output::Table => watch_line(kind, &table::table(self.def, &[view], None)),
            Output::Metadata => watch_line(kind, &partial(&view)),
            Output::Object => watch_line(kind, &view),
        }
    }

    /// The watch line for a change, as a real server sends it: an object
    /// that leaves the selector is `DELETED`, one that enters it `ADDED`.
    pub(crate) fn line(&self, c: &Change) -> Option<Bytes> {
        if c.storage != self.def.storage {
            return None;
        }
        let now = self.visible(&c.object);
        let before = c.prev.as_ref().and_then(|p| self.visible(p));
        match (c.kind, now, before) {
            (ChangeKind::Added, Some(v), _) => Some(self.encode("ADDED", v)),
            (ChangeKind::Deleted, Some(v), _) => Some(self.encode("DELETED", v)),
            (ChangeKind::Modified, Some(v), Some(_)) => Some(self.encode("MODIFIED", v)),
            (ChangeKind::Modified, Some(v), None) => Some(self.encode("ADDED", v)),
            (ChangeKind::Modified, None, Some(_)) => {
                Some(self.encode("DELETED", self.def.to_view(&c.object)))
            }
            _ => None,
        }
    }
}

pub(crate) fn watch_collection(
    st: &Arc<AppState>,
    t: &Target,
    q: &HashMap<String, String>,
    output: Output,
) -> Result<Response, ApiError> {
    let filter = WatchFilter {
        def: t.def,
        namespace: t.namespace.clone(),
        filter: ListFilter::from_query(q)?,
        output,
    };
    let send_initial = q.get("sendInitialEvents").map(String::as_str) == Some("true");
    let from = match q.get("resourceVersion").map(String::as_str) {
        _ if send_initial => None,
        None | Some("") | Some("0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v}")))?,
        ),
    };
    let bookmarks = matches!(
        q.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let body_stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    match st.store.watch(t.def.storage, from) {
        Err(e @ ApiError::Expired { .. }) => {
            // A real server answers 200 and sends one ERROR event with the 410 Status.
            let line = watch_line("ERROR", &e.to_status());
            let _ = tx.try_send(line);
            drop(tx);
        }
        Err(e) => return Err(e),
        Ok((replay, start_rv, changes)) => {
            let mut shutdown = st.shutdown.clone();
            let interval = st.bookmark_interval;
            tokio::spawn(async move {
                run_watch(
                    filter,
                    replay,
                    start_rv,
                    changes,
                    tx,
                    bookmarks,
                    send_initial,
                    timeout,
                    interval,
                    &mut shutdown,
                )
                .await;
            });
        }
    }
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body_stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_watch(
    filter: WatchFilter,
    replay: Vec<Arc<Change>>,
    start_rv: u64,
    mut changes: broadcast::Receiver<Arc<Change>>,
    tx: mpsc::Sender<Bytes>,
    bookmarks: bool,
    send_initial: bool,
    timeout: Option<Duration>,
    interval: Duration,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut seen = start_rv;
    for c in &replay {
        if let Some(line) = filter.line(c)
            && tx.send(line).await.is_err()
        {
            return;
        }
    }
    if send_initial && tx.send(bookmark(filter.def, seen, true)).await.is_err() {
        return;
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = until_deadline => return,
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
            _ = ticker.tick() => {
                if bookmarks && tx.send(bookmark(filter.def, seen, false)).await.is_err() {
                    return;
                }
            }
            msg = changes.recv() => match msg {
                Ok(c) => {
                    seen = seen.max(c.rv);
                    if let Some(line) = filter.line(&c)
                        && tx.send(line).await.is_err()
                    {
                        return;
                    }
                }
                // Too slow a reader, or the store is gone: end the watch; the client re-lists.
                Err(_) => return,
            }
        }
    }
}
