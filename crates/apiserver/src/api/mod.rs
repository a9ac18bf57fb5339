//! The HTTP surface: routes Kubernetes API paths to discovery and to the
//! handlers of each verb, after authenticating and authorizing the request.
//!
//! Owns path routing and the verb decision (get, list, watch, create, update,
//! patch, delete). The handlers live in submodules, one concern each: the
//! request model and response encoding (`request`), identity (`access`), reads
//! (`read`), writes (`write`), the scale subresource (`scale`) and watches
//! (`watch`). It must not hold state of its own (that lives in the store and the
//! authenticator) nor run controllers; no submodule imports this one.

mod access;
mod read;
mod request;
mod scale;
mod watch;
mod write;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};

use self::access::{authenticate, create_token, impersonate, self_subject_access_review};
use self::read::{get, list};
pub use self::request::{AppState, WriteCall, WriteHook};
use self::request::{Output, Target, json_response, parse_body, query_map};
use self::watch::watch_collection;
use self::write::{create, delete, delete_collection, patch_object, update};
use crate::auth::{Attributes, User, authorize};
use crate::discovery;
use crate::resources::ResourceDef;
use crate::status::ApiError;

/// The router: every request goes through [`handle`].
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
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
    if let Some(hook) = st
        .before_write
        .as_ref()
        .filter(|_| !matches!(verb, "get" | "list" | "watch"))
    {
        (hook.0)(
            &st.store,
            WriteCall {
                verb,
                plural: def.plural,
                namespace,
                name,
                manager: &t.manager,
            },
        );
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
