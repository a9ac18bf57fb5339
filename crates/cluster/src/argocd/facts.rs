//! Reading a pass's Argo CD objects and asking the registries about the images of the
//! managed Applications.
//!
//! Owns the reading half of the Applications' pass: the Applications and
//! `ImageUpdater`s in scope ([`Refresher::argocd_read`]; a cluster that does not serve
//! them, or forbids freshet to read them, has none), and the registry facts of their
//! followed images, grouped by set of pull secrets exactly as workloads are
//! ([`crate::secrets::SecretSets`], [`crate::facts::Worklist`], one client of the pass's
//! registry factory per set). Must not write nor decide.

use freshet_core::argocd::PullSecretRef;
use freshet_core::argocd::crd::ImageUpdater;
use freshet_core::refresh::ImageFacts;

use super::Read;
use super::list::{self, App, ArgoKind, ListError};
use super::plan::Prepared;
use crate::errors::error_chain;
use crate::facts::Worklist;
use crate::gather::GatherError;
use crate::pass::Refresher;
use crate::secrets::{self, SecretSets};

/// The registry's answers for the Applications of a pass.
#[derive(Debug, Default)]
pub struct AppFacts {
    /// Per Application, in the order given: its set's index and its secret warnings.
    pub per_app: Vec<(usize, Vec<String>)>,
    /// Per set, the facts resolved with its credentials.
    pub facts: Vec<ImageFacts>,
    /// Unique images asked about, summed over the sets.
    pub images: usize,
}

/// Whether a failed list means "nothing to read here" (no CRD, or not allowed).
fn absent(e: &ListError) -> bool {
    matches!(e, ListError::Api { source: kube::Error::Api(s), .. } if s.code == 403 || s.code == 404)
}

impl Refresher {
    /// The Applications and `ImageUpdater`s in scope (none when Argo CD support is
    /// off, the cluster does not serve them, or freshet may not read them).
    pub async fn argocd_read(&self) -> Read {
        let mut read = Read::default();
        if !self.options().argocd.enabled {
            return read;
        }
        if let Some(store) = self.argo_store() {
            return store.read().await;
        }
        let g = self.gatherer();
        let namespaces = g.namespaces();
        match list::list(g.kube(), ArgoKind::Application, namespaces).await {
            Ok(objects) => read.apps = objects.iter().filter_map(App::from_object).collect(),
            Err(e) if absent(&e) => {
                tracing::debug!(error = %error_chain(&e), "Applications not readable; none handled");
                return read;
            }
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "listing Applications failed");
                read.errors.push(error_chain(&e));
                return read;
            }
        }
        match list::list(g.kube(), ArgoKind::ImageUpdater, namespaces).await {
            Ok(objects) => {
                for o in objects {
                    let value = serde_json::to_value(&o).unwrap_or_default();
                    match ImageUpdater::from_value(&value) {
                        Ok(cr) => read.updaters.push(cr),
                        Err(e) => {
                            tracing::error!(error = %e, "invalid ImageUpdater; its Applications are not updated");
                            read.errors.push(e.to_string());
                        }
                    }
                }
            }
            Err(e) if absent(&e) => {}
            Err(e) => read.errors.push(error_chain(&e)),
        }
        read.apps
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        read
    }

    /// Reads the pull secrets the Applications name, groups them by set, and resolves
    /// each set's followed images once with a client of its own.
    pub(crate) async fn argocd_facts(
        &self,
        apps: &[(&App, &Prepared)],
    ) -> Result<AppFacts, GatherError> {
        let g = self.gatherer();
        let mut reader = secrets::Reader::new(g.kube().clone());
        let mut sets = SecretSets::default();
        let mut out = AppFacts::default();
        for (_, prepared) in apps {
            let mut found = Vec::new();
            let mut warnings = Vec::new();
            for image in &prepared.config.images {
                match &image.pull_secret {
                    None => {}
                    Some(PullSecretRef::PullSecret { namespace, name }) => {
                        match reader.secret(namespace, name).await {
                            Ok(s) if !found.contains(&s) => found.push(s),
                            Ok(_) => {}
                            Err(e) => warnings.push(e.to_string()),
                        }
                    }
                    Some(PullSecretRef::SecretField { namespace, name, field }) => warnings.push(format!(
                        "{}: pull-secret secret:{namespace}/{name}#{field} is not read by freshet yet; the image is resolved without it: store the credentials as a kubernetes.io/dockerconfigjson Secret and write pullsecret:{namespace}/{name}",
                        image.label()
                    )),
                }
            }
            out.per_app.push((sets.insert(found), warnings));
        }
        for (set, pull_secrets) in sets.iter().enumerate() {
            let mut worklist = Worklist::default();
            for ((_, prepared), (s, _)) in apps.iter().zip(&out.per_app) {
                if *s == set {
                    for t in &prepared.tracked {
                        worklist.add(&t.reference, &t.policy);
                    }
                }
            }
            let tokens = g.tokens_for(pull_secrets);
            let registry = (g.registry())(pull_secrets, &tokens).map_err(GatherError::Registry)?;
            out.facts
                .push(worklist.resolve(&registry, g.concurrency()).await);
            out.images += worklist.len();
        }
        Ok(out)
    }
}
