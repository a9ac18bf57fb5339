//! The `newest-build` policy: for tags that do not sort (git SHAs), the newest is the
//! one whose image was built last, by the image config's `created` time.
//!
//! Owns the candidate set (the tags the policy's pattern admits, plus the current tag,
//! bounded by [`MAX_BUILD_CANDIDATES`] so a run's registry cost is bounded before a
//! single config is read) and the decision from the build times a shell fetched.
//! Never downgrades: a candidate must have been built strictly after the current tag.
//!
//! Must not perform I/O or read a clock: build times are facts passed in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Current, Decision, Policy, PolicyKind};

/// The pattern `newest-build` uses when none is given: short and full git SHAs, and
/// `sha-<hex>` (docker/metadata-action's default).
pub const DEFAULT_PATTERN: &str = r"^(?:[0-9a-f]{7,40}|sha-[0-9a-f]{7,40})$";

/// The most candidate tags one reference may ask build times for. A pattern admitting
/// more is an error that asks for a narrower pattern, not a thousand config reads.
pub const MAX_BUILD_CANDIDATES: usize = 500;

/// When an image was built: its config's `created`, in UTC.
pub type BuildTime = DateTime<Utc>;

/// Build times by tag (`None`: the tag has no image for the platform asked about, so it
/// is not a candidate), or why reading one failed.
pub type Builds = BTreeMap<String, Result<Option<BuildTime>, String>>;

/// Parses an image config's `created` (RFC 3339, any offset).
pub fn parse_created(text: &str) -> Option<BuildTime> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Policy {
    /// For `newest-build`: the tags whose build times the decision needs (the current
    /// tag and every listed tag the pattern admits), or `Err(count)` when the pattern
    /// admits more than [`MAX_BUILD_CANDIDATES`]. `None` for other policies.
    pub fn build_candidates(
        &self,
        current: &str,
        tags: &[String],
    ) -> Option<Result<Vec<String>, usize>> {
        let PolicyKind::NewestBuild(rule) = self.kind() else {
            return None;
        };
        let mut out: Vec<String> = tags.iter().filter(|t| rule.admits(t)).cloned().collect();
        if out.len() > MAX_BUILD_CANDIDATES {
            return Some(Err(out.len()));
        }
        if !out.iter().any(|t| t == current) {
            out.push(current.to_owned());
        }
        out.sort();
        Some(Ok(out))
    }
}

/// Decides `newest-build` for a reference whose tag is in `tags`, with the build times
/// of [`Policy::build_candidates`].
pub fn decide_newest_build(
    current: Current<'_>,
    policy: &Policy,
    tags: &[String],
    builds: &Builds,
) -> Decision {
    let Some(tag) = current.tag else {
        return Decision::warn(format!(
            "policy {policy} needs a tag, but the reference has only a digest"
        ));
    };
    if !tags.iter().any(|t| t == tag) {
        return Decision::warn(format!(
            "the current tag {tag} is no longer in the registry's tag list; not updating"
        ));
    }
    let candidates = match policy.build_candidates(tag, tags) {
        None => return Decision::warn(format!("{policy} is not newest-build")),
        Some(Err(n)) => {
            return Decision::warn(format!(
                "{policy} admits {n} tags, more than the {MAX_BUILD_CANDIDATES} whose build times it reads; narrow the pattern"
            ));
        }
        Some(Ok(c)) => c,
    };
    let current_time = match builds.get(tag) {
        Some(Ok(Some(t))) => *t,
        Some(Ok(None)) => {
            return Decision::warn(format!(
                "the current tag {tag} has no image for the platform asked about; keeping it"
            ));
        }
        Some(Err(e)) => {
            return Decision::warn(format!(
                "reading the build time of {tag} failed ({e}); keeping it"
            ));
        }
        None => return Decision::warn(format!("the build time of {tag} was not fetched")),
    };
    let mut failed = 0usize;
    let mut best: Option<(BuildTime, &str)> = None;
    for c in &candidates {
        match builds.get(c) {
            Some(Ok(None)) => {}
            Some(Ok(Some(t))) => {
                if best.is_none_or(|(bt, bc)| (*t, c.as_str()) > (bt, bc)) {
                    best = Some((*t, c));
                }
            }
            _ => failed += 1,
        }
    }
    match best {
        Some((time, best)) if time > current_time && best != tag => Decision::Update {
            to: best.to_owned(),
            digest: None,
            reason: format!(
                "{policy}: {best} was built {} (was {tag}, built {}); newest of {} admitted tags{}",
                time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                current_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                candidates.len(),
                if failed > 0 {
                    format!(", {failed} unreadable")
                } else {
                    String::new()
                }
            ),
        },
        _ if failed > 0 => Decision::warn(format!(
            "the build times of {failed} candidate tags could not be read; keeping {tag}"
        )),
        _ => Decision::Keep { warning: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> BuildTime {
        parse_created(s).unwrap()
    }

    fn builds(pairs: &[(&str, &str)]) -> Builds {
        pairs
            .iter()
            .map(|(tag, time)| ((*tag).to_owned(), Ok(Some(t(time)))))
            .collect()
    }

    #[test]
    fn the_newest_build_wins_whatever_the_tags_sort_as() {
        let policy = Policy::parse("newest-build:^[0-9a-f]{8}$").unwrap();
        let tags: Vec<String> = ["ffff0000", "0000aaaa", "latest", "12345678"]
            .map(String::from)
            .to_vec();
        let b = builds(&[
            ("ffff0000", "2026-01-01T00:00:00Z"),
            ("0000aaaa", "2026-03-01T10:00:00+02:00"),
            ("12345678", "2026-02-01T00:00:00.123456789Z"),
        ]);
        assert_eq!(
            policy.build_candidates("ffff0000", &tags),
            Some(Ok(vec![
                "0000aaaa".to_owned(),
                "12345678".to_owned(),
                "ffff0000".to_owned()
            ]))
        );
        match decide_newest_build(Current::tag("ffff0000"), &policy, &tags, &b) {
            Decision::Update { to, .. } => assert_eq!(to, "0000aaaa"),
            other => panic!("{other:?}"),
        }
        // Never downgrades: from the newest, nothing to do.
        assert_eq!(
            decide_newest_build(Current::tag("0000aaaa"), &policy, &tags, &b),
            Decision::Keep { warning: None }
        );
    }

    #[test]
    fn a_pattern_admitting_too_many_tags_is_refused_before_any_read() {
        let policy = Policy::parse("newest-build:^t").unwrap();
        let tags: Vec<String> = (0..=MAX_BUILD_CANDIDATES)
            .map(|i| format!("t{i}"))
            .collect();
        assert_eq!(
            policy.build_candidates("t0", &tags),
            Some(Err(MAX_BUILD_CANDIDATES + 1))
        );
    }

    #[test]
    fn the_default_pattern_admits_git_shas_only() {
        let policy = Policy::parse("newest-build").unwrap();
        for tag in [
            "abc1234",
            "0123456789abcdef0123456789abcdef01234567",
            "sha-abc1234",
        ] {
            assert!(policy.admits("x", tag), "{tag}");
        }
        for tag in ["latest", "1.2.3", "main", "ABC1234"] {
            assert!(!policy.admits("x", tag), "{tag}");
        }
    }
}
