//! Writing to Applications: the `argocd` write-back and the audit annotations as one
//! JSON merge patch (custom resources take no strategic merge), and the Events.
//!
//! Owns sending the core's merge patch ([`freshet_core::argocd::AppPatch`]), which
//! carries the Application's `metadata.resourceVersion` so that a concurrent change
//! comes back as `409 Conflict` ([`AppWriteError::Conflict`]) for the caller to re-read
//! and re-plan; folding freshet's audit annotations into it; and the Events on the
//! Application: `ImageRefreshed` per change, `ImageRefreshFailed` when a failure
//! streak reached its threshold, `InvalidRefreshAnnotations` for a configuration that
//! cannot be followed, and `UnsupportedImageUpdaterSetting` for a setting freshet does
//! not follow as Image Updater would. Must not decide anything nor retry on its own.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::{Map, Value, json};

use super::list::{App, ArgoKind};
use super::plan::AppPlan;
use crate::errors::error_chain;
use crate::events::{self as reasons, Events};
use crate::writer::FIELD_MANAGER;

/// Why an Application was not patched.
#[derive(Debug, thiserror::Error)]
pub enum AppWriteError {
    /// It changed since it was read (`409 Conflict`): read it again.
    #[error("patching Application {namespace}/{name} failed: it changed since it was read")]
    Conflict {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API refused or failed the patch.
    #[error("patching Application {namespace}/{name} failed")]
    Patch {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl AppWriteError {
    /// Whether reading the Application again and retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// `body` (a merge patch, or nothing) with the audit `annotations` folded in; `None`
/// when there is nothing to send.
pub fn with_annotations(
    body: Option<Value>,
    annotations: &BTreeMap<String, Option<String>>,
) -> Option<Value> {
    if annotations.is_empty() {
        return body;
    }
    let mut body = body.unwrap_or_else(|| json!({}));
    let object = body.as_object_mut()?;
    let meta = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let notes = meta
        .as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(notes) = notes.as_object_mut() {
        for (k, v) in annotations {
            notes.insert(k.clone(), v.clone().map_or(Value::Null, Value::String));
        }
    }
    Some(body)
}

/// Sends a merge patch to `app`.
pub async fn patch(kube: &kube::Client, app: &App, body: &Value) -> Result<(), AppWriteError> {
    let api = ArgoKind::Application.api(kube, Some(&app.namespace));
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&app.name, &params, &Patch::Merge(body)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(AppWriteError::Conflict {
            namespace: app.namespace.clone(),
            name: app.name.clone(),
            source: kube::Error::Api(s),
        }),
        Err(source) => Err(AppWriteError::Patch {
            namespace: app.namespace.clone(),
            name: app.name.clone(),
            source,
        }),
    }
}

fn object_ref(app: &App) -> ObjectReference {
    ObjectReference {
        api_version: Some(ArgoKind::Application.api_version().into()),
        kind: Some(super::KIND.into()),
        namespace: Some(app.namespace.clone()),
        name: Some(app.name.clone()),
        uid: app.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Records one Event on `app` (a failure is logged, never an error).
pub async fn event(events: &Events, app: &App, type_: EventType, reason: &'static str, note: &str) {
    if let Err(e) = events
        .publish_to(object_ref(app), super::KIND, type_, reason, note)
        .await
    {
        tracing::warn!(error = %error_chain(&e), "event not recorded");
    }
}

/// Events and log lines after `plan` was written to `app` (`how`: `argocd` or the
/// commit that carries it).
pub async fn announce(events: &Events, app: &App, plan: &AppPlan, how: &str) {
    for u in &plan.updates {
        tracing::info!(
            event = reasons::REFRESHED, kind = super::KIND, namespace = %app.namespace,
            name = %app.name, image = %u.image, from = %u.from, to = %u.to, via = how,
            "refreshed"
        );
        let note = format!("{}: {} -> {} ({how})", u.new.name, u.from, u.to);
        event(events, app, EventType::Normal, reasons::REFRESHED, &note).await;
    }
    for e in &plan.escalations {
        let note = format!(
            "{}: resolve failures in a row reached the threshold: {}",
            e.image, e.message
        );
        event(events, app, EventType::Warning, reasons::FAILED, &note).await;
    }
}

/// The Warning Events of a pass's warnings and error on `app`.
pub async fn warn(events: &Events, app: &App, warnings: &[String], error: Option<&str>) {
    for w in warnings {
        tracing::warn!(kind = super::KIND, namespace = %app.namespace, name = %app.name, "{w}");
        event(events, app, EventType::Warning, reasons::UNSUPPORTED, w).await;
    }
    if let Some(e) = error {
        tracing::error!(kind = super::KIND, namespace = %app.namespace, name = %app.name, error = %e, "Application not updated");
        let note = format!("freshet does not update this Application: {e}");
        event(events, app, EventType::Warning, reasons::INVALID, &note).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_annotations_fold_into_the_merge_patch_and_nulls_remove() {
        let notes = BTreeMap::from([
            ("freshet.io/refreshed".to_owned(), Some("{}".to_owned())),
            ("freshet.io/refresh-last-error".to_owned(), None),
        ]);
        let body = json!({"metadata": {"resourceVersion": "7"}, "spec": {"source": {}}});
        assert_eq!(
            with_annotations(Some(body), &notes).unwrap(),
            json!({"metadata": {"resourceVersion": "7", "annotations": {
                "freshet.io/refreshed": "{}", "freshet.io/refresh-last-error": null}},
                "spec": {"source": {}}})
        );
        assert_eq!(with_annotations(None, &BTreeMap::new()), None);
    }
}
