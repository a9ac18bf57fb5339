//! A [`Notice`]: something about one workload that a notification announces besides
//! its refreshes, attached by the pass to the workload's report
//! (`WorkloadReport::notices`; see `crate::notices` for the mapping to events).
//!
//! Owns the value and its constructors. Must not render nor send anything.

use freshet_core::notify::{EventKind, Level};
use serde::Serialize;

/// Something about one workload that a notification announces, besides refreshes
/// (which come from the report's changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// What happened.
    pub kind: EventKind,
    /// How serious (`None`: the kind's default level).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The container concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The image concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Before (a digest or a tag), when it applies (a rollback's bad digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// After (a rollback's restored digest, an approval's candidate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// An error class for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// A sentence for humans (may be empty).
    pub message: String,
}

impl Notice {
    /// A notice of `kind` with `message`; chain the optional fields.
    pub fn new(kind: EventKind, message: impl Into<String>) -> Notice {
        Notice {
            kind,
            level: None,
            container: None,
            image: None,
            from: None,
            to: None,
            class: None,
            message: message.into(),
        }
    }

    /// A refresh rolled back after a failed rollout: `from` the bad digest `to` the
    /// restored one.
    pub fn rollback(image: &str, from: &str, to: &str, why: impl Into<String>) -> Notice {
        Notice::new(EventKind::Rollback, why)
            .image(image)
            .digests(from, to)
    }

    /// The workload is on hold (freshet will not touch it until the hold is lifted).
    pub fn hold(why: impl Into<String>) -> Notice {
        Notice::new(EventKind::Hold, why)
    }

    /// An update of `image` to `to` waits for a human's approval.
    pub fn approval_needed(image: &str, to: &str, how: impl Into<String>) -> Notice {
        let mut n = Notice::new(EventKind::ApprovalNeeded, how).image(image);
        n.to = Some(to.to_owned());
        n
    }

    /// Sets the container.
    pub fn container(mut self, container: impl Into<String>) -> Notice {
        self.container = Some(container.into());
        self
    }

    /// Sets the image.
    pub fn image(mut self, image: impl Into<String>) -> Notice {
        self.image = Some(image.into());
        self
    }

    /// Sets before and after.
    pub fn digests(mut self, from: impl Into<String>, to: impl Into<String>) -> Notice {
        self.from = Some(from.into());
        self.to = Some(to.into());
        self
    }

    /// Overrides the level.
    pub fn level(mut self, level: Level) -> Notice {
        self.level = Some(level);
        self
    }
}
