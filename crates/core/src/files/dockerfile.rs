//! The Dockerfile scanner: `FROM [--platform=…] image [AS name]`, `COPY --from=<image>`,
//! the `# syntax=<image>` parser directive, and `ARG NAME=<image>` defaults that a
//! `FROM $NAME` (or `${NAME}`, or `COPY --from=$NAME`) uses.
//!
//! Owns finding those images by byte span. Stage names (`FROM builder`, `COPY
//! --from=builder`, `--from=0`), `scratch` and images on a continuation line are
//! skipped. Markers sit on the comment line above the instruction, since Dockerfiles
//! have no trailing comments.
//!
//! Must not interpret any other instruction.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Found, RefKind, ScanError, Spans, line_of, marker, next_line_start};
use crate::Reference;

/// An `ARG NAME=default` seen so far: the default's span and value.
struct Arg {
    span: Range<usize>,
    value: String,
    used: bool,
}

/// The name in `$NAME` or `${NAME}`, when that is the whole token.
fn arg_use(token: &str) -> Option<&str> {
    let name = token
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .or_else(|| token.strip_prefix('$'))?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

fn whole(kind: RefKind, text: &str, line: usize, span: Range<usize>, image: &str) -> Found {
    Found {
        kind,
        line,
        image: image.to_owned(),
        marker: marker::find(text, &[span.end]),
        region: span.start..next_line_start(text, span.end),
        spans: Spans::Whole(span),
        key: None,
    }
}

/// The `# syntax=<image>` parser directive, if the file starts with one.
fn syntax_directive(text: &str) -> Option<Found> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let directive = body.trim_start().strip_prefix('#')?;
        let (key, value) = directive.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("syntax") {
            continue;
        }
        let value_trimmed = value.trim();
        let at = start + body.find(value_trimmed)?;
        Reference::parse(value_trimmed).ok()?;
        return Some(whole(
            RefKind::DockerfileSyntax,
            text,
            line_of(text, at),
            at..at + value_trimmed.len(),
            value_trimmed,
        ));
    }
    None
}

/// `ARG NAME=value` (or `ARG NAME="value"`): the name, and the value's span.
fn arg_default(start: usize, body: &str) -> Option<(String, Range<usize>, String)> {
    let trimmed = body.trim_start();
    let keyword = trimmed.get(..3)?;
    if !keyword.eq_ignore_ascii_case("arg") || !trimmed[3..].starts_with([' ', '\t']) {
        return None;
    }
    let decl = trimmed[3..].trim();
    let (name, value) = decl.split_once('=')?;
    if value.contains(char::is_whitespace) && !value.starts_with('"') {
        return None;
    }
    // The first `=` of the line ends the name (names cannot hold one).
    let value_at = start + body.find('=')? + 1;
    let (value, value_at) = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(v) => (v, value_at + 1),
        None => (value, value_at),
    };
    if value.is_empty() || value.contains(['$', '"', '\'', ' ']) {
        return None;
    }
    Some((
        name.to_owned(),
        value_at..value_at + value.len(),
        value.to_owned(),
    ))
}

/// `COPY --from=<x>`'s value and its offset in the line, if the line is a COPY with one.
fn copy_from(body: &str) -> Option<(usize, &str)> {
    let trimmed = body.trim_start();
    let keyword = trimmed.get(..4)?;
    if !keyword.eq_ignore_ascii_case("copy") || !trimmed[4..].starts_with([' ', '\t']) {
        return None;
    }
    let lead = body.len() - trimmed.len();
    let mut pos = lead;
    for token in trimmed.split([' ', '\t']) {
        if let Some(v) = token.strip_prefix("--from=") {
            return Some((pos + "--from=".len(), v));
        }
        if !token.is_empty() && !token.starts_with("--") && pos > lead {
            return None;
        }
        pos += token.len() + 1;
    }
    None
}

pub(super) fn scan(path: &str, text: &str) -> Result<Vec<Found>, ScanError> {
    let mut found: Vec<Found> = syntax_directive(text).into_iter().collect();
    let mut stages: Vec<String> = Vec::new();
    let mut args: BTreeMap<String, Arg> = BTreeMap::new();
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some((name, span, value)) = arg_default(start, body) {
            args.insert(
                name,
                Arg {
                    span,
                    value,
                    used: false,
                },
            );
            continue;
        }
        if let Some((at, from)) = copy_from(body) {
            copy_source(
                text,
                start + at,
                line_no,
                from,
                &stages,
                &mut args,
                &mut found,
            );
            continue;
        }
        let trimmed = body.trim_start();
        let Some(keyword) = trimmed.get(..4) else {
            continue;
        };
        if !keyword.eq_ignore_ascii_case("from") || !trimmed[4..].starts_with([' ', '\t']) {
            continue;
        }
        let error = |message: String| ScanError::Dockerfile {
            path: path.to_owned(),
            line: line_no,
            message,
        };
        let Some((image_at, image)) = from_image(body, &mut stages).map_err(error)? else {
            continue;
        };
        if let Some(name) = arg_use(image) {
            use_arg(text, name, RefKind::DockerfileArg, &mut args, &mut found);
            continue;
        }
        if image.eq_ignore_ascii_case("scratch")
            || image.contains('$')
            || stages.contains(&image.to_ascii_lowercase()) && !image.contains([':', '/', '@'])
        {
            continue;
        }
        if let Err(e) = Reference::parse(image) {
            return Err(error(e.to_string()));
        }
        let span = start + image_at..start + image_at + image.len();
        found.push(whole(RefKind::DockerfileFrom, text, line_no, span, image));
    }
    found.sort_by_key(|f| f.region.start);
    Ok(found)
}

/// The image of a `FROM` line and its offset, recording a stage name; `None` for a
/// line continued on the next one; `Err` with what is malformed.
fn from_image<'a>(
    body: &'a str,
    stages: &mut Vec<String>,
) -> Result<Option<(usize, &'a str)>, String> {
    // Tokens with their byte offsets in the line.
    let mut tokens = Vec::new();
    let mut pos = 0;
    for token in body.split([' ', '\t']) {
        if !token.is_empty() {
            tokens.push((pos, token));
        }
        pos += token.len() + 1;
    }
    let mut rest = tokens
        .into_iter()
        .skip(1)
        .skip_while(|(_, t)| t.starts_with("--"));
    let Some((image_at, image)) = rest.next() else {
        return Err("FROM has no image".into());
    };
    if image == "\\" {
        // `FROM --platform=… \` continues on the next line; such images are not
        // offered for editing.
        return Ok(None);
    }
    match (rest.next(), rest.next(), rest.next()) {
        (None, _, _) => {}
        (Some((_, kw)), Some((_, name)), None) if kw.eq_ignore_ascii_case("as") => {
            stages.push(name.to_ascii_lowercase())
        }
        (Some((_, t)), _, _) if t.ends_with('\\') || t == "\\" => {}
        (Some((_, kw)), None, _) if kw.eq_ignore_ascii_case("as") => {
            return Err(format!(
                "{kw} without a stage name; write `FROM {image} AS name`"
            ));
        }
        (Some((_, kw)), Some(_), Some((_, extra))) if kw.eq_ignore_ascii_case("as") => {
            return Err(format!(
                "unexpected {extra:?} after the stage name; write `FROM {image} AS name`"
            ));
        }
        (Some((_, t)), _, _) => {
            return Err(format!(
                "unexpected {t:?} after the image; expected `AS name`"
            ));
        }
    }
    Ok(Some((image_at, image)))
}

/// Reports the default of ARG `name` as an image the first time something uses it.
fn use_arg(
    text: &str,
    name: &str,
    kind: RefKind,
    args: &mut BTreeMap<String, Arg>,
    found: &mut Vec<Found>,
) {
    let Some(arg) = args.get_mut(name) else {
        return;
    };
    if arg.used || Reference::parse(&arg.value).is_err() {
        return;
    }
    arg.used = true;
    found.push(whole(
        kind,
        text,
        line_of(text, arg.span.start),
        arg.span.clone(),
        &arg.value,
    ));
}

/// `COPY --from=<x>`: an image unless `x` is a stage name or index.
fn copy_source(
    text: &str,
    at: usize,
    line_no: usize,
    from: &str,
    stages: &[String],
    args: &mut BTreeMap<String, Arg>,
    found: &mut Vec<Found>,
) {
    if let Some(name) = arg_use(from) {
        use_arg(text, name, RefKind::DockerfileArg, args, found);
        return;
    }
    let lower = from.to_ascii_lowercase();
    if from.is_empty()
        || from.contains('$')
        || from.bytes().all(|b| b.is_ascii_digit())
        || stages.contains(&lower) && !from.contains([':', '/', '@'])
        || Reference::parse(from).is_err()
    {
        return;
    }
    found.push(whole(
        RefKind::DockerfileCopyFrom,
        text,
        line_no,
        at..at + from.len(),
        from,
    ));
}
