//! Reads: `get` of one object (or its status or scale subresource) and `list`
//! with label and field selectors and `limit`/`continue` pagination, as objects,
//! Tables or `PartialObjectMetadata`.
//!
//! Owns the read verbs. It must not write to the store.

use std::collections::HashMap;

use axum::response::Response;
use serde_json::{Value, json};

use super::request::{AppState, ListFilter, Output, Target, current, ok, partial};
use super::scale::scale_of;
use crate::status::ApiError;
use crate::table;
use crate::util::str_at;

pub(crate) fn get(st: &AppState, t: &Target, output: Output) -> Result<Response, ApiError> {
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

pub(crate) fn list(
    st: &AppState,
    t: &Target,
    q: &HashMap<String, String>,
    output: Output,
) -> Result<Response, ApiError> {
    let filter = ListFilter::from_query(q)?;
    let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
    // `continue` names the last item already sent (`rv|namespace/name`).
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(continue_after(token)?),
        None => None,
    };
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (items, rv) = st.store.list_after(
        t.def.storage,
        ns,
        after.as_ref().map(|(n, m)| (n.as_str(), m.as_str())),
    );
    // Only the page is converted and kept: a paged list of many objects stays small.
    let mut views: Vec<Value> = Vec::with_capacity(limit.unwrap_or(items.len()).min(items.len()));
    let mut more = false;
    for item in &items {
        let view = t.def.to_view(item);
        if !filter.matches(&view) {
            continue;
        }
        if limit.is_some_and(|l| views.len() == l) {
            more = true;
            break;
        }
        views.push(view);
    }
    let next = more.then(|| {
        use base64::Engine as _;
        let last = views.last().map(object_key).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{rv}|{last}"))
    });
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

/// The `(namespace, name)` a `continue` token says the previous page ended with.
fn continue_after(token: &str) -> Result<(String, String), ApiError> {
    use base64::Engine as _;
    let bad = || ApiError::BadRequest(format!("invalid continue token: {token}"));
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (_, after) = decoded.split_once('|').ok_or_else(bad)?;
    let (ns, name) = after.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

/// `namespace/name`, the order the store lists objects in.
pub(crate) fn object_key(v: &Value) -> String {
    format!(
        "{}/{}",
        str_at(v, "metadata.namespace"),
        str_at(v, "metadata.name")
    )
}
