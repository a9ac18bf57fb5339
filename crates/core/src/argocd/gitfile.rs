//! The `git` write-back as file edits: Image Updater's parameter-override file
//! `.argocd-source-<app>.yaml`, a `helmvalues` file, or a `kustomization`.
//!
//! Owns the override file's name and shape, and computing, from a file's current text
//! and the new images, a [`FileChange`]: byte-minimal [`Edit`]s (the type
//! `crate::files` uses, so the file-mode writer can apply them) plus the resulting text,
//! already re-parsed and checked to hold exactly the new values. Must not read or write
//! files, or commit: the Git shell reads the file, applies the change and commits one
//! commit per repository and branch.
//!
//! Follows argocd-image-updater v1.3.0:
//! - the file name: `pkg/argocd/update.go` `parseDefaultTarget`
//!   (`.argocd-source-<app>.yaml`, or `.argocd-source-<namespace>_<app>.yaml` when the
//!   Application is not in the controller's namespace) in the source path;
//! - the override file's shape: `marshalParamsOverride` in `update.go`, Helm parameters
//!   sorted by name with `forcestring: true` (goyaml writes the lowercased field name),
//!   or `kustomize.images` strings; 2-space indentation, list items not indented:
//!   ```yaml
//!   helm:
//!     parameters:
//!     - name: image.name
//!       value: ghcr.io/org/app
//!       forcestring: true
//!   ```
//! - a `helmvalues` file: the value at the Helm parameter path (`a.b`, `a[0].b`, or the
//!   literal key), upstream's short-name rule (a name written without its registry keeps
//!   being written without it);
//! - a kustomization: the `images:` entry whose `name` is the kustomize image name (or
//!   the image), set as `kustomize edit set image` would (`newName`, `newTag`,
//!   `digest`).
//!
//! Where upstream re-serialises a file it cannot patch in place (and reformats it,
//! issues #884, #1283, #1335), freshet refuses with an error naming the file and the
//! fix. A helmvalues key or kustomization entry that is missing is such an error: freshet
//! does not invent structure in a user's file.

use crate::files::{self, Edit, PinForm, Spans};

use super::image::{DigestForm, HelmTarget};
use super::patch::{Change, Write, form_for};
use super::source::SourceKind;
use super::yamlpath::{self, Node};

/// Why a file could not be edited. Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitFileError {
    /// The target file does not exist.
    #[error(
        "write-back target {path} does not exist in the repository; create it, or fix write-back-target"
    )]
    Missing {
        /// Repository path.
        path: String,
    },
    /// The file does not parse.
    #[error("{path}:{message}; fix the YAML")]
    Parse {
        /// Repository path.
        path: String,
        /// Where and what.
        message: String,
    },
    /// The file lacks the value or entry to edit.
    #[error("{path}: {reason}")]
    NotFound {
        /// Repository path.
        path: String,
        /// What is missing and the fix.
        reason: String,
    },
    /// The file has the value in a form freshet does not edit in place.
    #[error("{path}: {reason}; freshet edits files in place and will not reformat them")]
    NotEditable {
        /// Repository path.
        path: String,
        /// What is in the way.
        reason: String,
    },
    /// The edited text failed its check (a bug guard: nothing is written).
    #[error("{path}: the edit did not produce the intended values ({reason})")]
    Check {
        /// Repository path.
        path: String,
        /// What differed.
        reason: String,
    },
}

/// One file to create or edit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileChange {
    /// Repository path.
    pub path: String,
    /// Whether the file is new.
    pub create: bool,
    /// Byte-minimal edits against the old text (one insertion at 0 for a new file).
    pub edits: Vec<Edit>,
    /// The new text, re-parsed and checked.
    pub text: String,
    /// The values that change.
    pub changes: Vec<Change>,
}

/// The override file's name: `.argocd-source-<app>.yaml`, or
/// `.argocd-source-<namespace>_<app>.yaml` when the Application's namespace is not the
/// controller's (`controller_namespace`; `None` behaves as upstream run from the
/// command line: the short name).
pub fn override_file_name(
    app_name: &str,
    app_namespace: &str,
    controller_namespace: Option<&str>,
) -> String {
    match controller_namespace {
        Some(ns) if !app_namespace.is_empty() && ns != app_namespace && ns != "default" => {
            format!(".argocd-source-{app_namespace}_{app_name}.yaml")
        }
        _ => format!(".argocd-source-{app_name}.yaml"),
    }
}

/// The `(parameter, value)` pairs a Helm write sets, in the form chosen for it; `current`
/// reads a parameter's value as written now.
fn helm_values<'a>(
    w: &Write<'a>,
    current: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    match &w.image.target.helm {
        HelmTarget::Spec { spec } => {
            let form = form_for(w.image, current(spec).as_deref(), true);
            vec![(spec.clone(), w.new.reference(form))]
        }
        HelmTarget::Names { name, tag } => {
            let form = form_for(w.image, current(tag).as_deref(), false);
            let mut out = vec![(name.clone(), w.new.name.clone())];
            out.extend(w.new.tag_value(form).map(|v| (tag.clone(), v)));
            out
        }
    }
}

/// Creates or edits the parameter-override file. `existing` is its text, `None` when it
/// does not exist; `kind` is the chosen source's ([`super::source::choose`]).
pub fn override_file(
    path: &str,
    existing: Option<&str>,
    kind: SourceKind,
    writes: &[Write<'_>],
) -> Result<Option<FileChange>, GitFileError> {
    match kind {
        SourceKind::Kustomize => kustomize_override(path, existing, writes),
        _ => helm_override(path, existing, writes),
    }
}

fn parse_root(path: &str, text: &str) -> Result<Option<Node>, GitFileError> {
    let docs = yamlpath::parse(text).map_err(|message| GitFileError::Parse {
        path: path.to_owned(),
        message,
    })?;
    Ok(docs.into_iter().next())
}

fn finish(
    path: &str,
    create: bool,
    old: &str,
    edits: Vec<Edit>,
    changes: Vec<Change>,
    check: impl Fn(&Node) -> Result<(), String>,
) -> Result<Option<FileChange>, GitFileError> {
    if edits.is_empty() {
        return Ok(None);
    }
    let fail = |reason: String| GitFileError::Check {
        path: path.to_owned(),
        reason,
    };
    let text = yamlpath::splice(old, &edits).map_err(fail)?;
    let root = parse_root(path, &text)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("the file is empty".into()))?;
    check(&root).map_err(fail)?;
    Ok(Some(FileChange {
        path: path.to_owned(),
        create,
        edits,
        text,
        changes,
    }))
}

fn param_nodes(root: &Node) -> Option<&Vec<Node>> {
    match yamlpath::get(yamlpath::get(root, "helm")?, "parameters")? {
        Node::Seq(items) => Some(items),
        _ => None,
    }
}

fn param_scalar<'a>(items: &'a [Node], name: &str) -> Option<&'a yamlpath::Scalar> {
    items
        .iter()
        .find_map(|item| match yamlpath::get(item, "name") {
            Some(Node::Scalar(n)) if n.value == name => match yamlpath::get(item, "value") {
                Some(Node::Scalar(v)) => Some(v),
                _ => None,
            },
            _ => None,
        })
}

fn param_entry(name: &str, value: &str, dash: &str, key: &str, eol: &str) -> String {
    format!(
        "{dash}- name: {}{eol}{key}value: {}{eol}{key}forcestring: true{eol}",
        yamlpath::render(name),
        yamlpath::render(value)
    )
}

fn helm_override(
    path: &str,
    existing: Option<&str>,
    writes: &[Write<'_>],
) -> Result<Option<FileChange>, GitFileError> {
    let text = existing.unwrap_or("");
    let root = if text.trim().is_empty() {
        None
    } else {
        parse_root(path, text)?
    };
    let items: Vec<Node> = match &root {
        Some(r) => param_nodes(r)
            .cloned()
            .ok_or_else(|| GitFileError::NotEditable {
                path: path.to_owned(),
                reason: "it has no helm.parameters list".into(),
            })?,
        None => Vec::new(),
    };
    let current = |name: &str| param_scalar(&items, name).map(|s| s.value.clone());
    let mut wanted: Vec<(String, String)> = Vec::new();
    for w in writes {
        for (k, v) in helm_values(w, current) {
            wanted.retain(|(n, _)| *n != k);
            wanted.push((k, v));
        }
    }
    let (edits, changes) = if root.is_none() {
        wanted.sort();
        new_helm_override(text, &wanted)
    } else {
        edit_helm_override(path, text, &items, &wanted)?
    };
    finish(path, root.is_none(), text, edits, changes, |r| {
        let items = param_nodes(r).ok_or("helm.parameters is gone")?;
        for (k, v) in &wanted {
            match param_scalar(items, k) {
                Some(s) if s.value == *v => {}
                other => return Err(format!("{k} is {:?}, not {v:?}", other.map(|s| &s.value))),
            }
        }
        Ok(())
    })
}

/// The whole text of a new Helm override file.
fn new_helm_override(text: &str, wanted: &[(String, String)]) -> (Vec<Edit>, Vec<Change>) {
    let eol = eol_of(text);
    let mut out = format!("helm:{eol}  parameters:{eol}");
    let mut changes = Vec::new();
    for (k, v) in wanted {
        out.push_str(&param_entry(k, v, "  ", "    ", eol));
        changes.push(added(k, v));
    }
    (
        vec![Edit {
            span: 0..text.len(),
            new: out,
        }],
        changes,
    )
}

/// Edits of an existing Helm override file: values replaced in place, new parameters
/// appended after the last one in the list's own indentation.
fn edit_helm_override(
    path: &str,
    text: &str,
    items: &[Node],
    wanted: &[(String, String)],
) -> Result<(Vec<Edit>, Vec<Change>), GitFileError> {
    let eol = eol_of(text);
    let mut edits = Vec::new();
    let mut changes = Vec::new();
    let mut appended = String::new();
    for (k, v) in wanted {
        match param_scalar(items, k) {
            Some(s) => {
                if let Some(e) = yamlpath::set_scalar(text, s, v) {
                    changes.push(Change {
                        field: k.clone(),
                        old: Some(s.value.clone()),
                        new: v.clone(),
                    });
                    edits.push(e);
                }
            }
            None => {
                let (dash, key) =
                    item_indent(text, items).ok_or_else(|| GitFileError::NotEditable {
                        path: path.to_owned(),
                        reason: "its helm.parameters list is empty or written in flow style".into(),
                    })?;
                appended.push_str(&param_entry(k, v, &dash, &key, eol));
                changes.push(added(k, v));
            }
        }
    }
    if !appended.is_empty() {
        edits.push(append_after(text, items, appended));
    }
    Ok((edits, changes))
}

fn eol_of(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

fn added(k: &str, v: &str) -> Change {
    Change {
        field: k.to_owned(),
        old: None,
        new: v.to_owned(),
    }
}

/// An insertion of whole lines after the last item of a block list.
fn append_after(text: &str, items: &[Node], mut lines: String) -> Edit {
    let at = items
        .iter()
        .filter_map(yamlpath::end)
        .max()
        .map_or(text.len(), |e| yamlpath::next_line(text, e));
    if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        lines.insert_str(0, eol_of(text));
    }
    Edit {
        span: at..at,
        new: lines,
    }
}

/// The indentation of a block list's `-` and of its items' keys, from its first item.
fn item_indent(text: &str, items: &[Node]) -> Option<(String, String)> {
    let first = yamlpath::start(items.first()?)?;
    let line = yamlpath::line_start(text, first);
    let prefix = &text[line..first];
    let dash = prefix.find('-')?;
    if !prefix[..dash].bytes().all(|b| b == b' ') {
        return None;
    }
    Some((" ".repeat(dash), " ".repeat(first - line)))
}

fn new_kustomize_override(text: &str, list: &[String]) -> Vec<Edit> {
    let eol = eol_of(text);
    let mut out = format!("kustomize:{eol}  images:{eol}");
    for e in list {
        out.push_str(&format!("  - {}{eol}", yamlpath::render(e)));
    }
    vec![Edit {
        span: 0..text.len(),
        new: out,
    }]
}

fn edit_kustomize_override(
    path: &str,
    text: &str,
    items: &[Node],
    scalars: &[&yamlpath::Scalar],
    list: &[String],
) -> Result<Vec<Edit>, GitFileError> {
    let mut edits: Vec<Edit> = scalars
        .iter()
        .zip(list)
        .filter_map(|(s, new)| yamlpath::set_scalar(text, s, new))
        .collect();
    if list.len() > scalars.len() {
        let (dash, _) = item_indent(text, items).ok_or_else(|| GitFileError::NotEditable {
            path: path.to_owned(),
            reason: "its kustomize.images list is empty or written in flow style".into(),
        })?;
        let eol = eol_of(text);
        let add: String = list[scalars.len()..]
            .iter()
            .map(|e| format!("{dash}- {}{eol}", yamlpath::render(e)))
            .collect();
        edits.push(append_after(text, items, add));
    }
    Ok(edits)
}

fn kustomize_override(
    path: &str,
    existing: Option<&str>,
    writes: &[Write<'_>],
) -> Result<Option<FileChange>, GitFileError> {
    let text = existing.unwrap_or("");
    let root = if text.trim().is_empty() {
        None
    } else {
        parse_root(path, text)?
    };
    let items: Vec<Node> = match &root {
        Some(r) => match yamlpath::get(r, "kustomize").and_then(|k| yamlpath::get(k, "images")) {
            Some(Node::Seq(items)) => items.clone(),
            _ => {
                return Err(GitFileError::NotEditable {
                    path: path.to_owned(),
                    reason: "it has no kustomize.images list".into(),
                });
            }
        },
        None => Vec::new(),
    };
    let scalars: Vec<&yamlpath::Scalar> = items
        .iter()
        .filter_map(|n| match n {
            Node::Scalar(s) => Some(s),
            _ => None,
        })
        .collect();
    let current: Vec<String> = scalars.iter().map(|s| s.value.clone()).collect();
    let mut list = current.clone();
    let mut changes = Vec::new();
    for w in writes {
        let mut json: Vec<serde_json::Value> = list
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect();
        super::patch::set_kustomize(&mut json, w, "kustomize.images", &mut changes).map_err(
            |e| GitFileError::NotEditable {
                path: path.to_owned(),
                reason: e.to_string(),
            },
        )?;
        list = json
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
    }
    let edits = if root.is_none() {
        new_kustomize_override(text, &list)
    } else {
        edit_kustomize_override(path, text, &items, &scalars, &list)?
    };
    finish(path, root.is_none(), text, edits, changes, |r| {
        let got: Vec<String> =
            match yamlpath::get(r, "kustomize").and_then(|k| yamlpath::get(k, "images")) {
                Some(Node::Seq(items)) => items
                    .iter()
                    .filter_map(|n| match n {
                        Node::Scalar(s) => Some(s.value.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
        if got == list {
            Ok(())
        } else {
            Err(format!("images are {got:?}, not {list:?}"))
        }
    })
}

/// Whether a name starts with a registry host (`ghcr.io/…`), as upstream's
/// `HasRegistryPrefix`.
fn has_registry(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(first, _)| first.contains('.'))
}

/// Edits a Helm values file (`helmvalues:<file>`); `text` is `None` when the file does
/// not exist.
pub fn helm_values_file(
    path: &str,
    text: Option<&str>,
    writes: &[Write<'_>],
) -> Result<Option<FileChange>, GitFileError> {
    let text = text.ok_or_else(|| GitFileError::Missing {
        path: path.to_owned(),
    })?;
    let root = parse_root(path, text)?.ok_or_else(|| GitFileError::NotFound {
        path: path.to_owned(),
        reason: "the file is empty; add the image's keys (the bootstrap pin) first".into(),
    })?;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for w in writes {
        let current = |k: &str| yamlpath::lookup(&root, k).ok().map(|s| s.value.clone());
        for (k, mut v) in helm_values(w, current) {
            if let HelmTarget::Names { name, .. } = &w.image.target.helm
                && *name == k
                && let Some(old) = current(&k)
                && !has_registry(&old)
                && has_registry(&v)
            {
                v = v
                    .split_once('/')
                    .map_or(v.clone(), |(_, short)| short.to_owned());
            }
            wanted.retain(|(n, _)| *n != k);
            wanted.push((k, v));
        }
    }
    let mut edits = Vec::new();
    let mut changes = Vec::new();
    for (k, v) in &wanted {
        let s = yamlpath::lookup(&root, k).map_err(|reason| GitFileError::NotFound {
            path: path.to_owned(),
            reason: format!("{reason}; add {k} to the file first (the bootstrap pin), or fix the alias's helm.image-name/image-tag/image-spec"),
        })?;
        if !s.editable(text) && s.value != *v {
            return Err(GitFileError::NotEditable {
                path: path.to_owned(),
                reason: format!("{k} is written as a block or escaped scalar"),
            });
        }
        if let Some(e) = yamlpath::set_scalar(text, s, v) {
            changes.push(Change {
                field: k.clone(),
                old: Some(s.value.clone()),
                new: v.clone(),
            });
            edits.push(e);
        }
    }
    finish(path, false, text, edits, changes, |r| {
        for (k, v) in &wanted {
            let got = yamlpath::lookup(r, k)?;
            if got.value != *v {
                return Err(format!("{k} is {:?}, not {v:?}", got.value));
            }
        }
        Ok(())
    })
}

/// Edits a kustomization (`kustomization[:dir]`; `path` is the file the shell found in
/// that directory, `text` `None` when there is none), as `kustomize edit set image`.
pub fn kustomization_file(
    path: &str,
    text: Option<&str>,
    writes: &[Write<'_>],
) -> Result<Option<FileChange>, GitFileError> {
    let text = text.ok_or_else(|| GitFileError::Missing {
        path: path.to_owned(),
    })?;
    let found = files::scan(path, text).map_err(|e| GitFileError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut edits = Vec::new();
    let mut changes = Vec::new();
    for w in writes {
        let key = w
            .image
            .target
            .kustomize_name
            .as_deref()
            .unwrap_or(&w.image.image.name);
        let entry = found.iter().find(|f| match &f.spans {
            Spans::Kustomize { name, .. } => text[name.clone()] == *key,
            _ => false,
        });
        let Some(entry) = entry else {
            return Err(GitFileError::NotFound {
                path: path.to_owned(),
                reason: format!(
                    "its images: list has no entry named {key:?}; add one (name: {key}, newTag: <tag>), or fix kustomize.image-name"
                ),
            });
        };
        let form = w.image.digest_form.unwrap_or_default();
        let mine = entry_edits(path, text, entry, w, form)?;
        if !mine.is_empty() {
            changes.push(Change {
                field: key.to_owned(),
                old: Some(entry.image.clone()),
                new: w.new.reference(form),
            });
        }
        edits.extend(mine);
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let merged = merge_inserts(edits);
    let new_text = files::apply_edits(path, text, &merged).map_err(|e| GitFileError::Check {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Some(FileChange {
        path: path.to_owned(),
        create: false,
        edits: merged,
        text: new_text,
        changes,
    }))
}

/// The edits that set one kustomization entry: `newTag`/`digest` as the pin form says,
/// and `newName` when the image differs from the entry's name.
fn entry_edits(
    path: &str,
    text: &str,
    entry: &files::Found,
    w: &Write<'_>,
    form: DigestForm,
) -> Result<Vec<Edit>, GitFileError> {
    let pin = match (&w.new.digest, form) {
        (None, _) => PinForm::Tag,
        (Some(_), DigestForm::TagDigest) => PinForm::TagDigest,
        (Some(_), DigestForm::Digest) => PinForm::Digest,
    };
    let target = files::Target {
        tag: w.new.tag.clone().unwrap_or_else(|| "latest".to_owned()),
        digest: w.new.digest.clone(),
    };
    let mut mine =
        files::edits_for(text, entry, &target, pin).map_err(|e| GitFileError::NotEditable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if let Spans::Kustomize {
        name,
        new_name,
        indent,
        insert_at,
        ..
    } = &entry.spans
    {
        let want_name = (text[name.clone()] != *w.new.name).then_some(w.new.name.as_str());
        match (new_name, want_name) {
            (Some(span), Some(n)) if text[span.clone()] != *n => mine.push(Edit {
                span: span.clone(),
                new: n.to_owned(),
            }),
            (None, Some(n)) => mine.push(Edit {
                span: *insert_at..*insert_at,
                new: format!("{}newName: {n}{}", " ".repeat(*indent), eol_of(text)),
            }),
            _ => {}
        }
    }
    Ok(mine)
}

/// Sorts edits and joins insertions at the same spot (which `apply_edits` refuses as
/// overlapping), in order.
fn merge_inserts(mut edits: Vec<Edit>) -> Vec<Edit> {
    edits.sort_by_key(|e| (e.span.start, e.span.end));
    let mut merged: Vec<Edit> = Vec::with_capacity(edits.len());
    for e in edits {
        match merged.last_mut() {
            Some(last)
                if last.span.is_empty() && e.span.is_empty() && last.span.start == e.span.start =>
            {
                last.new.push_str(&e.new);
            }
            _ => merged.push(e),
        }
    }
    merged
}
