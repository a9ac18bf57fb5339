//! The Dockerfile scanner: `FROM [--platform=…] image [AS name]`.
//!
//! Owns finding base images by byte span. Stage names (`FROM builder`), `scratch`,
//! images built from `ARG`s (`FROM ${BASE}`) and images on a continuation line are
//! skipped. Markers sit on the comment line
//! above a `FROM`, since Dockerfiles have no trailing comments.
//!
//! Must not interpret any other instruction.

use super::{Found, RefKind, ScanError, Spans, marker, next_line_start};
use crate::Reference;

pub(super) fn scan(path: &str, text: &str) -> Result<Vec<Found>, ScanError> {
    let mut found = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        let Some(keyword) = trimmed.get(..4) else {
            continue;
        };
        if !keyword.eq_ignore_ascii_case("from") || !trimmed[4..].starts_with([' ', '\t']) {
            continue;
        }
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
        let error = |message: String| ScanError::Dockerfile {
            path: path.to_owned(),
            line: line_no,
            message,
        };
        let Some((image_at, image)) = rest.next() else {
            return Err(error("FROM has no image".into()));
        };
        if image == "\\" {
            // `FROM --platform=… \` continues on the next line; such images are not
            // offered for editing.
            continue;
        }
        match (rest.next(), rest.next(), rest.next()) {
            (None, _, _) => {}
            (Some((_, kw)), Some((_, name)), None) if kw.eq_ignore_ascii_case("as") => {
                stages.push(name.to_ascii_lowercase())
            }
            (Some((_, t)), _, _) if t.ends_with('\\') || t == "\\" => {}
            (Some((_, kw)), None, _) if kw.eq_ignore_ascii_case("as") => {
                return Err(error(format!(
                    "{kw} without a stage name; write `FROM {image} AS name`"
                )));
            }
            (Some((_, kw)), Some(_), Some((_, extra))) if kw.eq_ignore_ascii_case("as") => {
                return Err(error(format!(
                    "unexpected {extra:?} after the stage name; write `FROM {image} AS name`"
                )));
            }
            (Some((_, t)), _, _) => {
                return Err(error(format!(
                    "unexpected {t:?} after the image; expected `AS name`"
                )));
            }
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
        found.push(Found {
            kind: RefKind::DockerfileFrom,
            line: line_no,
            image: image.to_owned(),
            marker: marker::find(text, &[span.end]),
            region: span.start..next_line_start(text, span.end),
            spans: Spans::Whole(span),
        });
    }
    Ok(found)
}
