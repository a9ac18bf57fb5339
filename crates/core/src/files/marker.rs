//! Inline `freshet:` markers in comments.
//!
//! Owns the marker grammar (`# freshet: policy=<policy> pin=<form> order=<order>
//! prerelease=true image=<name> tag=<tag> digestForm=tag@digest|digest
//! platform=<os/arch>`, or `// freshet: …` in HCL) and where a marker may sit: in a
//! comment on the reference's line, or alone on the comment line just above it.
//!
//! `image=` names the image a tag-only or digest-only value belongs to (a Terraform
//! `image_tag` default, a Pulumi config value, a Helm `tag:`); `tag=` names the tag a
//! digest-only reference follows; `digestForm=` writes a digest into a tag value
//! (Helm's `tag: sha256:…` convention) instead of a digest key.
//!
//! Must not decide anything about registries; it only reads text.

use std::fmt;
use std::str::FromStr;

use crate::policy::{Order, Policy, PolicyError};

/// How a reference is written after an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PinForm {
    /// `repo:tag`.
    #[serde(rename = "tag")]
    Tag,
    /// `repo:tag@sha256:…` (Renovate's pinDigests form).
    #[serde(rename = "tag+digest")]
    TagDigest,
    /// `repo@sha256:…`.
    #[serde(rename = "digest")]
    Digest,
}

impl PinForm {
    /// Whether this form writes a digest.
    pub fn has_digest(self) -> bool {
        self != PinForm::Tag
    }
}

impl FromStr for PinForm {
    type Err = MarkerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "tag" => Ok(PinForm::Tag),
            "tag+digest" | "digest+tag" => Ok(PinForm::TagDigest),
            "digest" => Ok(PinForm::Digest),
            other => Err(MarkerError::BadPin {
                line: 0,
                value: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for PinForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinForm::Tag => "tag",
            PinForm::TagDigest => "tag+digest",
            PinForm::Digest => "digest",
        })
    }
}

/// How a digest is written into a tag value (Helm's `tag: sha256:…` convention), set
/// by `digestForm=` on a marker or rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DigestForm {
    /// `tag: 1.2.3@sha256:…` (what Argo CD Image Updater writes since its PR #317).
    #[serde(rename = "tag@digest")]
    TagAtDigest,
    /// `tag: sha256:…` (charts that switch `:`/`@` on a `sha256:` prefix).
    #[serde(rename = "digest")]
    Digest,
}

impl FromStr for DigestForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "tag@digest" => Ok(DigestForm::TagAtDigest),
            "digest" => Ok(DigestForm::Digest),
            other => Err(other.to_owned()),
        }
    }
}

impl fmt::Display for DigestForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestForm::TagAtDigest => "tag@digest",
            DigestForm::Digest => "digest",
        })
    }
}

/// A parsed inline marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The policy (`policy=`); required.
    pub policy: Policy,
    /// The pin form (`pin=`), if given.
    pub pin: Option<PinForm>,
    /// The image a tag-only or digest-only value belongs to (`image=`).
    pub image: Option<String>,
    /// The tag a digest-only reference follows (`tag=`).
    pub tag: Option<String>,
    /// How a digest goes into a tag value (`digestForm=`).
    pub digest_form: Option<DigestForm>,
    /// The platform whose build time `newest-build` compares (`platform=`).
    pub platform: Option<crate::Platform>,
    /// 1-based line the marker is on.
    pub line: usize,
}

/// Why a marker does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// `policy=` is missing.
    #[error(
        "line {line}: freshet marker has no policy=; write e.g. `# freshet: policy=semver:minor`"
    )]
    NoPolicy {
        /// 1-based line.
        line: usize,
    },
    /// A key is not one we know.
    #[error(
        "line {line}: unknown freshet marker key {key:?}; use policy=, pin=, order=, prerelease=, image=, tag=, digestForm= or platform="
    )]
    UnknownKey {
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
    },
    /// The policy does not parse.
    #[error("line {line}: {source}")]
    Policy {
        /// 1-based line.
        line: usize,
        /// Why.
        #[source]
        source: PolicyError,
    },
    /// The pin form is not one we know.
    #[error("line {line}: unknown pin form {value:?}; use pin=tag, pin=tag+digest or pin=digest")]
    BadPin {
        /// 1-based line (0 when the form did not come from a marker).
        line: usize,
        /// The value.
        value: String,
    },
    /// `image=`, `tag=`, `digestForm=` or `platform=` has a bad value.
    #[error("line {line}: {key}={value:?} {message}")]
    BadValue {
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `prerelease=` is not a boolean.
    #[error("line {line}: prerelease={value:?} must be true or false")]
    BadBool {
        /// 1-based line.
        line: usize,
        /// The value.
        value: String,
    },
}

const KEYS: &[&str] = &[
    "policy",
    "pin",
    "order",
    "prerelease",
    "image",
    "tag",
    "digestForm",
    "platform",
];

/// Parses the text after `freshet:` on a given line.
pub fn parse(body: &str, line: usize) -> Result<Marker, MarkerError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for token in body.split_whitespace() {
        match token.split_once('=') {
            Some((key, value)) if KEYS.contains(&key) => {
                pairs.push((key.to_owned(), value.to_owned()))
            }
            Some((key, _))
                if !key.is_empty()
                    && key.chars().all(|c| c.is_ascii_alphabetic())
                    && !pairs.last().is_some_and(|(k, v)| {
                        k == "policy" && (v.starts_with("regex") || v.starts_with("glob"))
                    }) =>
            {
                return Err(MarkerError::UnknownKey {
                    line,
                    key: key.to_owned(),
                });
            }
            _ => match pairs.last_mut() {
                // `semver:>=1.4 <2` and regexes may hold spaces.
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(token);
                }
                None => {
                    return Err(MarkerError::UnknownKey {
                        line,
                        key: token.to_owned(),
                    });
                }
            },
        }
    }
    let mut policy = None;
    let mut pin = None;
    let mut order = None;
    let mut prerelease = false;
    let mut marker = Marker {
        policy: Policy::parse("never").expect("never parses"),
        pin: None,
        image: None,
        tag: None,
        digest_form: None,
        platform: None,
        line,
    };
    for (key, value) in pairs {
        if set_naming(&mut marker, &key, &value, line)? {
            continue;
        }
        match key.as_str() {
            "policy" => policy = Some(value),
            "pin" => {
                pin = Some(
                    value
                        .parse::<PinForm>()
                        .map_err(|_| MarkerError::BadPin { line, value })?,
                )
            }
            "order" => {
                order = Some(
                    value
                        .parse::<Order>()
                        .map_err(|source| MarkerError::Policy { line, source })?,
                )
            }
            "prerelease" => {
                prerelease = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(MarkerError::BadBool { line, value }),
                }
            }
            _ => unreachable!("filtered by KEYS"),
        }
    }
    let policy = policy.ok_or(MarkerError::NoPolicy { line })?;
    let mut policy = Policy::parse(&policy)
        .map_err(|source| MarkerError::Policy { line, source })?
        .with_prerelease(prerelease);
    if let Some(order) = order {
        policy = policy
            .with_order(order)
            .map_err(|source| MarkerError::Policy { line, source })?;
    }
    marker.policy = policy;
    marker.pin = pin;
    Ok(marker)
}

/// Sets `image=`, `tag=`, `digestForm=` or `platform=`; `Ok(false)` for other keys.
fn set_naming(
    marker: &mut Marker,
    key: &str,
    value: &str,
    line: usize,
) -> Result<bool, MarkerError> {
    let value = value.to_owned();
    let bad = |key: &str, value: String, message: &str| MarkerError::BadValue {
        line,
        key: key.to_owned(),
        value,
        message: message.to_owned(),
    };
    match key {
        "image" => {
            let (name, tag, digest) = super::split_written(&value);
            if tag.is_some() || digest.is_some() || crate::Reference::parse(name).is_err() {
                return Err(bad(
                    "image",
                    value,
                    "must be an image name without tag or digest, e.g. image=ghcr.io/acme/api",
                ));
            }
            marker.image = Some(value);
        }
        "tag" => {
            if crate::Reference::parse(&format!("x:{value}")).is_err() {
                return Err(bad("tag", value, "is not a valid tag"));
            }
            marker.tag = Some(value);
        }
        "digestForm" => {
            marker.digest_form = Some(
                value
                    .parse()
                    .map_err(|v| bad("digestForm", v, "must be tag@digest or digest"))?,
            )
        }
        "platform" => {
            marker.platform = Some(value.parse().map_err(|_| {
                bad(
                    "platform",
                    value.clone(),
                    "must be os/arch[/variant], e.g. linux/amd64",
                )
            })?)
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Finds a marker in a comment after any of `positions` on their lines, or alone on the
/// comment line just above the first of them.
pub(crate) fn find(text: &str, positions: &[usize]) -> Option<Result<Marker, MarkerError>> {
    for &p in positions {
        let end = text[p..].find('\n').map_or(text.len(), |i| p + i);
        let rest = text[p..end].trim_end_matches('\r');
        if let Some(body) = marker_body(rest) {
            return Some(parse(body, super::line_of(text, p)));
        }
    }
    let first = *positions.iter().min()?;
    let start = super::line_start(text, first);
    if start == 0 {
        return None;
    }
    let prev_start = super::line_start(text, start - 1);
    let prev = text[prev_start..start - 1].trim_end_matches('\r').trim();
    if (prev.starts_with('#') || prev.starts_with("//"))
        && let Some(body) = marker_body(prev)
    {
        return Some(parse(body, super::line_of(text, prev_start)));
    }
    None
}

/// [`find`] for a value that is not an image by its key: the marker counts only when
/// nothing but the comment follows the value on its line, so a marker on a flow mapping
/// (`{name: a, image: b}  # freshet: …`) belongs to its last value, not to every one.
pub(crate) fn find_own(text: &str, value_end: usize) -> Option<Result<Marker, MarkerError>> {
    let end = text[value_end..]
        .find('\n')
        .map_or(text.len(), |i| value_end + i);
    let rest = text[value_end..end].trim();
    if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with("//")) {
        return None;
    }
    find(text, &[value_end])
}

/// The text after `freshet:` in the first comment of `rest`, if it is a marker.
fn marker_body(rest: &str) -> Option<&str> {
    let mut search = rest;
    while let Some(i) = search.find(['#', '/']) {
        let after = &search[i..];
        let comment = if let Some(c) = after.strip_prefix('#') {
            Some(c)
        } else {
            after.strip_prefix("//")
        };
        if let Some(c) = comment
            && let Some(body) = c.trim_start().strip_prefix("freshet:")
        {
            return Some(body.trim());
        }
        search = &search[i + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse_with_spaces_in_ranges() {
        let m = parse("policy=semver:>=1.4 <2 pin=tag+digest", 3).unwrap();
        assert_eq!(m.policy.to_string(), "semver:>=1.4 <2");
        assert_eq!(m.pin, Some(PinForm::TagDigest));
        assert_eq!(m.line, 3);
        let m = parse(
            r"policy=regex:^main-(?P<n>\d+)$ order=numerical prerelease=true",
            1,
        )
        .unwrap();
        assert_eq!(
            m.policy.to_string(),
            r"regex:^main-(?P<n>\d+)$ order=numerical prerelease=true"
        );
    }

    #[test]
    fn bad_markers_say_what_to_fix() {
        assert!(matches!(
            parse("pin=tag", 1),
            Err(MarkerError::NoPolicy { line: 1 })
        ));
        assert!(matches!(
            parse("policy=minor pin=sha", 1),
            Err(MarkerError::BadPin { line: 1, .. })
        ));
        assert!(matches!(
            parse("policy=bogus", 1),
            Err(MarkerError::Policy { .. })
        ));
        assert!(matches!(
            parse("polcy=minor", 1),
            Err(MarkerError::UnknownKey { .. })
        ));
        assert!(matches!(
            parse("policy=minor prerelease=yes", 1),
            Err(MarkerError::BadBool { .. })
        ));
    }

    #[test]
    fn markers_are_found_on_the_line_or_the_comment_line_above() {
        let text = "a: x # freshet: policy=minor\n# freshet: policy=major\nb: y\nc: z\n";
        let on_line = find(text, &[4]).unwrap().unwrap();
        assert_eq!(on_line.policy.to_string(), "minor");
        let above = find(text, &[text.find("b: y").unwrap() + 4])
            .unwrap()
            .unwrap();
        assert_eq!(above.policy.to_string(), "major");
        assert_eq!(above.line, 2);
        assert!(find(text, &[text.find("c: z").unwrap() + 4]).is_none());
    }
}
