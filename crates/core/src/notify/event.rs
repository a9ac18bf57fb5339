//! Notification events: one value per thing that happened to one container of one
//! workload in a pass, with a [`Level`] that sinks filter on.
//!
//! Must not format messages (see [`super::render`]) nor decide when an event fires:
//! the pass that made the decision builds the event from it.

use serde::Serialize;

/// How serious an event is. Sinks receive events at or above their minimum level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Something went as planned (a refresh, a recovery).
    Info,
    /// Something needs a look (a hold, an approval).
    Warning,
    /// Something failed (a rollback, a failure streak).
    Error,
}

impl Level {
    /// The name used in the config file and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// Parses a config-file level name.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "info" => Some(Level::Info),
            "warning" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// A workload was refreshed to a new digest or tag.
    Refresh,
    /// A refresh was rolled back after a failed rollout.
    Rollback,
    /// A workload is on hold: freshet will not touch it until the hold is lifted.
    Hold,
    /// An update waits for a human's approval.
    ApprovalNeeded,
    /// An image failed as many passes in a row as its threshold.
    FailureStreak,
    /// An image that had reached its failure threshold succeeded again.
    Recovered,
}

impl EventKind {
    /// Every kind, in display order.
    pub const ALL: [EventKind; 6] = [
        EventKind::Refresh,
        EventKind::Rollback,
        EventKind::Hold,
        EventKind::ApprovalNeeded,
        EventKind::FailureStreak,
        EventKind::Recovered,
    ];

    /// The name used in the config file and payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Refresh => "refresh",
            EventKind::Rollback => "rollback",
            EventKind::Hold => "hold",
            EventKind::ApprovalNeeded => "approvalNeeded",
            EventKind::FailureStreak => "failureStreak",
            EventKind::Recovered => "recovered",
        }
    }

    /// Parses a config-file kind name.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The level an event of this kind has unless the pass says otherwise.
    pub fn default_level(self) -> Level {
        match self {
            EventKind::Refresh | EventKind::Recovered => Level::Info,
            EventKind::Hold | EventKind::ApprovalNeeded => Level::Warning,
            EventKind::Rollback | EventKind::FailureStreak => Level::Error,
        }
    }
}

/// One notification event. Text fields hold raw values as the pass saw them; they
/// are escaped and bounded when rendered, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// How serious it is (by default, [`EventKind::default_level`]).
    pub level: Level,
    /// The workload's namespace (empty in file mode).
    pub namespace: String,
    /// The workload's kind (`Deployment`, `CronJob`, a file path's kind in file mode).
    #[serde(rename = "workloadKind")]
    pub workload_kind: String,
    /// The workload's name (or the file's path in file mode).
    pub name: String,
    /// The container, when the event concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The image reference, when the event concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The digest (or tag) before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The digest (or tag) after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// An error class (`auth`, `notFound`, `rateLimited`, …) for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// A human-readable sentence (may be empty).
    pub message: String,
}

impl Event {
    /// An event of `kind` about `namespace/workload_kind/name`, at the kind's default
    /// level; chain the other fields.
    pub fn new(
        kind: EventKind,
        namespace: impl Into<String>,
        workload_kind: impl Into<String>,
        name: impl Into<String>,
    ) -> Event {
        Event {
            kind,
            level: kind.default_level(),
            namespace: namespace.into(),
            workload_kind: workload_kind.into(),
            name: name.into(),
            container: None,
            image: None,
            from: None,
            to: None,
            class: None,
            message: String::new(),
        }
    }

    /// Overrides the level.
    pub fn level(mut self, level: Level) -> Event {
        self.level = level;
        self
    }

    /// Sets the container.
    pub fn container(mut self, container: impl Into<String>) -> Event {
        self.container = Some(container.into());
        self
    }

    /// Sets the image reference.
    pub fn image(mut self, image: impl Into<String>) -> Event {
        self.image = Some(image.into());
        self
    }

    /// Sets the digests (or tags) before and after.
    pub fn digests(mut self, from: impl Into<String>, to: impl Into<String>) -> Event {
        self.from = Some(from.into());
        self.to = Some(to.into());
        self
    }

    /// Sets the error class.
    pub fn class(mut self, class: impl Into<String>) -> Event {
        self.class = Some(class.into());
        self
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Event {
        self.message = message.into();
        self
    }
}

/// The events of one pass, in the order they happened. A pass with no events sends
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The events.
    pub events: Vec<Event>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds an event.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Whether the pass produced no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_names_and_have_default_levels() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::Refresh.default_level(), Level::Info);
        assert_eq!(EventKind::Hold.default_level(), Level::Warning);
        assert_eq!(EventKind::FailureStreak.default_level(), Level::Error);
        assert!(Level::Info < Level::Warning && Level::Warning < Level::Error);
        assert_eq!(Level::parse("warn"), None);
    }

    #[test]
    fn builder_sets_fields() {
        let e = Event::new(EventKind::Refresh, "dev", "Deployment", "api")
            .container("app")
            .image("ghcr.io/acme/api:1")
            .digests("sha256:aa", "sha256:bb")
            .level(Level::Warning)
            .message("done");
        assert_eq!(e.level, Level::Warning);
        assert_eq!(e.container.as_deref(), Some("app"));
        assert_eq!(e.to.as_deref(), Some("sha256:bb"));
    }
}
