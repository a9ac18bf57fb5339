//! Masterminds semver constraints (the `:constraint` of an `image-list` entry) as
//! freshet semver policies.
//!
//! Owns the translation from the constraint grammar Image Updater hands to
//! Masterminds/semver v3 (`constraints.go` at v3.4.0; used by
//! `registry-scanner/pkg/image/version.go`, `GetNewestVersionFromTags`, in
//! argocd-image-updater v1.3.0) to a `semver:<range>` [`Policy`]. Must not order tags or
//! talk to registries: the policy engine does that.
//!
//! | Masterminds | freshet range | note |
//! |---|---|---|
//! | (none) | `semver:major` | any newer release, pre-releases excluded (Masterminds `*`) |
//! | `1.2.3`, `=1.2.3` | `=1.2.3` | exact |
//! | `1.2`, `=1.2`, `1.2.x` | `=1.2` | Masterminds reads a partial version as `~1.2` (`>=1.2.0 <1.3.0`), which is Cargo's `=1.2` |
//! | `~1.2`, `~>1.2` | `~1.2` | same meaning |
//! | `^1.2` | `^1.2` | same meaning (Cargo and npm agree) |
//! | `>=`, `=>`, `>`, `<`, `<=`, `=<` | `>=`, `>=`, `>`, `<`, `<=`, `<=` | |
//! | `1.2 - 1.4.5` | `>=1.2, <=1.4.5` | hyphen range, as Masterminds rewrites it |
//! | `a, b` or `a b` | `a, b` | AND |
//! | `*`, `x`, `X` | `*` | |
//! | a comparator with `-pre` (`>=1.0.0-0`) | + pre-releases | Masterminds admits pre-releases when the range names one |
//! | `a \|\| b`, `!=1.2` | error | freshet ranges have no OR and no exclusion: narrow the range, or use `allow-tags: regexp:…` |

use crate::policy::{Policy, PolicyError};

/// The longest constraint accepted.
pub const MAX_CONSTRAINT: usize = 256;

/// Why a constraint cannot become a freshet policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The constraint is not Masterminds syntax.
    #[error(
        "version constraint {constraint:?} is not a semver constraint ({reason}); write e.g. ~1.26, ^2, >=1.4 <2 or 1.2.x"
    )]
    Malformed {
        /// The constraint.
        constraint: String,
        /// What is wrong.
        reason: String,
    },
    /// Valid Masterminds, but freshet ranges cannot say it.
    #[error(
        "version constraint {constraint:?} uses {feature}, which freshet's semver ranges do not support; use a single range without it, or filter tags with allow-tags: regexp:…"
    )]
    Unsupported {
        /// The constraint.
        constraint: String,
        /// `||` or `!=`.
        feature: &'static str,
    },
    /// The translated range was refused by the policy engine.
    #[error("version constraint {constraint:?}: {source}")]
    Policy {
        /// The constraint.
        constraint: String,
        /// The policy engine's error.
        #[source]
        source: PolicyError,
    },
}

/// The freshet policy for an Image Updater `semver` strategy with this constraint
/// (`None`: no constraint).
pub fn semver_policy(constraint: Option<&str>) -> Result<Policy, ConstraintError> {
    let Some(raw) = constraint.map(str::trim).filter(|c| !c.is_empty()) else {
        return Policy::parse("semver:major").map_err(|source| ConstraintError::Policy {
            constraint: String::new(),
            source,
        });
    };
    let (range, prerelease) = translate(raw)?;
    Policy::parse(&format!("semver:{range}"))
        .map(|p| p.with_prerelease(prerelease))
        .map_err(|source| ConstraintError::Policy {
            constraint: raw.to_owned(),
            source,
        })
}

/// Translates a Masterminds constraint into a Cargo-style range and whether it admits
/// pre-releases.
pub fn translate(constraint: &str) -> Result<(String, bool), ConstraintError> {
    let malformed = |reason: &str| ConstraintError::Malformed {
        constraint: constraint.to_owned(),
        reason: reason.to_owned(),
    };
    if constraint.len() > MAX_CONSTRAINT {
        return Err(malformed("it is too long"));
    }
    if constraint.contains("||") {
        return Err(ConstraintError::Unsupported {
            constraint: constraint.to_owned(),
            feature: "|| (or)",
        });
    }
    let tokens = tokenize(&rewrite_hyphen(constraint));
    if tokens.is_empty() {
        return Err(malformed("it is empty"));
    }
    let mut out = Vec::with_capacity(tokens.len());
    let mut prerelease = false;
    let mut i = 0;
    while i < tokens.len() {
        // An operator may stand apart from its version: `>= 1.2`.
        let (op, version) = match split_op(&tokens[i]) {
            (op, "") if !op.is_empty() => {
                i += 1;
                let v = tokens
                    .get(i)
                    .ok_or_else(|| malformed("an operator has no version after it"))?;
                (op, v.as_str())
            }
            pair => pair,
        };
        i += 1;
        let op = match op {
            "" | "=" => "=",
            "=>" => ">=",
            "=<" => "<=",
            "~>" => "~",
            "!=" => {
                return Err(ConstraintError::Unsupported {
                    constraint: constraint.to_owned(),
                    feature: "!= (not equal)",
                });
            }
            other => other,
        };
        let (version, pre) =
            version_part(version).ok_or_else(|| malformed("a version is malformed"))?;
        prerelease |= pre;
        out.push(match version {
            None if op == "=" || op == ">=" || op == "~" || op == "^" => "*".to_owned(),
            None => return Err(malformed("a wildcard cannot follow < or >")),
            Some(v) => format!("{op}{v}"),
        });
    }
    Ok((out.join(", "), prerelease))
}

/// `1.2 - 1.4.5` → `>=1.2 <=1.4.5`, as Masterminds' `rewriteRange` does.
fn rewrite_hyphen(c: &str) -> String {
    let words: Vec<&str> = c.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if i + 2 < words.len() && words[i + 1] == "-" {
            out.push(format!(">={}", words[i].trim_end_matches(',')));
            out.push(format!("<={}", words[i + 2]));
            i += 3;
        } else {
            out.push(words[i].to_owned());
            i += 1;
        }
    }
    out.join(" ")
}

/// Splits on commas and whitespace.
fn tokenize(c: &str) -> Vec<String> {
    c.split([',', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn split_op(token: &str) -> (&str, &str) {
    let end = token
        .find(|c: char| !matches!(c, '=' | '!' | '>' | '<' | '~' | '^'))
        .unwrap_or(token.len());
    (&token[..end], &token[end..])
}

/// Normalises one version: strips `v`, cuts wildcard parts (`1.x` → `1`), keeps a
/// pre-release. `None` inside: the whole version is a wildcard. The flag says whether it
/// names a pre-release.
fn version_part(v: &str) -> Option<(Option<String>, bool)> {
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    let (core, build) = v.split_once('+').map_or((v, None), |(c, b)| (c, Some(b)));
    let (core, pre) = core
        .split_once('-')
        .map_or((core, None), |(c, p)| (c, Some(p)));
    let mut parts = Vec::new();
    for part in core.split('.') {
        match part {
            "x" | "X" | "*" => break,
            p if !p.is_empty() && p.len() <= 19 && p.bytes().all(|b| b.is_ascii_digit()) => {
                parts.push(p)
            }
            _ => return None,
        }
    }
    if core.split('.').count() > 3 {
        return None;
    }
    let ok_ident = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    if pre.is_some_and(|p| !ok_ident(p)) || build.is_some_and(|b| !ok_ident(b)) {
        return None;
    }
    if parts.is_empty() {
        return Some((None, pre.is_some()));
    }
    let mut out = parts.join(".");
    if let Some(p) = pre {
        if parts.len() < 3 {
            // A pre-release needs three parts in Cargo's grammar.
            while out.split('.').count() < 3 {
                out.push_str(".0");
            }
        }
        out.push('-');
        out.push_str(p);
    }
    Some((Some(out), pre.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Current, Decision, Facts, decide};

    #[test]
    fn masterminds_constraints_translate_to_cargo_ranges() {
        let cases: &[(&str, &str, bool)] = &[
            ("~1.26", "~1.26", false),
            ("~>1.26", "~1.26", false),
            ("^1.2", "^1.2", false),
            ("1.2.3", "=1.2.3", false),
            ("=1.2.3", "=1.2.3", false),
            ("1.2", "=1.2", false),
            ("1.2.x", "=1.2", false),
            ("1.x", "=1", false),
            ("*", "*", false),
            ("x", "*", false),
            (">= 1.2, < 3.0.0", ">=1.2, <3.0.0", false),
            (">=1.2 <3", ">=1.2, <3", false),
            ("=> 1.2", ">=1.2", false),
            ("=<1.2", "<=1.2", false),
            ("1.2 - 1.4.5", ">=1.2, <=1.4.5", false),
            ("v1.2.3", "=1.2.3", false),
            (">=1.0.0-0", ">=1.0.0-0", true),
            ("~1.2-0", "~1.2.0-0", true),
        ];
        for (input, want, pre) in cases {
            assert_eq!(translate(input), Ok(((*want).to_owned(), *pre)), "{input}");
            assert!(semver_policy(Some(input)).is_ok(), "{input}");
        }
    }

    #[test]
    fn constraints_freshet_cannot_say_are_errors_naming_the_fix() {
        for (input, needle) in [
            ("^1.2 || ^2.0", "||"),
            ("!=1.2.3", "!="),
            ("~1.a", "malformed"),
            (">=", "no version"),
            ("1.2.3.4", "malformed"),
        ] {
            let err = semver_policy(Some(input)).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn a_partial_version_means_tilde_as_in_masterminds() {
        let policy = semver_policy(Some("1.26")).unwrap();
        let tags = ["1.26.0", "1.26.3", "1.27.0"];
        let d = decide(Current::tag("1.26.0"), &policy, &Facts::with_tags(tags));
        assert!(
            matches!(d, Decision::Update { ref to, .. } if to == "1.26.3"),
            "{d:?}"
        );
    }

    #[test]
    fn no_constraint_excludes_pre_releases_and_a_dash_zero_admits_them() {
        let tags = ["1.0.0", "1.1.0-rc.1"];
        let none = semver_policy(None).unwrap();
        let d = decide(Current::tag("1.0.0"), &none, &Facts::with_tags(tags));
        assert_eq!(d, Decision::Keep { warning: None });
        let pre = semver_policy(Some(">=1.0.0-0")).unwrap();
        let d = decide(Current::tag("1.0.0"), &pre, &Facts::with_tags(tags));
        assert!(
            matches!(d, Decision::Update { ref to, .. } if to == "1.1.0-rc.1"),
            "{d:?}"
        );
    }
}
