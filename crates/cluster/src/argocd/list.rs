//! Reading Argo CD's objects: `Application`s (`argoproj.io/v1alpha1`) and Argo CD
//! Image Updater's `ImageUpdater` resources (`argocd-image-updater.argoproj.io/v1alpha1`).
//!
//! Owns listing them page by page (`limit` and `continue`, as a large Argo CD
//! installation needs), bounded in pages and objects, and reading one Application
//! again after a `409 Conflict`. A cluster without the CustomResourceDefinitions
//! (`404`) has no Applications: that is not an error. Must not decide anything nor
//! write: what an Application's configuration means is `freshet_core::argocd`'s.

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// Objects asked for per page.
pub const PAGE_SIZE: u32 = 500;
/// The most pages read per list (so at most `PAGE_SIZE * MAX_PAGES` objects).
pub const MAX_PAGES: usize = 200;

/// Why Argo CD's objects could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The API refused or failed a list or get.
    #[error("reading {kind}s{where_} failed")]
    Api {
        /// `Application` or `ImageUpdater`.
        kind: &'static str,
        /// ` in namespace X`, `/ns/name`, or nothing.
        where_: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// An Application without a name or namespace came back.
    #[error("an Application without a name or namespace came back from the API")]
    Malformed,
    /// The list did not end within [`MAX_PAGES`] pages.
    #[error(
        "listing {kind}s did not end after {MAX_PAGES} pages of {PAGE_SIZE}; narrow the namespaces"
    )]
    TooMany {
        /// The kind.
        kind: &'static str,
    },
}

/// One of the two kinds read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgoKind {
    /// `argoproj.io/v1alpha1` `Application`.
    Application,
    /// `argocd-image-updater.argoproj.io/v1alpha1` `ImageUpdater`.
    ImageUpdater,
}

impl ArgoKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            ArgoKind::Application => "Application",
            ArgoKind::ImageUpdater => "ImageUpdater",
        }
    }

    /// Its `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            ArgoKind::Application => "argoproj.io/v1alpha1",
            ArgoKind::ImageUpdater => "argocd-image-updater.argoproj.io/v1alpha1",
        }
    }

    fn resource(self) -> ApiResource {
        let (group, version) = self.api_version().split_once('/').expect("group/version");
        ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, self.name()))
    }

    /// An `Api` of the kind in a namespace, or across all.
    pub fn api(self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = self.resource();
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        }
    }
}

/// One Application as read.
#[derive(Debug, Clone)]
pub struct App {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its UID (for Events).
    pub uid: Option<String>,
    /// `metadata.labels`.
    pub labels: freshet_core::Labels,
    /// `metadata.annotations`.
    pub annotations: freshet_core::Labels,
    /// The whole object, as the core reads it.
    pub value: Value,
}

impl App {
    /// The Application from an object (`None` without a name or namespace).
    pub fn from_object(object: &DynamicObject) -> Option<App> {
        let value = serde_json::to_value(object).ok()?;
        Some(App {
            name: object.metadata.name.clone()?,
            namespace: object.metadata.namespace.clone()?,
            uid: object.metadata.uid.clone(),
            labels: freshet_core::labels_of(
                object
                    .metadata
                    .labels
                    .clone()
                    .unwrap_or_default()
                    .into_iter(),
            ),
            annotations: freshet_core::labels_of(
                object
                    .metadata
                    .annotations
                    .clone()
                    .unwrap_or_default()
                    .into_iter(),
            ),
            value,
        })
    }

    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Every object of `kind` in `namespaces` (all when `None`), page by page; an empty
/// list when the cluster does not serve the kind.
pub async fn list(
    client: &kube::Client,
    kind: ArgoKind,
    namespaces: Option<&[String]>,
) -> Result<Vec<DynamicObject>, ListError> {
    let mut out = Vec::new();
    match namespaces {
        None => out.extend(list_in(client, kind, None).await?),
        Some(namespaces) => {
            for ns in namespaces {
                out.extend(list_in(client, kind, Some(ns)).await?);
            }
        }
    }
    Ok(out)
}

async fn list_in(
    client: &kube::Client,
    kind: ArgoKind,
    namespace: Option<&str>,
) -> Result<Vec<DynamicObject>, ListError> {
    let api = kind.api(client, namespace);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
            Err(source) => {
                return Err(ListError::Api {
                    kind: kind.name(),
                    where_: namespace
                        .map(|n| format!(" in namespace {n}"))
                        .unwrap_or_default(),
                    source,
                });
            }
        };
        out.extend(page.items);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(out);
        }
    }
    Err(ListError::TooMany { kind: kind.name() })
}

/// Reads one Application again.
pub async fn get(client: &kube::Client, namespace: &str, name: &str) -> Result<App, ListError> {
    let err = |source| ListError::Api {
        kind: "Application",
        where_: format!("/{namespace}/{name}"),
        source,
    };
    let object = ArgoKind::Application
        .api(client, Some(namespace))
        .get(name)
        .await
        .map_err(err)?;
    App::from_object(&object).ok_or(ListError::Malformed)
}
