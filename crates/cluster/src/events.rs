//! Kubernetes Events on refreshed and failing workloads (core/v1 `Event`, which
//! `kubectl describe` and `kubectl get events` show).
//!
//! Owns the shape of freshet's events: `ImageRefreshed` (Normal) with the old and new
//! digest in the message, and `ImageRefreshFailed` (Warning) when a failure streak
//! reached its threshold, and `InvalidRefreshAnnotations` (Warning) when a
//! workload's annotations do not parse. Must not fail a run: the caller logs a failed event and
//! carries on.

use std::sync::atomic::{AtomicU64, Ordering};

use freshet_core::refresh::WorkloadKind;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::workloads::{api_version, kind_name};

/// The reason of a refresh event.
pub const REFRESHED: &str = "ImageRefreshed";
/// The reason of an escalation event.
pub const FAILED: &str = "ImageRefreshFailed";
/// The reason of the event on a workload whose freshet annotations are invalid.
pub const INVALID: &str = "InvalidRefreshAnnotations";
/// The reporting component.
pub const COMPONENT: &str = "freshet";

/// Why an event could not be created.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The API refused it.
    #[error("creating event {reason} on {kind} {namespace}/{name} failed")]
    Create {
        /// The event reason.
        reason: &'static str,
        /// The object kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// The object an event is about.
#[derive(Debug, Clone)]
pub struct Regarding<'a> {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its UID, when known.
    pub uid: Option<&'a str>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Creates one event. `now` is RFC 3339.
pub async fn emit(
    client: &kube::Client,
    regarding: &Regarding<'_>,
    kind: EventType,
    reason: &'static str,
    message: &str,
    now: &str,
) -> Result<(), EventError> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Event"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), regarding.namespace, &ar);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}.{:x}{:x}", regarding.name, nanos, seq);
    let event_type = match kind {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    let mut involved = json!({
        "apiVersion": api_version(regarding.kind),
        "kind": kind_name(regarding.kind),
        "namespace": regarding.namespace,
        "name": regarding.name,
    });
    if let Some(uid) = regarding.uid {
        involved["uid"] = uid.into();
    }
    let body: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": regarding.namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "action": match reason { REFRESHED => "Refresh", INVALID => "Enroll", _ => "Resolve" },
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }))
    .expect("an event is a valid object");
    api.create(&PostParams::default(), &body)
        .await
        .map_err(|source| EventError::Create {
            reason,
            kind: kind_name(regarding.kind),
            namespace: regarding.namespace.to_owned(),
            name: regarding.name.to_owned(),
            source,
        })?;
    Ok(())
}
