//! One refresh pass over the cluster: read, enroll, read pull secrets, resolve once
//! per set of pull secrets, plan, patch.
//!
//! Owns the order of a run's side effects and the conflict loop. Every enrolled
//! workload gets at most one strategic-merge patch carrying its `resourceVersion`;
//! on `409 Conflict` the workload is read again, planned again with the same facts,
//! and retried (bounded). A workload whose plan is empty is not written at all, so a
//! run in which nothing changed makes zero writes. Events and log lines follow a
//! successful write. Workloads are grouped by their pull secrets ([`crate::secrets`]):
//! each set gets its own registry client and its own facts, and a workload is planned
//! only with its set's facts. Must not decide anything itself: the core plans, this
//! performs.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use freshet_core::refresh::config::{ClusterConfig, Subject};
use freshet_core::refresh::enroll::EnrollError;
use freshet_core::refresh::plan::{self as core_plan, ImageFacts};
use freshet_core::refresh::schedule;
use freshet_core::refresh::{Change, Enrollment, WorkloadPlan};
use kube::api::{Patch, PatchParams};
use serde::Serialize;

use crate::events::{self, EventType, Regarding};
use crate::facts::Worklist;
use crate::secrets::{self, PullSecret, SecretSets};
use crate::workloads::{self, KINDS, ReadWorkload, WorkloadError, kind_name};

/// The field manager freshet's patches are recorded under.
pub const FIELD_MANAGER: &str = "freshet";

/// Why a run could not be done at all (per-workload failures are in the report).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Listing workloads failed.
    #[error(transparent)]
    List(#[from] WorkloadError),
    /// The run's registry client could not be built.
    #[error("building the registry client failed")]
    Registry(#[source] BoxError),
}

/// A boxed error from the caller's registry factory.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Makes a registry client for one run and one set of pull secrets, which come first
/// in its credential chain (a client memoises its answers, so each run needs fresh
/// ones to see tags move, and each set its own so that no answer crosses sets).
pub type RegistryFactory =
    Arc<dyn Fn(&[PullSecret]) -> Result<freshet_registry::Client, BoxError> + Send + Sync>;

/// What a run learned before planning: per workload its set of pull secrets and the
/// warnings its secrets gave, and per set the facts of its images.
pub(crate) struct Gathered {
    /// Per workload, in the order given: its set's index and its secret warnings.
    pub per_workload: Vec<(usize, Vec<String>)>,
    /// Per set, the facts resolved with its credentials.
    pub facts: Vec<ImageFacts>,
    /// Unique images asked about, summed over the sets.
    pub images: usize,
}

/// A workload by namespace and name (any kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct WorkloadId {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Plan only; write nothing (no patches, no events).
    pub dry_run: bool,
    /// Workloads never touched (freshet's own).
    pub skip: BTreeSet<WorkloadId>,
    /// Only these namespaces (`None`: the config's allowlist, else all).
    pub namespaces: Option<Vec<String>>,
    /// Enrollment rules (the default has none: annotations only).
    pub config: Arc<ClusterConfig>,
    /// Only workloads matching this label selector.
    pub selector: Option<String>,
    /// Images resolved at once.
    pub concurrency: usize,
    /// Re-reads after a `409 Conflict` before giving up on a workload.
    pub conflict_retries: u32,
    /// How often passes run. A workload with a schedule is due in a pass when its
    /// schedule fired within the last `interval` ([`Refresher::run_once_at`]) or since
    /// the previous pass ([`Refresher::run_window`]). `None`: every workload is due.
    pub interval: Option<std::time::Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            skip: BTreeSet::new(),
            namespaces: None,
            config: Arc::default(),
            selector: None,
            concurrency: 16,
            conflict_retries: 5,
            interval: None,
        }
    }
}

/// What happened to one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Changed (or, in a dry run, would be).
    Refreshed,
    /// Only annotations changed (baselines recorded, failure streaks counted or cleared).
    Recorded,
    /// Nothing to do.
    Current,
    /// Skipped: freshet's own workload.
    Skipped,
    /// Its schedule did not fire in this pass's window (see `next_due`).
    NotDue,
    /// A failure streak reached its threshold.
    Escalated,
    /// Its annotations are invalid, or writing failed.
    Failed,
}

/// One change, for output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeReport {
    /// `restart`, `set-image` or `set-env`.
    pub action: &'static str,
    /// The containers affected.
    pub containers: Vec<String>,
    /// The tracked image (for set-env and restart) or the container's image.
    pub image: String,
    /// The env var (set-env only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// Before (a digest, an image, an env value; empty when unset).
    pub from: String,
    /// After.
    pub to: String,
}

/// A failure of an image, for output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureReport {
    /// The image.
    pub image: String,
    /// Failures in a row.
    pub count: u32,
    /// The registry's error (names the host and cause).
    pub message: String,
}

/// What one run did to one workload.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// Spec changes made (or planned, in a dry run).
    pub changes: Vec<ChangeReport>,
    /// Images whose first digest was recorded as a baseline.
    pub baselines: Vec<String>,
    /// Warnings that change nothing.
    pub warnings: Vec<String>,
    /// Failures below the threshold (treated as transient: warned and skipped).
    pub transient: Vec<FailureReport>,
    /// Failures at or above the threshold.
    pub escalations: Vec<FailureReport>,
    /// Whether a patch was sent and accepted.
    pub written: bool,
    /// When its schedule fires next (workloads with a schedule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<String>,
    /// What went wrong (invalid annotations, a refused patch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The overall result of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything refreshed, was current, or failed below its threshold.
    Ok,
    /// Some workload could not be read, planned or written.
    Failed,
    /// A failure streak reached its threshold (takes precedence over `Failed`).
    Escalated,
}

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// A dry run (nothing written).
    pub dry_run: bool,
    /// The run's time (RFC 3339).
    pub at: String,
    /// Unique images asked about (counted once per set of pull secrets).
    pub images: usize,
    /// Enrolled (and skipped) workloads, in kind, namespace, name order.
    pub workloads: Vec<WorkloadReport>,
}

impl RunReport {
    /// The overall result.
    pub fn outcome(&self) -> Outcome {
        if self.workloads.iter().any(|w| w.status == Status::Escalated) {
            Outcome::Escalated
        } else if self.workloads.iter().any(|w| w.status == Status::Failed) {
            Outcome::Failed
        } else {
            Outcome::Ok
        }
    }

    /// How many patches were written.
    pub fn writes(&self) -> usize {
        self.workloads.iter().filter(|w| w.written).count()
    }
}

/// Performs refresh runs with one Kubernetes client and one registry client.
#[derive(Clone)]
pub struct Refresher {
    kube: kube::Client,
    registry: RegistryFactory,
    options: RunOptions,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Refresher {
    /// A refresher; `registry` makes each run's registry client.
    pub fn new(kube: kube::Client, registry: RegistryFactory, options: RunOptions) -> Self {
        Self {
            kube,
            registry,
            options,
        }
    }

    /// One pass, at the current time.
    pub async fn run_once(&self) -> Result<RunReport, RunError> {
        self.run_once_at(&now_rfc3339()).await
    }

    /// The Kubernetes client.
    pub fn kube(&self) -> &kube::Client {
        &self.kube
    }

    /// The options.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// Reads the pull secrets of `workloads`, groups them by set, and resolves each
    /// set's images once with a client of its own. With `targets_at`, also the
    /// digests of the tags set-image moves to (see `resolve_targets`).
    pub(crate) async fn gather(
        &self,
        workloads: &[(&ReadWorkload, &Enrollment)],
        targets_at: Option<&str>,
    ) -> Result<Gathered, RunError> {
        let mut reader = secrets::Reader::new(self.kube.clone());
        let mut sets = SecretSets::default();
        let mut per_workload = Vec::with_capacity(workloads.len());
        for (w, _) in workloads {
            let found = reader.for_workload(w).await;
            per_workload.push((sets.insert(found.secrets), found.warnings));
        }
        let mut facts = Vec::with_capacity(sets.len());
        let mut images = 0;
        for (set, pull_secrets) in sets.iter().enumerate() {
            let members: Vec<(&ReadWorkload, &Enrollment)> = workloads
                .iter()
                .zip(&per_workload)
                .filter(|(_, (s, _))| *s == set)
                .map(|(w, _)| *w)
                .collect();
            let mut worklist = Worklist::default();
            for (w, e) in &members {
                for (reference, policy) in core_plan::tracked_images(&w.workload, e) {
                    worklist.add(&reference, &policy);
                }
            }
            let registry = (self.registry)(pull_secrets).map_err(RunError::Registry)?;
            let mut set_facts = worklist.resolve(&registry, self.options.concurrency).await;
            if let Some(now) = targets_at {
                self.resolve_targets(&registry, &members, &mut set_facts, now)
                    .await;
            }
            images += worklist.len();
            facts.push(set_facts);
        }
        Ok(Gathered {
            per_workload,
            facts,
            images,
        })
    }

    /// The validly enrolled workloads (not skipped), for `status`.
    pub(crate) async fn enrolled(&self) -> Result<Vec<(ReadWorkload, Enrollment)>, RunError> {
        let read = self.read_all().await?;
        Ok(read
            .into_iter()
            .filter_map(|w| {
                let id = WorkloadId {
                    namespace: w.workload.namespace.clone(),
                    name: w.workload.name.clone(),
                };
                if self.options.skip.contains(&id) {
                    return None;
                }
                match self.enroll(&w) {
                    Ok(Some(e)) => Some((w, e)),
                    _ => None,
                }
            })
            .collect())
    }

    /// One pass; `now` (RFC 3339) stamps annotations, restarts and events. Scheduled
    /// workloads are due when their schedule fired within the last
    /// [`RunOptions::interval`] (all are due without one).
    pub async fn run_once_at(&self, now: &str) -> Result<RunReport, RunError> {
        let since = match (self.options.interval, schedule::parse_time(now)) {
            (Some(interval), Ok(t)) => chrono::Duration::from_std(interval)
                .ok()
                .and_then(|d| t.checked_sub_signed(d)),
            _ => None,
        };
        self.run_window(since, now).await
    }

    /// One pass over the window `(since, now]`: a workload with a schedule is due
    /// when its schedule fired in it; `since: None` makes every workload due.
    pub async fn run_window(
        &self,
        since: Option<DateTime<Utc>>,
        now: &str,
    ) -> Result<RunReport, RunError> {
        let now_t = schedule::parse_time(now).ok();
        let read = self.read_all().await?;
        let mut enrolled: Vec<(ReadWorkload, Result<Enrollment, String>)> = Vec::new();
        let mut reports = Vec::new();
        for w in read {
            let id = WorkloadId {
                namespace: w.workload.namespace.clone(),
                name: w.workload.name.clone(),
            };
            match self.enroll(&w) {
                Ok(None) => {}
                Ok(Some(_)) if self.options.skip.contains(&id) => {
                    tracing::info!(namespace = %id.namespace, name = %id.name, "skipping freshet's own workload");
                    reports.push(report(&w, Status::Skipped));
                }
                Ok(Some(e)) => match (&e.schedule, since, now_t) {
                    (Some(s), Some(since), Some(now_t)) if !s.fires_between(since, now_t) => {
                        let mut r = report(&w, Status::NotDue);
                        r.next_due = s.next_after(now_t).map(schedule::format_time);
                        tracing::debug!(
                            namespace = %id.namespace, name = %id.name, schedule = %s,
                            next = r.next_due.as_deref(), "not due in this pass"
                        );
                        reports.push(r);
                    }
                    _ => enrolled.push((w, Ok(e))),
                },
                Err(e) => enrolled.push((w, Err(e.to_string()))),
            }
        }
        let valid: Vec<(&ReadWorkload, &Enrollment)> = enrolled
            .iter()
            .filter_map(|(w, e)| Some((w, e.as_ref().ok()?)))
            .collect();
        let gathered = self.gather(&valid, Some(now)).await?;
        let mut per_workload = gathered.per_workload.into_iter();
        for (w, e) in enrolled {
            let r = match e {
                Ok(e) => {
                    let (set, warnings) =
                        per_workload.next().expect("one entry per valid workload");
                    let mut r = self.refresh(w, e, &gathered.facts[set], now).await;
                    r.warnings.extend(warnings);
                    r
                }
                Err(message) => {
                    tracing::error!(
                        kind = kind_name(w.workload.kind), namespace = %w.workload.namespace,
                        name = %w.workload.name, error = %message, "invalid freshet annotations"
                    );
                    if !self.options.dry_run {
                        let regarding = Regarding {
                            kind: w.workload.kind,
                            namespace: &w.workload.namespace,
                            name: &w.workload.name,
                            uid: w.uid.as_deref(),
                        };
                        self.event(
                            &regarding,
                            EventType::Warning,
                            events::INVALID,
                            &format!("freshet skips this workload: {message}"),
                            now,
                        )
                        .await;
                    }
                    let mut r = report(&w, Status::Failed);
                    r.error = Some(message);
                    r
                }
            };
            reports.push(r);
        }
        reports
            .sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        Ok(RunReport {
            dry_run: self.options.dry_run,
            at: now.to_owned(),
            images: gathered.images,
            workloads: reports,
        })
    }

    /// Second round: the digests of the tags set-image moves to, so the audit
    /// record names the digest a workload moved to. Added to the facts of the
    /// image they move from, keyed by the new tag.
    async fn resolve_targets(
        &self,
        registry: &freshet_registry::Client,
        enrolled: &[(&ReadWorkload, &Enrollment)],
        facts: &mut ImageFacts,
        now: &str,
    ) {
        let mut targets = Worklist::default();
        let mut moves: Vec<(String, String, String)> = Vec::new();
        for (w, e) in enrolled {
            for change in core_plan::plan(&w.workload, e, facts, now).changes {
                let Change::SetImage { from, to, .. } = change else {
                    continue;
                };
                let (Ok(from), Ok(to)) = (
                    freshet_core::Reference::parse(&from),
                    freshet_core::Reference::parse(&to),
                ) else {
                    continue;
                };
                let Some(tag) = to.tag() else { continue };
                if to.digest().is_some() {
                    continue;
                }
                targets.add_digest(&to);
                moves.push((
                    from.without_digest().canonical(),
                    tag.to_owned(),
                    to.canonical(),
                ));
            }
        }
        if targets.is_empty() {
            return;
        }
        let resolved = targets.resolve(registry, self.options.concurrency).await;
        for (image, tag, target) in moves {
            let digest = resolved
                .get(&target)
                .and_then(|f| f.digests.get(&tag))
                .cloned();
            if let (Some(digest), Some(fact)) = (digest, facts.get_mut(&image)) {
                fact.digests.entry(tag).or_insert(digest);
            }
        }
    }

    fn enroll(&self, w: &ReadWorkload) -> Result<Option<Enrollment>, EnrollError> {
        let containers: Vec<(&str, &str)> = w
            .workload
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.image.as_str()))
            .collect();
        self.options.config.enroll(&Subject {
            namespace: &w.workload.namespace,
            labels: &w.labels,
            annotations: &w.workload.annotations,
            containers: &containers,
        })
    }

    async fn read_all(&self) -> Result<Vec<ReadWorkload>, WorkloadError> {
        let selector = self.options.selector.as_deref();
        let mut out = Vec::new();
        for kind in KINDS {
            let namespaces = self.options.namespaces.as_ref().or(self
                .options
                .config
                .namespaces
                .as_ref());
            match namespaces {
                None => out.extend(workloads::list(&self.kube, kind, None, selector).await?),
                Some(namespaces) => {
                    for ns in namespaces {
                        out.extend(workloads::list(&self.kube, kind, Some(ns), selector).await?);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn refresh(
        &self,
        mut current: ReadWorkload,
        mut enrollment: Enrollment,
        facts: &ImageFacts,
        now: &str,
    ) -> WorkloadReport {
        let mut attempt = 0;
        loop {
            let plan = core_plan::plan(&current.workload, &enrollment, facts, now);
            let mut r = report_of(&current, &plan);
            let Some(patch) = plan.patch(&current.workload, now) else {
                log_plan(&current, &plan);
                return r;
            };
            if self.options.dry_run {
                log_plan(&current, &plan);
                return r;
            }
            let w = &current.workload;
            let api = workloads::api(&self.kube, w.kind, Some(&w.namespace));
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            match api.patch(&w.name, &params, &Patch::Strategic(&patch)).await {
                Ok(_) => {
                    log_plan(&current, &plan);
                    r.written = true;
                    self.announce(&current, &plan, now).await;
                    return r;
                }
                Err(kube::Error::Api(s))
                    if s.code == 409 && attempt < self.options.conflict_retries =>
                {
                    attempt += 1;
                    tracing::info!(
                        kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name, attempt,
                        "conflict: the workload changed since it was read; reading it again"
                    );
                    let reread = workloads::get(&self.kube, w.kind, &w.namespace, &w.name).await;
                    match reread.map(|n| {
                        let e = self.enroll(&n);
                        (n, e)
                    }) {
                        Ok((n, Ok(Some(e)))) => {
                            current = n;
                            enrollment = e;
                        }
                        Ok((n, Ok(None))) => return report(&n, Status::Current),
                        Ok((n, Err(e))) => {
                            let mut r = report(&n, Status::Failed);
                            r.error = Some(e.to_string());
                            return r;
                        }
                        Err(e) => {
                            r.status = Status::Failed;
                            r.error = Some(error_chain(&e));
                            return r;
                        }
                    }
                }
                Err(e) => {
                    log_plan(&current, &plan);
                    tracing::error!(
                        kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name,
                        error = %error_chain(&e), "patch failed"
                    );
                    r.status = Status::Failed;
                    r.error = Some(format!("patch failed: {}", error_chain(&e)));
                    return r;
                }
            }
        }
    }

    /// Events and log lines after a successful write.
    async fn announce(&self, read: &ReadWorkload, plan: &WorkloadPlan, now: &str) {
        let w = &read.workload;
        let regarding = Regarding {
            kind: w.kind,
            namespace: &w.namespace,
            name: &w.name,
            uid: read.uid.as_deref(),
        };
        for change in plan.changes.iter().map(change_report) {
            tracing::info!(
                event = events::REFRESHED,
                kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name,
                action = change.action, image = %change.image, containers = ?change.containers,
                var = change.var.as_deref(), from = %change.from, to = %change.to,
                "refreshed"
            );
            let message = match &change.var {
                Some(var) => format!(
                    "{var} on container {} now follows {}: {} -> {}",
                    change.containers.join(","),
                    change.image,
                    if change.from.is_empty() {
                        "(unset)"
                    } else {
                        &change.from
                    },
                    change.to
                ),
                None => format!(
                    "{} {} on containers {}: {} -> {}",
                    change.action,
                    change.image,
                    change.containers.join(","),
                    change.from,
                    change.to
                ),
            };
            self.event(
                &regarding,
                EventType::Normal,
                events::REFRESHED,
                &message,
                now,
            )
            .await;
        }
        for e in &plan.escalations {
            let message = format!(
                "{}: {} resolve failures in a row (threshold reached): {}",
                e.image, e.count, e.message
            );
            self.event(
                &regarding,
                EventType::Warning,
                events::FAILED,
                &message,
                now,
            )
            .await;
        }
    }

    async fn event(
        &self,
        regarding: &Regarding<'_>,
        kind: EventType,
        reason: &'static str,
        message: &str,
        now: &str,
    ) {
        if let Err(e) = events::emit(&self.kube, regarding, kind, reason, message, now).await {
            tracing::warn!(error = %error_chain(&e), "event not recorded");
        }
    }
}

fn report(w: &ReadWorkload, status: Status) -> WorkloadReport {
    WorkloadReport {
        kind: kind_name(w.workload.kind),
        namespace: w.workload.namespace.clone(),
        name: w.workload.name.clone(),
        status,
        changes: Vec::new(),
        baselines: Vec::new(),
        warnings: Vec::new(),
        transient: Vec::new(),
        escalations: Vec::new(),
        written: false,
        next_due: None,
        error: None,
    }
}

/// Logs what a plan found worth telling (once per workload, when its plan is final).
fn log_plan(w: &ReadWorkload, plan: &WorkloadPlan) {
    let id = &w.workload;
    for (image, count, message) in &plan.transient {
        tracing::warn!(
            kind = kind_name(id.kind), namespace = %id.namespace, name = %id.name,
            %image, count, error = %message,
            "resolve failed; treated as transient (below the failure threshold), skipping"
        );
    }
    for e in &plan.escalations {
        tracing::error!(
            kind = kind_name(id.kind), namespace = %id.namespace, name = %id.name,
            image = %e.image, count = e.count, error = %e.message,
            "resolve failed too many times in a row; check egress, the token endpoint, credentials and that the tag exists"
        );
    }
    for warning in &plan.warnings {
        tracing::warn!(kind = kind_name(id.kind), namespace = %id.namespace, name = %id.name, "{warning}");
    }
}

fn report_of(w: &ReadWorkload, plan: &WorkloadPlan) -> WorkloadReport {
    let status = if !plan.escalations.is_empty() {
        Status::Escalated
    } else if !plan.changes.is_empty() {
        Status::Refreshed
    } else if !plan.annotations.is_empty() {
        Status::Recorded
    } else {
        Status::Current
    };
    let failure = |(image, count, message): &(String, u32, String)| FailureReport {
        image: image.clone(),
        count: *count,
        message: message.clone(),
    };
    WorkloadReport {
        status,
        changes: plan.changes.iter().map(change_report).collect(),
        baselines: plan.baselines.clone(),
        warnings: plan.warnings.clone(),
        transient: plan.transient.iter().map(failure).collect(),
        escalations: plan
            .escalations
            .iter()
            .map(|e| FailureReport {
                image: e.image.clone(),
                count: e.count,
                message: e.message.clone(),
            })
            .collect(),
        ..report(w, status)
    }
}

fn change_report(change: &Change) -> ChangeReport {
    match change {
        Change::Restart {
            image,
            containers,
            from,
            to,
        } => ChangeReport {
            action: "restart",
            containers: containers.clone(),
            image: image.clone(),
            var: None,
            from: from.to_string(),
            to: to.to_string(),
        },
        Change::SetImage {
            container,
            from,
            to,
            ..
        } => ChangeReport {
            action: "set-image",
            containers: vec![container.clone()],
            image: from.clone(),
            var: None,
            from: from.clone(),
            to: to.clone(),
        },
        Change::SetEnv {
            container,
            var,
            from,
            to,
            image,
            ..
        } => ChangeReport {
            action: "set-env",
            containers: vec![container.clone()],
            image: image.clone(),
            var: Some(var.clone()),
            from: from.clone().unwrap_or_default(),
            to: to.clone(),
        },
    }
}

/// An error and its sources, joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The current time, RFC 3339 in UTC to the second.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    //! The conflict loop against the test bed: a workload read before someone else
    //! wrote it gets a 409, is read again, planned again and patched.

    use std::collections::BTreeMap;

    use freshet_apiserver::images::FakeResolver;
    use freshet_apiserver::{ClusterOptions, TestCluster};
    use freshet_core::Digest;
    use freshet_core::policy::Facts;
    use freshet_core::refresh::WorkloadKind;
    use kube::api::{DynamicObject, PostParams};
    use serde_json::json;

    use super::*;

    const IMAGE: &str = "registry.example/team/api:stable";

    async fn setup(annotations: serde_json::Value) -> (TestCluster, kube::Client) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cluster = TestCluster::start(
            ClusterOptions::default().resolver(Arc::new(FakeResolver::default())),
        )
        .await
        .unwrap();
        let kc: kube::config::Kubeconfig =
            serde_json::from_value(cluster.admin_kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": IMAGE, "imagePullPolicy": "Always"}]}}}
        }))
        .unwrap();
        workloads::api(&client, WorkloadKind::Deployment, Some("default"))
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        (cluster, client)
    }

    fn facts(digest: &str) -> ImageFacts {
        let mut f = Facts::default();
        f.digests
            .insert("stable".into(), Ok(Digest::parse(digest).unwrap()));
        BTreeMap::from([(IMAGE.to_owned(), f)])
    }

    async fn someone_else_writes(client: &kube::Client) {
        let patch = json!({"metadata": {"labels": {"touched": "yes"}}});
        workloads::api(client, WorkloadKind::Deployment, Some("default"))
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    fn refresher(client: &kube::Client, retries: u32) -> Refresher {
        Refresher::new(
            client.clone(),
            Arc::new(|_: &[PullSecret]| Ok(freshet_registry::Client::anonymous()?)),
            RunOptions {
                conflict_retries: retries,
                ..RunOptions::default()
            },
        )
    }

    #[tokio::test]
    async fn a_conflict_is_read_again_planned_again_and_retried() {
        let old = format!("sha256:{}", "1".repeat(64));
        let new = format!("sha256:{}", "2".repeat(64));
        let refreshed = json!({IMAGE: {"digest": old, "at": "2026-11-23T09:00:00Z"}}).to_string();
        let (_cluster, client) =
            setup(json!({"freshet.io/policy": "digest", "freshet.io/refreshed": refreshed})).await;
        let stale = workloads::get(&client, WorkloadKind::Deployment, "default", "web")
            .await
            .unwrap();
        someone_else_writes(&client).await;
        let r = refresher(&client, 3);
        let enrollment = r.enroll(&stale).unwrap().unwrap();
        let report = r
            .refresh(stale, enrollment, &facts(&new), "2026-11-23T10:00:00Z")
            .await;
        assert_eq!(report.status, Status::Refreshed, "{report:#?}");
        assert!(report.written);
        let now = workloads::get(&client, WorkloadKind::Deployment, "default", "web")
            .await
            .unwrap();
        assert!(
            now.workload.annotations["freshet.io/refreshed"].contains(&new),
            "{now:?}"
        );
        assert_eq!(
            now.labels["touched"], "yes",
            "the other writer's field is kept"
        );
    }

    #[tokio::test]
    async fn conflicts_beyond_the_retry_budget_fail_the_workload() {
        let (_cluster, client) = setup(json!({"freshet.io/policy": "digest"})).await;
        let stale = workloads::get(&client, WorkloadKind::Deployment, "default", "web")
            .await
            .unwrap();
        someone_else_writes(&client).await;
        let r = refresher(&client, 0);
        let enrollment = r.enroll(&stale).unwrap().unwrap();
        let report = r
            .refresh(
                stale,
                enrollment,
                &facts(&format!("sha256:{}", "3".repeat(64))),
                "2026-11-23T10:00:00Z",
            )
            .await;
        assert_eq!(report.status, Status::Failed, "{report:#?}");
        assert!(!report.written);
        assert!(
            report.error.as_deref().unwrap().contains("409")
                || report.error.as_deref().unwrap().contains("onflict"),
            "{report:?}"
        );
    }
}
