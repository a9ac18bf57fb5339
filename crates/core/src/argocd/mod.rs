//! Argo CD support as pure values (issue 13): a drop-in for Argo CD Image Updater.
//!
//! Owns everything about Argo CD Applications that needs no cluster, no registry and no
//! Git: reading Image Updater's annotations ([`annotations`]) and its `ImageUpdater`
//! custom resource ([`crd`]) into one [`AppConfig`] per Application, mapping its update
//! strategies and Masterminds constraints onto freshet's [`crate::policy`]
//! ([`constraint`], [`image`]), choosing the source of a single- or multi-source
//! Application and computing the `argocd` write-back as a patch body ([`source`],
//! [`patch`]), computing the `git` write-back as byte-minimal file edits ([`gitfile`]),
//! the write-back settings and `git-branch` template ([`writeback`]), and the guard for Deployments that Argo CD
//! manages ([`guard`]).
//!
//! Must not perform I/O: no tokio, no kube, no k8s-openapi, no network, no files, no git,
//! no environment variables, no clock. Applications and custom resources come in as
//! `serde_json::Value` or plain maps; decisions, patches and edits go out as values. The
//! cluster and Git shells apply them.
//!
//! Upstream reference: argoproj-labs/argocd-image-updater **v1.3.0** (commit
//! `098b544f1c7d6d1368e89c3f8d92415ede353916`, 2026-08-12): `pkg/argocd/annotations.go`,
//! `pkg/argocd/argocd.go`, `pkg/argocd/update.go`, `pkg/argocd/git.go`,
//! `pkg/argocd/types.go`, `api/v1alpha1/imageupdater_types.go`,
//! `registry-scanner/pkg/image/{image,options,version}.go`, and the documentation in
//! `docs/configuration/{images,applications,migration}.md` and
//! `docs/basics/update-methods.md`; the annotation reference of **v0.16.0**
//! (`docs/configuration/images.md`, `registry-scanner/pkg/image/options.go`) for the
//! alias `/` → `_` rule that v1.x dropped. Constraints follow Masterminds/semver v3.4.0
//! (`constraints.go`). No upstream code was copied; each module says what it follows.
//! The differences from Image Updater are listed in `docs/argocd.md`.

pub mod annotations;
pub mod constraint;
pub mod crd;
pub mod gitfile;
mod glob;
pub mod guard;
pub mod image;
pub mod patch;
pub mod source;
pub mod writeback;
mod yamlpath;

#[cfg(test)]
mod tests;

use std::fmt;

pub use annotations::{AnnotationError, from_annotations};
pub use image::{DigestForm, ImageConfig, ManifestTarget, PullSecretRef, Strategy, TagFilter};
pub use patch::{AppPatch, NewImage, PatchError, Write};
pub use source::{SourceChoice, SourceKind};

/// The prefix of every Image Updater annotation.
pub const PREFIX: &str = "argocd-image-updater.argoproj.io/";

/// Something freshet reads but does not do the way Image Updater does, or does not do at
/// all: reported on the Application, never silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// The annotation key or custom-resource field it is about.
    pub source: String,
    /// What freshet does instead, and how to silence the warning.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(source: impl Into<String>, message: impl Into<String>) -> Self {
        Warning {
            source: source.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// How one Application is to be updated: its images and its write-back, from either the
/// annotations or an `ImageUpdater` resource.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The images, in the order the configuration lists them.
    pub images: Vec<ImageConfig>,
    /// How and where updates are written.
    pub write_back: writeback::WriteBack,
    /// What freshet will not do as Image Updater would.
    pub warnings: Vec<Warning>,
}
