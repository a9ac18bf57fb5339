//! The worklist (`freshet status`): every enrolled workload and tracked image with
//! what it runs, what its policy would move it to now, its last refresh, its failure
//! streak and its last error.
//!
//! Owns the shape of the status report. Reads the cluster and asks registries like a
//! run does (with the same pull secrets per workload), but never writes. Decisions
//! stay in the core: the target comes from [`freshet_core::policy::decide`] and the
//! registry's digest.

use std::collections::BTreeMap;

use freshet_core::policy::{Current, Decision, decide};
use freshet_core::refresh::plan::{self as core_plan, FAILURES, LAST_ERROR, REFRESHED, Refreshed};
use freshet_core::refresh::schedule;
use serde::Serialize;

use crate::run::{Refresher, RunError};
use crate::workloads::kind_name;

/// One tracked image of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct ImageStatus {
    /// `Deployment`, …
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The containers running it (empty for an image only followed by an env var).
    pub containers: Vec<String>,
    /// The tracked image (canonical).
    pub image: String,
    /// The policy.
    pub policy: String,
    /// The digest it was last refreshed to (or baselined at).
    pub digest: Option<String>,
    /// When.
    pub last_refresh: Option<String>,
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
    /// The workload's pull secrets that could not be used (missing, forbidden,
    /// malformed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The workload's schedule, if it has one (otherwise every pass looks at it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// When that schedule fires next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<String>,
}

impl Refresher {
    /// The worklist, at the current state of the cluster and registries.
    pub async fn status(&self) -> Result<Vec<ImageStatus>, RunError> {
        let enrolled = self.enrolled().await?;
        let refs: Vec<_> = enrolled.iter().map(|(w, e)| (w, e)).collect();
        let gathered = self.gather(&refs, None).await?;
        let mut out = Vec::new();
        for ((w, e), (set, warnings)) in enrolled.iter().zip(&gathered.per_workload) {
            let facts = &gathered.facts[*set];
            let wl = &w.workload;
            let refreshed: BTreeMap<String, Refreshed> =
                json_annotation(&wl.annotations, REFRESHED);
            let failures: BTreeMap<String, u32> = json_annotation(&wl.annotations, FAILURES);
            for (reference, policy) in core_plan::tracked_images(wl, e) {
                let image = reference.canonical();
                let tag = reference.tag_or_latest().unwrap_or("latest").to_owned();
                let fact = facts.get(&image).cloned().unwrap_or_default();
                let containers: Vec<String> = wl
                    .containers
                    .iter()
                    .filter(|c| e.covers(&c.name) && e.policy.is_some())
                    .filter(|c| {
                        freshet_core::Reference::parse(&c.image)
                            .is_ok_and(|r| r.without_digest() == reference)
                    })
                    .map(|c| c.name.clone())
                    .collect();
                let digest_now = fact.digests.get(&tag).cloned();
                let mut error = match &digest_now {
                    Some(Err(e)) => Some(e.clone()),
                    _ => None,
                };
                if let Some(Err(e)) = &fact.tags {
                    error.get_or_insert_with(|| e.clone());
                }
                let record = refreshed.get(&image);
                let (target, pending) = if policy.needs(Some(&tag)).tag_list {
                    match decide(Current::tag(&tag), &policy, &fact) {
                        Decision::Update { to, .. } if to != tag => (Some(to), true),
                        _ => (Some(tag.clone()), false),
                    }
                } else {
                    match digest_now {
                        Some(Ok(d)) => {
                            let pending = record.is_some_and(|r| r.digest != d.as_str());
                            (Some(d.to_string()), pending)
                        }
                        _ => (None, false),
                    }
                };
                out.push(ImageStatus {
                    kind: kind_name(wl.kind),
                    namespace: wl.namespace.clone(),
                    name: wl.name.clone(),
                    containers,
                    image: image.clone(),
                    policy: policy.to_string(),
                    digest: record.map(|r| r.digest.clone()),
                    last_refresh: record.map(|r| r.at.clone()),
                    target,
                    pending,
                    failures: failures.get(&image).copied().unwrap_or(0),
                    last_error: wl.annotations.get(LAST_ERROR).cloned(),
                    error,
                    warnings: warnings.clone(),
                    schedule: e.schedule.as_ref().map(|s| s.to_string()),
                    next_due: e
                        .schedule
                        .as_ref()
                        .and_then(|s| s.next_after(chrono::Utc::now()))
                        .map(schedule::format_time),
                });
            }
        }
        Ok(out)
    }
}

fn json_annotation<T: for<'de> serde::Deserialize<'de> + Default>(
    annotations: &BTreeMap<String, String>,
    key: &str,
) -> T {
    annotations
        .get(key)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}
