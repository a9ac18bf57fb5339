//! Kubernetes Events on refreshed and failing workloads, through kube's
//! [`Recorder`] (`events.k8s.io/v1`, which `kubectl describe` and
//! `kubectl get events` show).
//!
//! Owns the shape of freshet's events: `ImageRefreshed` (Normal) with the old and
//! new digest in the note, `ImageRefreshFailed` (Warning) when a failure streak
//! reached its threshold, and `InvalidRefreshAnnotations` (Warning) when a
//! workload's annotations do not parse, `ManagedByArgoCD` (Warning) on a workload Argo
//! CD manages that is enrolled for a direct patch, and `UnsupportedImageUpdaterSetting`
//! (Warning) on an Argo CD Application (the same reasons serve Applications, through
//! [`Events::publish_to`]); and how repeats fold. The same note on the
//! same object and reason again becomes a series on one Event object (`series.count`,
//! `series.lastObservedTime`) instead of a new object per pass, for as long as the
//! Recorder remembers it (six minutes after it was last seen, in this process).
//! kube's Recorder folds by object, reason and action but not by note, so this
//! module keeps one Recorder per note (a bounded set): a different note (another
//! digest, another error) is a new Event. Notes are bounded to the API's 1 kB and
//! their control characters escaped. Event times are the Recorder's own (the wall
//! clock): they are observations, not decisions. Must not fail a pass: the caller
//! logs a failed event and carries on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use freshet_core::refresh::WorkloadKind;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::workloads::{api_version, kind_name};

/// The reason of a refresh event.
pub const REFRESHED: &str = "ImageRefreshed";
/// The reason of an escalation event.
pub const FAILED: &str = "ImageRefreshFailed";
/// The reason of the event on a workload whose freshet annotations are invalid.
pub const INVALID: &str = "InvalidRefreshAnnotations";
/// The reason of the event on a workload Argo CD manages that is enrolled for a
/// direct patch (Argo CD's self-heal would revert it).
pub const ARGO_MANAGED: &str = "ManagedByArgoCD";
/// The reason of the event on an Application about a setting freshet does not follow
/// as Argo CD Image Updater would (a warning; the Application is still updated).
pub const UNSUPPORTED: &str = "UnsupportedImageUpdaterSetting";
/// The reporting controller.
pub const COMPONENT: &str = "freshet";
/// The longest note the events API accepts, in bytes.
pub const NOTE_LIMIT: usize = 1024;
/// How many distinct notes are remembered for folding repeats before the memory is
/// dropped (the next repeat of a forgotten note starts a new Event object).
pub const REMEMBERED_NOTES: usize = 1024;

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The API refused it.
    #[error("recording event {reason} on {kind} {namespace}/{name} failed")]
    Publish {
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

impl Regarding<'_> {
    fn object_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(api_version(self.kind).into()),
            kind: Some(kind_name(self.kind).into()),
            namespace: Some(self.namespace.into()),
            name: Some(self.name.into()),
            uid: self.uid.map(str::to_owned),
            ..ObjectReference::default()
        }
    }
}

/// Records freshet's events; clones share the memory of past events.
#[derive(Clone)]
pub struct Events {
    kube: kube::Client,
    reporter: Reporter,
    recorders: Arc<Mutex<HashMap<String, Recorder>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("reporter", &self.reporter)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Events reported by `freshet` from `instance` (this replica's name).
    pub fn new(kube: kube::Client, instance: &str) -> Self {
        Self {
            kube,
            reporter: Reporter {
                controller: COMPONENT.into(),
                instance: Some(instance.into()),
            },
            recorders: Arc::default(),
        }
    }

    /// Records one event (a repeat of the same note folds into a series).
    pub async fn publish(
        &self,
        regarding: &Regarding<'_>,
        type_: EventType,
        reason: &'static str,
        note: &str,
    ) -> Result<(), EventError> {
        self.publish_to(
            regarding.object_ref(),
            kind_name(regarding.kind),
            type_,
            reason,
            note,
        )
        .await
    }

    /// Records one event about any object (an Argo CD Application); `kind` names it in
    /// errors.
    pub async fn publish_to(
        &self,
        object: ObjectReference,
        kind: &'static str,
        type_: EventType,
        reason: &'static str,
        note: &str,
    ) -> Result<(), EventError> {
        let note = bounded_note(note);
        let recorder = self.recorder(&note);
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action(reason).into(),
            secondary: None,
        };
        recorder
            .publish(&event, &object)
            .await
            .map_err(|source| EventError::Publish {
                reason,
                kind,
                namespace: object.namespace.clone().unwrap_or_default(),
                name: object.name.clone().unwrap_or_default(),
                source,
            })
    }

    fn recorder(&self, note: &str) -> Recorder {
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        if !recorders.contains_key(note) && recorders.len() >= REMEMBERED_NOTES {
            recorders.clear();
        }
        recorders
            .entry(note.to_owned())
            .or_insert_with(|| Recorder::new(self.kube.clone(), self.reporter.clone()))
            .clone()
    }
}

/// The event's action (what freshet was doing).
fn action(reason: &str) -> &'static str {
    match reason {
        REFRESHED => "Refresh",
        INVALID | ARGO_MANAGED | UNSUPPORTED => "Enroll",
        _ => "Resolve",
    }
}

/// `note` with control characters escaped, cut to [`NOTE_LIMIT`] bytes on a
/// character boundary (ending in `…` when cut).
pub fn bounded_note(note: &str) -> String {
    let mut escaped = String::with_capacity(note.len());
    for c in note.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if escaped.len() <= NOTE_LIMIT {
        return escaped;
    }
    let ellipsis = '…';
    let mut end = NOTE_LIMIT - ellipsis.len_utf8();
    while !escaped.is_char_boundary(end) {
        end -= 1;
    }
    escaped.truncate(end);
    escaped.push(ellipsis);
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_escaped_and_bounded() {
        assert_eq!(bounded_note("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
        let long = "é".repeat(NOTE_LIMIT);
        let cut = bounded_note(&long);
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(bounded_note("short"), "short");
    }

    #[test]
    fn actions_name_what_freshet_was_doing() {
        assert_eq!(action(REFRESHED), "Refresh");
        assert_eq!(action(INVALID), "Enroll");
        assert_eq!(action(FAILED), "Resolve");
    }
}
