//! Finding image references in files and editing them byte-minimally (issue 3).
//!
//! Owns format detection ([`detect`]), the scanners for Kubernetes manifests, Helm values,
//! docker-compose files and kustomizations (YAML), Dockerfiles and Terraform/HCL
//! ([`scan`]), inline `# freshet:` markers ([`Marker`]), `freshet.yaml` rules
//! ([`Config`]), the pure planner that turns found references plus registry facts into
//! [`Update`]s ([`plan`]), and text edits ([`Edit`], [`apply_edits`]) that change only the
//! characters of a reference and are checked by scanning the result again.
//!
//! Must not read or write files, walk directories, or talk to registries or git: the
//! `freshet-gitops` shell does that and hands text in.

mod config;
mod dockerfile;
mod hcl;
mod marker;
mod plan;
mod yaml;

use std::ops::Range;

pub use config::{CompiledRule, Config, ConfigError};
pub use marker::{DigestForm, Marker, MarkerError, PinForm};
pub use plan::{PlanError, Step, Tracked, TrackedBy, Update, track};

use crate::Digest;

/// The file formats freshet reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// Kubernetes manifests, Helm values, docker-compose files: any YAML.
    Yaml,
    /// A kustomize `kustomization.yaml` (its `images:` list).
    Kustomization,
    /// A Dockerfile or Containerfile (`FROM` lines).
    Dockerfile,
    /// Terraform or other HCL (`image = "…"` and image variable defaults).
    Hcl,
}

/// Picks the format from the file name, or `None` for files freshet does not read
/// (including `freshet.yaml` itself).
pub fn detect(path: &str) -> Option<FileFormat> {
    let name = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    match name.as_str() {
        "freshet.yaml" | "freshet.yml" => None,
        "kustomization.yaml" | "kustomization.yml" | "kustomization" => {
            Some(FileFormat::Kustomization)
        }
        "dockerfile" | "containerfile" => Some(FileFormat::Dockerfile),
        n if n.starts_with("dockerfile.")
            || n.ends_with(".dockerfile")
            || n.ends_with(".containerfile") =>
        {
            Some(FileFormat::Dockerfile)
        }
        n if n.ends_with(".yaml") || n.ends_with(".yml") => Some(FileFormat::Yaml),
        n if n.ends_with(".tf") || n.ends_with(".hcl") || n.ends_with(".tfvars") => {
            Some(FileFormat::Hcl)
        }
        _ => None,
    }
}

/// Where a reference was found, which decides how it is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefKind {
    /// A YAML `image: repo:tag` value (Kubernetes, Helm, compose).
    Image,
    /// Helm values with `repository` and `tag` (and maybe `registry`, `digest`) in one mapping.
    HelmSplit,
    /// A kustomization `images:` entry (`name`, `newName`, `newTag`, `digest`).
    Kustomize,
    /// A Dockerfile `FROM` image.
    DockerfileFrom,
    /// An HCL string attribute or variable default.
    HclString,
    /// A Dockerfile `COPY --from=<image>` (or `RUN --mount=…,from=<image>`).
    DockerfileCopyFrom,
    /// A Dockerfile `# syntax=<image>` parser directive.
    DockerfileSyntax,
    /// A Dockerfile `ARG NAME=<image>` default that a `FROM $NAME` uses.
    DockerfileArg,
    /// A CI file's image: GitHub Actions `container:`, `services:`, `uses: docker://…`,
    /// GitLab `image:` and `services:`.
    CiImage,
    /// A terraform `docker_image` resource's `name`.
    HclDockerImage,
    /// A value holding only part of a reference (a tag, `tag@digest` or a digest),
    /// tracked because a marker or rule names its image.
    Value,
}

/// What a value that holds part of a reference holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueForm {
    /// A tag: `1.2.3`, `abc12345`.
    Tag,
    /// `tag@sha256:…`.
    TagDigest,
    /// `sha256:…`.
    Digest,
}

impl ValueForm {
    /// The form of a written value: `sha256:…` is a digest, `x@sha256:…` a tag and
    /// digest, anything else a tag.
    pub fn of(value: &str) -> ValueForm {
        if Digest::parse(value).is_ok() {
            ValueForm::Digest
        } else if value
            .split_once('@')
            .is_some_and(|(_, d)| Digest::parse(d).is_ok())
        {
            ValueForm::TagDigest
        } else {
            ValueForm::Tag
        }
    }

    /// The (tag, digest) a value of this form holds.
    pub fn parts(value: &str) -> (Option<&str>, Option<&str>) {
        match ValueForm::of(value) {
            ValueForm::Tag => (Some(value), None),
            ValueForm::Digest => (None, Some(value)),
            ValueForm::TagDigest => {
                let (t, d) = value.split_once('@').expect("checked by of()");
                (Some(t), Some(d))
            }
        }
    }
}

/// The byte ranges that hold a reference's text (quotes excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spans {
    /// The whole reference is one string.
    Whole(Range<usize>),
    /// Helm split values.
    Split {
        /// `registry:` value, if present.
        registry: Option<Range<usize>>,
        /// `repository:` value.
        repository: Range<usize>,
        /// `tag:` value.
        tag: Range<usize>,
        /// The digest key's value (`digest:`, `sha:`, `imageDigest:`, …), if present
        /// and editable.
        digest: Option<Range<usize>>,
        /// The digest key's name: the one the block has, or `digest` to add.
        digest_key: String,
        /// The digest key holds bare hex (`sha: abc…`, for charts that write
        /// `@sha256:{{ .sha }}`), not `sha256:abc…`.
        digest_hex: bool,
        /// Where a missing digest key may be inserted in a block mapping: the column
        /// of the `tag:` key and the start of the line after it. `None` for flow
        /// mappings, where a digest goes into the tag value instead (`tag@sha256:…`).
        digest_insert: Option<(usize, usize)>,
        /// What the `tag:` value holds (a tag, or Helm's `sha256:…` / `tag@sha256:…`).
        tag_form: ValueForm,
    },
    /// A value holding part of a reference; the image comes from a marker or rule.
    Value {
        /// The value's bytes.
        span: Range<usize>,
        /// What it holds now.
        form: ValueForm,
    },
    /// A kustomization `images:` entry.
    Kustomize {
        /// `name:` value.
        name: Range<usize>,
        /// `newName:` value, if present.
        new_name: Option<Range<usize>>,
        /// `newTag:` value, if present.
        new_tag: Option<Range<usize>>,
        /// `digest:` value, if present.
        digest: Option<Range<usize>>,
        /// Column of the entry's keys, for inserting a missing `newTag:` or `digest:`.
        indent: usize,
        /// Byte offset where a new key line may be inserted (start of the line after the
        /// entry's last key).
        insert_at: usize,
    },
}

/// One image reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// How it is written.
    pub kind: RefKind,
    /// 1-based line of the reference (of the tag for split forms).
    pub line: usize,
    /// The reference as one string, as written (`nginx:1.27`, `ghcr.io/o/a:1@sha256:…`).
    pub image: String,
    /// Where its parts are.
    pub spans: Spans,
    /// The inline `freshet:` marker, if there is one (or why it does not parse).
    pub marker: Option<Result<Marker, MarkerError>>,
    /// Bytes an edit of this reference may touch; used to check edits.
    pub region: Range<usize>,
    /// The key path of the value (`spec.template.spec.containers.0.image`,
    /// `config.proj:adapterImage`, `variable.image_tag.default`), for rules' `keys:`.
    pub key: Option<String>,
}

/// What a scan looks for besides what every scan finds.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Key paths (globs over dotted paths, `*` within one segment, `**` across) whose
    /// values are offered even without a marker: from `freshet.yaml` rules' `keys:`.
    pub keys: Option<regex::RegexSet>,
    /// The chart next to a values file writes `@sha256:{{ .sha }}`: an empty `sha:`
    /// key takes bare hex.
    pub sha_hex: bool,
}

impl ScanOptions {
    /// Whether a key path is named by a rule.
    pub(crate) fn key_wanted(&self, key: &str) -> bool {
        self.keys.as_ref().is_some_and(|g| g.is_match(key))
    }
}

/// Why a file could not be scanned. The file is left untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The YAML does not parse.
    #[error("{path}:{line}:{column}: YAML does not parse: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The HCL does not parse.
    #[error("{path}:{line}:{column}: HCL does not parse: {message}")]
    Hcl {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A Dockerfile `FROM` line is malformed.
    #[error("{path}:{line}: Dockerfile FROM: {message}")]
    Dockerfile {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A template of a Helm chart (`templates/` beside a `Chart.yaml`): not a file to
    /// edit. Reported as skipped, not as an error.
    #[error("{path}: a Helm chart template; skipped")]
    ChartTemplate {
        /// The file.
        path: String,
    },
    /// The file name matches no format.
    #[error("{path}: not a format freshet reads (YAML, kustomization, Dockerfile, HCL)")]
    UnknownFormat {
        /// The file.
        path: String,
    },
}

impl ScanError {
    /// The file the error is about.
    pub fn path(&self) -> &str {
        match self {
            ScanError::Yaml { path, .. }
            | ScanError::Hcl { path, .. }
            | ScanError::Dockerfile { path, .. }
            | ScanError::ChartTemplate { path }
            | ScanError::UnknownFormat { path } => path,
        }
    }

    /// The message without the leading `path:line:`, for reports that print the
    /// file and line themselves.
    pub fn detail(&self) -> String {
        match self {
            ScanError::Yaml {
                column, message, ..
            } => format!("column {column}: YAML does not parse: {message}"),
            ScanError::Hcl {
                column, message, ..
            } => format!("column {column}: HCL does not parse: {message}"),
            ScanError::Dockerfile { message, .. } => format!("Dockerfile: {message}"),
            ScanError::ChartTemplate { .. } => "a Helm chart template; skipped".into(),
            ScanError::UnknownFormat { .. } => {
                "not a format freshet reads (YAML, kustomization, Dockerfile, HCL)".into()
            }
        }
    }
    /// The 1-based line the error is on (0 when it is about the whole file).
    pub fn line(&self) -> usize {
        match self {
            ScanError::Yaml { line, .. }
            | ScanError::Hcl { line, .. }
            | ScanError::Dockerfile { line, .. } => *line,
            ScanError::UnknownFormat { .. } | ScanError::ChartTemplate { .. } => 0,
        }
    }
}

/// Finds every image reference in a file's text. The format comes from [`detect`].
pub fn scan(path: &str, text: &str) -> Result<Vec<Found>, ScanError> {
    scan_with(path, text, &ScanOptions::default())
}

/// [`scan`], also offering the values under the key paths `options` names.
pub fn scan_with(path: &str, text: &str, options: &ScanOptions) -> Result<Vec<Found>, ScanError> {
    match detect(path) {
        Some(FileFormat::Yaml) => yaml::scan(path, text, false, options),
        Some(FileFormat::Kustomization) => yaml::scan(path, text, true, options),
        Some(FileFormat::Dockerfile) => dockerfile::scan(path, text),
        Some(FileFormat::Hcl) => hcl::scan(path, text, options),
        None => Err(ScanError::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

/// Replace the bytes in `span` with `new`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Edit {
    /// Byte range in the original text (empty for an insertion).
    pub span: Range<usize>,
    /// The replacement text.
    pub new: String,
}

/// Why edits could not be made. The file is left untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// An edit reaches past the end of the text or splits a character.
    #[error("edit {start}..{end} is outside the text or splits a character")]
    OutOfBounds {
        /// Start byte.
        start: usize,
        /// End byte.
        end: usize,
    },
    /// Two edits overlap.
    #[error("edits {first:?} and {second:?} overlap")]
    Overlap {
        /// The first edit's span.
        first: Range<usize>,
        /// The second edit's span.
        second: Range<usize>,
    },
    /// The edited text no longer parses.
    #[error("the edited text does not parse: {0}")]
    Rescan(#[source] ScanError),
    /// The edited text holds a different set of references than intended.
    #[error("line {line}: the edit changed more than the intended reference: {message}")]
    Unintended {
        /// 1-based line in the edited text.
        line: usize,
        /// What changed.
        message: String,
    },
    /// The pin form needs a digest and none was given.
    #[error("pin form {pin} needs a digest for {image}, but none was resolved")]
    MissingDigest {
        /// The pin form.
        pin: PinForm,
        /// The reference.
        image: String,
    },
}

/// Applies non-overlapping edits, then scans the result again and checks that every
/// reference the edits did not target is unchanged and the file still parses.
pub fn apply_edits(path: &str, text: &str, edits: &[Edit]) -> Result<String, EditError> {
    apply_edits_with(path, text, edits, &ScanOptions::default())
}

/// [`apply_edits`], re-scanning with the same options the plan scanned with.
pub fn apply_edits_with(
    path: &str,
    text: &str,
    edits: &[Edit],
    options: &ScanOptions,
) -> Result<String, EditError> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    for e in &sorted {
        if e.span.start > e.span.end
            || e.span.end > text.len()
            || !text.is_char_boundary(e.span.start)
            || !text.is_char_boundary(e.span.end)
        {
            return Err(EditError::OutOfBounds {
                start: e.span.start,
                end: e.span.end,
            });
        }
    }
    for pair in sorted.windows(2) {
        if pair[1].span.start < pair[0].span.end
            || (pair[1].span.start == pair[0].span.start
                && pair[0].span.is_empty()
                && pair[1].span.is_empty())
        {
            return Err(EditError::Overlap {
                first: pair[0].span.clone(),
                second: pair[1].span.clone(),
            });
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for e in &sorted {
        out.push_str(&text[at..e.span.start]);
        out.push_str(&e.new);
        at = e.span.end;
    }
    out.push_str(&text[at..]);

    let before = scan_with(path, text, options).map_err(EditError::Rescan)?;
    let after = scan_with(path, &out, options).map_err(EditError::Rescan)?;
    if before.len() != after.len() {
        return Err(EditError::Unintended {
            line: 1,
            message: format!("{} references before, {} after", before.len(), after.len()),
        });
    }
    for (old, new) in before.iter().zip(&after) {
        let touched = sorted
            .iter()
            .any(|e| e.span.start >= old.region.start && e.span.end <= old.region.end);
        if !touched && old.image != new.image {
            return Err(EditError::Unintended {
                line: new.line,
                message: format!("{} became {}", old.image, new.image),
            });
        }
        if touched && !new.is_valid() {
            return Err(EditError::Unintended {
                line: new.line,
                message: format!("{} is not a valid reference", new.image),
            });
        }
    }
    Ok(out)
}

impl Found {
    /// Whether what is written is well-formed: a reference, or for a [`Spans::Value`]
    /// a tag, a digest or `tag@digest`.
    pub fn is_valid(&self) -> bool {
        match &self.spans {
            Spans::Value { .. } => {
                let (tag, digest) = ValueForm::parts(&self.image);
                tag.is_none_or(|t| crate::Reference::parse(&format!("x:{t}")).is_ok())
                    && digest.is_none_or(|d| Digest::parse(d).is_ok())
            }
            _ => crate::Reference::parse(&self.image).is_ok(),
        }
    }
}

/// Splits a written reference into name, tag and digest, without normalising anything.
pub fn split_written(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// What a reference should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The new tag.
    pub tag: String,
    /// The digest behind it, when the pin form needs one.
    pub digest: Option<Digest>,
}

/// How the digest of a target is written.
fn digest_text(target: &Target, pin: PinForm, image: &str) -> Result<String, EditError> {
    target
        .digest
        .as_ref()
        .map(|d| d.to_string())
        .ok_or(EditError::MissingDigest {
            pin,
            image: image.to_owned(),
        })
}

/// Renders a whole reference in the pin form, with `name` exactly as written.
pub fn render(name: &str, target: &Target, pin: PinForm) -> Result<String, EditError> {
    Ok(match pin {
        PinForm::Tag => format!("{name}:{}", target.tag),
        PinForm::TagDigest => format!("{name}:{}@{}", target.tag, digest_text(target, pin, name)?),
        PinForm::Digest => format!("{name}@{}", digest_text(target, pin, name)?),
    })
}

/// Renders a value that holds part of a reference: the tag, or the digest in a form.
fn render_value(
    target: &Target,
    pin: PinForm,
    form: Option<DigestForm>,
    image: &str,
) -> Result<String, EditError> {
    let form = form.or(match pin {
        PinForm::Tag => None,
        PinForm::TagDigest => Some(DigestForm::TagAtDigest),
        PinForm::Digest => Some(DigestForm::Digest),
    });
    Ok(match form {
        None => target.tag.clone(),
        Some(DigestForm::TagAtDigest) => {
            format!("{}@{}", target.tag, digest_text(target, pin, image)?)
        }
        Some(DigestForm::Digest) => digest_text(target, pin, image)?,
    })
}

/// How one tracked reference is to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteForm {
    /// The pin form.
    pub pin: PinForm,
    /// For split and value forms: write the digest into the tag value in this form.
    pub digest_form: Option<DigestForm>,
}

impl From<PinForm> for WriteForm {
    fn from(pin: PinForm) -> Self {
        WriteForm {
            pin,
            digest_form: None,
        }
    }
}

/// The edits that turn `found` into `target` in the pin form.
pub fn edits_for(
    text: &str,
    found: &Found,
    target: &Target,
    form: impl Into<WriteForm>,
) -> Result<Vec<Edit>, EditError> {
    let WriteForm { pin, digest_form } = form.into();
    let missing = || EditError::MissingDigest {
        pin,
        image: found.image.clone(),
    };
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut edits = Vec::new();
    let mut set = |span: &Range<usize>, new: String| {
        if text[span.clone()] != new {
            edits.push(Edit {
                span: span.clone(),
                new,
            });
        }
    };
    match &found.spans {
        Spans::Whole(span) => {
            let (name, _, _) = split_written(&found.image);
            set(span, render(name, target, pin)?)
        }
        Spans::Value { span, .. } => {
            set(span, render_value(target, pin, digest_form, &found.image)?)
        }
        Spans::Split { .. } => {
            return split_edits(text, found, target, WriteForm { pin, digest_form }, eol);
        }
        Spans::Kustomize {
            new_tag,
            digest,
            indent,
            insert_at,
            ..
        } => {
            let pad = " ".repeat(*indent);
            let mut lines: Vec<String> = Vec::new();
            let want_tag = pin != PinForm::Digest;
            let want_digest = pin != PinForm::Tag;
            match new_tag {
                Some(span) if want_tag => set(span, target.tag.clone()),
                Some(_) => {}
                None if want_tag => lines.push(format!("{pad}newTag: {}", target.tag)),
                None => {}
            }
            match digest {
                Some(span) if want_digest => set(
                    span,
                    target.digest.as_ref().ok_or_else(missing)?.to_string(),
                ),
                Some(span) => set(span, empty_value(text, span)),
                None if want_digest => {
                    let d = target.digest.as_ref().ok_or_else(missing)?;
                    lines.push(format!("{pad}digest: {d}"));
                }
                None => {}
            }
            if !lines.is_empty() {
                edits.push(insert_line(text, *insert_at, &lines, eol));
            }
        }
    }
    Ok(edits)
}

/// The edits of Helm's split `repository`/`tag`/digest-key form.
fn split_edits(
    text: &str,
    found: &Found,
    target: &Target,
    form: WriteForm,
    eol: &str,
) -> Result<Vec<Edit>, EditError> {
    let WriteForm { pin, digest_form } = form;
    let Spans::Split {
        tag,
        digest,
        digest_key,
        digest_hex,
        digest_insert,
        tag_form,
        ..
    } = &found.spans
    else {
        return Ok(Vec::new());
    };
    let missing = || EditError::MissingDigest {
        pin,
        image: found.image.clone(),
    };
    let mut edits = Vec::new();
    let mut set = |span: &Range<usize>, new: String| {
        if text[span.clone()] != new {
            edits.push(Edit {
                span: span.clone(),
                new,
            });
        }
    };

    // Helm's `tag: sha256:…` convention: the digest goes into the tag value,
    // when asked for or when the chart already writes it so.
    let in_tag = digest_form.or(match tag_form {
        ValueForm::Tag => None,
        ValueForm::TagDigest => Some(DigestForm::TagAtDigest),
        ValueForm::Digest => Some(DigestForm::Digest),
    });
    if let Some(f) = in_tag.filter(|_| pin.has_digest()) {
        set(tag, render_value(target, pin, Some(f), &found.image)?);
        if let Some(d) = digest {
            set(d, empty_value(text, d));
        }
        return Ok(edits);
    }
    let hex = |d: &Digest| {
        if *digest_hex {
            d.as_str().trim_start_matches("sha256:").to_owned()
        } else {
            d.to_string()
        }
    };
    match (pin, digest, digest_insert) {
        (PinForm::Tag, Some(d), _) => {
            set(tag, target.tag.clone());
            set(d, empty_value(text, d));
        }
        (PinForm::Tag, None, _) => set(tag, target.tag.clone()),
        (PinForm::TagDigest | PinForm::Digest, Some(d), _) => {
            set(tag, target.tag.clone());
            set(d, hex(target.digest.as_ref().ok_or_else(missing)?));
        }
        (PinForm::TagDigest | PinForm::Digest, None, Some((indent, at))) => {
            // The split form of a pin: a digest key beside `tag:`.
            let d = target.digest.as_ref().ok_or_else(missing)?;
            set(tag, target.tag.clone());
            edits.push(insert_line(
                text,
                *at,
                &[format!("{}{digest_key}: {}", " ".repeat(*indent), hex(d))],
                eol,
            ));
        }
        (PinForm::TagDigest | PinForm::Digest, None, None) => {
            // A flow mapping has no line to add; charts that join `repository:tag`
            // accept `tag@digest` in the tag value.
            let d = target.digest.as_ref().ok_or_else(missing)?;
            set(tag, format!("{}@{d}", target.tag));
        }
    }
    Ok(edits)
}

/// The text that empties the YAML value at `span`: nothing between existing quotes, or
/// `""` for a plain value (a bare key would read as null).
fn empty_value(text: &str, span: &Range<usize>) -> String {
    let bytes = text.as_bytes();
    let quoted = span.start > 0
        && matches!(bytes[span.start - 1], b'"' | b'\'')
        && bytes.get(span.end) == Some(&bytes[span.start - 1]);
    if quoted {
        String::new()
    } else {
        "\"\"".to_owned()
    }
}

/// An edit inserting whole lines at `at` (the start of a line, or the end of the text).
/// At the end of a file without a final newline it starts a line instead of ending one,
/// so the file still ends the way it did.
fn insert_line(text: &str, at: usize, lines: &[String], eol: &str) -> Edit {
    let new = if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        format!("{eol}{}", lines.join(eol))
    } else {
        lines.iter().map(|l| format!("{l}{eol}")).collect()
    };
    Edit { span: at..at, new }
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Byte offset of the start of the line holding `offset`.
pub(crate) fn line_start(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1)
}

/// Byte offset of the start of the next line (or the end of the text).
pub(crate) fn next_line_start(text: &str, offset: usize) -> usize {
    text[offset.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1)
}

#[cfg(test)]
mod tests;
