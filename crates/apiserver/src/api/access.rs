//! Who is asking: bearer-token authentication, impersonation, minted
//! ServiceAccount tokens (`TokenRequest`) and `SelfSubjectAccessReview`.
//!
//! Owns identity questions. It must not authorize a verb on a resource (that is
//! `crate::auth::authorize`, called by the router) nor read or write objects other
//! than the ServiceAccount a token is minted for.

use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::request::{AppState, Target, current, json_response};
use crate::auth::{Attributes, User, authorize};
use crate::status::ApiError;
use crate::util::str_at;

pub(crate) fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
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

/// `POST selfsubjectaccessreviews` (`kubectl auth can-i`): whether the
/// caller may do what the review's `resourceAttributes` describe.
pub(crate) fn self_subject_access_review(
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
pub(crate) fn impersonate(user: User, headers: &HeaderMap) -> Result<User, ApiError> {
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
pub(crate) fn create_token(st: &AppState, t: &Target) -> Result<Response, ApiError> {
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
