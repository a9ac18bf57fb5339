//! A YAML locator for the Git write-back: finds values by Helm parameter path and gives
//! their byte spans, so edits splice bytes into the original text.
//!
//! Owns a small node tree built from granit-parser events (the event parser freshet's
//! file mode uses as a locator, see `crate::files`), Helm-path lookup with upstream's
//! rules (`a.b.c` nested, `list[0]` indices, then the literal key `a.b.c`; v1.3.0
//! `pkg/argocd/update.go`, `resolveHelmScalarNode`), scalar rendering that keeps a value
//! a string, and splicing. Must not re-serialise YAML: untouched bytes stay as they are.

use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle};

use crate::files::Edit;

/// A scalar and where it sits.
#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub value: String,
    /// The value's bytes, quotes excluded.
    pub inner: Range<usize>,
    /// The scalar's bytes, quotes included.
    pub raw: Range<usize>,
    pub style: ScalarStyle,
}

impl Scalar {
    /// The source text is exactly the value (no escapes, no folding), so it can be
    /// replaced in place.
    pub fn editable(&self, text: &str) -> bool {
        matches!(
            self.style,
            ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
        ) && text.get(self.inner.clone()) == Some(self.value.as_str())
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Scalar(Scalar),
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Other,
}

enum Frame {
    Map(Vec<Node>),
    Seq(Vec<Node>),
}

/// Parses every document of `text`; the error is `line:column: message`.
pub(crate) fn parse(text: &str) -> Result<Vec<Node>, String> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            format!(
                "{}:{}: {}",
                e.marker().line(),
                e.marker().col() + 1,
                e.info()
            )
        })?;
        let node = match event {
            Event::Scalar(value, style, _, _) => {
                let raw = span.byte_range().unwrap_or(0..0);
                let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
                let inner = if quoted && raw.len() >= 2 {
                    raw.start + 1..raw.end - 1
                } else {
                    raw.clone()
                };
                Node::Scalar(Scalar {
                    value: value.into_owned(),
                    inner,
                    raw,
                    style,
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

/// The value under `key` in a mapping.
pub(crate) fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match node {
        Node::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
            Node::Scalar(s) if s.value == key => Some(v),
            _ => None,
        }),
        _ => None,
    }
}

/// The first byte of a node's content.
pub(crate) fn start(node: &Node) -> Option<usize> {
    match node {
        Node::Scalar(s) => Some(s.raw.start),
        Node::Map(pairs) => pairs.first().and_then(|(k, _)| start(k)),
        Node::Seq(items) => items.first().and_then(start),
        Node::Other => None,
    }
}

/// The byte after a node's last scalar.
pub(crate) fn end(node: &Node) -> Option<usize> {
    match node {
        Node::Scalar(s) => Some(s.raw.end),
        Node::Map(pairs) => pairs.iter().filter_map(|(_, v)| end(v)).max(),
        Node::Seq(items) => items.iter().filter_map(end).max(),
        Node::Other => None,
    }
}

/// Finds the scalar at a Helm parameter path.
pub(crate) fn lookup<'a>(root: &'a Node, path: &str) -> Result<&'a Scalar, String> {
    if let Some(s) = nested(root, path) {
        return Ok(s);
    }
    match get(root, path) {
        Some(Node::Scalar(s)) => Ok(s),
        Some(_) => Err(format!(
            "the key {path:?} holds a mapping or list, not a value"
        )),
        None => Err(format!("the key {path:?} is not in the file")),
    }
}

fn nested<'a>(root: &'a Node, path: &str) -> Option<&'a Scalar> {
    let mut node = root;
    for part in path.split('.') {
        let (key, index) = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
            Some((k, i)) => (k, Some(i.parse::<usize>().ok()?)),
            None => (part, None),
        };
        node = get(node, key)?;
        match (node, index) {
            (Node::Seq(items), Some(i)) => node = items.get(i)?,
            (Node::Seq(_), None) | (_, Some(_)) => return None,
            _ => {}
        }
    }
    match node {
        Node::Scalar(s) => Some(s),
        _ => None,
    }
}

/// `value` as a YAML scalar that reads back as the same string: plain when that is safe
/// (Helm reads YAML 1.1, so `yes`, `on`, `1.20` and the like are quoted), else
/// double-quoted with escapes.
pub(crate) fn render(value: &str) -> String {
    if plain_safe(value) {
        value.to_owned()
    } else {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('"');
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

fn plain_safe(s: &str) -> bool {
    if s.is_empty() || s.trim() != s || s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if s.chars().any(|c| c.is_control()) {
        return false;
    }
    if s.starts_with([
        '!', '&', '*', '?', '|', '>', '%', '@', '`', '"', '\'', '#', ',', '[', ']', '{', '}', '-',
    ]) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "n"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "true"
            | "false"
            | "null"
            | "~"
            | ".nan"
            | ".inf"
            | "-.inf"
    ) {
        return false;
    }
    // Anything that reads as a number (1, 1.20, 1e3, 0x1f, 1_000, 1:20) stays a string
    // only when quoted.
    let digits = s.trim_start_matches(['+', '-']);
    let numberish = digits.parse::<f64>().is_ok()
        || digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'_' | b':'))
        || (digits.starts_with("0x") || digits.starts_with("0o"))
            && digits[2..].bytes().all(|b| b.is_ascii_hexdigit());
    !numberish
}

/// The edit that sets `scalar` to `value`, keeping its quotes when they can hold it.
pub(crate) fn set_scalar(text: &str, scalar: &Scalar, value: &str) -> Option<Edit> {
    if scalar.value == value {
        return None;
    }
    let editable = scalar.editable(text);
    let keeps = match scalar.style {
        ScalarStyle::DoubleQuoted if editable => {
            !value.contains(['"', '\\']) && !value.chars().any(char::is_control)
        }
        ScalarStyle::SingleQuoted if editable => {
            !value.contains('\'') && !value.chars().any(char::is_control)
        }
        _ => false,
    };
    Some(if keeps {
        Edit {
            span: scalar.inner.clone(),
            new: value.to_owned(),
        }
    } else {
        Edit {
            span: scalar.raw.clone(),
            new: render(value),
        }
    })
}

/// Applies non-overlapping edits.
pub(crate) fn splice(text: &str, edits: &[Edit]) -> Result<String, String> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for e in sorted {
        if e.span.start < at
            || e.span.end > text.len()
            || !text.is_char_boundary(e.span.start)
            || !text.is_char_boundary(e.span.end)
        {
            return Err(format!(
                "edit {:?} overlaps another or is out of bounds",
                e.span
            ));
        }
        out.push_str(&text[at..e.span.start]);
        out.push_str(&e.new);
        at = e.span.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// Byte offset of the start of the line holding `offset`.
pub(crate) fn line_start(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1)
}

/// Byte offset of the start of the next line (or the end of the text).
pub(crate) fn next_line(text: &str, offset: usize) -> usize {
    text[offset.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_would_not_read_back_as_strings_are_quoted() {
        let cases = [
            ("1.2.3", "1.2.3"),
            ("v1.2.3", "v1.2.3"),
            ("1.20", "\"1.20\""),
            ("123", "\"123\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("sha256:abc", "sha256:abc"),
            ("preview@sha256:abc", "preview@sha256:abc"),
            ("ghcr.io/o/a", "ghcr.io/o/a"),
            ("-x", "\"-x\""),
            ("a: b", "\"a: b\""),
            ("", "\"\""),
        ];
        for (value, want) in cases {
            assert_eq!(render(value), want, "{value}");
        }
    }

    #[test]
    fn helm_paths_find_nested_indexed_and_literal_keys() {
        let text = "image:\n  tag: \"1.0\"\nfoo:\n- name: a\n  image: x:1\n- image: y:2\nimage.name: lit\n";
        let docs = parse(text).unwrap();
        let root = &docs[0];
        assert_eq!(lookup(root, "image.tag").unwrap().value, "1.0");
        assert_eq!(lookup(root, "foo[1].image").unwrap().value, "y:2");
        assert_eq!(lookup(root, "image.name").unwrap().value, "lit");
        assert!(lookup(root, "image.missing").is_err());
        assert!(lookup(root, "foo").is_err());
    }
}
