//! The HTTP surface: routes Kubernetes API paths to discovery, CRUD, watch,
//! patch and subresource handlers, authenticates and authorizes each
//! request, and writes `Status` errors.
//!
//! Owns request parsing and response encoding. It must not hold state of its
//! own (that lives in the store and the authenticator) nor run controllers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::admission::admit;
use crate::auth::{Attributes, Authenticator, User, authorize};
use crate::discovery;
use crate::fieldmanager;
use crate::patch::{self, PatchError, PatchKind};
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, ChangeKind, Propagation, Store, UpdateMode};
use crate::table;
use crate::util::{random_uuid, str_at};

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
}

/// The router: every request goes through [`handle`].
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

fn json_response(code: StatusCode, body: &Value) -> Response {
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
                cause: e.to_string(),
            },
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

/// A parsed resource request.
#[derive(Debug)]
struct Target {
    def: &'static ResourceDef,
    namespace: String,
    name: String,
    subresource: String,
    /// `dryRun=All`: check everything, store nothing.
    dry_run: bool,
    /// The field manager of a write (`fieldManager`, else the user agent's
    /// first word, as Kubernetes does).
    manager: String,
    /// `force=true` on a server-side apply.
    force: bool,
}

fn query_map(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn handle(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return ApiError::BadRequest(e.to_string()).into_response(),
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let resp = match route(&st, &parts.method, &parts.uri, &parts.headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match auth {
        Some(token) => match st.auth.authenticate(token.trim()) {
            Ok(user) => Ok(Some(user)),
            Err(e) => crate::auth::token_secret_user(&st.store, token.trim())
                .map(Some)
                .ok_or_else(|| ApiError::from(e)),
        },
        None if st.anonymous_admin => Ok(Some(User::admin())),
        None => Ok(None),
    }
}

async fn route(
    st: &Arc<AppState>,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let user = authenticate(st, headers)?;
    // Health and version are open to everyone, as on a real cluster.
    match segs.as_slice() {
        ["version"] => return Ok(json_response(StatusCode::OK, &discovery::version())),
        ["healthz" | "livez" | "readyz"] => return Ok((StatusCode::OK, "ok").into_response()),
        _ => {}
    }
    let user = impersonate(user.ok_or(ApiError::Unauthorized)?, headers)?;
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["openapi", "v3"] => return Ok(json_response(StatusCode::OK, &crate::openapi::index())),
        ["openapi", "v3", gv @ ..] => {
            return crate::openapi::group_version(&gv.join("/"))
                .map(|v| json_response(StatusCode::OK, &v))
                .map_err(|_| ApiError::UnknownPath);
        }
        ["api"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::core_versions(&st.server_address),
            ));
        }
        ["apis"] => return Ok(json_response(StatusCode::OK, &discovery::group_list())),
        ["apis", g] => {
            return discovery::group(g)
                .map(|v| json_response(StatusCode::OK, &v))
                .map_err(|_| ApiError::UnknownPath);
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::UnknownPath),
    };
    if rest.is_empty() {
        if method != Method::GET {
            return Err(ApiError::MethodNotAllowed);
        }
        return discovery::resource_list(group, version)
            .map(|v| json_response(StatusCode::OK, &v))
            .map_err(|_| ApiError::UnknownPath);
    }
    let (namespace, r): (&str, &[&str]) = match rest {
        ["namespaces", ns, plural, more @ ..]
            if ResourceDef::find(group, version, plural).is_some() =>
        {
            let mut v = vec![*plural];
            v.extend_from_slice(more);
            return dispatch(
                st, &user, method, uri, headers, body, group, version, ns, &v,
            )
            .await;
        }
        other => ("", other),
    };
    dispatch(
        st, &user, method, uri, headers, body, group, version, namespace, r,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    st: &Arc<AppState>,
    user: &User,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: Bytes,
    group: &str,
    version: &str,
    namespace: &str,
    r: &[&str],
) -> Result<Response, ApiError> {
    let (plural, name, sub) = match r {
        [p] => (*p, "", ""),
        [p, n] => (*p, *n, ""),
        [p, n, s] => (*p, *n, *s),
        _ => return Err(ApiError::UnknownPath),
    };
    let def = ResourceDef::find(group, version, plural).ok_or(ApiError::UnknownPath)?;
    if !def.namespaced && !namespace.is_empty() {
        return Err(ApiError::UnknownPath);
    }
    match sub {
        "" => {}
        "status" if def.status => {}
        "scale" if def.scale => {}
        "token" if def.kind == "ServiceAccount" => {}
        _ => return Err(ApiError::UnknownPath),
    }
    let q = query_map(uri);
    let t = Target {
        def,
        namespace: namespace.to_string(),
        name: name.to_string(),
        subresource: sub.to_string(),
        dry_run: q.get("dryRun").is_some_and(|v| !v.is_empty()),
        manager: q
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .cloned()
            .unwrap_or_else(|| {
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|ua| ua.split('/').next())
                    .filter(|m| !m.is_empty())
                    .unwrap_or("unknown")
                    .to_string()
            }),
        force: q.get("force").map(String::as_str) == Some("true"),
    };
    let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (method.clone(), name.is_empty()) {
        (Method::GET, true) if watching => "watch",
        (Method::GET, true) => "list",
        (Method::GET, false) => "get",
        (Method::POST, true) => "create",
        (Method::POST, false) if sub == "token" => "create",
        (Method::PUT, false) => "update",
        (Method::PATCH, false) => "patch",
        (Method::DELETE, false) => "delete",
        (Method::DELETE, true) => "deletecollection",
        _ => return Err(ApiError::MethodNotAllowed),
    };
    let attrs = Attributes {
        verb,
        group: def.group,
        plural: def.plural,
        subresource: sub,
        namespace,
        name,
    };
    let reviews_itself = def.kind == "SelfSubjectAccessReview";
    if reviews_itself && verb != "create" {
        return Err(ApiError::MethodNotAllowed);
    }
    if !reviews_itself && let Err(e) = authorize(&st.store, user, &attrs) {
        let message = e.to_string();
        return Err(ApiError::Forbidden {
            message,
            name: name.to_string(),
            group: def.group.to_string(),
            plural: def.plural.to_string(),
        });
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let output = Output::from_accept(accept);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let decodes_body = matches!(verb, "create" | "update") && sub != "token";
    let body = if decodes_body && content_type.contains("protobuf") {
        let obj = crate::protobuf::decode(&body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnsupportedKind(_) => {
                ApiError::UnsupportedMediaType(e.to_string())
            }
            other => ApiError::BadRequest(other.to_string()),
        })?;
        Bytes::from(serde_json::to_vec(&obj).unwrap_or_default())
    } else if decodes_body && !content_type.is_empty() && !content_type.contains("json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf (not {content_type})"
        )));
    } else {
        body
    };
    if sub == "token" {
        return create_token(st, &t);
    }
    if reviews_itself {
        return self_subject_access_review(st, user, &parse_body(&body)?);
    }
    match verb {
        "watch" => watch_collection(st, &t, &q, output),
        "list" => list(st, &t, &q, output),
        "get" => get(st, &t, output),
        "create" => create(st, &t, &body),
        "update" => update(st, &t, &body),
        "patch" => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            patch_object(st, &t, ct, &q, &body)
        }
        "delete" => delete(st, &t, &q, &body),
        _ => delete_collection(st, &t, &q),
    }
}

/// `POST selfsubjectaccessreviews` (`kubectl auth can-i`): whether the
/// caller may do what the review's `resourceAttributes` describe.
fn self_subject_access_review(
    st: &AppState,
    user: &User,
    review: &Value,
) -> Result<Response, ApiError> {
    let ra = review
        .pointer("/spec/resourceAttributes")
        .cloned()
        .unwrap_or(json!({}));
    let (allowed, reason) = if ra.as_object().is_some_and(|m| !m.is_empty()) {
        let attrs = Attributes {
            verb: str_at(&ra, "verb"),
            group: str_at(&ra, "group"),
            plural: str_at(&ra, "resource"),
            subresource: str_at(&ra, "subresource"),
            namespace: str_at(&ra, "namespace"),
            name: str_at(&ra, "name"),
        };
        match authorize(&st.store, user, &attrs) {
            Ok(()) => (true, "allowed by RBAC"),
            Err(_) => (false, ""),
        }
    } else {
        // Non-resource URLs are open to every authenticated user here.
        (true, "non-resource URLs are not restricted by the test bed")
    };
    let mut out = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": review.get("spec").cloned().unwrap_or(json!({})),
        "status": {"allowed": allowed},
    });
    if !reason.is_empty() {
        out["status"]["reason"] = json!(reason);
    }
    Ok(json_response(StatusCode::CREATED, &out))
}

/// Acts on behalf of the user named in `Impersonate-User` (with the groups in
/// `Impersonate-Group`), which only the admin may do.
fn impersonate(user: User, headers: &HeaderMap) -> Result<User, ApiError> {
    let Some(name) = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(user);
    };
    if !user.is_admin() {
        return Err(ApiError::Forbidden {
            message: format!(
                "users \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                user.name
            ),
            name: name.to_string(),
            group: String::new(),
            plural: "users".into(),
        });
    }
    let mut as_user = match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((ns, sa)) => User::service_account(ns, sa),
        None => User {
            name: name.to_string(),
            groups: vec!["system:authenticated".into()],
        },
    };
    for g in headers.get_all("impersonate-group") {
        if let Ok(g) = g.to_str() {
            as_user.groups.push(g.to_string());
        }
    }
    Ok(as_user)
}

/// `POST serviceaccounts/{name}/token` (what `kubectl create token` sends):
/// mints a bearer token for the ServiceAccount, valid until the server stops.
fn create_token(st: &AppState, t: &Target) -> Result<Response, ApiError> {
    current(st, t)?;
    let token = crate::auth::Token::new(crate::util::random_hex(24));
    st.auth
        .add(token.clone(), User::service_account(&t.namespace, &t.name));
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 3600;
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": t.name, "namespace": t.namespace},
        "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 3600},
        "status": {"token": token.expose(), "expirationTimestamp": crate::util::format_rfc3339(expires)},
    });
    Ok(json_response(StatusCode::CREATED, &body))
}

fn not_found(t: &Target) -> ApiError {
    ApiError::not_found(t.def, &t.name)
}

fn current(st: &AppState, t: &Target) -> Result<Value, ApiError> {
    st.store
        .get(t.def.storage, &t.namespace, &t.name)
        .ok_or_else(|| not_found(t))
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn ok(obj: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, obj))
}

/// The representation a client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// The objects themselves.
    Object,
    /// `meta.k8s.io/v1` Table (kubectl get).
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata (kube's metadata API).
    Metadata,
}

impl Output {
    /// The first representation named in `accept` that the server offers.
    fn from_accept(accept: &str) -> Self {
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
fn partial(view: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": view.get("metadata").cloned().unwrap_or(json!({})),
    })
}

fn get(st: &AppState, t: &Target, output: Output) -> Result<Response, ApiError> {
    let obj = current(st, t)?;
    if t.subresource == "scale" {
        return ok(&scale_of(&obj));
    }
    let view = t.def.to_view(&obj);
    if !t.subresource.is_empty() {
        return ok(&view);
    }
    match output {
        Output::Table => ok(&table::table(t.def, &[view], None)),
        Output::Metadata => ok(&partial(&view)),
        Output::Object => ok(&view),
    }
}

struct ListFilter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl ListFilter {
    fn from_query(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { labels, fields })
    }

    fn matches(&self, view: &Value) -> bool {
        self.labels.matches(view) && self.fields.matches(view)
    }
}

fn list(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
    output: Output,
) -> Result<Response, ApiError> {
    let filter = ListFilter::from_query(q)?;
    let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
    let (items, rv) = st.store.list(t.def.storage, ns);
    let mut views: Vec<Value> = items
        .iter()
        .map(|o| t.def.to_view(o))
        .filter(|v| filter.matches(v))
        .collect();
    // `continue` names the last item already sent (`rv|namespace/name`).
    if let Some(token) = q.get("continue").filter(|c| !c.is_empty()) {
        use base64::Engine as _;
        let bad = || ApiError::BadRequest(format!("invalid continue token: {token}"));
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let (_, after) = decoded.split_once('|').ok_or_else(bad)?;
        let after = after.split_once('/').ok_or_else(bad)?;
        views.retain(|v| (str_at(v, "metadata.namespace"), str_at(v, "metadata.name")) > after);
    }
    let mut next = None;
    if let Some(limit) = q.get("limit").and_then(|l| l.parse::<usize>().ok())
        && limit > 0
        && views.len() > limit
    {
        use base64::Engine as _;
        views.truncate(limit);
        let last = views.last().map(object_key).unwrap_or_default();
        next =
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{rv}|{last}")));
    }
    if output == Output::Table {
        return ok(&table::table(t.def, &views, Some(rv)));
    }
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(token) = next {
        meta["continue"] = json!(token);
    }
    if output == Output::Metadata {
        return ok(&json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": views.iter().map(partial).collect::<Vec<_>>(),
        }));
    }
    ok(&json!({
        "kind": format!("{}List", t.def.kind),
        "apiVersion": t.def.api_version(),
        "metadata": meta,
        "items": views,
    }))
}

/// `namespace/name`, the order the store lists objects in.
fn object_key(v: &Value) -> String {
    format!(
        "{}/{}",
        str_at(v, "metadata.namespace"),
        str_at(v, "metadata.name")
    )
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the body of the request could not be decoded: {e}"))
    })
}

/// Checks the body's namespace against the path and prepares it for the store.
fn incoming(t: &Target, view: Value) -> Result<Value, ApiError> {
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
    Ok(obj)
}

/// Drops `null` members, as decoding into typed objects does (kubectl sends
/// `"creationTimestamp": null` in every template).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn create(st: &AppState, t: &Target, body: &Bytes) -> Result<Response, ApiError> {
    if t.def.namespaced && t.namespace.is_empty() {
        return Err(ApiError::MethodNotAllowed);
    }
    let mut obj = incoming(t, parse_body(body)?)?;
    crate::util::ensure_obj(&mut obj, "metadata").insert("uid".into(), json!(random_uuid()));
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    admit(t.def, &mut obj, true)?;
    fieldmanager::record_update(None, &mut obj, &t.manager, &t.def.api_version());
    let created = st.store.create_opt(t.def, &t.namespace, obj, t.dry_run)?;
    Ok(json_response(StatusCode::CREATED, &t.def.to_view(&created)))
}

fn mode_for(t: &Target) -> UpdateMode {
    if t.subresource == "status" {
        UpdateMode::Status
    } else {
        UpdateMode::Main
    }
}

fn write_scale(st: &AppState, t: &Target, scale: &Value) -> Result<Response, ApiError> {
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let want_rv = str_at(scale, "metadata.resourceVersion").to_string();
    let cur = current(st, t)?;
    if !want_rv.is_empty() && want_rv != str_at(&cur, "metadata.resourceVersion") {
        return Err(ApiError::conflict(t.def, &t.name));
    }
    let mut new = cur.clone();
    new["spec"]["replicas"] = replicas;
    fieldmanager::record_update(Some(&cur), &mut new, &t.manager, &t.def.api_version());
    let updated = st.store.update_opt(
        t.def,
        &t.namespace,
        &t.name,
        new,
        UpdateMode::Main,
        t.dry_run,
    )?;
    ok(&scale_of(&updated))
}

fn update(st: &AppState, t: &Target, body: &Bytes) -> Result<Response, ApiError> {
    let view = parse_body(body)?;
    if t.subresource == "scale" {
        return write_scale(st, t, &view);
    }
    let mut obj = incoming(t, view)?;
    let cur = current(st, t)?;
    crate::util::ensure_obj(&mut obj, "metadata")
        .insert("uid".into(), cur["metadata"]["uid"].clone());
    if t.subresource.is_empty() {
        admit(t.def, &mut obj, false)?;
        fieldmanager::record_update(Some(&cur), &mut obj, &t.manager, &t.def.api_version());
    }
    let updated = st
        .store
        .update_opt(t.def, &t.namespace, &t.name, obj, mode_for(t), t.dry_run)?;
    ok(&t.def.to_view(&updated))
}

fn apply_patch(
    def: &ResourceDef,
    kind: PatchKind,
    view: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let out = match kind {
        PatchKind::Merge => patch::merge(view, patch),
        PatchKind::Json => patch::json_patch(view, patch).map_err(|e| match e {
            PatchError::JsonPatch(inner) => {
                ApiError::invalid(def, str_at(view, "metadata.name"), inner.to_string())
            }
            other => ApiError::from(other),
        })?,
        PatchKind::Strategic => patch::strategic(view, patch)?,
        PatchKind::Apply => {
            if def.custom {
                patch::merge(view, patch)
            } else {
                patch::strategic(view, patch)?
            }
        }
    };
    Ok(out)
}

fn patch_object(
    st: &AppState,
    t: &Target,
    content_type: &str,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let kind = PatchKind::from_content_type(content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
            if t.def.custom { "" } else { ", application/strategic-merge-patch+json" }
        ))
    })?;
    if kind == PatchKind::Strategic && t.def.custom {
        return Err(ApiError::UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
        ));
    }
    let patch_doc = parse_body(body)?;
    if kind == PatchKind::Apply {
        if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(ApiError::BadRequest(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set".into(),
            ));
        }
        if st.store.get(t.def.storage, &t.namespace, &t.name).is_none() && t.subresource.is_empty()
        {
            let mut obj = incoming(t, patch_doc.clone())?;
            crate::util::ensure_obj(&mut obj, "metadata")
                .insert("uid".into(), json!(random_uuid()));
            crate::util::ensure_obj(&mut obj, "metadata").insert("name".into(), json!(t.name));
            admit(t.def, &mut obj, true)?;
            let applied = t.def.to_storage(&patch_doc);
            let obj = fieldmanager::apply(
                &json!({}),
                &applied,
                obj,
                &t.manager,
                &t.def.api_version(),
                t.force,
            )
            .map_err(|e| ApiError::ApplyConflict(e.to_string()))?;
            let created = st.store.create_opt(t.def, &t.namespace, obj, t.dry_run)?;
            return Ok(json_response(StatusCode::CREATED, &t.def.to_view(&created)));
        }
    }
    // Retry on a race with another writer unless the patch itself pins a version.
    for _ in 0..10 {
        let cur = current(st, t)?;
        if t.subresource == "scale" {
            let scale = scale_of(&cur);
            let new_scale = apply_patch(t.def, kind, &scale, &patch_doc)?;
            return write_scale(st, t, &new_scale);
        }
        let view = t.def.to_view(&cur);
        let read_rv = str_at(&view, "metadata.resourceVersion").to_string();
        let patched = apply_patch(t.def, kind, &view, &patch_doc)?;
        let pinned = str_at(&patched, "metadata.resourceVersion") != read_rv;
        let mut obj = incoming(t, patched)?;
        crate::util::ensure_obj(&mut obj, "metadata")
            .insert("uid".into(), cur["metadata"]["uid"].clone());
        if !pinned {
            crate::util::ensure_obj(&mut obj, "metadata")
                .insert("resourceVersion".into(), json!(read_rv));
        }
        if t.subresource.is_empty() {
            admit(t.def, &mut obj, false)?;
            if kind == PatchKind::Apply {
                let applied = t.def.to_storage(&patch_doc);
                obj = fieldmanager::apply(
                    &cur,
                    &applied,
                    obj,
                    &t.manager,
                    &t.def.api_version(),
                    t.force,
                )
                .map_err(|e| ApiError::ApplyConflict(e.to_string()))?;
            } else {
                fieldmanager::record_update(Some(&cur), &mut obj, &t.manager, &t.def.api_version());
            }
        }
        match st
            .store
            .update_opt(t.def, &t.namespace, &t.name, obj, mode_for(t), t.dry_run)
        {
            Ok(updated) => return ok(&t.def.to_view(&updated)),
            Err(ApiError::Conflict { .. }) if !pinned => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(t.def, &t.name))
}

fn propagation(q: &HashMap<String, String>, body: &Bytes) -> Propagation {
    let from_body = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let policy = q.get("propagationPolicy").cloned().or(from_body);
    let orphan_flag = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("orphanDependents").and_then(Value::as_bool));
    if policy.as_deref() == Some("Orphan") || orphan_flag == Some(true) {
        Propagation::Orphan
    } else {
        Propagation::Cascade
    }
}

/// `DeleteOptions.dryRun` in a DELETE body (where kubectl puts it).
fn body_dry_run(body: &Bytes) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("dryRun")
                .and_then(Value::as_array)
                .map(|a| !a.is_empty())
        })
        .unwrap_or(false)
}

fn delete(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if !t.subresource.is_empty() {
        return Err(ApiError::MethodNotAllowed);
    }
    if let Ok(opts) = serde_json::from_slice::<Value>(body)
        && let Some(want) = opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
    {
        let cur = current(st, t)?;
        if str_at(&cur, "metadata.resourceVersion") != want {
            return Err(ApiError::conflict(t.def, &t.name));
        }
    }
    let deleted = st.store.delete_opt(
        t.def,
        &t.namespace,
        &t.name,
        propagation(q, body),
        t.dry_run || body_dry_run(body),
    )?;
    ok(&t.def.to_view(&deleted))
}

fn delete_collection(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filter = ListFilter::from_query(q)?;
    let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
    let (items, _) = st.store.list(t.def.storage, ns);
    let mut deleted = Vec::new();
    for o in items {
        let v = t.def.to_view(&o);
        if filter.matches(&v) {
            let (n, name) = crate::store::ns_name(&o);
            if let Ok(d) = st
                .store
                .delete_opt(t.def, &n, &name, Propagation::Cascade, t.dry_run)
            {
                deleted.push(t.def.to_view(&d));
            }
        }
    }
    ok(&json!({
        "kind": format!("{}List", t.def.kind),
        "apiVersion": t.def.api_version(),
        "metadata": {"resourceVersion": st.store.current_rv().to_string()},
        "items": deleted,
    }))
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    watch_line(
        "BOOKMARK",
        &json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}),
    )
}

struct WatchFilter {
    def: &'static ResourceDef,
    namespace: String,
    filter: ListFilter,
    output: Output,
}

impl WatchFilter {
    fn visible(&self, stored: &Value) -> Option<Value> {
        if !self.namespace.is_empty() && str_at(stored, "metadata.namespace") != self.namespace {
            return None;
        }
        let view = self.def.to_view(stored);
        self.filter.matches(&view).then_some(view)
    }

    fn encode(&self, kind: &str, view: Value) -> Bytes {
        match self.output {
            Output::Table => watch_line(kind, &table::table(self.def, &[view], None)),
            Output::Metadata => watch_line(kind, &partial(&view)),
            Output::Object => watch_line(kind, &view),
        }
    }

    /// The watch line for a change, as a real server sends it: an object
    /// that leaves the selector is `DELETED`, one that enters it `ADDED`.
    fn line(&self, c: &Change) -> Option<Bytes> {
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

fn watch_collection(
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
async fn run_watch(
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
