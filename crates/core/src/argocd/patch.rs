//! The `argocd` write-back as a value: the patch that sets an Application's Helm
//! parameters or kustomize images.
//!
//! Owns computing, from an Application (JSON), its [`AppConfig`]'s write-back and the new
//! images, one [`AppPatch`] holding both an RFC 6902 JSON patch and an RFC 7386 merge
//! patch (custom resources take no strategic merge), each carrying the Application's
//! `metadata.resourceVersion` so that a concurrent change makes the API server answer
//! 409 instead of losing it; and the current value an image has in the spec (to skip a
//! write that changes nothing). Must not send anything: the cluster shell patches, and
//! on 409 re-reads, recomputes and retries.
//!
//! Follows argocd-image-updater v1.3.0 `pkg/argocd/argocd.go`: `SetHelmImage` (one
//! `image-spec` parameter, or name and tag parameters, each with `forceString: true`,
//! merged by `mergeHelmParams`: replaced in place, new ones appended, others kept in
//! order), `SetKustomizeImage` (`[name=]repo:tag@sha256:…`, replacing the entry with the
//! same image or alias, else appended as Argo CD's `MergeImage` does), `GetHelmImage`
//! and `GetKustomizeImage`. The digest forms are [`DigestForm`]'s.
//!
//! [`AppConfig`]: super::AppConfig

use serde_json::{Map, Value, json};

use crate::Digest;

use super::Warning;
use super::image::{DigestForm, HelmTarget, ImageConfig};
use super::source::{SourceChoice, SourceKind};

/// The most Helm parameters or kustomize images a source may hold.
pub const MAX_ENTRIES: usize = 4096;

/// Why no patch could be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The Application has no `metadata.resourceVersion` to make the write conditional.
    #[error(
        "the Application has no metadata.resourceVersion; read it from the API server, not from a file"
    )]
    NoResourceVersion,
    /// The chosen source is not in the Application.
    #[error("the Application has no source at {0}")]
    NoSource(String),
    /// A list in the source is not what Argo CD writes.
    #[error("{field} of the Application is not a list of {what}; fix the Application spec")]
    Malformed {
        /// The JSON pointer.
        field: String,
        /// What it should hold.
        what: &'static str,
    },
    /// The list is too long to be real.
    #[error("{field} holds more than {MAX_ENTRIES} entries")]
    TooLarge {
        /// The JSON pointer.
        field: String,
    },
    /// Neither a tag nor a digest to write.
    #[error("image {0}: the update has neither a tag nor a digest")]
    Empty(String),
}

/// The image to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    /// `registry/repository` as it is to be written (`ghcr.io/org/app`, `nginx`).
    pub name: String,
    /// The tag.
    pub tag: Option<String>,
    /// The digest behind the tag, when the strategy pins one.
    pub digest: Option<Digest>,
}

impl NewImage {
    /// The value of a tag parameter in `form`: `tag@sha256:…` (`latest@sha256:…` when
    /// there is no tag), a bare `sha256:…`, or the plain tag when there is no digest.
    pub fn tag_value(&self, form: DigestForm) -> Option<String> {
        match (&self.tag, &self.digest, form) {
            (tag, Some(d), DigestForm::TagDigest) => {
                Some(format!("{}@{d}", tag.as_deref().unwrap_or("latest")))
            }
            (_, Some(d), DigestForm::Digest) => Some(d.to_string()),
            (Some(t), None, _) => Some(t.clone()),
            (None, None, _) => None,
        }
    }

    /// The whole reference in `form`: `repo:tag@sha256:…` or `repo@sha256:…`, or
    /// `repo:tag` without a digest.
    pub fn reference(&self, form: DigestForm) -> String {
        match (&self.tag, &self.digest, form) {
            (Some(t), Some(d), DigestForm::TagDigest) => format!("{}:{t}@{d}", self.name),
            (_, Some(d), _) => format!("{}@{d}", self.name),
            (Some(t), None, _) => format!("{}:{t}", self.name),
            (None, None, _) => self.name.clone(),
        }
    }
}

/// One image to write.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// Its configuration.
    pub image: &'a ImageConfig,
    /// What it becomes.
    pub new: &'a NewImage,
}

/// One value the patch changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// The Helm parameter, or the kustomize image key.
    pub field: String,
    /// The value before (`None`: added).
    pub old: Option<String>,
    /// The value after.
    pub new: String,
}

/// The patch for one Application.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppPatch {
    /// The source written to.
    pub source: SourceChoice,
    /// RFC 6902 body (`application/json-patch+json`).
    pub json_patch: Value,
    /// RFC 7386 body (`application/merge-patch+json`). For a multi-source Application it
    /// carries the whole `spec.sources` list, since a merge patch replaces lists.
    pub merge_patch: Value,
    /// The values that change.
    pub changes: Vec<Change>,
    /// Things to tell the user (a parameter the Application did not have yet).
    pub warnings: Vec<Warning>,
}

/// The form an image is written in: the configured one, else the one already written,
/// else tag-digest.
pub fn form_for(image: &ImageConfig, current: Option<&str>, whole_reference: bool) -> DigestForm {
    image
        .digest_form
        .or_else(|| {
            current.and_then(|c| {
                if whole_reference {
                    DigestForm::of_reference(c)
                } else {
                    DigestForm::of_tag_value(c)
                }
            })
        })
        .unwrap_or_default()
}

/// Computes the patch; `Ok(None)` when every value is already what it would become.
pub fn argocd_patch(
    app: &Value,
    source: &SourceChoice,
    writes: &[Write<'_>],
) -> Result<Option<AppPatch>, PatchError> {
    let rv = app["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
        .ok_or(PatchError::NoResourceVersion)?;
    let pointer = source.pointer();
    let src = source
        .get(app)
        .filter(|s| s.is_object())
        .ok_or_else(|| PatchError::NoSource(pointer.clone()))?;
    let (block, list_key) = match source.kind {
        SourceKind::Kustomize => ("kustomize", "images"),
        _ => ("helm", "parameters"),
    };
    let list_pointer = format!("{pointer}/{block}/{list_key}");
    let before = match &src[block][list_key] {
        Value::Null => Vec::new(),
        Value::Array(items) if items.len() <= MAX_ENTRIES => items.clone(),
        Value::Array(_) => {
            return Err(PatchError::TooLarge {
                field: list_pointer,
            });
        }
        _ => {
            return Err(PatchError::Malformed {
                field: list_pointer,
                what: if block == "helm" {
                    "{name, value} objects"
                } else {
                    "strings"
                },
            });
        }
    };
    let mut list = before.clone();
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    for w in writes {
        if w.new.tag.is_none() && w.new.digest.is_none() {
            return Err(PatchError::Empty(w.new.name.clone()));
        }
        match source.kind {
            SourceKind::Kustomize => set_kustomize(&mut list, w, &list_pointer, &mut changes)?,
            _ => set_helm(&mut list, w, &list_pointer, &mut changes, &mut warnings)?,
        }
    }
    if list == before {
        return Ok(None);
    }
    let list = Value::Array(list);
    let op = |path: String, value: Value, exists: bool| json!({"op": if exists { "replace" } else { "add" }, "path": path, "value": value});
    let mut ops = vec![json!({"op": "replace", "path": "/metadata/resourceVersion", "value": rv})];
    if src[block].is_object() {
        ops.push(op(
            list_pointer,
            list.clone(),
            !src[block][list_key].is_null(),
        ));
    } else {
        ops.push(op(
            format!("{pointer}/{block}"),
            json!({ list_key: list.clone() }),
            false,
        ));
    }
    let merge = merge_patch(app, source, block, list_key, &list, rv);
    Ok(Some(AppPatch {
        source: source.clone(),
        json_patch: Value::Array(ops),
        merge_patch: merge,
        changes,
        warnings,
    }))
}

fn merge_patch(
    app: &Value,
    source: &SourceChoice,
    block: &str,
    list_key: &str,
    list: &Value,
    rv: &str,
) -> Value {
    let inner = json!({ block: { list_key: list } });
    let spec = match source.at {
        super::source::SourceAt::Single => json!({ "source": inner }),
        super::source::SourceAt::Hydrator => json!({ "sourceHydrator": { "drySource": inner } }),
        super::source::SourceAt::Multi { index } => {
            let mut sources = app["spec"]["sources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(Value::Object(s)) = sources.get_mut(index) {
                let b = s
                    .entry(block.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !b.is_object() {
                    *b = Value::Object(Map::new());
                }
                b[list_key] = list.clone();
            }
            json!({ "sources": sources })
        }
    };
    json!({ "metadata": { "resourceVersion": rv }, "spec": spec })
}

fn param_value<'a>(list: &'a [Value], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["value"].as_str())
}

fn set_param(list: &mut Vec<Value>, name: &str, value: String, changes: &mut Vec<Change>) {
    let entry = json!({"name": name, "value": value, "forceString": true});
    match list.iter().position(|p| p["name"].as_str() == Some(name)) {
        // Already this value: leave the entry as it is (no write for a forceString).
        Some(i) if list[i]["value"].as_str() == Some(value.as_str()) => {}
        Some(i) => {
            changes.push(Change {
                field: name.to_owned(),
                old: list[i]["value"].as_str().map(str::to_owned),
                new: value,
            });
            list[i] = entry;
        }
        None => {
            changes.push(Change {
                field: name.to_owned(),
                old: None,
                new: value,
            });
            list.push(entry);
        }
    }
}

fn set_helm(
    list: &mut Vec<Value>,
    w: &Write<'_>,
    field: &str,
    changes: &mut Vec<Change>,
    warnings: &mut Vec<Warning>,
) -> Result<(), PatchError> {
    if list
        .iter()
        .any(|p| !p.is_object() || !p["name"].is_string())
    {
        return Err(PatchError::Malformed {
            field: field.to_owned(),
            what: "{name, value} objects",
        });
    }
    let target = &w.image.target;
    for name in target.helm.params() {
        if target.helm_configured && param_value(list, name).is_none() {
            warnings.push(Warning::new(
                format!("helm parameter {name}"),
                format!(
                    "the Application had no parameter {name}; freshet adds it for {}: check that the chart reads {name}, or fix helm.image-name/image-tag/image-spec",
                    w.image.label()
                ),
            ));
        }
    }
    match &target.helm {
        HelmTarget::Spec { spec } => {
            let form = form_for(w.image, param_value(list, spec), true);
            set_param(list, spec, w.new.reference(form), changes);
        }
        HelmTarget::Names { name, tag } => {
            let form = form_for(w.image, param_value(list, tag), false);
            set_param(list, name, w.new.name.clone(), changes);
            if let Some(value) = w.new.tag_value(form) {
                set_param(list, tag, value, changes);
            }
        }
    }
    Ok(())
}

/// The repository an override (`[name=]repo[:tag][@digest]`) sets, normalised.
fn override_repo(entry: &str) -> String {
    let image = entry.split_once('=').map_or(entry, |(_, i)| i);
    let (name, _, _) = crate::files::split_written(image);
    crate::Reference::parse(name).map_or_else(|_| name.to_owned(), |r| r.name())
}

fn override_alias(entry: &str) -> Option<&str> {
    entry.split_once('=').map(|(a, _)| a)
}

/// Argo CD's `KustomizeImage.Match`: the names up to the new entry's first delimiter.
fn argo_match(existing: &str, new: &str) -> bool {
    let delim = ["=", ":", "@"]
        .into_iter()
        .find(|d| new.contains(d))
        .unwrap_or(":");
    existing.split(delim).next() == new.split(delim).next()
}

pub(crate) fn set_kustomize(
    list: &mut Vec<Value>,
    w: &Write<'_>,
    field: &str,
    changes: &mut Vec<Change>,
) -> Result<(), PatchError> {
    let entries: Vec<String> = list
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| PatchError::Malformed {
            field: field.to_owned(),
            what: "strings",
        })?;
    let current = current_kustomize(&entries, w.image);
    let form = form_for(
        w.image,
        current.map(|c| c.split_once('=').map_or(c, |(_, i)| i)),
        true,
    );
    let reference = w.new.reference(form);
    let new = match &w.image.target.kustomize_name {
        Some(n) => format!("{n}={reference}"),
        None => reference,
    };
    let repo = override_repo(&new);
    let alias = w.image.target.kustomize_name.as_deref();
    let mut matched = false;
    for (i, e) in entries.iter().enumerate() {
        let same_repo = override_repo(e) == repo
            && match (alias, override_alias(e)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
        if same_repo || argo_match(e, &new) {
            matched = true;
            if *e != new {
                changes.push(Change {
                    field: alias.unwrap_or(&w.new.name).to_owned(),
                    old: Some(e.clone()),
                    new: new.clone(),
                });
                list[i] = Value::String(new.clone());
            }
        }
    }
    if !matched {
        changes.push(Change {
            field: alias.unwrap_or(&w.new.name).to_owned(),
            old: None,
            new: new.clone(),
        });
        list.push(Value::String(new));
    }
    Ok(())
}

fn current_kustomize<'a>(entries: &'a [String], image: &ImageConfig) -> Option<&'a str> {
    let repo = crate::Reference::parse(&image.image.name)
        .map_or_else(|_| image.image.name.clone(), |r| r.name());
    let alias = image.target.kustomize_name.as_deref();
    entries
        .iter()
        .find(|e| {
            override_repo(e) == repo
                && match (alias, override_alias(e)) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
        .map(String::as_str)
}

/// The image as the source now sets it (`GetHelmImage`/`GetKustomizeImage`): the
/// `image-spec` parameter, `name:tag` from the two parameters, or the kustomize
/// override; `None` when the source does not set it.
pub fn current(app: &Value, source: &SourceChoice, image: &ImageConfig) -> Option<String> {
    let src = source.get(app)?;
    match source.kind {
        SourceKind::Kustomize => {
            let entries: Vec<String> = src["kustomize"]["images"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            current_kustomize(&entries, image).map(str::to_owned)
        }
        _ => {
            let params = src["helm"]["parameters"].as_array()?;
            match &image.target.helm {
                HelmTarget::Spec { spec } => param_value(params, spec).map(str::to_owned),
                HelmTarget::Names { name, tag } => Some(format!(
                    "{}:{}",
                    param_value(params, name)?,
                    param_value(params, tag)?
                )),
            }
        }
    }
}

/// The images Argo CD reports running for the Application (`status.summary.images`).
pub fn live_images(app: &Value) -> Vec<String> {
    app["status"]["summary"]["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .take(MAX_ENTRIES)
        .map(str::to_owned)
        .collect()
}

/// Whether an image is updated at all: it runs in the Application (same repository), or
/// `force-update` is set, as upstream's `GetImagesFromApplication` decides.
pub fn is_live(image: &ImageConfig, live: &[String]) -> bool {
    if image.force_update {
        return true;
    }
    let want = [
        Some(image.image.name.as_str()),
        image.target.kustomize_name.as_deref(),
    ];
    live.iter().any(|l| {
        let repo = override_repo(l);
        want.iter().flatten().any(|w| {
            crate::Reference::parse(w).map_or_else(|_| (*w).to_owned(), |r| r.name()) == repo
        })
    })
}

/// The digest a written value pins, in any of the forms: `tag@sha256:…`, a bare
/// `sha256:…`, `repo@sha256:…` or `repo:tag@sha256:…` (for a `digest` strategy's
/// [`crate::policy::Current`]).
pub fn written_digest(value: &str) -> Option<Digest> {
    let d = match value.rsplit_once('@') {
        Some((_, d)) => d,
        None => value,
    };
    Digest::parse(d).ok()
}

/// The tag and digest an image is at now, for [`crate::policy::Current`]: from the
/// source's parameters or override when it sets the image, else from the running image
/// in `status.summary.images` (what upstream compares against). A `digest` strategy's tag
/// is always the tag it follows.
pub fn current_tag(
    app: &Value,
    source: &SourceChoice,
    image: &ImageConfig,
) -> (Option<String>, Option<Digest>) {
    let written =
        current(app, source, image).map(|value| match (&image.target.helm, source.kind) {
            // `name:tag` from two parameters: the tag part may itself hold `@sha256:…` or be
            // a bare digest, and the name may hold a registry port, so read the tag
            // parameter itself.
            (HelmTarget::Names { tag, .. }, SourceKind::Helm) => {
                let tag = source
                    .get(app)
                    .and_then(|s| s["helm"]["parameters"].as_array())
                    .and_then(|params| param_value(params, tag))
                    .unwrap_or_default();
                (tag_part(tag), written_digest(tag))
            }
            _ => {
                let image = value.split_once('=').map_or(value.as_str(), |(_, i)| i);
                let (_, tag, d) = crate::files::split_written(image);
                (
                    tag.map(str::to_owned),
                    d.and_then(|d| Digest::parse(d).ok()),
                )
            }
        });
    let (tag, digest) = written.unwrap_or_else(|| {
        let repo = override_repo(&image.image.name);
        live_images(app)
            .iter()
            .find(|l| override_repo(l) == repo)
            .map(|l| {
                let (_, tag, d) = crate::files::split_written(l);
                (
                    tag.map(str::to_owned),
                    d.and_then(|d| Digest::parse(d).ok()),
                )
            })
            .unwrap_or((None, None))
    });
    match image.tracked_tag() {
        Some(t) => (Some(t.to_owned()), digest),
        None => (tag, digest),
    }
}

/// The tag in a tag parameter's value (`1.2`, `1.2@sha256:…`), none for a bare digest.
fn tag_part(value: &str) -> Option<String> {
    if value.starts_with("sha256:") || value.is_empty() {
        return None;
    }
    Some(value.split('@').next().unwrap_or(value).to_owned())
}
