//! Image Updater's annotations on an Application, read unchanged.
//!
//! Owns the annotation vocabulary (prefix `argocd-image-updater.argoproj.io/`) and turns
//! an Application's annotations into an [`AppConfig`], with a [`Warning`] for each thing
//! freshet does differently and an [`AnnotationError`] naming the annotation and the fix
//! for malformed input. Must not read the cluster: the shell passes the annotations and
//! the Application's namespace.
//!
//! Follows argocd-image-updater v1.3.0 `pkg/argocd/annotations.go`
//! (`getImagesFromAnnotations`, `getCommonUpdateSettingsFromAnnotations`,
//! `getManifestTargetsFromAnnotations`, `getWriteBackConfigFromAnnotations`) and the
//! v0.16.0 annotation reference (`docs/configuration/images.md`):
//!
//! | annotation | meaning |
//! |---|---|
//! | `image-list` | `[alias=]repo[:constraint][, …]`; whitespace around entries ignored, empty entries skipped |
//! | `<alias>.update-strategy` | `semver` (default), `digest`, `alphabetical`/`name`, `newest-build`/`latest` |
//! | `<alias>.allow-tags` | `any` or `regexp:<re>` |
//! | `<alias>.ignore-tags` | comma-separated Go globs |
//! | `<alias>.platforms` | comma-separated `os/arch[/variant]` (per alias only) |
//! | `<alias>.pull-secret` | `pullsecret:ns/name`, `secret:ns/name#field` (`env:`, `ext:` refused) |
//! | `<alias>.force-update` | Go `ParseBool` |
//! | `<alias>.helm.image-name`, `.helm.image-tag`, `.helm.image-spec` | Helm parameter names |
//! | `<alias>.kustomize.image-name` | the image name a kustomize override replaces |
//! | `update-strategy`, `allow-tags`, `ignore-tags`, `force-update`, `pull-secret` | Application-wide defaults under the per-alias ones; the only settings of an entry without alias |
//! | `write-back-method`, `write-back-target`, `git-branch`, `git-repository` | write-back (see [`super::writeback`]) |
//!
//! An alias containing `/` is looked up with `_` in its annotation keys (the v0.x rule;
//! a `/` cannot appear in an annotation name). freshet adds one annotation of its own,
//! `freshet.io/digest-form` (or `freshet.io/<alias>.digest-form`): `tag-digest` or
//! `digest` (see [`DigestForm`]).

use std::collections::BTreeSet;

use super::image::{
    DigestForm, HelmTarget, ImageConfig, ImageSpec, ManifestTarget, PullSecretRef, SettingError,
    Strategy, TagFilter, parse_bool, parse_ignore, parse_platforms,
};
use super::writeback::{BranchError, GitBranch, Method, Target, WriteBack};
use super::{AppConfig, PREFIX, Warning};

/// `argocd-image-updater.argoproj.io/image-list`.
pub const IMAGE_LIST: &str = "argocd-image-updater.argoproj.io/image-list";
/// `argocd-image-updater.argoproj.io/write-back-method`.
pub const WRITE_BACK_METHOD: &str = "argocd-image-updater.argoproj.io/write-back-method";
/// `argocd-image-updater.argoproj.io/write-back-target`.
pub const WRITE_BACK_TARGET: &str = "argocd-image-updater.argoproj.io/write-back-target";
/// `argocd-image-updater.argoproj.io/git-branch`.
pub const GIT_BRANCH: &str = "argocd-image-updater.argoproj.io/git-branch";
/// `argocd-image-updater.argoproj.io/git-repository`.
pub const GIT_REPOSITORY: &str = "argocd-image-updater.argoproj.io/git-repository";
/// freshet's choice of digest form for all images of the Application.
pub const DIGEST_FORM: &str = "freshet.io/digest-form";

/// The most images one `image-list` may name.
pub const MAX_IMAGES: usize = 64;
/// The longest alias.
pub const MAX_ALIAS: usize = 63;

/// The per-image settings an alias may carry (besides the manifest targets).
const ALIAS_SETTINGS: &[&str] = &[
    "update-strategy",
    "allow-tags",
    "ignore-tags",
    "platforms",
    "pull-secret",
    "force-update",
    "helm.image-name",
    "helm.image-tag",
    "helm.image-spec",
    "kustomize.image-name",
];
/// The Application-wide settings.
const APP_SETTINGS: &[&str] = &[
    "image-list",
    "update-strategy",
    "allow-tags",
    "ignore-tags",
    "pull-secret",
    "force-update",
    "write-back-method",
    "write-back-target",
    "git-branch",
    "git-repository",
];

/// Why an Application's annotations were rejected. Nothing is written for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// A setting's value is malformed.
    #[error("annotation {key}: {source}")]
    Setting {
        /// The annotation.
        key: String,
        /// What is wrong with the value.
        #[source]
        source: Box<SettingError>,
    },
    /// An `image-list` entry is malformed.
    #[error("annotation {IMAGE_LIST} entry {entry:?}: {reason}")]
    ImageList {
        /// The entry.
        entry: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// A write-back annotation is malformed.
    #[error("annotation {key}: {source}")]
    WriteBack {
        /// The annotation.
        key: &'static str,
        /// What is wrong.
        #[source]
        source: BranchError,
    },
}

impl AnnotationError {
    /// The annotation to fix.
    pub fn annotation(&self) -> &str {
        match self {
            AnnotationError::Setting { key, .. } => key,
            AnnotationError::ImageList { .. } => IMAGE_LIST,
            AnnotationError::WriteBack { key, .. } => key,
        }
    }
}

/// Reads an Application's annotations. `Ok(None)`: no `image-list`, so Image Updater
/// would not touch it either. `namespace` is the Application's (pull secrets must live
/// there).
pub fn from_annotations(
    namespace: &str,
    annotations: &crate::Labels,
) -> Result<Option<AppConfig>, AnnotationError> {
    let Some(list) = annotations.get(IMAGE_LIST) else {
        return Ok(None);
    };
    let entries = parse_image_list(list)?;
    let mut warnings = Vec::new();
    let mut seen = BTreeSet::new();
    let mut images = Vec::with_capacity(entries.len());
    for (alias, spec_text) in entries {
        if let Some(a) = &alias
            && !seen.insert(a.clone())
        {
            return Err(AnnotationError::ImageList {
                entry: format!("{a}={spec_text}"),
                reason: format!("the alias {a:?} is used twice; give each image its own alias"),
            });
        }
        let spec = ImageSpec::parse(&spec_text).map_err(|source| AnnotationError::Setting {
            key: IMAGE_LIST.to_owned(),
            source: Box::new(source),
        })?;
        let reader = Reader {
            annotations,
            alias: alias.as_deref(),
        };
        images.push(reader.image(namespace, alias.clone(), spec, &mut warnings)?);
    }
    let write_back = write_back(annotations, &mut warnings)?;
    warn_unknown(annotations, &images, &mut warnings);
    Ok(Some(AppConfig {
        images,
        write_back,
        warnings,
    }))
}

/// Splits `image-list` into `(alias, image)` pairs.
fn parse_image_list(list: &str) -> Result<Vec<(Option<String>, String)>, AnnotationError> {
    let mut out = Vec::new();
    for raw in list.split(',') {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        if out.len() == MAX_IMAGES {
            return Err(AnnotationError::ImageList {
                entry: entry.to_owned(),
                reason: format!(
                    "the list names more than {MAX_IMAGES} images; split the Application"
                ),
            });
        }
        let err = |reason: &str| AnnotationError::ImageList {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        match entry.split_once('=') {
            Some((alias, image)) => {
                let (alias, image) = (alias.trim(), image.trim());
                if image.is_empty() {
                    return Err(err(
                        "the alias has no image; write alias=registry/repository[:constraint]",
                    ));
                }
                if alias.is_empty() {
                    out.push((None, image.to_owned()));
                    continue;
                }
                let ok = alias.len() <= MAX_ALIAS
                    && alias.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && alias
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/'));
                if !ok {
                    return Err(err(
                        "the alias must be 1 to 63 letters, digits, '-', '.', '_' or '/', starting with a letter or digit",
                    ));
                }
                out.push((Some(alias.to_owned()), image.to_owned()));
            }
            None => out.push((None, entry.to_owned())),
        }
    }
    if out.is_empty() {
        return Err(AnnotationError::ImageList {
            entry: list.to_owned(),
            reason: "the list is empty; write alias=registry/repository[:constraint], …".into(),
        });
    }
    Ok(out)
}

/// Reads one image's settings: per alias first, then Application-wide.
struct Reader<'a> {
    annotations: &'a crate::Labels,
    alias: Option<&'a str>,
}

impl Reader<'_> {
    fn alias_key(&self, setting: &str) -> Option<String> {
        self.alias
            .map(|a| format!("{PREFIX}{}.{setting}", a.replace('/', "_")))
    }

    /// The value and its key: the alias's, else the Application-wide one when
    /// `app_wide`.
    fn get(&self, setting: &str, app_wide: bool) -> Option<(String, &str)> {
        if let Some(key) = self.alias_key(setting)
            && let Some(v) = self.annotations.get(&key)
        {
            return Some((key, v.as_str()));
        }
        if !app_wide {
            return None;
        }
        let key = format!("{PREFIX}{setting}");
        self.annotations.get(&key).map(|v| (key, v.as_str()))
    }

    /// A trimmed, non-empty value (upstream ignores empty ones).
    fn value(&self, setting: &str, app_wide: bool) -> Option<(String, String)> {
        self.get(setting, app_wide)
            .map(|(k, v)| (k, v.trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
    }

    fn image(
        &self,
        namespace: &str,
        alias: Option<String>,
        spec: ImageSpec,
        warnings: &mut Vec<Warning>,
    ) -> Result<ImageConfig, AnnotationError> {
        let setting = |key: &str| {
            let key = key.to_owned();
            move |source: SettingError| AnnotationError::Setting {
                key,
                source: Box::new(source),
            }
        };
        let (strategy, strategy_key) = match self.value("update-strategy", true) {
            Some((key, v)) => {
                let (s, note) = Strategy::parse(&v).map_err(setting(&key))?;
                if let Some(note) = note {
                    warnings.push(Warning::new(&key, note));
                }
                (s, key)
            }
            None => (Strategy::Semver, IMAGE_LIST.to_owned()),
        };
        let policy = match ImageConfig::policy_for(strategy, &spec, &strategy_key)
            .map_err(setting(&strategy_key))?
        {
            Ok(p) => Some(p),
            Err(w) => {
                warnings.push(w);
                None
            }
        };
        let allow_tags = match self.value("allow-tags", true) {
            Some((key, v)) => TagFilter::parse(&v).map_err(setting(&key))?,
            None => TagFilter::Any,
        };
        let ignore_tags = match self.get("ignore-tags", true) {
            Some((key, v)) => {
                let items: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
                let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
                parse_ignore(&items).map_err(setting(&key))?
            }
            None => Vec::new(),
        };
        let platforms = match self.value("platforms", false) {
            Some((key, v)) => {
                let items: Vec<String> = v.split(',').map(str::to_owned).collect();
                parse_platforms(&items).map_err(setting(&key))?
            }
            None => Vec::new(),
        };
        let pull_secret = match self.value("pull-secret", true) {
            Some((key, v)) => Some(PullSecretRef::parse(&v, namespace).map_err(setting(&key))?),
            None => None,
        };
        let force_update = match self.get("force-update", true) {
            Some((key, v)) => parse_bool(v).map_err(setting(&key))?,
            None => false,
        };
        let target = self.target()?;
        let digest_form = self.digest_form()?;
        Ok(ImageConfig {
            alias,
            image: spec,
            strategy,
            policy,
            allow_tags,
            ignore_tags,
            platforms,
            pull_secret,
            force_update,
            target,
            digest_form,
        })
    }

    fn target(&self) -> Result<ManifestTarget, AnnotationError> {
        let name = self.value("helm.image-name", false);
        let tag = self.value("helm.image-tag", false);
        let spec = self.value("helm.image-spec", false);
        let kustomize = self.value("kustomize.image-name", false);
        let helm_configured = name.is_some() || tag.is_some() || spec.is_some();
        if helm_configured && let Some((key, _)) = &kustomize {
            return Err(AnnotationError::Setting {
                key: key.clone(),
                source: Box::new(SettingError::Image {
                    value: self.alias.unwrap_or_default().to_owned(),
                    reason: "both helm.* and kustomize.image-name are set for this alias; keep the one that matches the Application's source".into(),
                }),
            });
        }
        Ok(ManifestTarget {
            helm: HelmTarget::new(
                name.as_ref().map(|(_, v)| v.as_str()),
                tag.as_ref().map(|(_, v)| v.as_str()),
                spec.as_ref().map(|(_, v)| v.as_str()),
            ),
            helm_configured,
            kustomize_name: kustomize.map(|(_, v)| v),
        })
    }

    fn digest_form(&self) -> Result<Option<DigestForm>, AnnotationError> {
        let own = self
            .alias
            .map(|a| format!("freshet.io/{}.digest-form", a.replace('/', "_")));
        let found = own
            .and_then(|k| self.annotations.get(&k).map(|v| (k, v)))
            .or_else(|| {
                self.annotations
                    .get(DIGEST_FORM)
                    .map(|v| (DIGEST_FORM.to_owned(), v))
            });
        found
            .map(|(key, v)| {
                DigestForm::parse(v).map_err(|source| AnnotationError::Setting {
                    key,
                    source: Box::new(source),
                })
            })
            .transpose()
    }
}

fn write_back(
    annotations: &crate::Labels,
    warnings: &mut Vec<Warning>,
) -> Result<WriteBack, AnnotationError> {
    let get = |k: &str| {
        annotations
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let wrap = |key: &'static str| move |source| AnnotationError::WriteBack { key, source };
    let method = get(WRITE_BACK_METHOD)
        .map(Method::parse)
        .transpose()
        .map_err(wrap(WRITE_BACK_METHOD))?
        .unwrap_or_default();
    let target = get(WRITE_BACK_TARGET)
        .map(Target::parse)
        .transpose()
        .map_err(wrap(WRITE_BACK_TARGET))?
        .unwrap_or_default();
    let branch = get(GIT_BRANCH)
        .map(GitBranch::parse)
        .transpose()
        .map_err(wrap(GIT_BRANCH))?
        .unwrap_or_default();
    let repository = get(GIT_REPOSITORY).map(str::to_owned);
    if method == Method::Argocd {
        for key in [WRITE_BACK_TARGET, GIT_BRANCH, GIT_REPOSITORY] {
            if get(key).is_some() {
                warnings.push(Warning::new(
                    key,
                    "ignored: the write-back method is argocd; set write-back-method: git to use it, or remove it",
                ));
            }
        }
    }
    Ok(WriteBack {
        method,
        target,
        repository,
        branch,
    })
}

/// Warns about every prefixed annotation that no image or Application setting reads.
fn warn_unknown(annotations: &crate::Labels, images: &[ImageConfig], warnings: &mut Vec<Warning>) {
    let aliases: Vec<String> = images
        .iter()
        .filter_map(|i| i.alias.as_ref().map(|a| a.replace('/', "_")))
        .collect();
    for key in annotations.keys() {
        let Some(rest) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if APP_SETTINGS.contains(&rest) {
            continue;
        }
        // Aliases may contain dots, so try each alias that prefixes the key.
        let settings: Vec<&str> = aliases
            .iter()
            .filter_map(|a| rest.strip_prefix(a.as_str())?.strip_prefix('.'))
            .collect();
        let per_alias = if settings.iter().any(|s| ALIAS_SETTINGS.contains(s)) {
            continue;
        } else if settings.contains(&"tag-match") {
            Some("tag-match")
        } else {
            settings.first().copied()
        };
        match per_alias {
            Some("tag-match") => warnings.push(Warning::new(
                key,
                "tag-match was removed from Image Updater and freshet does not read it; rename it to allow-tags",
            )),
            Some(_) => warnings.push(Warning::new(
                key,
                "unknown setting for this alias, not read; check the spelling against update-strategy, allow-tags, ignore-tags, platforms, pull-secret, force-update, helm.image-name, helm.image-tag, helm.image-spec, kustomize.image-name",
            )),
            None => warnings.push(Warning::new(
                key,
                "not read: it names no alias of image-list and no Application-wide setting; fix the alias or remove it",
            )),
        }
    }
}
