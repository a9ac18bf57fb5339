//! Which source of an Application holds its images, and of which type it is.
//!
//! Owns the source-type and source-choice rules of argocd-image-updater v1.3.0
//! `pkg/argocd/argocd.go` (`getApplicationSourceType`, `getApplicationSource`), over an
//! Application given as JSON:
//!
//! - the write-back decides first: a `git` write-back to `kustomization[:dir]` means
//!   Kustomize, to `helmvalues[:file]` (or a custom `.yaml` override file) means Helm;
//! - a multi-source Application (`spec.sources[]`) takes the first Helm, Kustomize or
//!   Plugin entry of `status.sourceTypes`, and then the first source with that block
//!   (`helm:`, `kustomize:`, `plugin:`), else the source at the same index in
//!   `status.sourceTypes`, else any source with such a block, else the first source;
//! - a source-hydrator Application uses `spec.sourceHydrator.drySource`;
//! - a single source uses `status.sourceType`; when the status has none yet, freshet
//!   (unlike upstream) reads the spec: `helm:` or `chart:` is Helm, `kustomize:` is
//!   Kustomize, `plugin:` is Plugin.
//!
//! A Plugin source with a `git` write-back is treated as Helm, as upstream does. Must not
//! read the cluster: the shell hands the Application in.

use serde_json::Value;

use super::writeback::{Method, Target, WriteBack};

/// Why no source could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The Application has no source at all.
    #[error(
        "the Application has neither spec.source, spec.sources nor spec.sourceHydrator; nothing can be written"
    )]
    NoSource,
    /// A `git` write-back has no repository to commit to.
    #[error(
        "the Application's source has no repoURL and git-repository is not set; set git-repository (or gitConfig.repository)"
    )]
    NoRepository,
    /// The write-back target climbs out of the repository.
    #[error("write-back target {0:?} resolves outside the repository; fix write-back-target")]
    OutsideRepository(String),
    /// The source type is not one Image Updater can write to.
    #[error(
        "the Application's source is of type {0}; images can only be written to a Helm or Kustomize source (a Plugin source only with write-back-method: git)"
    )]
    Unsupported(String),
}

/// An Application source type, as Argo CD reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SourceKind {
    /// `Helm`.
    Helm,
    /// `Kustomize`.
    Kustomize,
    /// `Plugin`.
    Plugin,
    /// `Directory`, or anything else.
    Directory,
}

impl SourceKind {
    fn from_status(s: &str) -> SourceKind {
        match s {
            "Helm" => SourceKind::Helm,
            "Kustomize" => SourceKind::Kustomize,
            "Plugin" => SourceKind::Plugin,
            _ => SourceKind::Directory,
        }
    }

    fn block(self) -> &'static str {
        match self {
            SourceKind::Helm => "helm",
            SourceKind::Kustomize => "kustomize",
            SourceKind::Plugin => "plugin",
            SourceKind::Directory => "directory",
        }
    }
}

/// Where the chosen source sits in the Application.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "at", rename_all = "kebab-case")]
pub enum SourceAt {
    /// `spec.source`.
    Single,
    /// `spec.sources[index]`.
    Multi {
        /// The index.
        index: usize,
    },
    /// `spec.sourceHydrator.drySource`.
    Hydrator,
}

/// The source images are written to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceChoice {
    /// Where it is.
    pub at: SourceAt,
    /// How it is written to: Helm parameters or kustomize images.
    pub kind: SourceKind,
}

impl SourceChoice {
    /// The JSON pointer of the source (`/spec/source`, `/spec/sources/1`, …).
    pub fn pointer(&self) -> String {
        match self.at {
            SourceAt::Single => "/spec/source".to_owned(),
            SourceAt::Multi { index } => format!("/spec/sources/{index}"),
            SourceAt::Hydrator => "/spec/sourceHydrator/drySource".to_owned(),
        }
    }

    /// The source object in `app`.
    pub fn get<'a>(&self, app: &'a Value) -> Option<&'a Value> {
        app.pointer(&self.pointer())
    }
}

/// The source type the write-back and the Application say, as upstream's
/// `getApplicationSourceType`.
pub fn source_kind(app: &Value, write_back: &WriteBack) -> SourceKind {
    if let Method::Git { .. } = write_back.method {
        match &write_back.target {
            Target::Kustomization { .. } => return SourceKind::Kustomize,
            Target::HelmValues { .. } => return SourceKind::Helm,
            Target::Overrides { path: Some(p) } => {
                let base = p.rsplit('/').next().unwrap_or(p);
                if (p.ends_with(".yaml") || p.ends_with(".yml"))
                    && !base.starts_with(".argocd-source-")
                {
                    return SourceKind::Helm;
                }
            }
            Target::Overrides { path: None } => {}
        }
    }
    let spec = &app["spec"];
    let status = &app["status"];
    if let Some(sources) = spec["sources"].as_array().filter(|s| !s.is_empty()) {
        let from_status = status["sourceTypes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(SourceKind::from_status)
            .find(|k| *k != SourceKind::Directory);
        // freshet: with no status yet, the spec blocks say it.
        return from_status
            .or_else(|| {
                sources
                    .iter()
                    .map(kind_from_spec)
                    .find(|k| *k != SourceKind::Directory)
            })
            .unwrap_or(SourceKind::Directory);
    }
    if spec["source"].is_null() && spec["sourceHydrator"].is_object() {
        let dry = &spec["sourceHydrator"]["drySource"];
        let k = kind_from_spec(dry);
        if k != SourceKind::Directory {
            return k;
        }
    }
    match status["sourceType"].as_str() {
        Some(s) if !s.is_empty() => SourceKind::from_status(s),
        _ => kind_from_spec(&spec["source"]),
    }
}

fn kind_from_spec(source: &Value) -> SourceKind {
    if source["helm"].is_object() || source["chart"].is_string() {
        SourceKind::Helm
    } else if source["kustomize"].is_object() {
        SourceKind::Kustomize
    } else if source["plugin"].is_object() {
        SourceKind::Plugin
    } else {
        SourceKind::Directory
    }
}

/// Chooses the source and how it is written to.
pub fn choose(app: &Value, write_back: &WriteBack) -> Result<SourceChoice, SourceError> {
    let mut kind = source_kind(app, write_back);
    if kind == SourceKind::Plugin && matches!(write_back.method, Method::Git { .. }) {
        kind = SourceKind::Helm;
    }
    if !matches!(kind, SourceKind::Helm | SourceKind::Kustomize) {
        return Err(SourceError::Unsupported(format!("{kind:?}")));
    }
    let spec = &app["spec"];
    if let Some(sources) = spec["sources"].as_array().filter(|s| !s.is_empty()) {
        let index = multi_index(sources, &app["status"]["sourceTypes"], kind);
        return Ok(SourceChoice {
            at: SourceAt::Multi { index },
            kind,
        });
    }
    if spec["source"].is_object() {
        return Ok(SourceChoice {
            at: SourceAt::Single,
            kind,
        });
    }
    if spec["sourceHydrator"]["drySource"].is_object() {
        return Ok(SourceChoice {
            at: SourceAt::Hydrator,
            kind,
        });
    }
    Err(SourceError::NoSource)
}

fn multi_index(sources: &[Value], status_types: &Value, kind: SourceKind) -> usize {
    if let Some(i) = sources.iter().position(|s| s[kind.block()].is_object()) {
        return i;
    }
    if let Some(types) = status_types.as_array().filter(|t| t.len() == sources.len())
        && let Some(i) = types
            .iter()
            .position(|t| t.as_str().map(SourceKind::from_status) == Some(kind))
    {
        return i;
    }
    sources
        .iter()
        .position(|s| {
            ["helm", "kustomize", "plugin"]
                .iter()
                .any(|b| s[*b].is_object())
        })
        .unwrap_or(0)
}

/// Where a `git` write-back commits, as upstream's `parseGitConfig`,
/// `getWriteBackBranch` and `WriteBackTargetKey` decide it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GitPlace {
    /// The repository URL (`git-repository`, else the source's `repoURL`).
    pub repository: String,
    /// The branch to check out: `git-branch`'s base, else the `targetRevision` of the
    /// source in that repository (for a multi-source Application), else the chosen
    /// source's. `None` (or `HEAD`, normalised to `None`): the remote's default branch,
    /// which the Git shell resolves.
    pub checkout: Option<String>,
    /// The file (or, for `kustomization`, the directory) to edit, from the repository
    /// root.
    pub target: String,
    /// `.TargetKey` for the branch template.
    pub target_key: String,
}

/// Resolves a `git` write-back's repository, branch and target; `app_file` is the
/// default override file name ([`super::gitfile::override_file_name`]).
pub fn git_place(
    app: &Value,
    source: &SourceChoice,
    write_back: &WriteBack,
    app_file: &str,
) -> Result<GitPlace, SourceError> {
    let src = source.get(app).ok_or(SourceError::NoSource)?;
    let repository = write_back
        .repository
        .clone()
        .or_else(|| src["repoURL"].as_str().map(str::to_owned))
        .filter(|r| !r.is_empty())
        .ok_or(SourceError::NoRepository)?;
    let revision = |s: &Value| s["targetRevision"].as_str().map(str::to_owned);
    let from_source = match (&write_back.repository, app["spec"]["sources"].as_array()) {
        (Some(repo), Some(sources)) => sources
            .iter()
            .find(|s| s["repoURL"].as_str() == Some(repo))
            .and_then(revision)
            .or_else(|| revision(src)),
        _ => revision(src),
    };
    let checkout = write_back
        .branch
        .base
        .clone()
        .or(from_source)
        .filter(|b| !b.is_empty() && b != "HEAD");
    let path = src["path"].as_str().unwrap_or(".");
    let target = write_back
        .target
        .resolve(path, app_file)
        .ok_or_else(|| SourceError::OutsideRepository(format!("{:?}", write_back.target)))?;
    let target_key = super::writeback::target_key(
        &repository,
        write_back.branch.base.as_deref().unwrap_or(""),
        &target,
    );
    Ok(GitPlace {
        repository,
        checkout,
        target,
        target_key,
    })
}
