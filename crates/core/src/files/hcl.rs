//! The Terraform/HCL scanner: `image = "repo:tag"` attributes (at any block depth, and
//! inside objects, arrays and function calls such as `jsonencode`), the `default` of a
//! `variable` whose name mentions an image, and any other string carrying a
//! `freshet:` marker.
//!
//! Owns locating those strings by byte span with hcl-edit's parser. Strings with
//! interpolation or escapes are skipped. Markers are `# freshet:` or `// freshet:`
//! comments.
//!
//! Must not re-encode HCL.

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey};
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

/// Where a string sits, which decides whether it is an image reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Under a key named for an image (`image`, `*_image`, …): always a candidate.
    Image,
    /// The `default` of a variable named for an image: always a candidate.
    ImageDefault,
    /// Any other string: a candidate only when a `freshet:` marker is on its line.
    Other,
}

fn role_of(key: &str, variable: Option<bool>) -> Role {
    if is_image_key(key) {
        Role::Image
    } else if key == "default" && variable == Some(true) {
        Role::ImageDefault
    } else {
        Role::Other
    }
}

/// `variable` is `Some(named_for_an_image)` inside a `variable` block.
fn walk(text: &str, body: &Body, variable: Option<bool>, found: &mut Vec<Found>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str();
                let role = role_of(key, if key == "default" { variable } else { None });
                expression(text, &attr.value, role, found);
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

/// Looks for references in an attribute's value: a plain string, or strings under
/// image keys inside objects, arrays and function calls (`jsonencode([{ image = … }])`).
fn expression(text: &str, expr: &Expression, role: Role, found: &mut Vec<Found>) {
    match expr {
        Expression::String(s) => string(text, s, role, found),
        Expression::Object(object) => {
            for (key, value) in object.iter() {
                let name = match key {
                    ObjectKey::Ident(i) => Some(i.as_str()),
                    ObjectKey::Expression(Expression::String(s)) => Some(s.value().as_str()),
                    ObjectKey::Expression(_) => None,
                };
                let role = name.map_or(Role::Other, |n| role_of(n, None));
                expression(text, value.expr(), role, found);
            }
        }
        Expression::Array(array) => {
            for item in array.iter() {
                expression(text, item, Role::Other, found);
            }
        }
        Expression::FuncCall(call) => {
            for arg in call.args.iter() {
                expression(text, arg, Role::Other, found);
            }
        }
        Expression::Parenthesis(inner) => expression(text, inner.inner(), role, found),
        _ => {}
    }
}

fn string(text: &str, s: &hcl_edit::Decorated<String>, role: Role, found: &mut Vec<Found>) {
    let Some(raw) = s.span() else { return };
    let value = s.value().as_str();
    let inner = raw.start + 1..raw.end.saturating_sub(1);
    // Strings with escapes or interpolation are not offered for editing.
    if text.get(inner.clone()) != Some(value) || value.is_empty() {
        return;
    }
    let marker = marker::find(text, &[raw.end]);
    let valid = Reference::parse(value).is_ok();
    let wanted = match role {
        // A marked image value is kept even when it is not a reference, so a typo in a
        // tracked value is reported rather than silently skipped.
        Role::Image | Role::ImageDefault => valid || marker.is_some(),
        Role::Other => valid && marker.is_some(),
    };
    if !wanted {
        return;
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
