//! One refresh pass over the cluster: gather the facts, plan each workload, write.
//!
//! Owns the order of a pass and its conflict loop. The facts come from the
//! [`Gatherer`] (workloads, enrollment, pull secrets, registry answers, grouped by
//! set of pull secrets so a workload is planned only with its set's facts); the due
//! decision from the core's [`Window`]; each plan from the core's [`plan`]; the
//! writes go through the one [`Writer`]. Every enrolled workload gets at most one
//! patch carrying its `resourceVersion`; on `409 Conflict` the workload is read
//! again, planned again with the same facts, and retried (bounded). A workload whose
//! plan is empty is not written at all, so a pass in which nothing changed makes
//! zero writes. Argo CD Applications are read, planned and written in the same pass
//! ([`crate::argocd`]), after the workloads. The time comes from the [`Clock`] (or the caller), never from the
//! system directly. Must not decide anything itself: the core plans, this performs.

use std::collections::BTreeSet;
use std::sync::Arc;

use freshet_core::refresh::config::ClusterConfig;
use freshet_core::refresh::{
    Due, Enrollment, ImageFacts, RunsFacts, Timestamp, Window, WorkloadPlan,
};

use crate::clock::{SharedClock, SystemClock};
use crate::errors::error_chain;
use crate::gather::{GatherError, Gatherer, RegistryFactory, Scope, WorkloadId};
use crate::metrics::api::ApiWrites;
use crate::observer::{self, PassObserver};
use crate::report::{PassReport, Status, WorkloadReport, log_plan};
use crate::workloads::{ReadWorkload, kind_name};
use crate::writer::{WriteError, Writer};

/// Why a pass could not be done at all (per-workload failures are in the report).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// Its facts could not be gathered (workloads not listed, no registry client).
    #[error(transparent)]
    Gather(#[from] GatherError),
}

/// How passes behave.
#[derive(Debug, Clone)]
pub struct PassOptions {
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
    /// This replica's name, as the reporting instance of its Events.
    pub instance: String,
    /// Argo CD Applications ([`crate::argocd`]).
    pub argocd: crate::argocd::ArgoOptions,
    /// How long a rollout may take before it counts as failed (`None`: the
    /// Deployment's `progressDeadlineSeconds`, else 10 minutes).
    pub health_timeout: Option<std::time::Duration>,
    /// freshet's own namespace, where the pacing state is kept.
    pub state_namespace: String,
    /// Record every rollout a pass starts (`freshet.io/rollout`), follow it in the
    /// next passes and roll it back when it fails. The CLI always sets it; the
    /// library default is off, so a caller that does not look at its rollouts
    /// (and the refresh's own tests) keeps the plain refresh.
    pub follow_rollouts: bool,
    /// Where the writer counts its API writes (`Metrics::api_writes`).
    pub api_writes: ApiWrites,
}

impl Default for PassOptions {
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
            instance: crate::events::COMPONENT.into(),
            argocd: crate::argocd::ArgoOptions::default(),
            health_timeout: None,
            state_namespace: "freshet".into(),
            follow_rollouts: false,
            api_writes: ApiWrites::default(),
        }
    }
}

/// Performs refresh passes with one Kubernetes client, a registry client factory and
/// a clock. Clones share the writer (and so the memory of Events for series).
#[derive(Clone)]
pub struct Refresher {
    kube: kube::Client,
    gatherer: Gatherer,
    writer: Writer,
    options: PassOptions,
    clock: SharedClock,
    observers: Vec<Arc<dyn PassObserver>>,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher")
            .field("options", &self.options)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// A workload a pass plans: valid enrollment, or the message of an invalid one.
type Candidate = (ReadWorkload, Result<Enrollment, String>);

impl Refresher {
    /// A refresher on the wall clock; `registry` makes each pass's registry clients.
    pub fn new(kube: kube::Client, registry: RegistryFactory, options: PassOptions) -> Self {
        let scope = Scope {
            namespaces: options.namespaces.clone(),
            selector: options.selector.clone(),
            skip: options.skip.clone(),
        };
        let gatherer = Gatherer::new(
            kube.clone(),
            registry,
            options.config.clone(),
            scope,
            options.concurrency,
        );
        Self {
            writer: Writer::new(kube.clone(), &options.instance)
                .counting(options.api_writes.clone()),
            kube,
            gatherer,
            options,
            clock: Arc::new(SystemClock),
            observers: Vec::new(),
        }
    }

    /// The same refresher telling `observer` about every pass.
    pub fn with_observer(mut self, observer: Arc<dyn PassObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The same refresher reading the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.writer = self.writer.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// The Kubernetes client.
    pub fn kube(&self) -> &kube::Client {
        &self.kube
    }

    /// The options.
    pub fn options(&self) -> &PassOptions {
        &self.options
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) fn gatherer(&self) -> &Gatherer {
        &self.gatherer
    }

    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// One pass, at the clock's time.
    pub async fn run_once(&self) -> Result<PassReport, PassError> {
        self.run_once_at(self.clock.now()).await
    }

    /// One pass at `now`, which stamps annotations, restarts and reports. Scheduled
    /// workloads are due when their schedule fired within the last
    /// [`PassOptions::interval`] (all are due without one).
    pub async fn run_once_at(&self, now: Timestamp) -> Result<PassReport, PassError> {
        self.run_window(Window::last(self.options.interval, now))
            .await
    }

    /// One pass over `window`: a workload with a schedule is due when its schedule
    /// fired in it.
    pub async fn run_window(&self, window: Window) -> Result<PassReport, PassError> {
        self.run_in(window, None).await
    }

    /// A pass over `window` limited to the due workloads that track one of
    /// `repositories` (`registry/repository`, e.g. `ghcr.io/acme/api`): a registry
    /// webhook's re-check. Its report lists only those workloads.
    pub async fn run_focused(
        &self,
        window: Window,
        repositories: &BTreeSet<String>,
    ) -> Result<PassReport, PassError> {
        self.run_in(window, Some(repositories)).await
    }

    async fn run_in(
        &self,
        window: Window,
        focus: Option<&BTreeSet<String>>,
    ) -> Result<PassReport, PassError> {
        let now = window.now;
        let (mut candidates, mut reports) = self.classify(window).await?;
        if let Some(focus) = focus {
            candidates.retain(|(w, e)| e.as_ref().is_ok_and(|e| observer::tracks(w, e, focus)));
            reports.clear();
        } else {
            let tracked = observer::tracked(&candidates);
            self.observers.iter().for_each(|o| o.tracked(&tracked));
        }
        let valid: Vec<(&ReadWorkload, &Enrollment)> = candidates
            .iter()
            .filter_map(|(w, e)| Some((w, e.as_ref().ok()?)))
            .collect();
        let gathered = self.gatherer.facts(&valid, Some(now)).await?;
        let read: Vec<&ReadWorkload> = valid.iter().map(|(w, _)| *w).collect();
        let reader = crate::observed::Reader::new(self.kube.clone());
        let observed = match focus {
            None => reader.read(&read).await,
            Some(_) => reader.read_selected(&read).await,
        };
        let nodes = observed.node_index();
        let argo = self.argocd_read().await;
        let mut per_workload = gathered.per_workload.into_iter();
        let mut gated = self.pending();
        for (w, e) in candidates {
            let r = match e {
                Ok(e) => {
                    let (set, warnings) =
                        per_workload.next().expect("one entry per valid workload");
                    let runs =
                        crate::observed::runs_facts(&observed, &nodes, &w, &gathered.targets[set]);
                    let mut warnings = warnings;
                    warnings.extend(self.argocd_guard(&w, &argo).await);
                    let facts = (set, &gathered.facts[set]);
                    match self
                        .triage(w, e, facts, runs, warnings, now, &mut gated)
                        .await
                    {
                        Some(r) => r,
                        None => continue,
                    }
                }
                Err(message) => self.invalid(&w, message).await,
            };
            reports.push(r);
        }
        reports.extend(self.release(gated, &gathered.facts, now).await);
        let (apps, app_images) = self.argocd_pass(argo, now).await;
        reports.extend(apps);
        reports
            .sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        let report = PassReport {
            dry_run: self.options.dry_run,
            at: now,
            images: gathered.images + app_images,
            workloads: reports,
        };
        self.observers.iter().for_each(|o| o.report(&report));
        Ok(report)
    }

    /// Reads and enrolls the workloads: those to plan (valid or not), and the
    /// reports of those skipped (freshet's own) or not due in `window`.
    async fn classify(
        &self,
        window: Window,
    ) -> Result<(Vec<Candidate>, Vec<WorkloadReport>), PassError> {
        let mut candidates = Vec::new();
        let mut reports = Vec::new();
        let read = self.gatherer.workloads().await.map_err(GatherError::from)?;
        for w in read {
            match self.gatherer.enroll(&w) {
                Ok(None) => {}
                Ok(Some(_)) if self.gatherer.skips(&w) => {
                    tracing::info!(namespace = %w.workload.namespace, name = %w.workload.name, "skipping freshet's own workload");
                    reports.push(WorkloadReport::new(&w, Status::Skipped));
                }
                Ok(Some(e)) => match window.due(e.schedule.as_ref()) {
                    Due::Yes => candidates.push((w, Ok(e))),
                    Due::No { next } => {
                        tracing::debug!(
                            namespace = %w.workload.namespace, name = %w.workload.name,
                            schedule = ?e.schedule.as_ref().map(|s| s.to_string()),
                            next = ?next.map(|t| t.to_string()), "not due in this pass"
                        );
                        let mut r = WorkloadReport::new(&w, Status::NotDue);
                        r.next_due = next;
                        reports.push(r);
                    }
                },
                Err(e) => candidates.push((w, Err(e.to_string()))),
            }
        }
        Ok((candidates, reports))
    }

    /// A workload whose annotations are invalid: logged, a Warning Event, failed.
    async fn invalid(&self, w: &ReadWorkload, message: String) -> WorkloadReport {
        tracing::error!(
            kind = kind_name(w.workload.kind), namespace = %w.workload.namespace,
            name = %w.workload.name, error = %message, "invalid freshet annotations"
        );
        if !self.options.dry_run {
            self.writer.invalid(w, &message).await;
        }
        WorkloadReport::failed(w, message)
    }

    /// Plans and writes one workload; on a conflict, reads it again and re-plans.
    pub(crate) async fn refresh(
        &self,
        mut current: ReadWorkload,
        mut enrollment: Enrollment,
        facts: &ImageFacts,
        runs: Option<&RunsFacts<'_>>,
        now: Timestamp,
    ) -> WorkloadReport {
        let mut attempt = 0;
        loop {
            let plan = match self.guarded(&current, &enrollment, facts, runs, now) {
                Ok(plan) => plan,
                Err(message) => return WorkloadReport::failed(&current, message),
            };
            let checked = match crate::gate::check(&current, plan, now) {
                Ok(checked) => checked,
                Err(message) => return self.invalid(&current, message).await,
            };
            if !self.options.dry_run {
                checked.announce(&self.writer, &current).await;
            }
            let plan = checked.plan.clone();
            let mut r = WorkloadReport::of_plan(&current, &plan);
            r.warnings.extend(checked.warnings());
            r.notices.extend(checked.notices());
            if self.options.dry_run || plan.is_empty() {
                log_plan(&current, &plan);
                return r;
            }
            match self.writer.patch(&current.workload, &plan, now).await {
                Ok(written) => {
                    log_plan(&current, &plan);
                    r.written = written;
                    self.writer.announce(&current, &plan).await;
                    return r;
                }
                Err(e) if e.is_transient() && attempt < self.options.conflict_retries => {
                    attempt += 1;
                    let w = &current.workload;
                    tracing::info!(
                        kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name, attempt,
                        "conflict: the workload changed since it was read; reading it again"
                    );
                    match self.reread(&current, r).await {
                        Ok((n, e)) => {
                            current = n;
                            enrollment = e;
                        }
                        Err(report) => return *report,
                    }
                }
                Err(e) => return self.write_failed(&current, &plan, r, &e),
            }
        }
    }

    /// The workload read again with its enrollment, or the report that ends it (`r`,
    /// failed, when it cannot be read).
    async fn reread(
        &self,
        current: &ReadWorkload,
        mut r: WorkloadReport,
    ) -> Result<(ReadWorkload, Enrollment), Box<WorkloadReport>> {
        match self.gatherer.reread(current).await {
            Ok(n) => match self.gatherer.enroll(&n) {
                Ok(Some(e)) => Ok((n, e)),
                Ok(None) => Err(Box::new(WorkloadReport::new(&n, Status::Current))),
                Err(e) => Err(Box::new(WorkloadReport::failed(&n, e.to_string()))),
            },
            Err(e) => {
                r.status = Status::Failed;
                r.error = Some(error_chain(&e));
                Err(Box::new(r))
            }
        }
    }

    fn write_failed(
        &self,
        current: &ReadWorkload,
        plan: &WorkloadPlan,
        mut r: WorkloadReport,
        e: &WriteError,
    ) -> WorkloadReport {
        log_plan(current, plan);
        let w = &current.workload;
        tracing::error!(
            kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name,
            error = %error_chain(e), "patch failed"
        );
        r.status = Status::Failed;
        r.error = Some(match e {
            WriteError::Patch { .. } => error_chain(e),
            WriteError::Conflict { source, .. } => {
                format!("patch failed: {}", error_chain(source))
            }
        });
        r
    }
}

#[cfg(test)]
mod tests;
