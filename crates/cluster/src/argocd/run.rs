//! The Applications' half of a pass: configure, prepare, gather the facts once, then
//! write each Application (`argocd`) or hand it to the batched Git write-back (`git`).
//!
//! Owns the order and the conflict loop: an `argocd` write-back is one merge patch
//! carrying the Application's `resourceVersion`; on `409 Conflict` the Application is
//! read again, configured, prepared and planned again with the same facts, and retried
//! (bounded by [`crate::PassOptions::conflict_retries`]). An Application whose
//! configuration is invalid gets a Warning Event and a failed report and nothing
//! else is written; an Application nothing configures is not touched at all. Must not
//! decide anything: the plan and the patch are the core's.

use freshet_core::argocd::Write;
use freshet_core::argocd::gitfile::override_file_name;
use freshet_core::argocd::patch::{AppPatch, argocd_patch};
use freshet_core::argocd::source::{SourceKind, git_place};
use freshet_core::argocd::writeback::{Context, ImageChange, Method};
use freshet_core::refresh::{ImageFacts, Timestamp};

use super::git::GitJob;
use super::list::{self, App};
use super::plan::{AppPlan, Configured, Prepared, configure, plan, prepare};
use super::{Read, report, write};
use crate::errors::error_chain;
use crate::pass::Refresher;
use crate::report::{ChangeReport, Status, WorkloadReport};

/// The report of a plan before anything is written.
fn report_of(app: &App, plan: &AppPlan, warnings: &[String]) -> WorkloadReport {
    let status = if !plan.escalations.is_empty() {
        Status::Escalated
    } else if !plan.updates.is_empty() {
        Status::Refreshed
    } else if !plan.annotations.is_empty() {
        Status::Recorded
    } else {
        Status::Current
    };
    let mut r = report(app, status);
    r.warnings = plan.warnings.clone();
    r.warnings.extend(warnings.iter().cloned());
    r.transient = plan.transient.clone();
    r.escalations = plan.escalations.clone();
    r
}

/// The report's changes: one per field written.
fn changes(
    plan: &AppPlan,
    fields: &[(String, Option<String>, String)],
    action: &'static str,
) -> Vec<ChangeReport> {
    let images: Vec<&str> = plan.updates.iter().map(|u| u.image.as_str()).collect();
    fields
        .iter()
        .map(|(field, old, new)| ChangeReport {
            action,
            containers: vec![field.clone()],
            image: images.join(","),
            var: None,
            from: old.clone().unwrap_or_default(),
            to: new.clone(),
        })
        .collect()
}

/// The error of a patch that failed for good; a conflict says that every re-read
/// found the Application changed again.
fn patch_failed(e: &write::AppWriteError, attempt: u32) -> String {
    let message = error_chain(e);
    if e.is_transient() {
        format!(
            "{message} (read again {attempt} times, and another writer changed it each time; nothing was written, the next pass tries again)"
        )
    } else {
        message
    }
}

fn failed(app: &App, message: String) -> WorkloadReport {
    WorkloadReport {
        error: Some(message),
        ..report(app, Status::Failed)
    }
}

impl Refresher {
    /// The Applications' half of a pass at `now`: their reports, and how many unique
    /// images were asked about.
    pub(crate) async fn argocd_pass(
        &self,
        read: Read,
        now: Timestamp,
    ) -> (Vec<WorkloadReport>, usize) {
        let mut reports = Vec::new();
        let mut ready: Vec<(App, Prepared)> = Vec::new();
        for app in read.apps {
            match self.argocd_prepare(&app, &read.updaters) {
                None => {}
                Some(Ok(p)) => ready.push((app, p)),
                Some(Err(message)) => reports.push(self.argocd_invalid(&app, message).await),
            }
        }
        let refs: Vec<(&App, &Prepared)> = ready.iter().map(|(a, p)| (a, p)).collect();
        let facts = match self.argocd_facts(&refs).await {
            Ok(f) => f,
            Err(e) => {
                let message = error_chain(&e);
                reports.extend(ready.iter().map(|(a, _)| failed(a, message.clone())));
                return (reports, 0);
            }
        };
        let mut jobs = Vec::new();
        for ((app, prepared), (set, warnings)) in ready.into_iter().zip(facts.per_app) {
            let f = &facts.facts[set];
            match prepared.config.write_back.method {
                Method::Argocd => {
                    reports.push(self.argocd_write(app, prepared, f, &warnings, now).await)
                }
                Method::Git { .. } => match self.git_job(app, prepared, f, warnings, now) {
                    Ok(job) => jobs.push(job),
                    Err(r) => reports.push(self.argocd_report_failed(*r).await),
                },
            }
        }
        reports.extend(self.argocd_git(jobs).await);
        (reports, facts.images)
    }

    /// `None`: not managed; else its preparation or what to fix.
    fn argocd_prepare(
        &self,
        app: &App,
        updaters: &[freshet_core::argocd::crd::ImageUpdater],
    ) -> Option<Result<Prepared, String>> {
        match configure(app, updaters) {
            Configured::Unmanaged => None,
            Configured::Invalid(message) => Some(Err(message)),
            Configured::Valid(config) => Some(prepare(app, *config)),
        }
    }

    async fn argocd_invalid(&self, app: &App, message: String) -> WorkloadReport {
        if !self.options().dry_run {
            write::warn(self.writer().events(), app, &[], Some(&message)).await;
        } else {
            tracing::error!(kind = super::KIND, namespace = %app.namespace, name = %app.name, error = %message, "Application not updated");
        }
        failed(app, message)
    }

    /// Sends the Events of a failed report made before anything was written.
    pub(crate) async fn argocd_report_failed(&self, r: (App, WorkloadReport)) -> WorkloadReport {
        let (app, r) = r;
        if !self.options().dry_run {
            write::warn(
                self.writer().events(),
                &app,
                &r.warnings,
                r.error.as_deref(),
            )
            .await;
        }
        r
    }

    /// Plans and patches one Application (`argocd` write-back); on a conflict, reads
    /// it again and re-plans.
    async fn argocd_write(
        &self,
        mut app: App,
        mut prepared: Prepared,
        facts: &ImageFacts,
        extra: &[String],
        now: Timestamp,
    ) -> WorkloadReport {
        let mut attempt = 0;
        loop {
            let plan = plan(&app, &prepared, facts, now);
            let mut r = report_of(&app, &plan, extra);
            let writes: Vec<Write<'_>> = plan
                .updates
                .iter()
                .map(|u| Write {
                    image: &prepared.config.images[u.index],
                    new: &u.new,
                })
                .collect();
            let patch: Option<AppPatch> = match argocd_patch(&app.value, &prepared.source, &writes)
            {
                Ok(p) => p,
                Err(e) => {
                    return self
                        .argocd_report_failed((
                            app.clone(),
                            WorkloadReport {
                                error: Some(e.to_string()),
                                status: Status::Failed,
                                ..r
                            },
                        ))
                        .await;
                }
            };
            let action = match prepared.source.kind {
                SourceKind::Kustomize => "set-kustomize-image",
                _ => "set-helm-parameter",
            };
            if let Some(p) = &patch {
                let fields: Vec<_> = p
                    .changes
                    .iter()
                    .map(|c| (c.field.clone(), c.old.clone(), c.new.clone()))
                    .collect();
                r.changes = changes(&plan, &fields, action);
                r.warnings
                    .extend(p.warnings.iter().map(ToString::to_string));
            } else if r.status == Status::Refreshed {
                r.status = Status::Current;
            }
            let body = write::with_annotations(patch.map(|p| p.merge_patch), &plan.annotations);
            let Some(body) = body.filter(|_| !self.options().dry_run) else {
                return r;
            };
            match write::patch(self.kube(), &app, &body).await {
                Ok(()) => {
                    r.written = true;
                    let events = self.writer().events();
                    if !r.changes.is_empty() {
                        write::announce(events, &app, &plan, "argocd").await;
                    } else {
                        write::announce(
                            events,
                            &app,
                            &AppPlan {
                                updates: Vec::new(),
                                ..plan.clone()
                            },
                            "argocd",
                        )
                        .await;
                    }
                    write::warn(events, &app, &r.warnings, None).await;
                    return r;
                }
                Err(e) if e.is_transient() && attempt < self.options().conflict_retries => {
                    attempt += 1;
                    tracing::info!(kind = super::KIND, namespace = %app.namespace, name = %app.name, attempt, "conflict: the Application changed since it was read; reading it again");
                    match self.argocd_reread(&app).await {
                        Ok((a, p)) => (app, prepared) = (a, p),
                        Err(r) => return *r,
                    }
                }
                Err(e) => {
                    let message = patch_failed(&e, attempt);
                    tracing::error!(kind = super::KIND, namespace = %app.namespace, name = %app.name, error = %message, "patch failed");
                    return WorkloadReport {
                        error: Some(message),
                        status: Status::Failed,
                        ..r
                    };
                }
            }
        }
    }

    /// The Application read again after a conflict, configured and prepared; `Err` is
    /// the report that ends it (gone from management, invalid now, or unreadable).
    async fn argocd_reread(&self, app: &App) -> Result<(App, Prepared), Box<WorkloadReport>> {
        let again = match list::get(self.kube(), &app.namespace, &app.name).await {
            Ok(a) => a,
            Err(e) => return Err(Box::new(failed(app, error_chain(&e)))),
        };
        let read = self.argocd_read().await;
        match self.argocd_prepare(&again, &read.updaters) {
            None => Err(Box::new(report(&again, Status::Current))),
            Some(Ok(p)) => Ok((again, p)),
            Some(Err(message)) => Err(Box::new(self.argocd_invalid(&again, message).await)),
        }
    }

    /// A `git` write-back's job: where it commits and the branch it pushes to; `Err`
    /// is the failed report (with its Application) when the branch template does not
    /// render or the place cannot be resolved.
    fn git_job(
        &self,
        app: App,
        prepared: Prepared,
        facts: &ImageFacts,
        extra: Vec<String>,
        now: Timestamp,
    ) -> Result<GitJob, Box<(App, WorkloadReport)>> {
        let plan = plan(&app, &prepared, facts, now);
        let r = report_of(&app, &plan, &extra);
        let fail = |app: App, r: WorkloadReport, message: String| {
            Err(Box::new((
                app,
                WorkloadReport {
                    error: Some(message),
                    status: Status::Failed,
                    ..r
                },
            )))
        };
        let wb = &prepared.config.write_back;
        let file = override_file_name(
            &app.name,
            &app.namespace,
            self.options().argocd.controller_namespace.as_deref(),
        );
        let place = match git_place(&app.value, &prepared.source, wb, &file) {
            Ok(p) => p,
            Err(e) => return fail(app, r, e.to_string()),
        };
        let push_to = match &wb.branch.write {
            None => place.checkout.clone(),
            Some(template) => {
                let ctx = Context {
                    app_name: app.name.clone(),
                    app_namespace: app.namespace.clone(),
                    target_key: place.target_key.clone(),
                    changes: plan
                        .updates
                        .iter()
                        .map(|u| {
                            let image = &prepared.config.images[u.index];
                            let (old_tag, old_digest) = freshet_core::argocd::patch::current_tag(
                                &app.value,
                                &prepared.source,
                                image,
                            );
                            ImageChange::new(
                                &u.new.name,
                                image.label(),
                                (old_tag.as_deref(), old_digest.as_ref()),
                                (u.new.tag.as_deref(), u.new.digest.as_ref()),
                            )
                        })
                        .collect(),
                };
                match template.render(&ctx) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        return fail(
                            app,
                            r,
                            format!("annotation argocd-image-updater.argoproj.io/git-branch: {e}"),
                        );
                    }
                }
            }
        };
        Ok(GitJob {
            app,
            prepared,
            plan,
            place,
            push_to,
            report: r,
        })
    }
}

impl Refresher {
    /// The worklist rows of the managed Applications (`freshet status`): per followed
    /// image, what it is at, what the next pass would write, and its failure streak.
    pub(crate) async fn argocd_status(
        &self,
        now: Timestamp,
    ) -> Result<Vec<crate::status::ImageStatus>, crate::gather::GatherError> {
        let read = self.argocd_read().await;
        let ready: Vec<(&App, Prepared)> = read
            .apps
            .iter()
            .filter_map(|a| Some((a, self.argocd_prepare(a, &read.updaters)?.ok()?)))
            .collect();
        let refs: Vec<(&App, &Prepared)> = ready.iter().map(|(a, p)| (*a, p)).collect();
        let facts = self.argocd_facts(&refs).await?;
        let mut rows = Vec::new();
        for ((app, prepared), (set, warnings)) in ready.iter().zip(&facts.per_app) {
            let p = plan(app, prepared, &facts.facts[*set], now);
            let recorded = freshet_core::refresh::audit::Audit::read(&app.annotations);
            for t in &prepared.tracked {
                let image = t.reference.canonical();
                let update = p.updates.iter().find(|u| u.index == t.index);
                let failing = p
                    .transient
                    .iter()
                    .chain(&p.escalations)
                    .find(|s| s.image == image);
                let record = recorded.refreshed.get(&image);
                rows.push(crate::status::ImageStatus {
                    kind: super::KIND,
                    namespace: app.namespace.clone(),
                    name: app.name.clone(),
                    containers: Vec::new(),
                    image: image.clone(),
                    policy: t.policy.to_string(),
                    digest: record.map(|r| r.digest.clone()),
                    last_refresh: record.map(|r| r.at.clone()),
                    target: update.map(|u| u.to.clone()),
                    pending: update.is_some(),
                    failures: failing.map_or(0, |s| s.count),
                    last_error: p.audit.last_error.clone(),
                    error: failing.map(|s| s.message.clone()),
                    warnings: warnings.clone(),
                    schedule: None,
                    next_due: None,
                    runs: Vec::new(),
                    queued: None,
                    queued_until: None,
                });
            }
        }
        Ok(rows)
    }
}
