//! Gathering a pass's facts: the workloads in scope, their enrollment, their pull
//! secrets, and what the registries say about their images.
//!
//! Owns the reading order of a pass before anything is planned: read the four kinds
//! (per allowed namespace) page by page from the API ([`WorkloadPages`]), or from
//! the controller's watched store ([`crate::watch`]) with no request at all; enroll
//! each workload (annotations ⊕ config rules, by the caller); read each workload's
//! pull secrets once ([`crate::secrets`]), group the workloads by set of secrets,
//! and ask about each set's unique images once with a registry client of its own
//! ([`Resolving`], through [`crate::facts::Streaming`]) as soon as a page names
//! them, so that resolving overlaps the reading of later pages and no answer
//! crosses sets. Each set's clients share one token cache across passes (keyed by
//! the set's secrets, so no token crosses sets either) while their answers stay
//! un-memoised from pass to pass. With the watched store (the controller), the
//! ServiceAccounts' pull-secret names and the pull secrets read are kept for
//! [`secrets::REMEMBER_FOR`] ([`secrets::Remembered`]), so a steady pass reads
//! neither. A second round
//! resolves the tags set-image would move to, so the audit record can name the new
//! digest, and a third the per-platform targets of digest watches
//! ([`crate::observed::targets`]). Must not write anything, nor decide: enrollment
//! and plans are the core's (the second round only asks the core which tags a plan
//! moves to).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use freshet_core::Reference;
use freshet_core::refresh::config::{ClusterConfig, Subject};
use freshet_core::refresh::enroll::EnrollError;
use freshet_core::refresh::{Change, Enrollment, ImageFacts, Timestamp, plan, tracked_images};
use serde::Serialize;

use freshet_registry::{SharedTokens, StatsSnapshot};
use tokio::sync::Semaphore;

use crate::facts::{Streaming, Worklist};
use crate::secrets::{self, PullSecret, SecretSets};
use crate::watch::WorkloadStore;
use crate::workloads::{self, KINDS, Pages, ReadWorkload, WorkloadError};

/// A boxed error from the caller's registry factory.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Makes a registry client for one pass and one set of pull secrets, which come
/// first in its credential chain (a client memoises its answers, so each pass needs
/// fresh ones to see tags move, and each set its own so that no answer crosses sets).
/// The client keeps its tokens in the given [`SharedTokens`], which belong to that
/// set (pass it to `freshet_registry::Client::with_shared_tokens`).
pub type RegistryFactory = Arc<
    dyn Fn(&[PullSecret], &SharedTokens) -> Result<freshet_registry::Client, BoxError>
        + Send
        + Sync,
>;

/// Credential sets whose tokens are kept across passes at most (beyond it, all are
/// dropped and fetched again).
const MAX_TOKEN_SETS: usize = 4096;

/// Why a pass's facts could not be gathered at all (per-workload failures are in
/// the report).
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// Listing workloads failed.
    #[error(transparent)]
    List(#[from] WorkloadError),
    /// A registry client could not be built.
    #[error("building the registry client failed")]
    Registry(#[source] BoxError),
}

/// A workload by namespace and name (any kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct WorkloadId {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl WorkloadId {
    /// The id of `w`.
    pub fn of(w: &ReadWorkload) -> Self {
        Self {
            namespace: w.workload.namespace.clone(),
            name: w.workload.name.clone(),
        }
    }
}

/// Which workloads a pass reads.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these namespaces (`None`: the config's allowlist, else all).
    pub namespaces: Option<Vec<String>>,
    /// Only workloads matching this label selector.
    pub selector: Option<String>,
    /// Workloads never touched (freshet's own).
    pub skip: BTreeSet<WorkloadId>,
}

/// What a pass learned before planning: per workload its set of pull secrets and
/// the warnings its secrets gave, and per set the facts of its images.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Per workload, in the order given: its set's index and its secret warnings.
    pub per_workload: Vec<(usize, Vec<String>)>,
    /// Per set, the facts resolved with its credentials.
    pub facts: Vec<ImageFacts>,
    /// Unique images asked about, summed over the sets.
    pub images: usize,
    /// Registry requests sent, summed over the sets' clients.
    pub registry: StatsSnapshot,
    /// Per set, the full targets of digest watches whose tag moved from a record
    /// (see [`crate::observed::targets`]).
    pub targets: Vec<std::collections::BTreeMap<String, freshet_core::runs::Target>>,
}

/// Reads the cluster and asks the registries for one pass.
#[derive(Clone)]
pub struct Gatherer {
    kube: kube::Client,
    registry: RegistryFactory,
    config: Arc<ClusterConfig>,
    scope: Scope,
    concurrency: usize,
    page_size: u32,
    store: Option<WorkloadStore>,
    tokens: Arc<Mutex<HashMap<Vec<PullSecret>, SharedTokens>>>,
    /// ServiceAccounts and pull secrets kept across the controller's passes.
    remembered: secrets::Remembered,
}

impl std::fmt::Debug for Gatherer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatherer")
            .field("scope", &self.scope)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// The enrolled workloads of a `status` listing.
#[derive(Debug, Default)]
pub struct Enrolled {
    /// Validly enrolled, with the enrollment.
    pub valid: Vec<(ReadWorkload, Enrollment)>,
    /// Enrolled with invalid annotations (or containers), with the message.
    pub invalid: Vec<(ReadWorkload, String)>,
}

impl Gatherer {
    /// A gatherer; `registry` makes each set's registry client.
    pub fn new(
        kube: kube::Client,
        registry: RegistryFactory,
        config: Arc<ClusterConfig>,
        scope: Scope,
        concurrency: usize,
    ) -> Self {
        Self {
            kube,
            registry,
            config,
            scope,
            concurrency,
            page_size: workloads::PAGE_SIZE,
            store: None,
            tokens: Arc::default(),
            remembered: secrets::Remembered::default(),
        }
    }

    /// The same gatherer listing `page_size` workloads per page.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The same gatherer reading workloads from `store` instead of listing them.
    pub fn with_store(mut self, store: WorkloadStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The Kubernetes client.
    pub(crate) fn kube(&self) -> &kube::Client {
        &self.kube
    }

    /// The registry client factory.
    pub(crate) fn registry(&self) -> &RegistryFactory {
        &self.registry
    }

    /// Images resolved at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The namespaces in scope (`None`: all).
    pub fn namespaces(&self) -> Option<&[String]> {
        self.scope
            .namespaces
            .as_deref()
            .or(self.config.namespaces.as_deref())
    }

    /// The label selector in scope.
    pub fn selector(&self) -> Option<&str> {
        self.scope.selector.as_deref()
    }

    /// The workloads in scope, page by page: listed from the API, or from the
    /// watched store (one page, no request) once it is in sync.
    pub async fn pages(&self) -> Result<WorkloadPages, WorkloadError> {
        if let Some(store) = &self.store {
            store.synced().await?;
            return Ok(WorkloadPages::Snapshot(Some(store.snapshot())));
        }
        let mut lists = VecDeque::new();
        for kind in KINDS {
            match self.namespaces() {
                None => lists.push_back(Pages::new(
                    &self.kube,
                    kind,
                    None,
                    self.selector(),
                    self.page_size,
                )),
                Some(namespaces) => {
                    for ns in namespaces {
                        lists.push_back(Pages::new(
                            &self.kube,
                            kind,
                            Some(ns),
                            self.selector(),
                            self.page_size,
                        ));
                    }
                }
            }
        }
        Ok(WorkloadPages::Lists(lists))
    }

    /// A resolver for one pass's images, fed as workloads are read.
    pub fn resolving(&self) -> Resolving<'_> {
        Resolving {
            gatherer: self,
            reader: secrets::Reader::new(self.kube.clone())
                .remembering(self.store.as_ref().map(|_| self.remembered.clone())),
            sets: SecretSets::default(),
            clients: Vec::new(),
            permits: Arc::new(Semaphore::new(self.concurrency.max(1))),
            per_workload: Vec::new(),
        }
    }

    /// The tokens of one credential set, kept across passes.
    pub(crate) fn tokens_for(&self, set: &[PullSecret]) -> SharedTokens {
        let mut tokens = self.tokens.lock().expect("token sets lock");
        if tokens.len() >= MAX_TOKEN_SETS && !tokens.contains_key(set) {
            tokens.clear();
        }
        tokens.entry(set.to_vec()).or_default().clone()
    }

    /// Whether `w` is never to be touched.
    pub fn skips(&self, w: &ReadWorkload) -> bool {
        self.scope.skip.contains(&WorkloadId::of(w))
    }

    /// Every workload of the four kinds in scope.
    pub async fn workloads(&self) -> Result<Vec<ReadWorkload>, WorkloadError> {
        let mut pages = self.pages().await?;
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page?.into_iter().map(Arc::unwrap_or_clone));
        }
        Ok(out)
    }

    /// Reads one workload again (after a conflict).
    pub async fn reread(&self, w: &ReadWorkload) -> Result<ReadWorkload, WorkloadError> {
        let w = &w.workload;
        workloads::get(&self.kube, w.kind, &w.namespace, &w.name).await
    }

    /// The enrollment of `w` (`Ok(None)`: not enrolled).
    pub fn enroll(&self, w: &ReadWorkload) -> Result<Option<Enrollment>, EnrollError> {
        let containers: Vec<(&str, &str)> = w
            .workload
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.image.as_str()))
            .collect();
        self.config.enroll(&Subject {
            namespace: &w.workload.namespace,
            labels: &w.labels,
            annotations: &w.workload.annotations,
            containers: &containers,
        })
    }

    /// The enrolled workloads in scope (not skipped), for `status`: those validly
    /// enrolled, and those whose enrollment is invalid with its message.
    pub async fn enrolled(&self) -> Result<Enrolled, GatherError> {
        let mut out = Enrolled::default();
        for w in self.workloads().await? {
            if self.skips(&w) {
                continue;
            }
            match self.enroll(&w) {
                Ok(Some(e)) => out.valid.push((w, e)),
                Ok(None) => {}
                Err(e) => out.invalid.push((w, e.to_string())),
            }
        }
        Ok(out)
    }

    /// Reads the pull secrets of `workloads`, groups them by set, and resolves each
    /// set's images once with a client of its own. With `targets_at`, also the
    /// digests of the tags set-image moves to (see [`Gatherer::resolve_targets`]).
    pub async fn facts(
        &self,
        workloads: &[(&ReadWorkload, &Enrollment)],
        targets_at: Option<Timestamp>,
    ) -> Result<Gathered, GatherError> {
        let mut resolving = self.resolving();
        for (w, e) in workloads {
            resolving.add(w, e).await?;
        }
        resolving.finish(workloads, targets_at).await
    }

    /// Second round: the digests of the tags set-image moves to, so the audit
    /// record names the digest a workload moved to. Added to the facts of the
    /// image they move from, keyed by the new tag.
    async fn resolve_targets(
        &self,
        registry: &freshet_registry::Client,
        enrolled: &[(&ReadWorkload, &Enrollment)],
        facts: &mut ImageFacts,
        now: Timestamp,
    ) {
        let mut targets = Worklist::default();
        let mut moves: Vec<(String, String, String)> = Vec::new();
        for (w, e) in enrolled {
            for change in plan(&w.workload, e, facts, now).changes {
                let Change::SetImage { from, to, .. } = change else {
                    continue;
                };
                let (Ok(from), Ok(to)) = (Reference::parse(&from), Reference::parse(&to)) else {
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
        let resolved = targets.resolve(registry, self.concurrency).await;
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
}

/// The workloads of a pass, page by page.
#[derive(Debug)]
pub enum WorkloadPages {
    /// Lists still to read, in order.
    Lists(VecDeque<Pages>),
    /// The watched store's snapshot (taken once).
    Snapshot(Option<Vec<Arc<ReadWorkload>>>),
}

impl WorkloadPages {
    /// The next page, or `None` after the last. Workloads are shared: a store's
    /// are not copied, a listed page's are moved.
    pub async fn next(&mut self) -> Option<Result<Vec<Arc<ReadWorkload>>, WorkloadError>> {
        match self {
            Self::Snapshot(s) => s.take().map(Ok),
            Self::Lists(lists) => loop {
                let pages = lists.front_mut()?;
                match pages.next().await {
                    Some(page) => {
                        return Some(page.map(|p| p.into_iter().map(Arc::new).collect()));
                    }
                    None => {
                        lists.pop_front();
                    }
                }
            },
        }
    }
}

/// One pass's registry asks, started as workloads are read: per workload its set of
/// pull secrets, per set a [`Streaming`] resolver with a client of its own, all
/// within one bound of requests in flight.
pub struct Resolving<'a> {
    gatherer: &'a Gatherer,
    reader: secrets::Reader,
    sets: SecretSets,
    clients: Vec<Streaming>,
    permits: Arc<Semaphore>,
    per_workload: Vec<(usize, Vec<String>)>,
}

impl std::fmt::Debug for Resolving<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolving")
            .field("sets", &self.clients.len())
            .field("workloads", &self.per_workload.len())
            .finish_non_exhaustive()
    }
}

impl Resolving<'_> {
    /// Reads the ServiceAccounts `workloads` need (one page's), concurrently, before
    /// [`Resolving::add`] asks for each workload in turn.
    pub async fn prefetch<'w>(&mut self, workloads: impl IntoIterator<Item = &'w ReadWorkload>) {
        let concurrency = self.gatherer.concurrency();
        self.reader.prefetch_accounts(workloads, concurrency).await;
    }

    /// Reads the pull secrets of `w` and starts asking about its tracked images
    /// with its set's client. Call in the order the workloads are later planned.
    pub async fn add(&mut self, w: &ReadWorkload, e: &Enrollment) -> Result<(), GatherError> {
        let found = self.reader.for_workload(w).await;
        let set = self.sets.insert(found.secrets);
        self.per_workload.push((set, found.warnings));
        while self.clients.len() <= set {
            let secrets = self
                .sets
                .iter()
                .nth(self.clients.len())
                .expect("sets are numbered in order");
            let tokens = self.gatherer.tokens_for(secrets);
            let client =
                (self.gatherer.registry)(secrets, &tokens).map_err(GatherError::Registry)?;
            self.clients
                .push(Streaming::new(client, self.permits.clone()));
        }
        for (reference, policy) in tracked_images(&w.workload, e) {
            self.clients[set].add(&reference, &policy);
        }
        Ok(())
    }

    /// Waits for every answer; `workloads` are those added, in the same order.
    /// With `targets_at`, also resolves the tags set-image moves to.
    pub async fn finish(
        self,
        workloads: &[(&ReadWorkload, &Enrollment)],
        targets_at: Option<Timestamp>,
    ) -> Result<Gathered, GatherError> {
        let mut gathered = Gathered {
            per_workload: self.per_workload,
            ..Gathered::default()
        };
        for (set, streaming) in self.clients.into_iter().enumerate() {
            let client = streaming.client().clone();
            gathered.images += streaming.len();
            let mut set_facts = streaming.finish().await;
            let members: Vec<(&ReadWorkload, &Enrollment)> = workloads
                .iter()
                .zip(&gathered.per_workload)
                .filter(|(_, (s, _))| *s == set)
                .map(|(w, _)| *w)
                .collect();
            if let Some(now) = targets_at {
                self.gatherer
                    .resolve_targets(&client, &members, &mut set_facts, now)
                    .await;
            }
            let targets = crate::observed::targets::resolve(
                &client,
                &members,
                &set_facts,
                self.gatherer.concurrency,
            )
            .await;
            gathered.targets.push(targets);
            gathered.registry = add_stats(gathered.registry, client.stats());
            gathered.facts.push(set_facts);
        }
        Ok(gathered)
    }
}

fn add_stats(a: StatsSnapshot, b: StatsSnapshot) -> StatsSnapshot {
    StatsSnapshot {
        requests: a.requests + b.requests,
        pings: a.pings + b.pings,
        manifest_heads: a.manifest_heads + b.manifest_heads,
        manifest_gets: a.manifest_gets + b.manifest_gets,
        blob_gets: a.blob_gets + b.blob_gets,
        token_requests: a.token_requests + b.token_requests,
        tag_pages: a.tag_pages + b.tag_pages,
        retries: a.retries + b.retries,
    }
}
