//! The request model and response encoding shared by the handlers: the shared
//! state ([`AppState`]), a parsed resource request (`Target`), the representation
//! a client asked for (`Output`), list filters, body decoding, and `Status` error
//! responses.
//!
//! Owns turning bytes into objects and objects into responses. It must not
//! decide what a verb does (that is `read`, `write` and `watch`) nor route paths.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::patch::PatchError;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::Store;
use crate::util::str_at;

/// Shared state of the HTTP handlers.
#[derive(Debug)]
pub struct AppState {
    /// The object store.
    pub store: Arc<Store>,
    /// The token table.
    pub auth: Arc<Authenticator>,
    /// Requests without credentials act as the admin (plain HTTP mode).
    pub anonymous_admin: bool,
    /// How often watches with `allowWatchBookmarks` get a bookmark.
    pub bookmark_interval: Duration,
    /// Flips to `true` when the server shuts down; open watches end.
    pub shutdown: watch::Receiver<bool>,
    /// `host:port` for `/api`'s `serverAddressByClientCIDRs`.
    pub server_address: String,
    /// Runs before every write is handled (a test's "other writer").
    pub before_write: Option<WriteHook>,
    /// A simulated validating admission webhook refuses any write of an object
    /// whose pod (template) names an image containing one of these strings.
    pub denied_images: Vec<String>,
}

/// A write about to be handled, as a [`WriteHook`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct WriteCall<'a> {
    /// `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: &'a str,
    /// The resource's plural (`applications`).
    pub plural: &'a str,
    /// The namespace (empty for a cluster-scoped resource).
    pub namespace: &'a str,
    /// The object's name (empty for a collection).
    pub name: &'a str,
    /// The field manager of the write.
    pub manager: &'a str,
}

/// A function run before each write request is handled, with the store, so a test
/// can change an object between a client's read and its write without racing it
/// (for example to prove a `resourceVersion` precondition fails with `409`).
#[derive(Clone)]
pub struct WriteHook(pub Arc<HookFn>);

/// The function of a [`WriteHook`].
pub type HookFn = dyn Fn(&Store, WriteCall<'_>) + Send + Sync;

impl WriteHook {
    /// Wraps `f`.
    pub fn new(f: impl Fn(&Store, WriteCall<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for WriteHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteHook")
    }
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> Self {
        match e {
            PatchError::JsonPatch(_) => ApiError::Invalid {
                kind: String::new(),
                group: String::new(),
                name: String::new(),
                causes: vec![crate::status::Cause::new("", e.to_string())],
            },
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

/// A parsed resource request.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) def: &'static ResourceDef,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) subresource: String,
    /// `dryRun=All`: check everything, store nothing.
    pub(crate) dry_run: bool,
    /// The field manager of a write (`fieldManager`, else the user agent's
    /// first word, as Kubernetes does).
    pub(crate) manager: String,
    /// `force=true` on a server-side apply.
    pub(crate) force: bool,
}

pub(crate) fn query_map(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn not_found(t: &Target) -> ApiError {
    ApiError::not_found(t.def, &t.name)
}

pub(crate) fn current(st: &AppState, t: &Target) -> Result<Value, ApiError> {
    st.store
        .get(t.def.storage, &t.namespace, &t.name)
        .ok_or_else(|| not_found(t))
}

pub(crate) fn ok(obj: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, obj))
}

/// The representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// The objects themselves.
    Object,
    /// `meta.k8s.io/v1` Table (kubectl get).
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata (kube's metadata API).
    Metadata,
}

impl Output {
    /// The first representation named in `accept` that the server offers.
    pub(crate) fn from_accept(accept: &str) -> Self {
        for media in accept.split(',') {
            if media.contains("as=Table") {
                return Self::Table;
            }
            if media.contains("as=PartialObjectMetadata") {
                return Self::Metadata;
            }
            if media.contains("json") || media.contains("*/*") {
                return Self::Object;
            }
        }
        Self::Object
    }
}

/// An object reduced to its metadata, as `PartialObjectMetadata`.
pub(crate) fn partial(view: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": view.get("metadata").cloned().unwrap_or(json!({})),
    })
}

pub(crate) struct ListFilter {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl ListFilter {
    pub(crate) fn from_query(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { labels, fields })
    }

    pub(crate) fn matches(&self, view: &Value) -> bool {
        self.labels.matches(view) && self.fields.matches(view)
    }
}

pub(crate) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the body of the request could not be decoded: {e}"))
    })
}

/// Checks the body's namespace against the path and prepares it for the store.
pub(crate) fn incoming(t: &Target, view: Value) -> Result<Value, ApiError> {
    let body_ns = str_at(&view, "metadata.namespace");
    if t.def.namespaced && !body_ns.is_empty() && body_ns != t.namespace {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    let av = str_at(&view, "apiVersion");
    if !av.is_empty() && av != t.def.api_version() {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            t.def.api_version()
        )));
    }
    let mut obj = t.def.to_storage(&view);
    strip_nulls(&mut obj);
    if t.def.namespaced && !t.namespace.is_empty() {
        // The object is in the request's namespace (what validation sees).
        crate::util::ensure_obj(&mut obj, "metadata")
            .insert("namespace".into(), Value::String(t.namespace.clone()));
    }
    Ok(obj)
}

/// Drops `null` members, as decoding into typed objects does (kubectl sends
/// `"creationTimestamp": null` in every template).
pub(crate) fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
