//! The ServiceAccount and token controllers: every namespace gets a `default`
//! ServiceAccount, and ServiceAccount token Secrets get `data.token` and
//! `data.namespace`.
//!
//! Owns those two writes. It must not mint tokens the authenticator accepts
//! (token Secrets are read by `crate::auth` when a request presents one).

use serde_json::json;

use super::context::Controllers;
use super::objects::def;
use crate::store::UpdateMode;
use crate::util::{random_hex, str_at};

/// Creates the namespace's `default` ServiceAccount if it is missing.
pub fn ensure_default_service_account(c: &Controllers, ns: &str) {
    let sa = def("", "serviceaccounts");
    if c.store.get("namespaces", "", ns).is_none()
        || c.store.get(sa.storage, ns, "default").is_some()
    {
        return;
    }
    let _ = c.store.create(
        sa,
        ns,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    );
}

/// Fills `data.token` and `data.namespace` of a ServiceAccount token Secret.
pub fn fill_token_secret(c: &Controllers, ns: &str, name: &str) {
    use base64::Engine as _;
    let Some(s) = c.store.get("secrets", ns, name) else {
        return;
    };
    if str_at(&s, "type") != "kubernetes.io/service-account-token"
        || s.pointer("/data/token").is_some()
    {
        return;
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let token = random_hex(24);
    c.store
        .modify(def("", "secrets"), ns, name, UpdateMode::Internal, |o| {
            let data = crate::util::ensure_obj(o, "data");
            data.insert("token".into(), json!(b64(&token)));
            data.insert("namespace".into(), json!(b64(ns)));
        });
}
