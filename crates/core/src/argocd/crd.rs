//! Image Updater's `ImageUpdater` custom resource (`argocd-image-updater.argoproj.io/
//! v1alpha1`, Image Updater v1.x): its serde types, which Applications it selects, and
//! the cascade of its settings into one [`AppConfig`] per Application.
//!
//! Owns the types of argocd-image-updater v1.3.0 `api/v1alpha1/imageupdater_types.go`
//! (unknown fields are ignored, as the API server's pruning would), Application selection
//! as `pkg/argocd/argocd.go` does it (`namePattern` is a Go `filepath.Match` glob; label
//! selectors are `metav1.LabelSelector`; the rules are tried from the most specific,
//! `calculateSpecificity`, and the first match wins; Applications live in the
//! resource's namespace), and the cascade global → `applicationRefs[]` → `images[]`
//! (`mergeCommonUpdateSettings`, `mergeWBCSettings`: a field set at a narrower level
//! wins, a list replaces). `useAnnotations: true` reads the Application's annotations
//! instead ([`super::annotations`]). Must not list Applications or read Secrets: the
//! shell passes each Application's name, namespace, labels and annotations.
//!
//! Not supported, and said so: `imagesVerification` (freshet cannot verify cosign
//! signatures, so such images are not updated), `manifestTargets.plugin` (not updated),
//! `gitConfig.pullRequest` (an error: freshet would push to the branch instead).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::annotations::{self, AnnotationError};
use super::image::{
    HelmTarget, ImageConfig, ImageSpec, ManifestTarget, PullSecretRef, SettingError, Strategy,
    TagFilter, parse_ignore, parse_platforms,
};
use super::writeback::{BranchError, GitBranch, Method, Target, WriteBack};
use super::{AppConfig, Warning, glob};

/// The API group and version.
pub const API_VERSION: &str = "argocd-image-updater.argoproj.io/v1alpha1";
/// The kind.
pub const KIND: &str = "ImageUpdater";

/// Why a resource, or its settings for one Application, were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrError {
    /// The resource does not deserialize.
    #[error("ImageUpdater {name}: {message}")]
    Parse {
        /// `namespace/name`.
        name: String,
        /// serde's message.
        message: String,
    },
    /// A field is invalid.
    #[error("ImageUpdater {name} field {field}: {reason}")]
    Field {
        /// `namespace/name`.
        name: String,
        /// The field path.
        field: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// A setting's value is invalid.
    #[error("ImageUpdater {name} field {field}: {source}")]
    Setting {
        /// `namespace/name`.
        name: String,
        /// The field path.
        field: String,
        /// What is wrong.
        #[source]
        source: Box<SettingError>,
    },
    /// A write-back setting is invalid.
    #[error("ImageUpdater {name} field {field}: {source}")]
    WriteBack {
        /// `namespace/name`.
        name: String,
        /// The field path.
        field: String,
        /// What is wrong.
        #[source]
        source: BranchError,
    },
    /// `useAnnotations` is set and the Application's annotations are invalid.
    #[error(transparent)]
    Annotations(#[from] AnnotationError),
}

/// The resource's metadata that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
}

/// An `ImageUpdater`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdater {
    /// `metadata`.
    #[serde(default)]
    pub metadata: Meta,
    /// `spec`.
    #[serde(default)]
    pub spec: ImageUpdaterSpec,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdaterSpec {
    /// Deprecated and ignored upstream (the resource's namespace is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Global settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_update_settings: Option<CommonUpdateSettings>,
    /// Global write-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back_config: Option<WriteBackConfig>,
    /// The selection rules.
    #[serde(default)]
    pub application_refs: Vec<ApplicationRef>,
    /// Global signature verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_verification: Option<ImagesVerification>,
}

/// `spec.applicationRefs[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRef {
    /// Glob over Application names.
    pub name_pattern: String,
    /// Label selector over Application labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selectors: Option<LabelSelector>,
    /// Read the Application's annotations instead of `images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_annotations: Option<bool>,
    /// Signature verification for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_verification: Option<ImagesVerification>,
    /// Settings for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_update_settings: Option<CommonUpdateSettings>,
    /// Write-back for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back_config: Option<WriteBackConfig>,
    /// The images.
    #[serde(default)]
    pub images: Vec<ImageEntry>,
}

/// `images[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// The alias.
    pub alias: String,
    /// `repo[:constraint]`.
    pub image_name: String,
    /// Settings for this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_update_settings: Option<CommonUpdateSettings>,
    /// Where it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_targets: Option<ManifestTargets>,
    /// Signature verification for this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_verification: Option<ImagesVerification>,
}

/// `commonUpdateSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommonUpdateSettings {
    /// `semver`, `digest`, `alphabetical`, `newest-build` (and the old names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<String>,
    /// Update even when the image does not run in the Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_update: Option<bool>,
    /// `any` or `regexp:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_tags: Option<String>,
    /// Globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_tags: Option<Vec<String>>,
    /// A pull secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<String>,
    /// `os/arch[/variant]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
}

/// `writeBackConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteBackConfig {
    /// `argocd`, `git`, `git:<credentials>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Git settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_config: Option<GitConfig>,
}

/// `gitConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitConfig {
    /// Repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `base[:write-template]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `kustomization[:dir]`, `helmvalues[:file]`, or a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back_target: Option<String>,
    /// Pull-request mode (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<serde_json::Value>,
}

/// `manifestTargets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTargets {
    /// Helm parameter names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmTargetSpec>,
    /// Kustomize image name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeTargetSpec>,
    /// Plugin env vars (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
}

/// `manifestTargets.helm`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmTargetSpec {
    /// Parameter for the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parameter for the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Parameter for the whole reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
}

/// `manifestTargets.kustomize`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KustomizeTargetSpec {
    /// The image name in the kustomization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `imagesVerification`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesVerification {
    /// Defaults to true when the block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The cosign key's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign_key: Option<serde_json::Value>,
}

/// `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Expressions that must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// The values (for `In`/`NotIn`).
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (`LabelSelectorAsSelector` + `Matches`); an
    /// invalid selector is an error saying which requirement.
    pub fn matches(&self, labels: &crate::Labels) -> Result<bool, String> {
        for (k, v) in self.match_labels.iter().flatten() {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
        for r in self.match_expressions.iter().flatten() {
            let have = labels.get(&r.key);
            let ok = match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    return Err(format!("{} {} needs values", r.key, r.operator));
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    return Err(format!("{} {} takes no values", r.key, r.operator));
                }
                "In" => have.is_some_and(|h| r.values.contains(h)),
                "NotIn" => have.is_none_or(|h| !r.values.contains(h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                other => {
                    return Err(format!(
                        "operator {other:?} is not In, NotIn, Exists or DoesNotExist"
                    ));
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn size(&self) -> usize {
        self.match_labels.as_ref().map_or(0, BTreeMap::len)
            + self.match_expressions.as_ref().map_or(0, Vec::len)
    }
}

/// An Application as selection and `useAnnotations` need it.
#[derive(Debug, Clone, Copy)]
pub struct AppMeta<'a> {
    /// Name.
    pub name: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Labels.
    pub labels: &'a crate::Labels,
    /// Annotations.
    pub annotations: &'a crate::Labels,
}

/// Upstream's `calculateSpecificity`.
fn specificity(r: &ApplicationRef) -> usize {
    let p = &r.name_pattern;
    let mut score = 0;
    if !p.contains(['*', '?', '[', ']']) {
        score += 1_000_000;
    }
    // Character sets count for nothing; other wildcards are dropped.
    let mut literals = 0;
    let mut in_set = false;
    for c in p.chars() {
        match c {
            '[' => in_set = true,
            ']' if in_set => in_set = false,
            '*' | '?' => {}
            _ if !in_set => literals += 1,
            _ => {}
        }
    }
    score += literals;
    if let Some(sel) = &r.label_selectors {
        score += 10_000 + sel.size() * 100;
    }
    score
}

impl ImageUpdater {
    /// Deserializes and validates a resource (the patterns and selectors).
    pub fn from_value(value: &serde_json::Value) -> Result<ImageUpdater, CrError> {
        let cr: ImageUpdater =
            serde_json::from_value(value.clone()).map_err(|e| CrError::Parse {
                name: format!(
                    "{}/{}",
                    value["metadata"]["namespace"].as_str().unwrap_or(""),
                    value["metadata"]["name"].as_str().unwrap_or("")
                ),
                message: e.to_string(),
            })?;
        for (i, r) in cr.spec.application_refs.iter().enumerate() {
            glob::validate(&r.name_pattern).map_err(|reason| {
                cr.field(format!("spec.applicationRefs[{i}].namePattern"), reason)
            })?;
            if let Some(sel) = &r.label_selectors {
                sel.matches(&crate::Labels::new()).map_err(|reason| {
                    cr.field(format!("spec.applicationRefs[{i}].labelSelectors"), reason)
                })?;
            }
            if r.use_annotations != Some(true) && r.images.is_empty() {
                return Err(cr.field(
                    format!("spec.applicationRefs[{i}]"),
                    "has no images; list images, or set useAnnotations: true".into(),
                ));
            }
        }
        Ok(cr)
    }

    fn name(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    fn field(&self, field: String, reason: String) -> CrError {
        CrError::Field {
            name: self.name(),
            field,
            reason,
        }
    }

    /// The rule that selects the Application (the most specific that matches), with its
    /// index in `spec.applicationRefs`; `None`: the resource does not manage it.
    pub fn select(&self, app: &AppMeta<'_>) -> Option<(usize, &ApplicationRef)> {
        if app.namespace != self.metadata.namespace {
            return None;
        }
        let mut refs: Vec<(usize, &ApplicationRef)> =
            self.spec.application_refs.iter().enumerate().collect();
        refs.sort_by_key(|(_, r)| std::cmp::Reverse(specificity(r)));
        refs.into_iter().find(|(_, r)| {
            glob::matches(&r.name_pattern, app.name)
                && r.label_selectors
                    .as_ref()
                    .is_none_or(|s| s.matches(app.labels).unwrap_or(false))
        })
    }

    /// The configuration for one Application; `Ok(None)` when no rule selects it.
    pub fn resolve(&self, app: &AppMeta<'_>) -> Result<Option<AppConfig>, CrError> {
        let Some((i, r)) = self.select(app) else {
            return Ok(None);
        };
        let at = format!("spec.applicationRefs[{i}]");
        if r.use_annotations == Some(true) {
            let Some(mut config) = annotations::from_annotations(app.namespace, app.annotations)?
            else {
                return Ok(None);
            };
            if r.common_update_settings.is_some()
                || r.write_back_config.is_some()
                || !r.images.is_empty()
            {
                config.warnings.push(Warning::new(
                    &at,
                    "useAnnotations is true, so its images, commonUpdateSettings and writeBackConfig are ignored (as Image Updater does); remove them",
                ));
            }
            let verification =
                merge_verification(&[&self.spec.images_verification, &r.images_verification]);
            if verification {
                for image in &mut config.images {
                    unverifiable(image, &at, &mut config.warnings);
                }
            }
            return Ok(Some(config));
        }
        let mut warnings = Vec::new();
        let write_back = self.write_back(r, &at)?;
        let mut images = Vec::with_capacity(r.images.len());
        for (j, entry) in r.images.iter().enumerate() {
            let at = format!("{at}.images[{j}]");
            let mut image = self.image(app.namespace, r, entry, &at, &mut warnings)?;
            if merge_verification(&[
                &self.spec.images_verification,
                &r.images_verification,
                &entry.images_verification,
            ]) {
                unverifiable(&mut image, &at, &mut warnings);
            }
            images.push(image);
        }
        Ok(Some(AppConfig {
            images,
            write_back,
            warnings,
        }))
    }

    fn write_back(&self, r: &ApplicationRef, at: &str) -> Result<WriteBack, CrError> {
        let levels = [
            (
                "spec.writeBackConfig".to_owned(),
                self.spec.write_back_config.as_ref(),
            ),
            (
                format!("{at}.writeBackConfig"),
                r.write_back_config.as_ref(),
            ),
        ];
        let mut wb = WriteBack::default();
        let wrap = |field: String| {
            let name = self.name();
            move |source| CrError::WriteBack {
                name,
                field,
                source,
            }
        };
        for (field, level) in levels {
            let Some(level) = level else { continue };
            if let Some(m) = &level.method {
                wb.method = Method::parse(m).map_err(wrap(format!("{field}.method")))?;
            }
            let Some(git) = &level.git_config else {
                continue;
            };
            if let Some(repo) = &git.repository {
                wb.repository = Some(repo.clone());
            }
            if let Some(b) = &git.branch {
                wb.branch =
                    GitBranch::parse(b).map_err(wrap(format!("{field}.gitConfig.branch")))?;
            }
            if let Some(t) = &git.write_back_target {
                wb.target =
                    Target::parse(t).map_err(wrap(format!("{field}.gitConfig.writeBackTarget")))?;
            }
            if git.pull_request.is_some() {
                return Err(self.field(
                    format!("{field}.gitConfig.pullRequest"),
                    "freshet does not open pull requests; remove pullRequest to push to the branch (freshet batches one commit per repository and branch), or keep Image Updater for this Application".into(),
                ));
            }
        }
        Ok(wb)
    }

    fn image(
        &self,
        namespace: &str,
        r: &ApplicationRef,
        entry: &ImageEntry,
        at: &str,
        warnings: &mut Vec<Warning>,
    ) -> Result<ImageConfig, CrError> {
        let name = self.name();
        let setting = |field: &str| {
            let (name, field) = (name.clone(), field.to_owned());
            move |source: SettingError| CrError::Setting {
                name,
                field,
                source: Box::new(source),
            }
        };
        let spec =
            ImageSpec::parse(&entry.image_name).map_err(setting(&format!("{at}.imageName")))?;
        let levels = Levels([
            (
                "spec.commonUpdateSettings".to_owned(),
                self.spec.common_update_settings.as_ref(),
            ),
            (
                format!(
                    "{}.commonUpdateSettings",
                    at.rsplit_once(".images").map_or(at, |(a, _)| a)
                ),
                r.common_update_settings.as_ref(),
            ),
            (
                format!("{at}.commonUpdateSettings"),
                entry.common_update_settings.as_ref(),
            ),
        ]);
        let pick = |get: &dyn Fn(&CommonUpdateSettings) -> bool| levels.pick(get);
        let mut strategy = Strategy::Semver;
        let mut strategy_field = format!("{at}.imageName");
        if let Some((f, s)) = pick(&|s| s.update_strategy.is_some()) {
            let field = format!("{f}.updateStrategy");
            let (parsed, note) = Strategy::parse(s.update_strategy.as_deref().unwrap_or_default())
                .map_err(setting(&field))?;
            if let Some(note) = note {
                warnings.push(Warning::new(&field, note));
            }
            strategy = parsed;
            strategy_field = field;
        }
        let policy = match ImageConfig::policy_for(strategy, &spec, &strategy_field)
            .map_err(setting(&strategy_field))?
        {
            Ok(p) => Some(p),
            Err(w) => {
                warnings.push(w);
                None
            }
        };
        let (allow_tags, ignore_tags, platforms) = self.tag_settings(&levels)?;
        let pull_secret = match pick(&|s| {
            s.pull_secret
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty())
        }) {
            Some((f, s)) => Some(
                PullSecretRef::parse(s.pull_secret.as_deref().unwrap_or_default(), namespace)
                    .map_err(setting(&format!("{f}.pullSecret")))?,
            ),
            None => None,
        };
        let force_update = pick(&|s| s.force_update.is_some())
            .and_then(|(_, s)| s.force_update)
            .unwrap_or(false);
        let (target, plugin) = self.manifest_target(entry, at)?;
        let mut image = ImageConfig {
            alias: Some(entry.alias.clone()),
            image: spec,
            strategy,
            policy,
            allow_tags,
            ignore_tags,
            platforms,
            pull_secret,
            force_update,
            target,
            digest_form: None,
        };
        if plugin {
            image.policy = None;
            warnings.push(Warning::new(
                format!("{at}.manifestTargets.plugin"),
                "freshet does not write plugin env vars; this image is not updated: use a helm or kustomize target",
            ));
        }
        Ok(image)
    }

    /// `allowTags`, `ignoreTags` and `platforms` after the cascade.
    fn tag_settings(
        &self,
        levels: &Levels<'_>,
    ) -> Result<(TagFilter, Vec<String>, Vec<crate::Platform>), CrError> {
        let setting = |field: String| {
            let name = self.name();
            move |source: SettingError| CrError::Setting {
                name,
                field,
                source: Box::new(source),
            }
        };
        let allow_tags = match levels.pick(&|s| s.allow_tags.is_some()) {
            Some((f, s)) => TagFilter::parse(s.allow_tags.as_deref().unwrap_or_default())
                .map_err(setting(format!("{f}.allowTags")))?,
            None => TagFilter::Any,
        };
        let ignore_tags = match levels.pick(&|s| s.ignore_tags.is_some()) {
            Some((f, s)) => parse_ignore(s.ignore_tags.as_deref().unwrap_or_default())
                .map_err(setting(format!("{f}.ignoreTags")))?,
            None => Vec::new(),
        };
        let platforms = match levels.pick(&|s| s.platforms.is_some()) {
            Some((f, s)) => parse_platforms(s.platforms.as_deref().unwrap_or_default())
                .map_err(setting(format!("{f}.platforms")))?,
            None => Vec::new(),
        };
        Ok((allow_tags, ignore_tags, platforms))
    }

    /// `manifestTargets`, and whether it is a plugin target.
    fn manifest_target(
        &self,
        entry: &ImageEntry,
        at: &str,
    ) -> Result<(ManifestTarget, bool), CrError> {
        let targets = entry.manifest_targets.clone().unwrap_or_default();
        let set = [
            targets.helm.is_some(),
            targets.kustomize.is_some(),
            targets.plugin.is_some(),
        ];
        if set.iter().filter(|b| **b).count() > 1 {
            return Err(self.field(
                format!("{at}.manifestTargets"),
                "set exactly one of helm, kustomize and plugin".into(),
            ));
        }
        let target = ManifestTarget {
            helm: targets.helm.as_ref().map_or_else(HelmTarget::default, |h| {
                HelmTarget::new(h.name.as_deref(), h.tag.as_deref(), h.spec.as_deref())
            }),
            helm_configured: targets.helm.is_some(),
            kustomize_name: targets.kustomize.and_then(|k| k.name),
        };
        Ok((target, targets.plugin.is_some()))
    }
}

/// The settings levels of one image, broadest first, with their field paths.
struct Levels<'a>([(String, Option<&'a CommonUpdateSettings>); 3]);

impl<'a> Levels<'a> {
    /// The narrowest level that sets a field (as `get` says), with its field path.
    fn pick(
        &self,
        get: &dyn Fn(&CommonUpdateSettings) -> bool,
    ) -> Option<(String, &'a CommonUpdateSettings)> {
        self.0
            .iter()
            .rev()
            .find_map(|(f, s)| s.filter(|s| get(s)).map(|s| (f.clone(), s)))
    }
}

/// Whether verification is on after the cascade (a block present and not disabled).
fn merge_verification(levels: &[&Option<ImagesVerification>]) -> bool {
    let mut on = None;
    for level in levels.iter().filter_map(|l| l.as_ref()) {
        on = Some(level.enabled.unwrap_or(on.unwrap_or(true)));
    }
    on.unwrap_or(false)
}

fn unverifiable(image: &mut ImageConfig, at: &str, warnings: &mut Vec<Warning>) {
    if image.policy.take().is_some() {
        warnings.push(Warning::new(
            format!("{at} imagesVerification"),
            format!(
                "freshet cannot verify cosign signatures, so {} is not updated; set imagesVerification.enabled: false for it to update without verification, or keep Image Updater for it",
                image.label()
            ),
        ));
    }
}
