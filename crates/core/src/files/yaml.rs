//! The YAML scanner: Kubernetes manifests, Helm values, docker-compose files and
//! kustomizations.
//!
//! Owns locating references in YAML by their byte spans. The event parser
//! (granit-parser) is used as a locator only; edits splice bytes into the original text so
//! quoting, comments and line endings survive. Scalars whose source text differs from
//! their value (escapes, folded lines) are not offered for editing.
//!
//! Must not re-serialise YAML.

use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle};

use super::{Found, RefKind, ScanError, Spans, line_of, line_start, marker, next_line_start};
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
        Node::Scalar(s) => Some(s),
        _ => None,
    }
}

/// Scans YAML text; `kustomization` reads only the `images:` list of a kustomization.
pub(super) fn scan(path: &str, text: &str, kustomization: bool) -> Result<Vec<Found>, ScanError> {
    let docs = parse_docs(path, text)?;
    let mut found = Vec::new();
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
            walk(text, doc, None, &mut found);
        }
    }
    found.sort_by_key(|f| f.region.start);
    Ok(found)
}

fn walk(text: &str, node: &Node, parent_key_end: Option<usize>, found: &mut Vec<Found>) {
    match node {
        Node::Map(pairs) => {
            if let Some(f) = helm_split(text, pairs, parent_key_end) {
                found.push(f);
            }
            for (k, v) in pairs {
                if let (Node::Scalar(key), Node::Scalar(value)) = (k, v)
                    && key.value == "image"
                    && value.editable
                {
                    let marker = marker::find(text, &[value.raw.end]);
                    // A marked value that is not a reference is kept so that `track`
                    // reports it; an unmarked one is simply not an image.
                    if Reference::parse(&value.value).is_ok() || marker.is_some() {
                        found.push(Found {
                            kind: RefKind::Image,
                            line: line_of(text, value.inner.start),
                            image: value.value.clone(),
                            spans: Spans::Whole(value.inner.clone()),
                            marker,
                            region: value.inner.start..next_line_start(text, value.raw.end),
                        });
                    }
                }
                let key_end = match k {
                    Node::Scalar(s) => Some(s.raw.end),
                    _ => None,
                };
                walk(text, v, key_end, found);
            }
        }
        Node::Seq(items) => items.iter().for_each(|i| walk(text, i, None, found)),
        Node::Scalar(_) | Node::Other => {}
    }
}

fn helm_split(text: &str, pairs: &[(Node, Node)], parent_key_end: Option<usize>) -> Option<Found> {
    let repository = scalar(pairs, "repository").filter(|s| s.editable)?;
    let tag = scalar(pairs, "tag").filter(|s| s.editable)?;
    let registry = scalar(pairs, "registry").filter(|s| s.editable);
    let digest = scalar(pairs, "digest");
    let mut image = String::new();
    if let Some(r) = registry {
        image.push_str(&r.value);
        image.push('/');
    }
    image.push_str(&repository.value);
    image.push(':');
    image.push_str(&tag.value);
    let digest_source = digest.map_or("", |d| text.get(d.raw.clone()).unwrap_or(""));
    let digest_span = match digest {
        // An empty `digest: ""` can be filled in between its quotes.
        Some(d) if digest_source.len() == 2 && d.value.is_empty() => Some(d.inner.clone()),
        // A bare `digest:` (null) cannot, and a new key beside it would be a duplicate.
        Some(_) if digest_source.is_empty() => None,
        Some(d) => {
            Digest::parse(&d.value).ok()?;
            if !d.editable {
                return None;
            }
            image.push('@');
            image.push_str(&d.value);
            Some(d.inner.clone())
        }
        None => None,
    };
    Reference::parse(&image).ok()?;
    let mut ends = vec![tag.raw.end, repository.raw.end];
    ends.extend(registry.map(|r| r.raw.end));
    ends.extend(digest.map(|d| d.raw.end));
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
    // A block mapping (`tag:` first on its line) can take a new `digest:` line after
    // the tag's; a flow mapping cannot.
    let digest_insert = match digest {
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
            digest_insert,
        },
        marker: marker::find(text, &ends),
        region: start..next_line_start(text, last),
    })
}

fn kustomize_entry(text: &str, entry: &[(Node, Node)], found: &mut Vec<Found>) {
    let Some(name) = scalar(entry, "name").filter(|s| s.editable) else {
        return;
    };
    let new_name = scalar(entry, "newName").filter(|s| s.editable);
    let new_tag = scalar(entry, "newTag").filter(|s| s.editable);
    let digest = scalar(entry, "digest").filter(|s| s.editable);
    if new_tag.is_none() && digest.is_none() && new_name.is_none() {
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
    });
}
