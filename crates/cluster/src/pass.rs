//! One refresh pass over the cluster: gather the facts, plan each workload, write.
//!
//! Owns the order of a pass and its conflict loop. The facts come from the
//! [`Gatherer`] (workloads page by page, or from the watched store; enrollment;
//! pull secrets; registry answers asked as each page arrives, grouped by set of
//! pull secrets so a workload is planned only with its set's facts); what runs
//! ([`crate::observed`]) and the Argo CD objects are read while the registries
//! answer; the due decision comes from the core's [`Window`], each plan from the
//! core's [`plan`]; the writes go through the one [`Writer`], at most
//! [`PassOptions::max_writes`] workloads at a time, each write within
//! [`PassOptions::write_timeout`]. Every enrolled workload gets at most one patch
//! carrying its `resourceVersion`; on `409 Conflict` (or a timeout, after which the
//! patch may or may not have applied) the workload is read again, planned again
//! with the same facts, and retried (bounded). A workload whose plan is empty is
//! not written at all, so a pass in which nothing changed makes zero writes. Argo
//! CD Applications are planned and written in the same pass ([`crate::argocd`]),
//! after the workloads. The time comes from the [`Clock`] (or the caller), never
//! from the system directly. Must not decide anything itself: the core plans, this
//! performs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use freshet_core::refresh::config::ClusterConfig;
use freshet_core::refresh::{
    Due, Enrollment, ImageFacts, RunsFacts, Timestamp, Window, WorkloadPlan,
};

use crate::api_count::ApiCounter;
use crate::clock::{SharedClock, SystemClock};
use crate::errors::error_chain;
use crate::gather::{GatherError, Gatherer, RegistryFactory, Scope, WorkloadId};
use crate::metrics::api::ApiWrites;
use crate::observer::{self, PassObserver};
use crate::report::{PassReport, PassRequests, Status, WorkloadReport, log_plan};
use crate::watch::WorkloadStore;
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
    /// Workloads written (patch and Events) at once at most.
    pub max_writes: usize,
    /// The longest a patch or an Event may take.
    pub write_timeout: Duration,
    /// Workloads per page when listing.
    pub page_size: u32,
}

/// The most writes in flight a caller may ask for.
pub const MAX_WRITES_LIMIT: usize = 256;

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
            max_writes: 16,
            write_timeout: Duration::from_secs(30),
            page_size: crate::workloads::PAGE_SIZE,
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
    api: Option<ApiCounter>,
    /// The controller's watched pods, owners and nodes (`None`: listed per pass).
    observed: Option<crate::observed::store::ObservedStore>,
    /// The controller's watched Argo CD objects (`None`: listed per pass).
    argo: Option<crate::argocd::store::ArgoStore>,
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
/// Thousands are kept at once, so the enrollment is shared between the workloads
/// that have the same one ([`Enrollments`]) and the workload with the
/// controller's store (each copied only when its plan runs).
type Candidate = (Arc<ReadWorkload>, Result<Arc<Enrollment>, String>);

/// The distinct enrollments a pass has seen lately, to share: workloads enrolled
/// by the same rule or the same annotations (most of a cluster) hold one copy,
/// not one each.
#[derive(Default)]
struct Enrollments {
    recent: Vec<Arc<Enrollment>>,
    next: usize,
}

impl Enrollments {
    /// Distinct enrollments compared with each new one at most.
    const KEPT: usize = 16;

    /// `e`, or an equal enrollment seen lately.
    fn share(&mut self, e: Enrollment) -> Arc<Enrollment> {
        if let Some(same) = self.recent.iter().find(|r| ***r == e) {
            return same.clone();
        }
        let e = Arc::new(e);
        if self.recent.len() < Self::KEPT {
            self.recent.push(e.clone());
        } else {
            self.recent[self.next] = e.clone();
            self.next = (self.next + 1) % Self::KEPT;
        }
        e
    }
}

/// What a pass does with one candidate once the facts are in.
enum Job {
    /// Plan and write it with its set's facts (set index, secret warnings).
    Plan(ReadWorkload, Arc<Enrollment>, usize, Vec<String>),
    /// Report its invalid annotations.
    Invalid(ReadWorkload, String),
}

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
        )
        .with_page_size(options.page_size);
        Self {
            writer: Writer::new(kube.clone(), &options.instance, options.write_timeout)
                .counting(options.api_writes.clone()),
            kube,
            gatherer,
            options,
            clock: Arc::new(SystemClock),
            observers: Vec::new(),
            api: None,
            observed: None,
            argo: None,
        }
    }

    /// The same refresher telling `observer` about every pass.
    pub fn with_observer(mut self, observer: Arc<dyn PassObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The same refresher reporting the API requests `counter` counts (the
    /// counter under its client: see [`crate::api_count::counted_client`]).
    pub fn with_api_counter(mut self, counter: ApiCounter) -> Self {
        self.api = Some(counter);
        self
    }

    /// The same refresher reading workloads, and the pods, owners and nodes of
    /// what runs, from watched stores (started now, with this refresher's scope)
    /// instead of listing them each pass: the controller mode.
    pub fn watching(mut self) -> Self {
        let store = WorkloadStore::start(
            &self.kube,
            self.gatherer.namespaces(),
            self.gatherer.selector(),
        );
        self.observed = Some(crate::observed::store::ObservedStore::start(
            &self.kube,
            self.gatherer.namespaces(),
        ));
        if self.options.argocd.enabled {
            self.argo = Some(crate::argocd::store::ArgoStore::start(
                &self.kube,
                self.gatherer.namespaces(),
            ));
        }
        self.writer = self.writer.keeping_in(store.clone());
        self.gatherer = self.gatherer.with_store(store);
        self
    }

    /// The watched Argo CD objects, in the controller mode.
    pub(crate) fn argo_store(&self) -> Option<&crate::argocd::store::ArgoStore> {
        self.argo.as_ref()
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
    /// fired in it. Registry asks start as each page of workloads is read; writes
    /// go out once every answer is in, [`PassOptions::max_writes`] at a time.
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
        let api_before = self.api.as_ref().map(ApiCounter::snapshot);
        let mut resolving = self.gatherer.resolving();
        let (candidates, mut reports) = self.read_pages(window, focus, &mut resolving).await?;
        let valid: Vec<(&ReadWorkload, &Enrollment)> = candidates
            .iter()
            .filter_map(|(w, e)| Some((&**w, e.as_deref().ok()?)))
            .collect();
        let read: Vec<&ReadWorkload> = valid.iter().map(|(w, _)| *w).collect();
        // What runs and the Argo CD objects are read while the registries answer:
        // neither depends on the other, and one after the other would add the
        // LISTs' time to every pass.
        let (gathered, observed, argo) = tokio::join!(
            resolving.finish(&valid, Some(now)),
            self.observe(&read, focus.is_some()),
            self.argocd_read()
        );
        let mut gathered = gathered?;
        drop(read);
        drop(valid);
        let nodes = observed.node_index();
        let mut per_workload = std::mem::take(&mut gathered.per_workload).into_iter();
        let candidates_len = candidates.len();
        // Made one by one as the stream runs (no second list of every workload).
        let jobs = candidates.into_iter().map(|(w, e)| match e {
            Ok(e) => {
                let (set, warnings) = per_workload.next().expect("one entry per valid workload");
                Job::Plan(Arc::unwrap_or_clone(w), e, set, warnings)
            }
            Err(message) => Job::Invalid(Arc::unwrap_or_clone(w), message),
        });
        let gated = std::sync::Mutex::new(self.pending());
        let (gathered_ref, observed_ref, nodes_ref, argo_ref, gated_ref) =
            (&gathered, &observed, &nodes, &argo, &gated);
        // Straight into `reports`, sized once: a second list of thousands of
        // reports, then a copy, would double the pass's largest allocation.
        reports.reserve_exact(candidates_len);
        let mut written = futures::stream::iter(jobs)
            .map(|job| async move {
                match job {
                    Job::Plan(w, e, set, mut warnings) => {
                        let runs = crate::observed::runs_facts(
                            observed_ref,
                            nodes_ref,
                            &w,
                            &gathered_ref.targets[set],
                        );
                        warnings.extend(self.argocd_guard(&w, argo_ref).await);
                        let facts = (set, &gathered_ref.facts[set]);
                        let e = Arc::unwrap_or_clone(e);
                        self.triage(w, e, facts, runs, warnings, now, gated_ref)
                            .await
                    }
                    Job::Invalid(w, message) => Some(self.invalid(&w, message).await),
                }
            })
            .buffer_unordered(self.options.max_writes.max(1));
        while let Some(r) = written.next().await {
            reports.extend(r);
        }
        drop(written);
        let gated = gated.into_inner().unwrap_or_else(|p| p.into_inner());
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
            requests: PassRequests {
                registry: gathered.registry,
                api: self
                    .api
                    .as_ref()
                    .zip(api_before)
                    .map(|(c, before)| c.snapshot().since(before)),
            },
        };
        self.observers.iter().for_each(|o| o.report(&report));
        Ok(report)
    }

    /// What runs for `read`: from the watched store in the controller, else
    /// listed (by the workloads' selectors in a `focused` pass).
    async fn observe(&self, read: &[&ReadWorkload], focused: bool) -> crate::observed::Observed {
        match (&self.observed, focused) {
            (Some(store), _) => store.read(read).await,
            (None, false) => {
                crate::observed::Reader::new(self.kube.clone())
                    .read(read)
                    .await
            }
            (None, true) => {
                crate::observed::Reader::new(self.kube.clone())
                    .read_selected(read)
                    .await
            }
        }
    }

    /// Reads the workloads page by page, enrolls them, and starts asking the
    /// registries about each page's images at once (only those tracking `focus`,
    /// when given): the candidates to plan, and the reports of those not planned.
    async fn read_pages(
        &self,
        window: Window,
        focus: Option<&BTreeSet<String>>,
        resolving: &mut crate::gather::Resolving<'_>,
    ) -> Result<(Vec<Candidate>, Vec<WorkloadReport>), PassError> {
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut reports = Vec::new();
        let mut enrollments = Enrollments::default();
        let mut pages = self.gatherer.pages().await.map_err(GatherError::from)?;
        while let Some(page) = pages.next().await {
            let first = candidates.len();
            self.classify(
                page.map_err(GatherError::from)?,
                window,
                &mut enrollments,
                &mut candidates,
                &mut reports,
            );
            if let Some(focus) = focus {
                let page: Vec<Candidate> = candidates
                    .drain(first..)
                    .filter(|(w, e)| e.as_deref().is_ok_and(|e| observer::tracks(w, e, focus)))
                    .collect();
                candidates.extend(page);
            }
            resolving
                .prefetch(
                    candidates[first..]
                        .iter()
                        .filter(|(_, e)| e.is_ok())
                        .map(|(w, _)| &**w),
                )
                .await;
            for (w, e) in &candidates[first..] {
                if let Ok(e) = e {
                    resolving.add(w, e).await?;
                }
            }
        }
        if focus.is_some() {
            reports.clear();
        } else {
            let tracked = observer::tracked(
                candidates
                    .iter()
                    .filter_map(|(w, e)| Some((&**w, e.as_deref().ok()?))),
            );
            self.observers.iter().for_each(|o| o.tracked(&tracked));
        }
        Ok((candidates, reports))
    }

    /// Enrolls one page of workloads into those to plan (valid or not), and the
    /// reports of those skipped (freshet's own) or not due in `window`.
    fn classify(
        &self,
        page: Vec<Arc<ReadWorkload>>,
        window: Window,
        enrollments: &mut Enrollments,
        candidates: &mut Vec<Candidate>,
        reports: &mut Vec<WorkloadReport>,
    ) {
        for w in page {
            match self.gatherer.enroll(&w) {
                Ok(None) => {}
                Ok(Some(_)) if self.gatherer.skips(&w) => {
                    tracing::info!(namespace = %w.workload.namespace, name = %w.workload.name, "skipping freshet's own workload");
                    reports.push(WorkloadReport::new(&w, Status::Skipped));
                }
                Ok(Some(e)) => match window.due(e.schedule.as_ref()) {
                    Due::Yes => candidates.push((w, Ok(enrollments.share(e)))),
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
            WriteError::Timeout { .. } => error_chain(e),
        });
        r
    }
}

#[cfg(test)]
mod tests;
