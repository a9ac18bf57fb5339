//! Gathering a pass's facts: the workloads in scope, their enrollment, their pull
//! secrets, and what the registries say about their images.
//!
//! Owns the reading order of a pass before anything is planned: list the four kinds
//! (per allowed namespace), enroll each workload (annotations ⊕ config rules), read
//! each workload's pull secrets once ([`crate::secrets`]), group the workloads by
//! set of secrets, and resolve each set's unique images once with a registry client
//! of its own ([`crate::facts`]), so that no answer crosses sets. A second round
//! resolves the tags set-image would move to, so the audit record can name the new
//! digest. Must not write anything, nor decide: enrollment and plans are the core's
//! (the second round only asks the core which tags a plan moves to). Later facts
//! (the pods and nodes a workload runs on) belong here too, beside these.

use std::collections::BTreeSet;
use std::sync::Arc;

use freshet_core::Reference;
use freshet_core::refresh::config::{ClusterConfig, Subject};
use freshet_core::refresh::enroll::EnrollError;
use freshet_core::refresh::{Change, Enrollment, ImageFacts, Timestamp, plan, tracked_images};
use serde::Serialize;

use crate::facts::Worklist;
use crate::secrets::{self, PullSecret, SecretSets};
use crate::workloads::{self, KINDS, ReadWorkload, WorkloadError};

/// A boxed error from the caller's registry factory.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Makes a registry client for one pass and one set of pull secrets, which come
/// first in its credential chain (a client memoises its answers, so each pass needs
/// fresh ones to see tags move, and each set its own so that no answer crosses sets).
pub type RegistryFactory =
    Arc<dyn Fn(&[PullSecret]) -> Result<freshet_registry::Client, BoxError> + Send + Sync>;

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
        }
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
    pub(crate) fn namespaces(&self) -> Option<&[String]> {
        self.scope
            .namespaces
            .as_deref()
            .or(self.config.namespaces.as_deref())
    }

    /// Whether `w` is never to be touched.
    pub fn skips(&self, w: &ReadWorkload) -> bool {
        self.scope.skip.contains(&WorkloadId::of(w))
    }

    /// Every workload of the four kinds in scope.
    pub async fn workloads(&self) -> Result<Vec<ReadWorkload>, WorkloadError> {
        let selector = self.scope.selector.as_deref();
        let namespaces = self
            .scope
            .namespaces
            .as_ref()
            .or(self.config.namespaces.as_ref());
        let mut out = Vec::new();
        for kind in KINDS {
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
        let mut reader = secrets::Reader::new(self.kube.clone());
        let mut sets = SecretSets::default();
        let mut per_workload = Vec::with_capacity(workloads.len());
        for (w, _) in workloads {
            let found = reader.for_workload(w).await;
            per_workload.push((sets.insert(found.secrets), found.warnings));
        }
        let mut gathered = Gathered {
            per_workload,
            ..Gathered::default()
        };
        for (set, pull_secrets) in sets.iter().enumerate() {
            let members: Vec<(&ReadWorkload, &Enrollment)> = workloads
                .iter()
                .zip(&gathered.per_workload)
                .filter(|(_, (s, _))| *s == set)
                .map(|(w, _)| *w)
                .collect();
            let mut worklist = Worklist::default();
            for (w, e) in &members {
                for (reference, policy) in tracked_images(&w.workload, e) {
                    worklist.add(&reference, &policy);
                }
            }
            let registry = (self.registry)(pull_secrets).map_err(GatherError::Registry)?;
            let mut set_facts = worklist.resolve(&registry, self.concurrency).await;
            if let Some(now) = targets_at {
                self.resolve_targets(&registry, &members, &mut set_facts, now)
                    .await;
            }
            let targets = crate::observed::targets::resolve(
                &registry,
                &members,
                &set_facts,
                self.concurrency,
            )
            .await;
            gathered.targets.push(targets);
            gathered.images += worklist.len();
            gathered.facts.push(set_facts);
        }
        Ok(gathered)
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
