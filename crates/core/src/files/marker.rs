//! Inline `freshet:` markers in comments.
//!
//! Owns the marker grammar (`# freshet: policy=<policy> pin=<form> order=<order>
//! prerelease=true`, or `// freshet: …` in HCL) and where a marker may sit: in a comment
//! on the reference's line, or alone on the comment line just above it.
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

/// A parsed inline marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The policy (`policy=`); required.
    pub policy: Policy,
    /// The pin form (`pin=`), if given.
    pub pin: Option<PinForm>,
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
        "line {line}: unknown freshet marker key {key:?}; use policy=, pin=, order= or prerelease="
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
    /// `prerelease=` is not a boolean.
    #[error("line {line}: prerelease={value:?} must be true or false")]
    BadBool {
        /// 1-based line.
        line: usize,
        /// The value.
        value: String,
    },
}

const KEYS: &[&str] = &["policy", "pin", "order", "prerelease"];

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
    for (key, value) in pairs {
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
    Ok(Marker { policy, pin, line })
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
