//! The Terraform/HCL scanner: `image = "repo:tag"` attributes (at any block depth) and
//! the `default` of a `variable` whose name mentions an image.
//!
//! Owns locating those strings by byte span with hcl-edit's parser. Strings with
//! interpolation or escapes are skipped. Markers are `# freshet:` or `// freshet:`
//! comments.
//!
//! Must not re-encode HCL.

use hcl_edit::Span as _;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{BlockLabel, Body, Structure};

use super::{Found, RefKind, ScanError, Spans, line_of, marker, next_line_start};
use crate::Reference;

pub(super) fn scan(path: &str, text: &str) -> Result<Vec<Found>, ScanError> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| ScanError::Hcl {
        path: path.to_owned(),
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_owned(),
    })?;
    let mut found = Vec::new();
    walk(text, &body, None, &mut found);
    found.sort_by_key(|f| f.region.start);
    Ok(found)
}

fn is_image_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "image" || key.ends_with("_image") || key == "image_name" || key == "container_image"
}

/// `variable` is `Some(named_for_an_image)` inside a `variable` block.
fn walk(text: &str, body: &Body, variable: Option<bool>, found: &mut Vec<Found>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str();
                let is_default = variable.is_some() && key == "default";
                if !(is_image_key(key) || is_default) {
                    continue;
                }
                let Expression::String(s) = &attr.value else {
                    continue;
                };
                let Some(raw) = s.span() else { continue };
                let value = s.value().as_str();
                let inner = raw.start + 1..raw.end.saturating_sub(1);
                if text.get(inner.clone()) != Some(value)
                    || value.is_empty()
                    || Reference::parse(value).is_err()
                {
                    continue;
                }
                let marker = marker::find(text, &[raw.end]);
                // A variable default counts when the variable is named for an image or
                // carries a marker.
                if is_default && variable != Some(true) && marker.is_none() {
                    continue;
                }
                found.push(Found {
                    kind: RefKind::HclString,
                    line: line_of(text, inner.start),
                    image: value.to_owned(),
                    marker,
                    region: inner.start..next_line_start(text, raw.end),
                    spans: Spans::Whole(inner),
                });
            }
            Structure::Block(block) => {
                let variable = (block.ident.as_str() == "variable").then(|| {
                    block.labels.iter().any(|l| {
                        let name = match l {
                            BlockLabel::String(s) => s.value().as_str(),
                            BlockLabel::Ident(i) => i.as_str(),
                        };
                        name.to_ascii_lowercase().contains("image")
                    })
                });
                walk(text, &block.body, variable, found);
            }
        }
    }
}
