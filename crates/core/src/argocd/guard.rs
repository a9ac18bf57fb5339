//! The guard for workloads that Argo CD manages: a direct patch would be reverted.
//!
//! Owns recognising Argo CD's resource tracking on a workload (the annotation
//! `argocd.argoproj.io/tracking-id`, `<app>:<group>/<kind>:<namespace>/<name>`, or the
//! label `app.kubernetes.io/instance`, Argo CD's default tracking label) and the
//! [`Warning`] that names the Application to enrol instead. Must not read the cluster or
//! refuse anything: the refresh shell decides what to do with the warning.
//!
//! The annotation is certain when it names the workload itself (Argo CD ignores a
//! tracking id copied onto another resource). The label is also what Helm sets to a
//! release's name, so it is certain only when an Application of that name is known;
//! otherwise the warning says "probably".

use super::Warning;

/// Argo CD's default tracking label.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Argo CD's tracking annotation.
pub const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";

/// How Argo CD tracks the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tracking {
    /// `argocd.argoproj.io/tracking-id`.
    Annotation,
    /// `app.kubernetes.io/instance`.
    Label,
}

/// A workload Argo CD manages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArgoManaged {
    /// The Application's name.
    pub application: String,
    /// Its namespace, when the tracking id says (`<namespace>_<app>`).
    pub application_namespace: Option<String>,
    /// How it was recognised.
    pub via: Tracking,
    /// Whether this is certain (see the module docs).
    pub certain: bool,
}

/// The workload being checked.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    /// API group (`apps` for a Deployment, `batch` for a CronJob).
    pub group: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// Its labels.
    pub labels: &'a crate::Labels,
    /// Its annotations.
    pub annotations: &'a crate::Labels,
}

/// Whether Argo CD manages the workload; `known_app` says whether an Application of
/// that name exists (pass `|_| false` when the shell does not list Applications).
pub fn managed_by_argo(w: &Workload<'_>, known_app: impl Fn(&str) -> bool) -> Option<ArgoManaged> {
    if let Some(id) = w.annotations.get(TRACKING_ID)
        && let Some((app, rest)) = id.split_once(':')
        && !app.is_empty()
        && rest == format!("{}/{}:{}/{}", w.group, w.kind, w.namespace, w.name)
    {
        let (ns, name) = match app.split_once('_') {
            Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
            None => (None, app.to_owned()),
        };
        return Some(ArgoManaged {
            application: name,
            application_namespace: ns,
            via: Tracking::Annotation,
            certain: true,
        });
    }
    let app = w.labels.get(INSTANCE_LABEL).filter(|v| !v.is_empty())?;
    Some(ArgoManaged {
        application: app.clone(),
        application_namespace: None,
        via: Tracking::Label,
        certain: known_app(app),
    })
}

impl ArgoManaged {
    /// The warning for a workload enrolled for a direct patch.
    pub fn warning(&self, w: &Workload<'_>) -> Warning {
        let app = match &self.application_namespace {
            Some(ns) => format!("{ns}/{}", self.application),
            None => self.application.clone(),
        };
        let how = match self.via {
            Tracking::Annotation => format!("its {TRACKING_ID} annotation"),
            Tracking::Label => format!("its {INSTANCE_LABEL} label"),
        };
        let who = if self.certain {
            format!("Argo CD Application {app:?} manages this {}", w.kind)
        } else {
            format!(
                "this {} is probably managed by Argo CD Application {app:?} (a Helm release sets the same label)",
                w.kind
            )
        };
        Warning::new(
            format!("{}/{} {}/{}", w.group, w.kind, w.namespace, w.name),
            format!(
                "{who} ({how}); Argo CD's self-heal reverts a direct patch: enrol the Application instead (annotate Application {app:?} with argocd-image-updater.argoproj.io/image-list) and remove freshet's enrolment from the {}",
                w.kind
            ),
        )
    }
}
