//! Following a recorded rollout: judge it, and on failure roll it back in one
//! patch.
//!
//! Owns the steps of item 1 of a pass over a workload with a `freshet.io/rollout`
//! record: read its status and the pods of its new revision ([`super::observe`]),
//! [`health::judge`] them against the record's deadline, and then remove the record
//! (healthy), wait (progressing), or [`rollback::respond`] (failed) with the
//! workload's `onFailure` and send the restores, the hold and the record's removal
//! in one patch carrying the `resourceVersion` judged on. A conflict re-reads and
//! judges again (bounded): of two runs judging at once, only one rolls back; the
//! other finds the record gone. A rollback the API refuses counts in the failure
//! streak like any failure (and escalates at the threshold). Must not decide: the
//! core judges and responds.

use freshet_core::refresh::config::{ClusterConfig, Subject};
use freshet_core::refresh::enroll::DEFAULT_THRESHOLD;
use freshet_core::refresh::{Change, Timestamp, WorkloadKind, WorkloadPlan};
use freshet_core::safety::health::DEFAULT_RESTART_THRESHOLD;
use freshet_core::safety::hold::HOLD;
use freshet_core::safety::rollout::ROLLOUT;
use freshet_core::safety::{
    Health, Holds, OnFailure, Restore, Rollback, Rollout, Threshold, health, rollback,
};
use kube::runtime::events::EventType;
use serde_json::json;

use super::observe::{Observed, containers, observe};
use super::{ROLLBACK_FAILED, ROLLED_BACK, ROLLOUT_FAILED};
use crate::errors::error_chain;
use crate::pass::Refresher;
use crate::report::{Status, WorkloadReport};
use crate::workloads::{ReadWorkload, kind_name};
use crate::writer::WriteError;

/// What following a recorded rollout came to.
#[derive(Debug)]
pub enum Followed {
    /// Done with this workload for the pass: still progressing, rolled back, or
    /// failed to judge.
    Done(WorkloadReport),
    /// Healthy (or no record any more): plan it as usual; this is the workload as
    /// read now.
    Healthy(ReadWorkload),
}

/// The config rule `read` matches, if any.
pub fn rule_of<'c>(
    config: &'c ClusterConfig,
    read: &ReadWorkload,
) -> Option<&'c freshet_core::refresh::config::Rule> {
    let containers: Vec<(&str, &str)> = read
        .workload
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.image.as_str()))
        .collect();
    config
        .rule_for(&Subject {
            namespace: &read.workload.namespace,
            labels: &read.labels,
            annotations: &read.workload.annotations,
            containers: &containers,
        })
        .map(|(r, _)| r)
}

/// The enrollment of `read` under `config` (`None`: not enrolled, or invalid).
fn enrollment_of(
    config: &ClusterConfig,
    read: &ReadWorkload,
) -> Option<freshet_core::refresh::Enrollment> {
    let containers: Vec<(&str, &str)> = read
        .workload
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.image.as_str()))
        .collect();
    config
        .enroll(&Subject {
            namespace: &read.workload.namespace,
            labels: &read.labels,
            annotations: &read.workload.annotations,
            containers: &containers,
        })
        .ok()
        .flatten()
}

/// The record on `read`, if any (an invalid one is an error naming the fix).
pub fn record_of(read: &ReadWorkload) -> Option<Result<Rollout, String>> {
    let value = read.workload.annotations.get(ROLLOUT)?;
    Some(Rollout::parse(value).map_err(|e| e.to_string()))
}

/// The restores of a rollback as plan changes (so the core's patch spells them).
fn restore_changes(rb: &Rollback, image: &str) -> (Vec<Change>, Vec<String>) {
    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    for r in &rb.restores {
        match r {
            Restore::Image {
                container,
                init,
                from,
                to,
            } => changes.push(Change::SetImage {
                container: container.clone(),
                init: *init,
                from: from.clone(),
                to: to.clone(),
                reason: "rollback to the last good state".into(),
            }),
            Restore::Env {
                container,
                init,
                var,
                from,
                to: Some(to),
            } => changes.push(Change::SetEnv {
                container: container.clone(),
                init: *init,
                var: var.clone(),
                from: from.clone(),
                to: to.clone(),
                image: image.to_owned(),
            }),
            Restore::Env { container, var, .. } => skipped.push(format!(
                "{container}: {var} was unset before; freshet leaves the new value (remove it by hand)"
            )),
        }
    }
    (changes, skipped)
}

impl Refresher {
    /// Judges the rollout recorded on `read` at `now` and acts on it. `Healthy`:
    /// the rollout is done, and the caller plans the workload as usual (the plan's
    /// patch removes the record, see [`super::guard`]).
    pub(crate) async fn follow(&self, read: &ReadWorkload, now: Timestamp) -> Followed {
        let mut current = read.clone();
        let mut attempt = 0;
        loop {
            let record = match record_of(&current) {
                None => return Followed::Healthy(current),
                Some(Err(m)) => return Followed::Done(WorkloadReport::failed(&current, m)),
                Some(Ok(r)) => r,
            };
            let observed = match observe(self.kube(), &current, record.started).await {
                Ok(o) => o,
                Err(e) => {
                    return Followed::Done(WorkloadReport::failed(&current, error_chain(&e)));
                }
            };
            if record_of(&observed.read).is_none() {
                return Followed::Healthy(observed.read);
            }
            let verdict = health::judge(
                &observed.status,
                &observed.pods,
                DEFAULT_RESTART_THRESHOLD,
                record.deadline,
                now.utc(),
            );
            if verdict == Health::Healthy {
                tracing::info!(kind = kind_name(observed.read.workload.kind), namespace = %observed.read.workload.namespace, name = %observed.read.workload.name, "rollout healthy");
                return Followed::Healthy(observed.read);
            }
            match self.act(&observed, &record, verdict, now).await {
                Err(WriteError::Conflict { .. }) if attempt < self.options().conflict_retries => {
                    attempt += 1;
                    current = observed.read;
                }
                Err(e) => {
                    return Followed::Done(self.refused(&observed.read, &record, &e, now).await);
                }
                Ok(r) => return Followed::Done(r),
            }
        }
    }

    async fn act(
        &self,
        observed: &Observed,
        record: &Rollout,
        verdict: Health,
        now: Timestamp,
    ) -> Result<WorkloadReport, WriteError> {
        let read = &observed.read;
        let w = &read.workload;
        match verdict {
            Health::Progressing(why) => {
                let mut r = WorkloadReport::new(read, Status::Following);
                r.warnings.push(format!("rollout in progress: {why}"));
                r.next_due = Some(Timestamp::from_utc(record.deadline));
                Ok(r)
            }
            Health::Healthy => Ok(WorkloadReport::new(read, Status::Current)),
            Health::Failed(failure) => {
                let mode = match OnFailure::from_annotations(
                    &w.annotations,
                    rule_of(&self.options().config, read).and_then(|r| r.safety.on_failure),
                ) {
                    Ok(m) => m,
                    Err(e) => return Ok(WorkloadReport::failed(read, e.to_string())),
                };
                let holds = match Holds::parse(w.annotations.get(HOLD).map(String::as_str)) {
                    Ok(h) => h,
                    Err(e) => return Ok(WorkloadReport::failed(read, e.to_string())),
                };
                let rb = rollback::respond(mode, record, &containers(read), &holds, now.utc());
                self.roll_back(observed, record, &failure.to_string(), mode, rb, now)
                    .await
            }
        }
    }

    async fn roll_back(
        &self,
        observed: &Observed,
        record: &Rollout,
        failure: &str,
        mode: OnFailure,
        rb: Rollback,
        now: Timestamp,
    ) -> Result<WorkloadReport, WriteError> {
        let read = &observed.read;
        let w = &read.workload;
        let image = record.changes.first().map_or("", |c| c.image.as_str());
        let (changes, mut skipped) = restore_changes(&rb, image);
        skipped.extend(rb.skipped.iter().cloned());
        // The failed rollout is a failure of each image it changed, counted in the
        // workload's failure streak (escalating at the threshold) in the same patch.
        let streak = self.streak_of(read, record, &format!("rollout failed: {failure}"));
        let mut annotations = rb.annotations.clone();
        for (k, v) in streak.annotations {
            annotations.entry(k).or_insert(v);
        }
        let plan = WorkloadPlan {
            changes,
            annotations,
            warnings: skipped,
            transient: streak.transient,
            escalations: streak.escalations,
            reached: streak.reached,
            ..WorkloadPlan::default()
        };
        let mut r = WorkloadReport::of_plan(read, &plan);
        r.status = if !plan.escalations.is_empty() {
            Status::Escalated
        } else if rb.restores_anything() {
            Status::RolledBack
        } else {
            Status::RolloutFailed
        };
        r.error = Some(format!("rollout failed: {failure}"));
        if self.options().dry_run {
            return Ok(r);
        }
        let Some(mut body) = plan.patch(w, now) else {
            return Ok(r);
        };
        if rb.pause && w.kind == WorkloadKind::Deployment {
            body["spec"]["paused"] = json!(true);
        }
        r.written = self.writer().patch_body(w, &body).await?;
        let held: Vec<String> = record
            .changes
            .iter()
            .map(|c| format!("{}@{}", c.image, c.digest))
            .collect();
        let (reason, note) = if rb.restores_anything() {
            (
                ROLLED_BACK,
                format!(
                    "rollout failed ({failure}); rolled back to the last good state and held {}",
                    held.join(", ")
                ),
            )
        } else {
            (
                ROLLOUT_FAILED,
                format!(
                    "rollout failed ({failure}); onFailure is {}, so freshet {} and held {}",
                    mode.as_str(),
                    if rb.pause {
                        "paused it"
                    } else {
                        "left it as it is"
                    },
                    held.join(", ")
                ),
            )
        };
        for c in &record.changes {
            // From the bad digest to what the workload ran before it.
            let before = c.from.as_deref().unwrap_or("-");
            r.notices.push(if rb.restores_anything() {
                crate::Notice::rollback(&c.image, &c.digest, before, note.clone())
            } else {
                crate::Notice::hold(note.clone()).image(&c.image)
            });
        }
        tracing::error!(kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name, reason, "{note}");
        self.writer()
            .note(read, EventType::Warning, reason, &note)
            .await;
        Ok(r)
    }
}

impl Refresher {
    /// A rollback the API refused: counted in the failure streak of the images
    /// the rollout changed ([`rollback::refused`], written in a metadata-only
    /// patch), a Warning Event `RollbackFailed`, and the report failed (or
    /// escalated at the threshold). The record stays: the next pass tries again.
    async fn refused(
        &self,
        read: &ReadWorkload,
        record: &Rollout,
        e: &WriteError,
        now: Timestamp,
    ) -> WorkloadReport {
        let message = format!(
            "rollout failed and its rollback was refused: {}",
            error_chain(e)
        );
        let plan = self.streak_of(read, record, &message);
        let mut r = WorkloadReport::of_plan(read, &plan);
        if r.status != Status::Escalated {
            r.status = Status::Failed;
        }
        r.error = Some(message.clone());
        let w = &read.workload;
        tracing::error!(kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name, "{message}");
        if self.options().dry_run {
            return r;
        }
        match self.writer().patch(w, &plan, now).await {
            Ok(written) => r.written = written,
            Err(e) => {
                r.error = Some(format!(
                    "{message}; recording the failure streak failed too: {}",
                    error_chain(&e)
                ));
            }
        }
        self.writer()
            .note(read, EventType::Warning, ROLLBACK_FAILED, &message)
            .await;
        r
    }

    /// The failure streak of the images `record` changed, one more failure each
    /// ([`rollback::refused`]): annotations and streaks only.
    fn streak_of(&self, read: &ReadWorkload, record: &Rollout, message: &str) -> WorkloadPlan {
        let enrollment = enrollment_of(&self.options().config, read);
        let threshold = |image: &str| match &enrollment {
            Some(en) => en.thresholds.threshold(image, en.threshold),
            None => Threshold::Count(DEFAULT_THRESHOLD),
        };
        rollback::refused(&read.workload.annotations, record, threshold, message)
    }

    /// Removes the record of a healthy rollout (`run --once --wait`).
    async fn clear_record(&self, read: &ReadWorkload, now: Timestamp) -> WorkloadReport {
        let mut plan = WorkloadPlan::default();
        if record_of(read).is_none() {
            return WorkloadReport::new(read, Status::Current);
        }
        plan.annotations.insert(ROLLOUT.into(), None);
        let mut r = WorkloadReport::new(read, Status::Recorded);
        match self.writer().patch(&read.workload, &plan, now).await {
            Ok(written) => r.written = written,
            Err(e) => r.error = Some(error_chain(&e)),
        }
        r
    }
}

/// How often `run --once --wait` looks at the rollouts it started.
pub const WAIT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

impl Refresher {
    /// `run --once --wait`: follows the rollouts `report`'s pass started until each
    /// is healthy, rolled back, or past its deadline (then a little longer, for a
    /// CronJob whose next Job has not started: reported as still following).
    /// Replaces those workloads' statuses with the outcome, keeping their changes.
    pub async fn wait_for_rollouts(&self, report: &mut crate::report::PassReport) {
        use crate::workloads::{self, KINDS};
        let mut open: Vec<usize> = report
            .workloads
            .iter()
            .enumerate()
            .filter(|(_, w)| w.status == Status::Refreshed && w.written)
            .map(|(i, _)| i)
            .collect();
        let mut give_up: Option<Timestamp> = None;
        // Without a readable record, the run's own --health-timeout bounds the wait.
        let start = self.clock().now();
        let fallback = start
            .checked_add(
                self.options()
                    .health_timeout
                    .unwrap_or(freshet_core::safety::health::DEFAULT_DEADLINE)
                    + WAIT_POLL * 3,
            )
            .unwrap_or(start);
        while !open.is_empty() {
            let now = self.clock().now();
            let mut still = Vec::new();
            for i in open {
                let w = &report.workloads[i];
                let Some(kind) = KINDS.into_iter().find(|k| kind_name(*k) == w.kind) else {
                    continue;
                };
                let read = match workloads::get(self.kube(), kind, &w.namespace, &w.name).await {
                    Ok(r) => r,
                    Err(e) => {
                        report.workloads[i].error = Some(error_chain(&e));
                        continue;
                    }
                };
                if let Some(Ok(record)) = record_of(&read) {
                    let limit = Timestamp::from_utc(record.deadline)
                        .checked_add(WAIT_POLL * 3)
                        .unwrap_or(now);
                    give_up = Some(give_up.map_or(limit, |g| g.max(limit)));
                }
                let followed = match self.follow(&read, now).await {
                    Followed::Done(r) => r,
                    Followed::Healthy(read) => self.clear_record(&read, now).await,
                };
                let target = &mut report.workloads[i];
                target.status = match followed.status {
                    Status::Recorded | Status::Current => Status::Refreshed,
                    s => s,
                };
                target.error = followed.error.or(target.error.take());
                target.warnings.extend(
                    followed
                        .warnings
                        .into_iter()
                        .filter(|_| followed.status != Status::Following),
                );
                target.changes.extend(
                    followed
                        .changes
                        .into_iter()
                        .filter(|_| followed.status == Status::RolledBack),
                );
                if followed.status == Status::Following {
                    still.push(i);
                }
            }
            open = still;
            if open.is_empty() || self.clock().now() > give_up.unwrap_or(fallback) {
                break;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}
