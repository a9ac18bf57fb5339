//! The worklist: what `freshet status` says about each tracked image of a workload.
//!
//! Owns the decisions behind a status row: the newest allowed target now (a digest
//! for a digest watch, a tag for a version policy), whether the next run would
//! change the image ("pending"), the failure streak and the errors to show, and when
//! the workload's schedule fires next. Reads the audit annotations through
//! [`Audit::read`], the same reader the plan uses. Must not read the cluster, a
//! registry or the clock: the shell passes the workload, the facts and the time,
//! and only formats the rows.

use serde::Serialize;

use super::audit::{Audit, Refreshed};
use super::enroll::Enrollment;
use super::plan::{ImageFacts, containers_running, tag_of, tracked_images};
use super::time::Timestamp;
use super::workload::Workload;
use crate::policy::{Current, Decision, Policy, decide};
use crate::{Digest, Reference};

/// One tracked image of one workload, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageState {
    /// The tracked image (canonical).
    pub image: String,
    /// The containers running it (empty for an image only followed by an env var).
    pub containers: Vec<String>,
    /// The policy.
    pub policy: String,
    /// What the audit annotation recorded: the digest it was last refreshed to (or
    /// baselined at), and when.
    pub record: Option<Refreshed>,
    /// The newest allowed target now: a digest for digest watches, a tag otherwise.
    pub target: Option<String>,
    /// Whether the next run would change it.
    pub pending: bool,
    /// Failures in a row so far.
    pub failures: u32,
    /// The error recorded on the workload when its streak escalated.
    pub last_error: Option<String>,
    /// What the registry said now, if it failed.
    pub error: Option<String>,
    /// The workload's schedule, if it has one.
    pub schedule: Option<String>,
    /// When that schedule fires next after `now`.
    pub next_due: Option<Timestamp>,
}

/// The worklist rows of one workload at `now`, one per tracked image.
pub fn worklist(
    workload: &Workload,
    enrollment: &Enrollment,
    facts: &ImageFacts,
    now: Timestamp,
) -> Vec<ImageState> {
    let audit = Audit::read(&workload.annotations);
    let next_due = enrollment
        .schedule
        .as_ref()
        .and_then(|s| s.next_after(now.utc()))
        .map(Timestamp::from_utc);
    tracked_images(workload, enrollment)
        .into_iter()
        .map(|(reference, policy)| {
            let image = reference.canonical();
            let (target, pending, error) = target(&reference, &policy, facts, &audit);
            ImageState {
                containers: containers_running(workload, enrollment, &reference)
                    .into_iter()
                    .map(|c| c.name.clone())
                    .collect(),
                policy: policy.to_string(),
                record: audit.record(&image).cloned(),
                target,
                pending,
                failures: audit.failures_of(&image),
                last_error: audit.last_error.clone(),
                error,
                schedule: enrollment.schedule.as_ref().map(|s| s.to_string()),
                next_due,
                image,
            }
        })
        .collect()
}

/// (target, pending, the registry's error) of one tracked image.
fn target(
    reference: &Reference,
    policy: &Policy,
    facts: &ImageFacts,
    audit: &Audit,
) -> (Option<String>, bool, Option<String>) {
    let image = reference.canonical();
    let tag = tag_of(reference);
    let fact = facts.get(&image).cloned().unwrap_or_default();
    let digest_now: Option<Result<Digest, String>> = fact.digests.get(&tag).cloned();
    let mut error = match &digest_now {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    if let Some(Err(e)) = &fact.tags {
        error.get_or_insert_with(|| e.clone());
    }
    if policy.needs(Some(&tag)).tag_list {
        return match decide(Current::tag(&tag), policy, &fact) {
            Decision::Update { to, .. } if to != tag => (Some(to), true, error),
            _ => (Some(tag), false, error),
        };
    }
    match digest_now {
        Some(Ok(d)) => {
            let pending = audit.record(&image).is_some_and(|r| r.digest != d.as_str());
            (Some(d.to_string()), pending, error)
        }
        _ => (None, false, error),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::Facts;
    use crate::refresh::audit::{FAILURES, LAST_ERROR, REFRESHED};
    use crate::refresh::enroll::{self, POLICY};
    use crate::refresh::workload::{Container, WorkloadKind};

    const NOW: &str = "2026-11-23T10:00:00Z";

    fn d(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn workload(annotations: &[(&str, &str)], image: &str) -> Workload {
        Workload {
            kind: WorkloadKind::Deployment,
            namespace: "team".into(),
            name: "api".into(),
            resource_version: "1".into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            containers: vec![Container {
                name: "api".into(),
                image: image.into(),
                init: false,
                pull_policy: Some("Always".into()),
                env: BTreeMap::new(),
            }],
        }
    }

    fn rows(w: &Workload, facts: &ImageFacts) -> Vec<ImageState> {
        let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
        worklist(w, &e, facts, Timestamp::parse(NOW).unwrap())
    }

    /// Table: (recorded digest, registry digest now, target, pending).
    #[test]
    fn a_digest_watch_is_pending_when_the_registry_moved_past_the_record() {
        let img = "ghcr.io/acme/api:stable";
        let cases = [
            (None, Some(d(1)), Some(d(1)), false),
            (Some(d(1)), Some(d(1)), Some(d(1)), false),
            (Some(d(1)), Some(d(2)), Some(d(2)), true),
            (Some(d(1)), None, None, false),
        ];
        for (recorded, now, target, pending) in cases {
            let record = recorded
                .as_ref()
                .map(|r| serde_json::json!({img: {"digest": r.as_str(), "at": NOW}}).to_string());
            let mut annotations = vec![(POLICY, "digest")];
            if let Some(r) = &record {
                annotations.push((REFRESHED, r));
            }
            let w = workload(&annotations, img);
            let mut facts = ImageFacts::new();
            if let Some(now) = &now {
                facts.insert(img.into(), Facts::default().digest("stable", now.clone()));
            }
            let row = &rows(&w, &facts)[0];
            assert_eq!(
                row.target,
                target.map(|d| d.to_string()),
                "{recorded:?} {now:?}"
            );
            assert_eq!(row.pending, pending, "{recorded:?} {now:?}");
            assert_eq!(
                row.record.as_ref().map(|r| r.digest.clone()),
                recorded.map(|d| d.to_string())
            );
            assert_eq!(row.containers, ["api"]);
        }
    }

    #[test]
    fn a_version_policy_targets_the_newest_allowed_tag() {
        let img = "ghcr.io/acme/api:1.4.0";
        let w = workload(&[(POLICY, "semver:minor")], img);
        let facts: ImageFacts = [(
            img.to_owned(),
            Facts::with_tags(["1.4.0", "1.5.2", "2.0.0"]),
        )]
        .into();
        let row = &rows(&w, &facts)[0];
        assert_eq!((row.target.as_deref(), row.pending), (Some("1.5.2"), true));
        let current: ImageFacts = [(img.to_owned(), Facts::with_tags(["1.4.0", "2.0.0"]))].into();
        let row = &rows(&w, &current)[0];
        assert_eq!((row.target.as_deref(), row.pending), (Some("1.4.0"), false));
    }

    #[test]
    fn failures_and_errors_come_from_the_audit_and_the_registry() {
        let img = "ghcr.io/acme/api:stable";
        let failures = serde_json::json!({img: 2}).to_string();
        let w = workload(
            &[
                (POLICY, "digest"),
                (FAILURES, &failures),
                (LAST_ERROR, "old error"),
                (enroll::SCHEDULE, "0 3 * * *"),
            ],
            img,
        );
        let mut f = Facts::default();
        f.digests
            .insert("stable".into(), Err("ghcr.io: refused".into()));
        let row = &rows(&w, &[(img.to_owned(), f)].into())[0];
        assert_eq!(row.failures, 2);
        assert_eq!(row.last_error.as_deref(), Some("old error"));
        assert_eq!(row.error.as_deref(), Some("ghcr.io: refused"));
        assert_eq!((row.target.as_deref(), row.pending), (None, false));
        assert_eq!(row.schedule.as_deref(), Some("0 3 * * *"));
        assert_eq!(
            row.next_due.map(|t| t.to_string()).as_deref(),
            Some("2026-11-24T03:00:00Z")
        );
    }
}
