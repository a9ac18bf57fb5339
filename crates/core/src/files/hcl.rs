//! The Terraform/HCL scanner: `image = "repo:tag"` attributes (at any block depth, and
//! inside objects, arrays and function calls such as `jsonencode`), the `default` of a
//! `variable` whose name mentions an image, and any other string carrying a
//! `freshet:` marker.
//!
//! A variable named for a tag (`image_tag`, `app_version`, `*_digest`) is not an image:
//! its default is a tag-only value, offered only when a marker or rule names the image
//! (`# freshet: image=registry.example/team/app policy=newest-build`). The `name` of a
//! `docker_image` resource (and `docker_registry_image` data source) is an image.
//!
//! Owns locating those strings by byte span with hcl-edit's parser. Strings with
//! interpolation or escapes are skipped. Markers are `# freshet:` or `// freshet:`
//! comments.
//!
//! Must not re-encode HCL.

use hcl_edit::Span as _;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{BlockLabel, Body, Structure};

use super::{Found, RefKind, ScanError, ScanOptions, Spans, line_of, marker, next_line_start};
use crate::Reference;

pub(super) fn scan(path: &str, text: &str, options: &ScanOptions) -> Result<Vec<Found>, ScanError> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| ScanError::Hcl {
        path: path.to_owned(),
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().to_owned(),
    })?;
    let mut found = Vec::new();
    let ctx = Ctx { text, options };
    walk(&ctx, &body, Scope::default(), "", &mut found);
    found.sort_by_key(|f| f.region.start);
    Ok(found)
}

struct Ctx<'a> {
    text: &'a str,
    options: &'a ScanOptions,
}

fn is_image_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "image" || key.ends_with("_image") || key == "image_name" || key == "container_image"
}

/// Whether a variable's name says it holds an image (`image`, `app_image`, `base_image`)
/// rather than a tag or digest of one (`image_tag`, `image_version`, `image_digest`).
fn names_an_image(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("image")
        && ![
            "tag",
            "tags",
            "version",
            "digest",
            "sha",
            "hash",
            "pull_policy",
            "policy",
            "count",
        ]
        .iter()
        .any(|suffix| name.ends_with(&format!("_{suffix}")) || name.ends_with(suffix))
}

/// Where a string sits, which decides whether it is an image reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Under a key named for an image (`image`, `*_image`, …): always a candidate.
    Image,
    /// The `default` of a variable named for an image: always a candidate.
    ImageDefault,
    /// The `name` of a `docker_image` resource.
    DockerImage,
    /// Any other string: a candidate only with a `freshet:` marker or a rule's `keys:`.
    Other,
}

/// The block a structure sits in.
#[derive(Debug, Clone, Copy, Default)]
struct Scope {
    /// `Some(named_for_an_image)` inside a `variable` block.
    variable: Option<bool>,
    /// Inside a `resource "docker_image"` (or `data "docker_registry_image"`) block.
    docker_image: bool,
}

fn role_of(key: &str, scope: Scope) -> Role {
    if is_image_key(key) {
        Role::Image
    } else if key == "default" && scope.variable == Some(true) {
        Role::ImageDefault
    } else if key == "name" && scope.docker_image {
        Role::DockerImage
    } else {
        Role::Other
    }
}

fn label(l: &BlockLabel) -> &str {
    match l {
        BlockLabel::String(s) => s.value().as_str(),
        BlockLabel::Ident(i) => i.as_str(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(ctx: &Ctx<'_>, body: &Body, scope: Scope, path: &str, found: &mut Vec<Found>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str();
                let role = role_of(key, scope);
                expression(ctx, &attr.value, role, &join(path, key), found);
            }
            Structure::Block(block) => {
                let ident = block.ident.as_str();
                let labels: Vec<&str> = block.labels.iter().map(label).collect();
                let scope = Scope {
                    variable: (ident == "variable")
                        .then(|| labels.iter().any(|l| names_an_image(l))),
                    docker_image: matches!(ident, "resource" | "data")
                        && labels.first().is_some_and(|l| {
                            matches!(*l, "docker_image" | "docker_registry_image")
                        }),
                };
                let mut inner = join(path, ident);
                for l in &labels {
                    inner = join(&inner, l);
                }
                walk(ctx, &block.body, scope, &inner, found);
            }
        }
    }
}

/// Looks for references in an attribute's value: a plain string, or strings under
/// image keys inside objects, arrays and function calls (`jsonencode([{ image = … }])`).
fn expression(ctx: &Ctx<'_>, expr: &Expression, role: Role, path: &str, found: &mut Vec<Found>) {
    match expr {
        Expression::String(s) => string(ctx, s, role, path, found),
        Expression::Object(object) => {
            for (key, value) in object.iter() {
                let name = match key {
                    ObjectKey::Ident(i) => Some(i.as_str()),
                    ObjectKey::Expression(Expression::String(s)) => Some(s.value().as_str()),
                    ObjectKey::Expression(_) => None,
                };
                let role = name.map_or(Role::Other, |n| role_of(n, Scope::default()));
                let path = join(path, name.unwrap_or("*"));
                expression(ctx, value.expr(), role, &path, found);
            }
        }
        Expression::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                expression(ctx, item, Role::Other, &join(path, &i.to_string()), found);
            }
        }
        Expression::FuncCall(call) => {
            for arg in call.args.iter() {
                expression(ctx, arg, Role::Other, path, found);
            }
        }
        Expression::Parenthesis(inner) => expression(ctx, inner.inner(), role, path, found),
        _ => {}
    }
}

fn string(
    ctx: &Ctx<'_>,
    s: &hcl_edit::Decorated<String>,
    role: Role,
    path: &str,
    found: &mut Vec<Found>,
) {
    let text = ctx.text;
    let Some(raw) = s.span() else { return };
    let value = s.value().as_str();
    let inner = raw.start + 1..raw.end.saturating_sub(1);
    // Strings with escapes or interpolation are not offered for editing.
    if text.get(inner.clone()) != Some(value) || value.is_empty() {
        return;
    }
    let marker = match role {
        Role::Other => marker::find_own(text, raw.end),
        _ => marker::find(text, &[raw.end]),
    };
    let valid = Reference::parse(value).is_ok();
    let named = marker.is_some() || ctx.options.key_wanted(path);
    let (kind, spans) = match role {
        // A marked image value is kept even when it is not a reference, so a typo in a
        // tracked value is reported rather than silently skipped.
        Role::Image | Role::ImageDefault if valid || marker.is_some() => {
            (RefKind::HclString, Spans::Whole(inner.clone()))
        }
        Role::DockerImage if valid || marker.is_some() => {
            (RefKind::HclDockerImage, Spans::Whole(inner.clone()))
        }
        // Anything else only when a marker or rule names it, and then a bare word is a
        // tag, never guessed as an image.
        _ if named => match super::yaml::whole_or_part(value, inner.clone()) {
            spans @ Spans::Value { .. } => (RefKind::Value, spans),
            spans => (RefKind::HclString, spans),
        },
        _ => return,
    };
    found.push(Found {
        kind,
        line: line_of(text, inner.start),
        image: value.to_owned(),
        marker,
        region: inner.start..next_line_start(text, raw.end),
        spans,
        key: Some(path.to_owned()),
    });
}
