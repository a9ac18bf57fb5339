//! One tracked image of an Application, whatever configured it (annotations or the
//! `ImageUpdater` resource), and the settings Image Updater attaches to it.
//!
//! Owns the value types ([`ImageConfig`], [`Strategy`], [`TagFilter`], [`PullSecretRef`],
//! [`ManifestTarget`], [`DigestForm`]), the parsers of each setting's string form, the
//! mapping of a strategy and constraint onto a freshet [`Policy`], and tag filtering
//! (`allow-tags`, `ignore-tags`). Must not read annotations, registries or secrets: the
//! callers hand strings in, and the shells fetch what the values name.
//!
//! Follows argocd-image-updater v1.3.0: `registry-scanner/pkg/image/options.go`
//! (`ParseUpdateStrategy`, `ParseMatch`, `ParsePlatform`), `version.go`
//! (`IsTagIgnored`), `image.go` (`NewFromIdentifier`, `GetTagWithDigest`) and
//! `pkg/argocd/argocd.go` (`getHelmParamNames`: the defaults `image.name` and
//! `image.tag`).

use crate::Platform;
use crate::policy::{Order, Policy};

use super::Warning;
use super::constraint::{self, ConstraintError};
use super::glob;

/// Helm parameter for the image name when none is configured (upstream
/// `common.DefaultHelmImageName`).
pub const DEFAULT_HELM_NAME: &str = "image.name";
/// Helm parameter for the image tag when none is configured.
pub const DEFAULT_HELM_TAG: &str = "image.tag";
/// The most `ignore-tags` patterns per image.
pub const MAX_IGNORE: usize = 64;
/// The most platforms per image.
pub const MAX_PLATFORMS: usize = 16;

/// Why one setting's value was rejected. The caller wraps it with the annotation or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// An unknown update strategy.
    #[error(
        "unknown update strategy {0:?}: use semver, digest, alphabetical or newest-build (Image Updater would silently fall back to semver; freshet refuses to guess)"
    )]
    Strategy(String),
    /// `allow-tags` is neither `any` nor `regexp:…`, or its regex does not compile.
    #[error(
        "allow-tags {value:?}: {reason}; write any or regexp:<expression>, e.g. regexp:^v[0-9]+\\.[0-9]+\\.[0-9]+$"
    )]
    AllowTags {
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An `ignore-tags` glob is malformed, or there are too many.
    #[error(
        "ignore-tags pattern {pattern:?}: {reason}; write glob patterns such as latest, *-rc*, v[0-9]*"
    )]
    IgnoreTags {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// A platform is not `os/arch[/variant]`.
    #[error("platform {0:?} is not os/arch[/variant]; write e.g. linux/amd64,linux/arm64/v8")]
    Platform(String),
    /// A pull secret reference is malformed.
    #[error("pull-secret {value:?}: {reason}")]
    PullSecret {
        /// The value (a reference, never a secret).
        value: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// A boolean is not one of Go's `strconv.ParseBool` spellings.
    #[error("{0:?} is not a boolean; write true or false")]
    Bool(String),
    /// The digest form is unknown.
    #[error(
        "digest form {0:?} is unknown; write tag-digest (tag@sha256:…, the default) or digest (a bare sha256:…)"
    )]
    DigestForm(String),
    /// The image (and constraint) does not parse.
    #[error("image {value:?}: {reason}")]
    Image {
        /// The image-list entry.
        value: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// The constraint does not translate.
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
}

/// How Image Updater picks the newest tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The highest semantic version inside the constraint (the default).
    Semver,
    /// The newest digest behind one mutable tag.
    Digest,
    /// The greatest tag in byte order (`name` is its old spelling).
    Alphabetical,
    /// The tag with the newest image creation date (`latest` is its old spelling).
    NewestBuild,
}

impl Strategy {
    /// Parses a strategy as Image Updater's `ParseUpdateStrategy` does (case-insensitive,
    /// old names accepted), except that an unknown name is an error; the second value is a
    /// deprecation note for `latest` and `name`.
    pub fn parse(value: &str) -> Result<(Strategy, Option<&'static str>), SettingError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "semver" => Ok((Strategy::Semver, None)),
            "digest" => Ok((Strategy::Digest, None)),
            "alphabetical" => Ok((Strategy::Alphabetical, None)),
            "name" => Ok((
                Strategy::Alphabetical,
                Some("the strategy name was renamed alphabetical; write alphabetical"),
            )),
            "newest-build" => Ok((Strategy::NewestBuild, None)),
            "latest" => Ok((
                Strategy::NewestBuild,
                Some("the strategy latest was renamed newest-build; write newest-build"),
            )),
            _ => Err(SettingError::Strategy(value.to_owned())),
        }
    }
}

/// Which tags an image may move to (`allow-tags`).
#[derive(Debug, Clone, Default)]
pub enum TagFilter {
    /// Every tag (`any`, or no annotation).
    #[default]
    Any,
    /// Tags the expression matches anywhere (`regexp:<expression>`, unanchored as in Go).
    Regexp(regex::Regex),
}

impl PartialEq for TagFilter {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TagFilter::Any, TagFilter::Any) => true,
            (TagFilter::Regexp(a), TagFilter::Regexp(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl TagFilter {
    /// Parses `any` or `regexp:<expression>`. Image Updater matches nothing on a bad
    /// value; freshet says so instead.
    pub fn parse(value: &str) -> Result<TagFilter, SettingError> {
        let err = |reason: &str| SettingError::AllowTags {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let value_t = value.trim();
        if value_t.is_empty() || value_t.eq_ignore_ascii_case("any") {
            return Ok(TagFilter::Any);
        }
        let Some((func, arg)) = value_t.split_once(':') else {
            return Err(err("it names no match function"));
        };
        if !func.eq_ignore_ascii_case("regexp") {
            return Err(err("the only match functions are any and regexp"));
        }
        regex::RegexBuilder::new(arg)
            .size_limit(crate::policy::REGEX_SIZE_LIMIT)
            .dfa_size_limit(crate::policy::REGEX_SIZE_LIMIT)
            .build()
            .map(TagFilter::Regexp)
            .map_err(|e| err(&format!("the expression does not compile: {e}")))
    }

    /// Whether `tag` passes.
    pub fn allows(&self, tag: &str) -> bool {
        match self {
            TagFilter::Any => true,
            TagFilter::Regexp(re) => re.is_match(tag),
        }
    }
}

/// Validated `ignore-tags` globs (Go `filepath.Match` syntax).
pub fn parse_ignore(patterns: &[String]) -> Result<Vec<String>, SettingError> {
    if patterns.len() > MAX_IGNORE {
        return Err(SettingError::IgnoreTags {
            pattern: format!("{} patterns", patterns.len()),
            reason: format!("at most {MAX_IGNORE} patterns are allowed"),
        });
    }
    patterns
        .iter()
        .map(|p| p.trim().to_owned())
        .map(|p| {
            glob::validate(&p)
                .map(|()| p.clone())
                .map_err(|reason| SettingError::IgnoreTags { pattern: p, reason })
        })
        .collect()
}

/// `linux/amd64,linux/arm64/v8` as platforms.
pub fn parse_platforms(items: &[String]) -> Result<Vec<Platform>, SettingError> {
    if items.len() > MAX_PLATFORMS {
        return Err(SettingError::Platform(format!("{} platforms", items.len())));
    }
    items
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.split('/').count() < 2 {
                return Err(SettingError::Platform(p.to_owned()));
            }
            Platform::parse(p).map_err(|_| SettingError::Platform(p.to_owned()))
        })
        .collect()
}

/// Where an image's registry credentials come from (`pull-secret`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PullSecretRef {
    /// `pullsecret:<namespace>/<name>`: a `.dockerconfigjson` Secret.
    PullSecret {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// `secret:<namespace>/<name>#<field>`: a field holding `username:password`.
    SecretField {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The data key.
        field: String,
    },
}

impl PullSecretRef {
    /// Parses a reference. `env:` and `ext:` are refused: freshet never reads its own
    /// environment for a credential named by an Application, and never runs a script an
    /// Application names. The namespace must be the Application's, as Image Updater
    /// enforces since v1.3.0 (`pkg/argocd/update.go`; earlier versions read any namespace).
    pub fn parse(value: &str, app_namespace: &str) -> Result<PullSecretRef, SettingError> {
        let err = |reason: String| SettingError::PullSecret {
            value: value.to_owned(),
            reason,
        };
        let v = value.trim();
        let (kind, rest) = v.split_once(':').ok_or_else(|| {
            err("write pullsecret:<namespace>/<name> or secret:<namespace>/<name>#<field>".into())
        })?;
        let ns_name = |s: &str| -> Result<(String, String), SettingError> {
            let (ns, name) = s
                .split_once('/')
                .filter(|(a, b)| valid_name(a) && valid_name(b))
                .ok_or_else(|| err(format!("{s:?} is not <namespace>/<name>")))?;
            if ns != app_namespace {
                return Err(err(format!(
                    "the secret is in namespace {ns:?}, not the Application's namespace {app_namespace:?}; cross-namespace secrets are refused (as Image Updater does): copy the secret into {app_namespace:?}"
                )));
            }
            Ok((ns.to_owned(), name.to_owned()))
        };
        match kind {
            "pullsecret" => {
                let (namespace, name) = ns_name(rest)?;
                Ok(PullSecretRef::PullSecret { namespace, name })
            }
            "secret" => {
                let (path, field) = rest
                    .split_once('#')
                    .filter(|(_, f)| !f.is_empty() && f.len() <= 253)
                    .ok_or_else(|| err("write secret:<namespace>/<name>#<field>".into()))?;
                let (namespace, name) = ns_name(path)?;
                Ok(PullSecretRef::SecretField {
                    namespace,
                    name,
                    field: field.to_owned(),
                })
            }
            "env" => Err(err(
                "freshet does not take credentials from its own environment on an Application's say; put them in a pull secret and write pullsecret:<namespace>/<name>".into(),
            )),
            "ext" => Err(err(
                "freshet never runs a script named by an Application; put the credentials in a pull secret and write pullsecret:<namespace>/<name>".into(),
            )),
            _ => Err(err(
                "unknown kind; write pullsecret:<namespace>/<name> or secret:<namespace>/<name>#<field>".into(),
            )),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The Helm parameters an image is written to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HelmTarget {
    /// A parameter for the name and one for the tag (defaults `image.name`,
    /// `image.tag`).
    Names {
        /// Parameter for the image name.
        name: String,
        /// Parameter for the tag (or `tag@sha256:…`, or a bare digest).
        tag: String,
    },
    /// One parameter for the whole reference (`helm.image-spec`); it wins over the names.
    Spec {
        /// The parameter.
        spec: String,
    },
}

impl Default for HelmTarget {
    fn default() -> Self {
        HelmTarget::Names {
            name: DEFAULT_HELM_NAME.to_owned(),
            tag: DEFAULT_HELM_TAG.to_owned(),
        }
    }
}

impl HelmTarget {
    /// The target for configured names, with upstream's defaults for unset ones; a spec
    /// wins over names (`newImageFromManifestTargetSettings`).
    pub fn new(name: Option<&str>, tag: Option<&str>, spec: Option<&str>) -> HelmTarget {
        match spec {
            Some(spec) => HelmTarget::Spec {
                spec: spec.to_owned(),
            },
            None => HelmTarget::Names {
                name: name.unwrap_or(DEFAULT_HELM_NAME).to_owned(),
                tag: tag.unwrap_or(DEFAULT_HELM_TAG).to_owned(),
            },
        }
    }

    /// The parameter names this target writes.
    pub fn params(&self) -> Vec<&str> {
        match self {
            HelmTarget::Names { name, tag } => vec![name, tag],
            HelmTarget::Spec { spec } => vec![spec],
        }
    }
}

/// Where the new image is written: the Application's source type picks Helm or
/// kustomize, as upstream's `setAppImage` does.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ManifestTarget {
    /// The Helm parameters (for a Helm source or a `helmvalues` target).
    pub helm: HelmTarget,
    /// Whether the Helm parameters were configured (`helm.*` annotations or
    /// `manifestTargets.helm`) rather than defaulted.
    pub helm_configured: bool,
    /// The image name in the manifests that a kustomize override replaces
    /// (`kustomize.image-name`), when it differs from the tracked image.
    pub kustomize_name: Option<String>,
}

/// How a digest is written into a tag parameter (or a whole reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestForm {
    /// `tag@sha256:…` (`latest@sha256:…` with no tag), and `repo:tag@sha256:…` for a
    /// whole reference: what Image Updater writes since its PR #317.
    #[default]
    TagDigest,
    /// A bare `sha256:<hex>` in a tag parameter, and `repo@sha256:…` for a whole
    /// reference: what older updaters wrote, for charts whose helper switches `:` and `@`
    /// on a `sha256:` prefix.
    Digest,
}

impl DigestForm {
    /// Parses `tag-digest` (also `tag+digest`, `tag@digest`) or `digest`.
    pub fn parse(value: &str) -> Result<DigestForm, SettingError> {
        match value.trim() {
            "tag-digest" | "tag+digest" | "tag@digest" => Ok(DigestForm::TagDigest),
            "digest" | "bare" => Ok(DigestForm::Digest),
            other => Err(SettingError::DigestForm(other.to_owned())),
        }
    }

    /// The form a tag parameter already holds: `sha256:…` is bare, `tag@sha256:…` is
    /// tag-digest, anything else has no digest.
    pub fn of_tag_value(value: &str) -> Option<DigestForm> {
        if value.starts_with("sha256:") {
            Some(DigestForm::Digest)
        } else if value.contains("@sha256:") {
            Some(DigestForm::TagDigest)
        } else {
            None
        }
    }

    /// The form a whole reference already uses: `repo@sha256:…` is bare,
    /// `repo:tag@sha256:…` is tag-digest, anything else has no digest.
    pub fn of_reference(value: &str) -> Option<DigestForm> {
        match crate::files::split_written(value) {
            (_, Some(_), Some(_)) => Some(DigestForm::TagDigest),
            (_, None, Some(_)) => Some(DigestForm::Digest),
            _ => None,
        }
    }
}

/// Go's `strconv.ParseBool`, which Image Updater uses for `force-update`.
pub fn parse_bool(value: &str) -> Result<bool, SettingError> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(SettingError::Bool(other.to_owned())),
    }
}

/// An `image-list` image: `repo[:constraint]`, as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageSpec {
    /// `registry/repository` as written (`nginx`, `ghcr.io/org/app`).
    pub name: String,
    /// What follows the name's `:`: a semver constraint, or the tag to follow.
    pub constraint: Option<String>,
    /// A digest written after `@`, if any.
    pub digest: Option<String>,
}

impl ImageSpec {
    /// Splits `repo[:constraint][@digest]`. The colon of a `host:port` is not a
    /// constraint (Image Updater's fallback parser gets `localhost:5000/app:1.x` wrong;
    /// freshet does not). The name must be a valid repository.
    pub fn parse(value: &str) -> Result<ImageSpec, SettingError> {
        let err = |reason: &str| SettingError::Image {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let v = value.trim();
        if v.is_empty() {
            return Err(err(
                "the image is empty; write alias=registry/repository[:constraint]",
            ));
        }
        if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(err("it contains whitespace or control characters"));
        }
        let (rest, digest) = match v.split_once('@') {
            Some((r, d)) => (r, Some(d.to_owned())),
            None => (v, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, constraint) = match rest[slash..].find(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        crate::Reference::parse(name).map_err(|e| err(&e.to_string()))?;
        if let Some(d) = &digest {
            crate::Digest::parse(d).map_err(|e| err(&e.to_string()))?;
        }
        Ok(ImageSpec {
            name: name.to_owned(),
            constraint: constraint.filter(|c| !c.is_empty()),
            digest,
        })
    }
}

/// One image of an Application with every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    /// The alias (`None` for an `image-list` entry without `alias=`).
    pub alias: Option<String>,
    /// The image as written.
    pub image: ImageSpec,
    /// The strategy.
    pub strategy: Strategy,
    /// The freshet policy the strategy and constraint map to; `None` when freshet cannot
    /// follow this image (see the warnings).
    pub policy: Option<Policy>,
    /// `allow-tags`.
    pub allow_tags: TagFilter,
    /// `ignore-tags` globs.
    pub ignore_tags: Vec<String>,
    /// `platforms`: a candidate must offer each (empty: any).
    pub platforms: Vec<Platform>,
    /// `pull-secret`.
    pub pull_secret: Option<PullSecretRef>,
    /// `force-update`: update even when the image is not in the Application's status.
    pub force_update: bool,
    /// Where the image is written.
    pub target: ManifestTarget,
    /// The digest form chosen by `freshet.io/[<alias>.]digest-form`, if any; `None`
    /// keeps the form already written (tag-digest when nothing is written).
    pub digest_form: Option<DigestForm>,
}

impl ImageConfig {
    /// The freshet policy for a strategy and constraint, or the warning that says why
    /// freshet cannot follow it.
    pub fn policy_for(
        strategy: Strategy,
        spec: &ImageSpec,
        source: &str,
    ) -> Result<Result<Policy, Warning>, SettingError> {
        Ok(Ok(match strategy {
            Strategy::Semver => constraint::semver_policy(spec.constraint.as_deref())?,
            Strategy::Digest => {
                let Some(tag) = &spec.constraint else {
                    return Err(SettingError::Image {
                        value: spec.name.clone(),
                        reason: "the digest strategy follows one tag, and none is given; write alias=repository:<tag>".into(),
                    });
                };
                if crate::Reference::parse(&format!("{}:{tag}", spec.name)).is_err() {
                    return Err(SettingError::Image {
                        value: format!("{}:{tag}", spec.name),
                        reason:
                            "the digest strategy needs a real tag after the colon, not a constraint"
                                .into(),
                    });
                }
                Policy::parse("digest").expect("a constant policy parses")
            }
            Strategy::Alphabetical => Policy::parse("regex:^.*$")
                .and_then(|p| p.with_order(Order::Alphabetical))
                .expect("a constant policy parses"),
            Strategy::NewestBuild => {
                return Ok(Err(Warning::new(
                    source,
                    "freshet has no newest-build strategy (it would cost a manifest and a config blob per tag); this image is not updated: use digest to follow a moving tag, or alphabetical with allow-tags for sortable build tags (e.g. regexp:^main-[0-9]{14}$)",
                )));
            }
        }))
    }

    /// The tag a `digest` strategy follows.
    pub fn tracked_tag(&self) -> Option<&str> {
        (self.strategy == Strategy::Digest)
            .then_some(self.image.constraint.as_deref())
            .flatten()
    }

    /// The key Image Updater prints for this image in its logs and branch templates.
    pub fn label(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.image.name)
    }

    /// Applies `allow-tags` and `ignore-tags` to a tag list. The current tag is always
    /// kept, so the policy engine can still order against it.
    pub fn filter_tags(&self, tags: &[String], current: Option<&str>) -> Vec<String> {
        tags.iter()
            .filter(|t| {
                Some(t.as_str()) == current
                    || self.allow_tags.allows(t)
                        && !self.ignore_tags.iter().any(|p| glob::matches(p, t))
            })
            .cloned()
            .collect()
    }
}
