//! Argo CD Applications as a target kind of the cluster pass (issue 13): freshet as a
//! drop-in for Argo CD Image Updater.
//!
//! Owns the I/O around `freshet_core::argocd`: reading Applications and
//! `ImageUpdater` resources page by page ([`list`]), the order of one Application's
//! decisions ([`plan`]), their pull secrets and registry facts through the same
//! [`crate::facts::Worklist`] and registry factory as workloads ([`facts`]; the
//! credentials that settings name in plain Secrets are [`creds`]'s), the
//! `argocd` write-back as a JSON merge patch carrying the Application's
//! `resourceVersion` with re-read and re-plan on `409` ([`write`]), the `git`
//! write-back batched into one commit per repository and branch per pass through
//! `freshet_gitops` ([`git`]), the audit annotations, failure streaks, escalation and
//! Events as for workloads, and the guard that warns on a Deployment Argo CD manages
//! ([`guard`]). Only Applications that an `ImageUpdater` selects or that carry the
//! `image-list` annotation are read further; the others are never written. Must not
//! decide anything: the configuration, the source, the moves, the patches and the
//! file edits are the core's.

pub mod creds;
pub mod facts;
pub mod git;
pub mod guard;
pub mod list;
pub mod plan;
mod run;
pub mod store;
pub mod write;

use std::path::PathBuf;

use freshet_core::argocd::crd::ImageUpdater;
use freshet_gitops::GitToken;

use crate::report::{Status, WorkloadReport};
use list::App;

/// How Applications are handled.
#[derive(Debug, Clone)]
pub struct ArgoOptions {
    /// Read Applications at all.
    pub enabled: bool,
    /// The token for `git` write-back (`FRESHET_GIT_TOKEN`), sent as git's HTTP
    /// credentials; without it git's own credential helpers are used.
    pub git_token: Option<GitToken>,
    /// The namespace Argo CD runs in (names the override file of an Application
    /// elsewhere `.argocd-source-<namespace>_<app>.yaml`, as Image Updater does).
    pub controller_namespace: Option<String>,
    /// Where clones for `git` write-back are made (the system's temporary directory
    /// when `None`).
    pub workdir: Option<PathBuf>,
    /// The name and e-mail address of freshet's commits.
    pub author: (String, String),
}

impl Default for ArgoOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            git_token: None,
            controller_namespace: Some("argocd".into()),
            workdir: None,
            author: ("freshet".into(), "freshet@users.noreply.github.com".into()),
        }
    }
}

/// What a pass read of Argo CD: the Applications in scope and the `ImageUpdater`
/// resources, or why they could not be read.
#[derive(Debug, Default)]
pub struct Read {
    /// Every Application in scope.
    pub apps: Vec<App>,
    /// Every valid `ImageUpdater`.
    pub updaters: Vec<ImageUpdater>,
    /// Invalid `ImageUpdater`s and read failures, as messages.
    pub errors: Vec<String>,
}

impl Read {
    /// Whether an Application of that name exists (for the guard).
    pub fn knows(&self, name: &str) -> bool {
        self.apps.iter().any(|a| a.name == name)
    }
}

/// The `kind` an Application's report carries.
pub const KIND: &str = "Application";

/// An empty report of `app` with `status`.
pub fn report(app: &App, status: Status) -> WorkloadReport {
    WorkloadReport::named(KIND, app.namespace.clone(), app.name.clone(), status)
}
