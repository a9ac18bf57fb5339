//! Kubernetes Events on refreshed and failing workloads (`events.k8s.io/v1`, which
//! `kubectl describe` and `kubectl get events` show).
//!
//! Owns the shape of freshet's events: `ImageRefreshed` (Normal) with the old and
//! new digest in the note, `ImageRefreshFailed` (Warning) when a failure streak
//! reached its threshold, and `InvalidRefreshAnnotations` (Warning) when a
//! workload's annotations do not parse, `ManagedByArgoCD` (Warning) on a workload Argo
//! CD manages that is enrolled for a direct patch, and `UnsupportedImageUpdaterSetting`
//! (Warning) on an Argo CD Application (the same reasons serve Applications, through
//! [`Events::publish_to`]); and how repeats fold. The same note on the
//! same object and reason again becomes a series on one Event object (`series.count`,
//! `series.lastObservedTime`, sent as a merge patch) instead of a new object per
//! pass, for as long as this process remembers it ([`SERIES_WINDOW`] after it was
//! last seen; at most [`REMEMBERED_NOTES`] Events). Notes are bounded to the API's
//! 1 kB and their control characters escaped.
//!
//! This is kube-runtime's `Recorder` algorithm (kube-runtime 5.0.0
//! `src/events.rs`: same six-minute window, count and lastObservedTime, create then
//! merge-patch) with two differences, which is why freshet does not call the
//! Recorder itself: the note is part of what makes a repeat (a different digest or
//! error is a new Event, where the Recorder would fold it), and every time comes from
//! the injected [`Clock`](crate::clock::Clock) (the Recorder stamps
//! `Timestamp::now()` at `events.rs:261,309`, which no test can control). A 404 on
//! the series patch (the server expired the Event) starts a new Event. Must not fail
//! a pass: the caller logs a failed event and carries on.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freshet_core::refresh::{Timestamp, WorkloadKind};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{EventType, Reporter};
use serde_json::json;

use crate::clock::{SharedClock, SystemClock};
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

/// How long a published Event is remembered for folding a repeat into its series
/// (kube-runtime's Recorder uses the same six minutes).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes a repeat the same Event: the object, the type, the reason and the
/// note (the reporter is fixed per [`Events`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    kind: &'static str,
    namespace: String,
    name: String,
    uid: Option<String>,
    warning: bool,
    reason: &'static str,
    note: String,
}

/// A published Event as remembered for its series.
#[derive(Debug, Clone)]
struct Published {
    name: String,
    count: i32,
    last: Timestamp,
}

/// Records freshet's events; clones share the memory of past events.
#[derive(Clone)]
pub struct Events {
    kube: kube::Client,
    reporter: Reporter,
    clock: SharedClock,
    remembered: Arc<Mutex<HashMap<SeriesKey, Published>>>,
    sequence: Arc<AtomicU64>,
    /// Random per recorder, so that two processes (two one-shot runs, two
    /// replicas) that publish on one object in the same second never pick the same
    /// Event name.
    salt: u32,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("reporter", &self.reporter)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Events reported by `freshet` from `instance` (this replica's name), stamped
    /// with the wall clock.
    pub fn new(kube: kube::Client, instance: &str) -> Self {
        Self {
            kube,
            reporter: Reporter {
                controller: COMPONENT.into(),
                instance: Some(instance.into()),
            },
            clock: Arc::new(SystemClock),
            remembered: Arc::default(),
            sequence: Arc::default(),
            salt: random_salt(instance),
        }
    }

    /// The same recorder stamping its Events with `clock`'s time.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Records one event at the clock's time (a repeat of the same note on the same
    /// object and reason within [`SERIES_WINDOW`] folds into a series).
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
        let now = self.clock.now();
        let note = bounded_note(note);
        let namespace = object.namespace.clone().unwrap_or_default();
        let key = SeriesKey {
            kind,
            namespace: namespace.clone(),
            name: object.name.clone().unwrap_or_default(),
            uid: object.uid.clone(),
            warning: matches!(type_, EventType::Warning),
            reason,
            note,
        };
        let fail = |source| EventError::Publish {
            reason,
            kind: key.kind,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            source,
        };
        let api: Api<K8sEvent> = Api::namespaced(self.kube.clone(), &namespace);
        if let Some(mut seen) = self.recall(&key, now) {
            seen.count = seen.count.saturating_add(1);
            seen.last = now;
            let series = json!({"series": {"count": seen.count, "lastObservedTime": micro(now)}});
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => {
                    self.remember(key, seen);
                    return Ok(());
                }
                // The API server dropped it (events expire): start a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => return Err(fail(source)),
            }
        }
        let event = self.new_event(object, type_, reason, &key.note, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &event)
            .await
            .map_err(fail)?;
        self.remember(
            key,
            Published {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// The remembered Event for `key` if it was seen within the window (forgetting
    /// every Event older than that).
    fn recall(&self, key: &SeriesKey, now: Timestamp) -> Option<Published> {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        let horizon = now.checked_sub(SERIES_WINDOW);
        remembered.retain(|_, p| horizon.is_none_or(|h| p.last > h));
        remembered.get(key).cloned()
    }

    fn remember(&self, key: SeriesKey, published: Published) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if !remembered.contains_key(&key) && remembered.len() >= REMEMBERED_NOTES {
            remembered.clear();
        }
        remembered.insert(key, published);
    }

    fn new_event(
        &self,
        object: ObjectReference,
        type_: EventType,
        reason: &'static str,
        note: &str,
        now: Timestamp,
    ) -> K8sEvent {
        // Unique per recorder (its random salt) and, within it, per Event.
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let salt = self.salt;
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}{salt:08x}{sequence:x}",
                    object.name.as_deref().unwrap_or(COMPONENT),
                    now.unix_seconds()
                )),
                namespace: object.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(micro(now)),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            reason: Some(reason.into()),
            action: Some(action(reason).into()),
            note: Some(note.to_owned()),
            regarding: Some(object),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..K8sEvent::default()
        }
    }
}

/// A random number for Event names: std's `RandomState` draws fresh random keys
/// per process (and varies them per call), which is all the randomness needed here
/// without a dependency; the instance and the process id are mixed in.
fn random_salt(instance: &str) -> u32 {
    use std::hash::BuildHasher as _;
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    instance.hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    (hasher.finish() & 0xffff_ffff) as u32
}

/// `t` as the API's MicroTime.
fn micro(t: Timestamp) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::from_second(t.unix_seconds())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
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
