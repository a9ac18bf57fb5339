//! The YAML scanner: Kubernetes manifests, Helm values, docker-compose files and
//! kustomizations.
//!
//! Owns locating references in YAML by their byte spans: `image:` values, Helm's split
//! `registry`/`repository`/`tag`/digest keys (a `null` is absent; the digest key is the
//! one the chart has: `digest`, `imageDigest`, `sha`, …), kustomize `images:` entries
//! that set a tag or digest (rename-only entries are left alone), CI files (GitHub
//! Actions `container:`/`services:`/`uses: docker://`, GitLab `image:`/`services:`),
//! and any scalar with a `freshet:` marker or under a key path a rule names. The event parser
//! (granit-parser) is used as a locator only; edits splice bytes into the original text so
//! quoting, comments and line endings survive. Scalars whose source text differs from
//! their value (escapes, folded lines) are not offered for editing.
//!
//! Must not re-serialise YAML.

use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle};

use super::{
    Found, RefKind, ScanError, ScanOptions, Spans, ValueForm, line_of, line_start, marker,
    next_line_start,
};
use crate::{Digest, Reference};

#[derive(Debug)]
struct Scalar {
    value: String,
    /// The value's bytes, quotes excluded.
    inner: Range<usize>,
    /// The scalar's bytes, quotes included.
    raw: Range<usize>,
    /// The source text is exactly the value, so it can be edited in place.
    editable: bool,
    /// A plain (unquoted) scalar: `null` and `~` are nulls.
    plain: bool,
}

impl Scalar {
    /// A YAML null: a plain `null`, `~` or nothing.
    fn is_null(&self) -> bool {
        self.plain && matches!(self.value.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }
}

#[derive(Debug)]
enum Node {
    Scalar(Scalar),
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Other,
}

enum Frame {
    Map(Vec<Node>),
    Seq(Vec<Node>),
}

fn parse_docs(path: &str, text: &str) -> Result<Vec<Node>, ScanError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let error = |e: granit_parser::ScanError| ScanError::Yaml {
        path: path.to_owned(),
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info(),
    };
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(error)?;
        let node = match event {
            Event::Scalar(value, style, _, _) => {
                let raw = span.byte_range().unwrap_or(0..0);
                let source = text.get(raw.clone()).unwrap_or("");
                let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
                let inner = if quoted && source.len() >= 2 {
                    raw.start + 1..raw.end - 1
                } else {
                    raw.clone()
                };
                let editable = matches!(
                    style,
                    ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
                ) && text.get(inner.clone()) == Some(value.as_ref())
                    && !value.is_empty();
                Node::Scalar(Scalar {
                    value: value.into_owned(),
                    inner,
                    raw,
                    editable,
                    plain: style == ScalarStyle::Plain,
                })
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(Vec::new()));
                continue;
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(Vec::new()));
                continue;
            }
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(flat)) => {
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Node::Map(pairs)
                }
                _ => Node::Other,
            },
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items)) => Node::Seq(items),
                _ => Node::Other,
            },
            Event::Alias(_) => Node::Other,
            _ => continue,
        };
        match stack.last_mut() {
            Some(Frame::Map(items) | Frame::Seq(items)) => items.push(node),
            None => docs.push(node),
        }
    }
    Ok(docs)
}

fn get<'a>(pairs: &'a [(Node, Node)], key: &str) -> Option<&'a Node> {
    pairs.iter().find_map(|(k, v)| match k {
        Node::Scalar(s) if s.value == key => Some(v),
        _ => None,
    })
}

fn scalar<'a>(pairs: &'a [(Node, Node)], key: &str) -> Option<&'a Scalar> {
    match get(pairs, key)? {
        Node::Scalar(s) if !s.is_null() => Some(s),
        _ => None,
    }
}

/// Which CI system a YAML file configures, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Plain,
    GithubActions,
    Gitlab,
}

fn flavor(path: &str) -> Flavor {
    let path = path.replace('\\', "/");
    let name = path.rsplit('/').next().unwrap_or(&path);
    if path.contains(".github/workflows/") || name == "action.yml" || name == "action.yaml" {
        Flavor::GithubActions
    } else if name.ends_with(".gitlab-ci.yml") || name.ends_with(".gitlab-ci.yaml") {
        Flavor::Gitlab
    } else {
        Flavor::Plain
    }
}

/// Keys whose value holds an image digest in Helm charts, most specific first
/// (`digest`: bitnami, ingress-nginx, cert-manager, node-exporter; `sha`:
/// kube-prometheus-stack, kube-state-metrics, grafana; `imageDigest`, `image_digest`
/// and `sha256` elsewhere).
const DIGEST_KEYS: &[&str] = &["digest", "imageDigest", "image_digest", "sha256", "sha"];

/// Where a scalar sits while walking.
struct Ctx<'a> {
    text: &'a str,
    flavor: Flavor,
    options: &'a ScanOptions,
}

/// Scans YAML text; `kustomization` reads only the `images:` list of a kustomization.
pub(super) fn scan(
    path: &str,
    text: &str,
    kustomization: bool,
    options: &ScanOptions,
) -> Result<Vec<Found>, ScanError> {
    let docs = parse_docs(path, text)?;
    let mut found = Vec::new();
    let ctx = Ctx {
        text,
        flavor: flavor(path),
        options,
    };
    for doc in &docs {
        if kustomization {
            if let Node::Map(pairs) = doc
                && let Some(Node::Seq(items)) = get(pairs, "images")
            {
                for item in items {
                    if let Node::Map(entry) = item {
                        kustomize_entry(text, entry, &mut found);
                    }
                }
            }
        } else {
            walk(&ctx, doc, None, "", &mut found);
        }
    }
    found.sort_by_key(|f| f.region.start);
    found.dedup_by_key(|f| f.region.start);
    Ok(found)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    ctx: &Ctx<'_>,
    node: &Node,
    parent_key_end: Option<usize>,
    path: &str,
    found: &mut Vec<Found>,
) {
    let text = ctx.text;
    match node {
        Node::Map(pairs) => {
            let split = helm_split(ctx, pairs, parent_key_end, path);
            let in_split = split.is_some();
            found.extend(split);
            for (k, v) in pairs {
                let key = match k {
                    Node::Scalar(s) => s.value.as_str(),
                    _ => "",
                };
                let key_path = join(path, key);
                let split_key = in_split
                    && (["registry", "repository", "tag"].contains(&key)
                        || DIGEST_KEYS.contains(&key));
                if let (Node::Scalar(value), false) = (v, split_key) {
                    if let Some(f) = keyed_scalar(ctx, key, &key_path, value) {
                        found.push(f);
                    }
                } else if let (Node::Seq(items), true) = (v, ci_services(ctx.flavor, key)) {
                    // GitLab `services: [postgres:15]` (a list of plain images).
                    for (i, item) in items.iter().enumerate() {
                        if let Node::Scalar(value) = item
                            && let Some(f) = image_scalar(
                                text,
                                value,
                                RefKind::CiImage,
                                &join(&key_path, &i.to_string()),
                            )
                        {
                            found.push(f);
                        }
                    }
                }
                if let (Node::Map(inner), true) = (v, ci_image_map(ctx.flavor, key, path)) {
                    // GitLab `image: {name: ruby:3.1}`, `services: [{name: postgres:15}]`.
                    if let Some(name) = scalar(inner, "name")
                        && let Some(f) =
                            image_scalar(text, name, RefKind::CiImage, &join(&key_path, "name"))
                    {
                        found.push(f);
                    }
                }
                let key_end = match k {
                    Node::Scalar(s) => Some(s.raw.end),
                    _ => None,
                };
                walk(ctx, v, key_end, &key_path, found);
            }
        }
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                if let (Node::Map(inner), Flavor::Gitlab, true) =
                    (item, ctx.flavor, path.ends_with("services"))
                    && let Some(name) = scalar(inner, "name")
                    && let Some(f) = image_scalar(
                        text,
                        name,
                        RefKind::CiImage,
                        &join(&join(path, &i.to_string()), "name"),
                    )
                {
                    found.push(f);
                }
                walk(ctx, item, None, &join(path, &i.to_string()), found)
            }
        }
        Node::Scalar(_) | Node::Other => {}
    }
}

fn ci_services(flavor: Flavor, key: &str) -> bool {
    flavor == Flavor::Gitlab && key == "services"
}

fn ci_image_map(flavor: Flavor, key: &str, _path: &str) -> bool {
    flavor == Flavor::Gitlab && key == "image"
}

/// A scalar that is an image reference by where it sits (no marker needed).
fn image_scalar(text: &str, value: &Scalar, kind: RefKind, key: &str) -> Option<Found> {
    if !value.editable {
        return None;
    }
    let marker = marker::find(text, &[value.raw.end]);
    // A marked value that is not a reference is kept so that `track` reports it; an
    // unmarked one is simply not an image.
    if Reference::parse(&value.value).is_err() && marker.is_none() {
        return None;
    }
    Some(Found {
        kind,
        line: line_of(text, value.inner.start),
        image: value.value.clone(),
        spans: Spans::Whole(value.inner.clone()),
        marker,
        region: value.inner.start..next_line_start(text, value.raw.end),
        key: Some(key.to_owned()),
    })
}

/// A `key: value` pair: an `image:` value, a CI image, or any scalar with a marker or
/// under a key path a rule names.
fn keyed_scalar(ctx: &Ctx<'_>, key: &str, key_path: &str, value: &Scalar) -> Option<Found> {
    let text = ctx.text;
    if !value.editable || value.is_null() {
        return None;
    }
    if key == "image" {
        let kind = if ctx.flavor == Flavor::Plain {
            RefKind::Image
        } else {
            RefKind::CiImage
        };
        return image_scalar(text, value, kind, key_path);
    }
    if ctx.flavor == Flavor::GithubActions {
        if key == "container" {
            return image_scalar(text, value, RefKind::CiImage, key_path);
        }
        if key == "uses"
            && let Some(image) = value.value.strip_prefix("docker://")
        {
            let start = value.inner.start + "docker://".len();
            Reference::parse(image).ok()?;
            return Some(Found {
                kind: RefKind::CiImage,
                line: line_of(text, start),
                image: image.to_owned(),
                spans: Spans::Whole(start..value.inner.end),
                marker: marker::find(text, &[value.raw.end]),
                region: start..next_line_start(text, value.raw.end),
                key: Some(key_path.to_owned()),
            });
        }
    }
    let marker = marker::find_own(text, value.raw.end);
    if marker.is_none() && !ctx.options.key_wanted(key_path) {
        return None;
    }
    Some(any_value(text, value, marker, key_path))
}

/// A marked or rule-named scalar: a whole reference when it names an image, else a
/// value holding part of one (a tag, `tag@digest`, a digest).
fn any_value(
    text: &str,
    value: &Scalar,
    marker: Option<Result<super::Marker, super::MarkerError>>,
    key_path: &str,
) -> Found {
    let spans = whole_or_part(&value.value, value.inner.clone());
    Found {
        kind: match spans {
            Spans::Value { .. } => RefKind::Value,
            _ => RefKind::Image,
        },
        line: line_of(text, value.inner.start),
        image: value.value.clone(),
        spans,
        marker,
        region: value.inner.start..next_line_start(text, value.raw.end),
        key: Some(key_path.to_owned()),
    }
}

/// Whether a value names an image (`repo/x:1`, `nginx:1.27`) or holds only a tag or a
/// digest. A bare word (`nginx`, `abc12345`) is a tag: it is never guessed as an image.
pub(super) fn whole_or_part(value: &str, span: std::ops::Range<usize>) -> Spans {
    let form = ValueForm::of(value);
    let tag_part = ValueForm::parts(value).0.unwrap_or("");
    let names_image = form != ValueForm::Digest && tag_part.contains(['/', ':']);
    if names_image {
        Spans::Whole(span)
    } else {
        Spans::Value { span, form }
    }
}

/// The digest key of a Helm image block, its value, and whether it holds bare hex.
struct DigestSlot<'a> {
    key: &'static str,
    scalar: Option<&'a Scalar>,
    digest: Option<Digest>,
    hex: bool,
}

fn digest_slot<'a>(pairs: &'a [(Node, Node)], options: &ScanOptions) -> Option<DigestSlot<'a>> {
    let key = DIGEST_KEYS
        .iter()
        .copied()
        .find(|k| get(pairs, k).is_some())?;
    let scalar = match get(pairs, key)? {
        Node::Scalar(s) => Some(s),
        _ => return None,
    };
    let value = scalar.map_or("", |s| s.value.as_str());
    let is_hex = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
    let digest = if value.is_empty() || scalar.is_some_and(Scalar::is_null) {
        None
    } else if is_hex {
        Some(Digest::parse(&format!("sha256:{value}")).ok()?)
    } else {
        // Not a digest at all: this block is not an image the way freshet reads it.
        Some(Digest::parse(value).ok()?)
    };
    let hex = is_hex || (digest.is_none() && key == "sha" && options.sha_hex);
    Some(DigestSlot {
        key,
        scalar,
        digest,
        hex,
    })
}

/// Whether the first path segment of a repository is a registry host.
fn has_host(repository: &str) -> bool {
    repository
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

/// The span of a digest key's value that a pin may fill (`None`: none), adding a
/// digest that the key holds to `image`. `None` overall: the block is not an image.
fn digest_span(
    text: &str,
    slot: Option<&DigestSlot<'_>>,
    tag_form: ValueForm,
    image: &mut String,
) -> Option<Option<std::ops::Range<usize>>> {
    Some(match slot {
        None => None,
        Some(DigestSlot { scalar: None, .. }) => None,
        Some(DigestSlot {
            scalar: Some(d),
            digest: None,
            ..
        }) => {
            // An empty `digest: ""` can be filled in between its quotes; a bare
            // `digest:` (null) cannot, and a new key beside it would be a duplicate.
            let source = text.get(d.raw.clone()).unwrap_or("");
            (source.len() == 2 && d.value.is_empty()).then(|| d.inner.clone())
        }
        Some(DigestSlot {
            scalar: Some(d),
            digest: Some(digest),
            ..
        }) => {
            if !d.editable {
                return None;
            }
            if tag_form == ValueForm::Tag {
                image.push('@');
                image.push_str(digest.as_str());
            }
            Some(d.inner.clone())
        }
    })
}

fn helm_split(
    ctx: &Ctx<'_>,
    pairs: &[(Node, Node)],
    parent_key_end: Option<usize>,
    path: &str,
) -> Option<Found> {
    let text = ctx.text;
    let repository = scalar(pairs, "repository").filter(|s| s.editable)?;
    let tag = scalar(pairs, "tag").filter(|s| s.editable)?;
    // A `registry:` beside a repository that already names a host is not joined.
    let registry = scalar(pairs, "registry")
        .filter(|s| s.editable)
        .filter(|_| !has_host(&repository.value));
    let slot = match get(pairs, "digest").or_else(|| DIGEST_KEYS.iter().find_map(|k| get(pairs, k)))
    {
        Some(_) => Some(digest_slot(pairs, ctx.options)?),
        None => None,
    };
    let tag_form = ValueForm::of(&tag.value);
    let mut image = String::new();
    if let Some(r) = registry {
        image.push_str(&r.value);
        image.push('/');
    }
    image.push_str(&repository.value);
    match tag_form {
        ValueForm::Digest => {}
        _ => image.push(':'),
    }
    match tag_form {
        ValueForm::Digest => {
            image.push('@');
            image.push_str(&tag.value);
        }
        _ => image.push_str(&tag.value),
    }
    let digest_span = digest_span(text, slot.as_ref(), tag_form, &mut image)?;
    Reference::parse(&image).ok()?;
    let mut ends = vec![tag.raw.end, repository.raw.end];
    ends.extend(registry.map(|r| r.raw.end));
    ends.extend(slot.as_ref().and_then(|s| s.scalar).map(|d| d.raw.end));
    ends.extend(parent_key_end);
    let starts = [
        Some(repository.inner.start),
        Some(tag.inner.start),
        registry.map(|r| r.inner.start),
    ];
    let start = starts
        .iter()
        .flatten()
        .min()
        .copied()
        .unwrap_or(tag.inner.start);
    let last = ends.iter().copied().max().unwrap_or(tag.raw.end);
    // A block mapping (`tag:` first on its line) can take a new digest line after the
    // tag's; a flow mapping cannot.
    let digest_insert = match slot {
        Some(_) => None,
        None => pairs.iter().find_map(|(k, _)| match k {
            Node::Scalar(key) if key.value == "tag" => {
                let line = line_start(text, key.raw.start);
                let block = text[line..key.raw.start].bytes().all(|b| b == b' ')
                    && !text[tag.raw.end..next_line_start(text, tag.raw.end)]
                        .trim_start()
                        .starts_with([',', '}']);
                block.then(|| (key.raw.start - line, next_line_start(text, tag.raw.end)))
            }
            _ => None,
        }),
    };
    Some(Found {
        kind: RefKind::HelmSplit,
        line: line_of(text, tag.inner.start),
        image,
        spans: Spans::Split {
            registry: registry.map(|r| r.inner.clone()),
            repository: repository.inner.clone(),
            tag: tag.inner.clone(),
            digest: digest_span,
            digest_key: slot.as_ref().map_or("digest", |s| s.key).to_owned(),
            digest_hex: slot.as_ref().is_some_and(|s| s.hex),
            digest_insert,
            tag_form,
        },
        marker: marker::find(text, &ends),
        region: start..next_line_start(text, last),
        key: Some(join(path, "tag")),
    })
}

fn kustomize_entry(text: &str, entry: &[(Node, Node)], found: &mut Vec<Found>) {
    let Some(name) = scalar(entry, "name").filter(|s| s.editable) else {
        return;
    };
    let new_name = scalar(entry, "newName").filter(|s| s.editable);
    let new_tag = scalar(entry, "newTag").filter(|s| s.editable);
    let digest = scalar(entry, "digest").filter(|s| s.editable);
    // An entry that only renames (`name` + `newName`) keeps the tag its base sets:
    // writing a `newTag:` would override it.
    if new_tag.is_none() && digest.is_none() {
        return;
    }
    let mut image = new_name.unwrap_or(name).value.clone();
    if let Some(t) = new_tag {
        image.push(':');
        image.push_str(&t.value);
    }
    if let Some(d) = digest {
        image.push('@');
        image.push_str(&d.value);
    }
    if Reference::parse(&image).is_err() {
        return;
    }
    let key_start = entry
        .iter()
        .filter_map(|(k, _)| match k {
            Node::Scalar(s) if s.value == "name" => Some(s.raw.start),
            _ => None,
        })
        .next()
        .unwrap_or(name.raw.start);
    let indent = key_start - line_start(text, key_start);
    let values: Vec<&Scalar> = [Some(name), new_name, new_tag, digest]
        .into_iter()
        .flatten()
        .collect();
    let last = values
        .iter()
        .map(|s| s.raw.end)
        .max()
        .unwrap_or(name.raw.end);
    let insert_at = next_line_start(text, last);
    found.push(Found {
        kind: RefKind::Kustomize,
        line: line_of(text, new_tag.or(digest).unwrap_or(name).inner.start),
        image,
        spans: Spans::Kustomize {
            name: name.inner.clone(),
            new_name: new_name.map(|s| s.inner.clone()),
            new_tag: new_tag.map(|s| s.inner.clone()),
            digest: digest.map(|s| s.inner.clone()),
            indent,
            insert_at,
        },
        marker: marker::find(text, &values.iter().map(|s| s.raw.end).collect::<Vec<_>>()),
        region: key_start.min(name.inner.start)..insert_at,
        key: Some(format!("images.{}", name.value)),
    });
}
