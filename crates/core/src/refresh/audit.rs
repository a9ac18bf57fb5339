//! The audit annotations: the state the cluster refresh keeps on each workload.
//!
//! Owns the one reader and the one writer of
//! - `freshet.io/refreshed`: JSON `{image: {"digest", "at"}}`, the digest each
//!   tracked image was last refreshed to, and when (the audit trail; for a digest
//!   watch it is also the baseline: the first sight of a workload records it and
//!   restarts nothing);
//! - `freshet.io/refresh-consecutive-failures`: JSON `{image: count}`;
//! - `freshet.io/refresh-last-error`: the message of the last escalated failure.
//!
//! [`Audit::read`] is used by both the plan (what to change) and the worklist (what
//! `status` shows), so they can never disagree about what a workload recorded.
//! [`Audit::diff`] turns an old and a new audit into the annotations a patch sets or
//! removes, and writes only what differs. An annotation that is not the JSON freshet
//! writes reads as empty (as it always has), so a hand-edited value is overwritten
//! by the next refresh rather than blocking it. Must not decide anything: the plan
//! decides what the new audit holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `freshet.io/refreshed`.
pub const REFRESHED: &str = "freshet.io/refreshed";
/// `freshet.io/refresh-consecutive-failures`.
pub const FAILURES: &str = "freshet.io/refresh-consecutive-failures";
/// `freshet.io/refresh-last-error`.
pub const LAST_ERROR: &str = "freshet.io/refresh-last-error";

/// The audit record of one tracked image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refreshed {
    /// The digest the image was refreshed to.
    pub digest: String,
    /// When (RFC 3339, as written; not parsed, so an odd value never blocks a run).
    pub at: String,
    /// For a multi-platform tag, the image each platform the workload runs or may
    /// run on got from it (`null`: not offered), so that the next move can be
    /// compared per platform without fetching this index again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, Option<crate::Digest>>,
    /// Why the digest was recorded without a restart (for example: the index moved
    /// for other platforms only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a workload's annotations recorded, by tracked image (canonical name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audit {
    /// `freshet.io/refreshed`.
    pub refreshed: BTreeMap<String, Refreshed>,
    /// `freshet.io/refresh-consecutive-failures`.
    pub failures: BTreeMap<String, u32>,
    /// `freshet.io/refresh-last-error`.
    pub last_error: Option<String>,
}

impl Audit {
    /// Reads the three annotations (a missing or malformed one reads as empty).
    pub fn read(annotations: &crate::Labels) -> Audit {
        Audit {
            refreshed: read_json(annotations, REFRESHED),
            failures: read_json(annotations, FAILURES),
            last_error: annotations.get(LAST_ERROR).cloned(),
        }
    }

    /// The record of `image`.
    pub fn record(&self, image: &str) -> Option<&Refreshed> {
        self.refreshed.get(image)
    }

    /// Failures in a row of `image` so far.
    pub fn failures_of(&self, image: &str) -> u32 {
        self.failures.get(image).copied().unwrap_or(0)
    }

    /// The annotations that turn `self` into `new`: `Some` to set, `None` to remove;
    /// empty when nothing differs.
    pub fn diff(&self, new: &Audit) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        if new.refreshed != self.refreshed {
            out.insert(REFRESHED.into(), Some(to_json(&new.refreshed)));
        }
        if new.failures != self.failures {
            let value = (!new.failures.is_empty()).then(|| to_json(&new.failures));
            out.insert(FAILURES.into(), value);
        }
        if new.last_error != self.last_error {
            out.insert(LAST_ERROR.into(), new.last_error.clone());
        }
        out
    }
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(annotations: &crate::Labels, key: &str) -> T {
    annotations
        .get(key)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps of strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> crate::Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_what_it_writes_and_malformed_values_read_as_empty() {
        let written = annotations(&[
            (
                REFRESHED,
                r#"{"ghcr.io/a/b:1":{"digest":"sha256:aa","at":"2026-11-23T10:00:00Z"}}"#,
            ),
            (FAILURES, r#"{"ghcr.io/a/c:2":3}"#),
            (LAST_ERROR, "ghcr.io/a/c:2: 3 failures in a row: down"),
        ]);
        let audit = Audit::read(&written);
        assert_eq!(audit.record("ghcr.io/a/b:1").unwrap().digest, "sha256:aa");
        assert_eq!(audit.failures_of("ghcr.io/a/c:2"), 3);
        assert_eq!(audit.failures_of("ghcr.io/a/b:1"), 0);
        let diff = Audit::default().diff(&audit);
        let round: crate::Labels = diff.into_iter().map(|(k, v)| (k, v.unwrap())).collect();
        assert_eq!(Audit::read(&round), audit);

        let junk = annotations(&[(REFRESHED, "not json"), (FAILURES, "[1,2]")]);
        assert_eq!(Audit::read(&junk), Audit::default());
    }

    #[test]
    fn diff_writes_only_what_differs_and_removes_emptied_annotations() {
        let old = Audit {
            failures: [("i".to_owned(), 2)].into(),
            last_error: Some("i: 2 failures in a row: x".into()),
            ..Audit::default()
        };
        assert!(old.diff(&old).is_empty(), "nothing changed: zero writes");
        let cleared = Audit::default();
        let diff = old.diff(&cleared);
        assert_eq!(
            diff,
            BTreeMap::from([(FAILURES.to_owned(), None), (LAST_ERROR.to_owned(), None)])
        );
    }
}
