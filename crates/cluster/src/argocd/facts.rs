//! Reading a pass's Argo CD objects and asking the registries about the images of the
//! managed Applications.
//!
//! Owns the reading half of the Applications' pass: the Applications and
//! `ImageUpdater`s in scope ([`Refresher::argocd_read`]; a cluster that does not serve
//! them, or forbids freshet to read them, has none), and the registry facts of their
//! followed images, grouped by set of pull secrets exactly as workloads are
//! ([`crate::secrets::SecretSets`], [`crate::facts::Worklist`], one client of the pass's
//! registry factory per set). An image's `pullsecret:` Secret is read by
//! [`crate::secrets::Reader`], a `secret:<ns>/<name>#<field>` one by [`super::creds`]
//! (each Secret once per pass); one that cannot be used is a warning naming the image,
//! the annotation, the Secret and the fix, and the image is resolved without it. Must
//! not write nor decide.

use std::collections::BTreeMap;

use freshet_core::argocd::crd::ImageUpdater;
use freshet_core::argocd::{ImageConfig, PREFIX, PullSecretRef};
use freshet_core::refresh::ImageFacts;

use super::Read;
use super::creds;
use super::list::{self, App, ArgoKind, ListError};
use super::plan::Prepared;
use crate::errors::error_chain;
use crate::facts::Worklist;
use crate::gather::GatherError;
use crate::pass::Refresher;
use crate::secrets::{self, PullSecret, SecretSets};

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

/// The data of the plain Secrets that `secret:<ns>/<name>#<field>` pull secrets name,
/// each read once per pass.
#[derive(Debug, Default)]
struct FieldSecrets {
    read: BTreeMap<(String, String), Result<creds::SecretData, String>>,
}

impl FieldSecrets {
    /// The pull secret of `field` of Secret `namespace/name` for `registry`; the
    /// error names the Secret and the fix, never its contents.
    async fn pull_secret(
        &mut self,
        kube: &kube::Client,
        (namespace, name): (&str, &str),
        field: &str,
        registry: &str,
    ) -> Result<PullSecret, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if !self.read.contains_key(&key) {
            let data = creds::secret_data(kube, namespace, name)
                .await
                .map_err(|e| error_chain(&e));
            self.read.insert(key.clone(), data);
        }
        match &self.read[&key] {
            Ok(data) => creds::field_pull_secret(data, (namespace, name), field, registry)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        }
    }
}

/// What is wrong with a `.dockerconfigjson` pull secret, said for an Application
/// (the workload messages of [`secrets::SecretError`] name `imagePullSecrets`).
fn pull_secret_error(e: &secrets::SecretError) -> String {
    use secrets::SecretError as E;
    match e {
        E::Missing { namespace, name } => format!(
            "Secret {namespace}/{name} does not exist: create it with kubectl create secret docker-registry {name} -n {namespace} --docker-server=… --docker-username=… --docker-password=…"
        ),
        E::Forbidden { namespace, name } => format!(
            "freshet may not read Secret {namespace}/{name}: grant its ServiceAccount get on that Secret with a Role in namespace {namespace}"
        ),
        E::Malformed {
            namespace,
            name,
            reason,
        } => format!(
            "Secret {namespace}/{name} is unusable ({reason}): recreate it with kubectl create secret docker-registry"
        ),
        E::Read { .. } => error_chain(e),
    }
}

/// The warning on an Application whose pull secret cannot be used: which image,
/// the setting that names it, what is wrong and that it is resolved without it.
fn pull_secret_warning(image: &ImageConfig, reference: &PullSecretRef, error: &str) -> String {
    let shown = match reference {
        PullSecretRef::PullSecret { namespace, name } => format!("pullsecret:{namespace}/{name}"),
        PullSecretRef::SecretField {
            namespace,
            name,
            field,
        } => format!("secret:{namespace}/{name}#{}", field.escape_debug()),
    };
    let setting = match &image.alias {
        Some(alias) => {
            format!("annotation {PREFIX}{alias}.pull-secret (or its ImageUpdater's pullSecret)")
        }
        None => format!("annotation {PREFIX}pull-secret (or its ImageUpdater's pullSecret)"),
    };
    format!(
        "{}: pull secret {shown} from the {setting} is not used: {error}; fix the Secret or the setting; the image is resolved without it",
        image.label()
    )
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
        let mut fields = FieldSecrets::default();
        for (_, prepared) in apps {
            let mut found = Vec::new();
            let mut warnings = Vec::new();
            for (index, image) in prepared.config.images.iter().enumerate() {
                let Some(reference) = &image.pull_secret else {
                    continue;
                };
                let got = match reference {
                    PullSecretRef::PullSecret { namespace, name } => reader
                        .secret(namespace, name)
                        .await
                        .map_err(|e| pull_secret_error(&e)),
                    PullSecretRef::SecretField {
                        namespace,
                        name,
                        field,
                    } => {
                        let registries = prepared
                            .tracked
                            .iter()
                            .filter(|t| t.index == index)
                            .map(|t| t.reference.registry());
                        let mut last = None;
                        for registry in registries {
                            let r = fields
                                .pull_secret(g.kube(), (namespace, name), field, registry)
                                .await;
                            match r {
                                Ok(s) if !found.contains(&s) => found.push(s),
                                Ok(_) => {}
                                Err(e) => last = Some(Err(e)),
                            }
                        }
                        match last {
                            Some(e) => e,
                            None => continue,
                        }
                    }
                };
                match got {
                    Ok(s) if !found.contains(&s) => found.push(s),
                    Ok(_) => {}
                    Err(e) => warnings.push(pull_secret_warning(image, reference, &e)),
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
