//! The plan freshet may write: the core's plan with held digests dropped, lifted
//! holds unpinned, and the `freshet.io/rollout` record of what the patch starts.
//!
//! Owns the mapping from a core [`Change`] to what the safety layer talks about:
//! the repository and digest it rolls out (for [`Holds::check`]) and its
//! [`RolloutChange`] (from, to, digest: everything a rollback needs). Must not read
//! the cluster or a registry: the digest of a moved tag comes from the pass's facts.

use std::time::Duration;

use freshet_core::refresh::{
    Change, Enrollment, ImageFacts, RunsFacts, Timestamp, WorkloadPlan, plan_with_runs,
};
use freshet_core::safety::hold::HOLD;
use freshet_core::safety::rollout::ROLLOUT;
use freshet_core::safety::{Action, HoldCheck, Holds, Restore, Rollout, RolloutChange, health};
use freshet_core::{Digest, Reference};

use super::observe::containers;
use crate::workloads::ReadWorkload;

/// What the core's [`plan`] becomes once the safety layer had its say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// The plan to write (with the hold and rollout annotations).
    pub plan: WorkloadPlan,
    /// Whether the plan starts a rollout (a pod-template change), so it must pass
    /// the windows and the pacing budget first.
    pub starts_rollout: bool,
}

/// The repository, digest and record of one change, when the digest is known.
fn describe(change: &Change, facts: &ImageFacts) -> Option<(String, Digest, RolloutChange)> {
    match change {
        Change::Restart {
            image,
            containers,
            from,
            to,
        } => {
            let repo = Reference::parse(image).ok()?.name();
            Some((
                repo.clone(),
                to.clone(),
                RolloutChange {
                    image: repo,
                    action: Action::Restart,
                    containers: containers.clone(),
                    init: false,
                    var: None,
                    from: Some(from.to_string()),
                    to: to.to_string(),
                    digest: to.to_string(),
                },
            ))
        }
        Change::SetImage {
            container,
            init,
            from,
            to,
            ..
        } => {
            let target = Reference::parse(to).ok()?;
            let digest = match target.digest() {
                Some(d) => d.clone(),
                None => {
                    let tracked = Reference::parse(from).ok()?.without_digest().canonical();
                    let tag = target.tag_or_latest().unwrap_or("latest");
                    facts
                        .get(&tracked)?
                        .digests
                        .get(tag)?
                        .as_ref()
                        .ok()?
                        .clone()
                }
            };
            let action = if target.digest().is_some() {
                Action::Pin
            } else {
                Action::SetImage
            };
            let repo = target.name();
            Some((
                repo.clone(),
                digest.clone(),
                RolloutChange {
                    image: repo,
                    action,
                    containers: vec![container.clone()],
                    init: *init,
                    var: None,
                    from: Some(from.clone()),
                    to: to.clone(),
                    digest: digest.to_string(),
                },
            ))
        }
        Change::SetEnv {
            container,
            init,
            var,
            from,
            to,
            image,
        } => {
            let repo = Reference::parse(image).ok()?.name();
            let digest = Digest::parse(to.rsplit('@').next().unwrap_or(to)).ok()?;
            Some((
                repo.clone(),
                digest.clone(),
                RolloutChange {
                    image: repo,
                    action: Action::SetEnv,
                    containers: vec![container.clone()],
                    init: *init,
                    var: Some(var.clone()),
                    from: from.clone(),
                    to: to.clone(),
                    digest: digest.to_string(),
                },
            ))
        }
    }
}

/// Plans `read` like the core does, then applies its holds and, with `follow:
/// Some(health_timeout)`, records the rollout the patch starts (deadline:
/// `health_timeout`, else the Deployment's `progressDeadlineSeconds`, else the
/// core's default). Fails with a message when the workload's `freshet.io/hold`
/// annotation is invalid.
pub fn guarded_plan(
    read: &ReadWorkload,
    enrollment: &Enrollment,
    facts: &ImageFacts,
    runs: Option<&RunsFacts<'_>>,
    now: Timestamp,
    follow: Option<Option<Duration>>,
) -> Result<Guarded, String> {
    let w = &read.workload;
    let mut p = plan_with_runs(w, enrollment, facts, runs, now);
    let old_holds =
        Holds::parse(w.annotations.get(HOLD).map(String::as_str)).map_err(|e| e.to_string())?;
    let mut holds = old_holds.clone();
    let now_containers = containers(read);
    let mut kept: Vec<Change> = Vec::new();
    let mut records: Vec<RolloutChange> = Vec::new();
    let mut unpins: Vec<Restore> = Vec::new();
    for change in std::mem::take(&mut p.changes) {
        let Some((repo, digest, record)) = describe(&change, facts) else {
            kept.push(change);
            continue;
        };
        match holds.check(&repo, &digest, &now_containers) {
            HoldCheck::Held { since } => {
                p.warnings.push(format!(
                    "{repo}: {digest} is held (freshet rolled it back at {}); waiting for a newer digest or freshet release",
                    freshet_core::refresh::Timestamp::from_utc(since)
                ));
                continue;
            }
            HoldCheck::Lift {
                holds: lifted,
                unpin,
            } => {
                p.warnings.push(format!(
                    "{repo}: {digest} is newer than the held digests; the hold is lifted"
                ));
                holds = lifted;
                unpins.extend(unpin);
            }
            HoldCheck::Free => {}
        }
        kept.push(change);
        records.push(record);
    }
    apply_unpins(&mut kept, &mut records, unpins, facts);
    p.changes = kept;
    if holds != old_holds {
        p.annotations.insert(HOLD.into(), holds.render());
    }
    let starts_rollout = !p.changes.is_empty();
    // A record still on the workload is of a rollout judged healthy: the plan's
    // patch removes it, unless a new rollout replaces it.
    let Some(health_timeout) = follow else {
        return Ok(Guarded {
            plan: p,
            starts_rollout,
        });
    };
    if w.annotations.contains_key(ROLLOUT) {
        p.annotations.insert(ROLLOUT.into(), None);
    }
    if !records.is_empty() {
        let started = now.utc();
        let record = Rollout {
            started,
            deadline: health::deadline(started, health_timeout, read.progress_deadline),
            changes: records,
        };
        p.annotations.insert(ROLLOUT.into(), Some(record.render()));
    }
    Ok(Guarded {
        plan: p,
        starts_rollout,
    })
}

/// Containers a rollback pinned go back to their floating image when the hold
/// lifts: a re-pin the plan made becomes the floating image, and a container the
/// plan left alone gets one.
fn apply_unpins(
    changes: &mut Vec<Change>,
    records: &mut Vec<RolloutChange>,
    unpins: Vec<Restore>,
    facts: &ImageFacts,
) {
    for u in unpins {
        let Restore::Image {
            container,
            init,
            from,
            to,
        } = u
        else {
            continue;
        };
        let existing = changes.iter_mut().find_map(|c| match c {
            Change::SetImage {
                container: name,
                init: i,
                to: target,
                ..
            } if *name == container && *i == init => Some(target),
            _ => None,
        });
        let digest_of = |target: &str| {
            Reference::parse(target)
                .ok()
                .and_then(|r| r.digest().cloned())
        };
        match existing {
            Some(target) => {
                let pinned_to = std::mem::replace(target, to.clone());
                if let Some(r) = records.iter_mut().find(|r| {
                    r.containers == [container.clone()] && r.init == init && r.to == pinned_to
                }) {
                    r.to = to;
                    r.action = Action::SetImage;
                    if let Some(d) = digest_of(&pinned_to) {
                        r.digest = d.to_string();
                    }
                }
            }
            None => {
                let change = Change::SetImage {
                    container: container.clone(),
                    init,
                    from: from.clone(),
                    to: to.clone(),
                    reason: "the hold is lifted: back to the floating tag".into(),
                };
                if let Some((_, _, record)) = describe(&change, facts) {
                    records.push(record);
                }
                changes.push(change);
            }
        }
    }
}
