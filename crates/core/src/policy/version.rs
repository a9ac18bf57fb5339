//! Tag versions as real registries spell them.
//!
//! Owns the parser for `v1.2.3`, `1.2`, `2024.01.15`, `1.2.3.4`, `1.2.3-rc.1`,
//! `1.2.3-alpine` and `1.2.3-rc.1-alpine`, and a total order over the result. A `-suffix`
//! is either a pre-release (`rc.1`, `beta2`, …) or a *variant* (`alpine`, `bookworm`)
//! that an update must keep; the [`Shape`] of a version (the `v`, the number of parts and
//! the variant) is what two tags must share to be comparable for an update.
//!
//! Must not touch registries or files: it works on strings only.

use std::cmp::Ordering;
use std::fmt;

/// The most numeric parts a tag may have (`1.2.3.4`).
pub const MAX_PARTS: usize = 4;

/// Words that start a pre-release suffix. Anything else after `-` is a variant.
const PRERELEASE_WORDS: &[&str] = &[
    "alpha",
    "beta",
    "rc",
    "pre",
    "preview",
    "dev",
    "snapshot",
    "canary",
    "nightly",
    "next",
    "milestone",
    "a",
    "b",
    "m",
];

/// A parsed version tag.
///
/// Ordering compares the numeric parts (missing parts count as zero), then release above
/// pre-release, then pre-release identifiers as SemVer does, and finally the raw tag, so
/// the order is total and two different tags never compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    raw: String,
    v_prefix: bool,
    parts: Vec<u64>,
    pre: Option<String>,
    variant: Option<String>,
}

/// What two versions must share for one to replace the other: the `v` prefix, the
/// number of numeric parts and the variant suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape<'a> {
    /// The tag starts with `v`.
    pub v_prefix: bool,
    /// How many numeric parts the tag has (1 to 4).
    pub parts: usize,
    /// The variant suffix (`alpine` in `1.2.3-alpine`), if any.
    pub variant: Option<&'a str>,
}

impl Version {
    /// Parses a tag, or returns `None` when it is not a version (`latest`, `main`,
    /// `sha-1a2b3c`, five numeric parts, an empty suffix, …).
    pub fn parse(tag: &str) -> Option<Version> {
        let raw = tag.to_owned();
        let (v_prefix, rest) = match tag.strip_prefix(['v', 'V']) {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let (numbers, suffix) = match rest.find(['-', '+']) {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let mut parts = Vec::with_capacity(MAX_PARTS);
        for part in numbers.split('.') {
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts.push(part.parse::<u64>().ok()?);
        }
        if parts.is_empty() || parts.len() > MAX_PARTS {
            return None;
        }
        let (pre, variant) = match suffix {
            None => (None, None),
            Some(s) => split_suffix(s)?,
        };
        Some(Version {
            raw,
            v_prefix,
            parts,
            pre,
            variant,
        })
    }

    /// The tag exactly as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The numeric parts, 1 to 4 of them.
    pub fn parts(&self) -> &[u64] {
        &self.parts
    }

    /// The numeric part at `i`, zero when the tag has fewer parts.
    pub fn part(&self, i: usize) -> u64 {
        self.parts.get(i).copied().unwrap_or(0)
    }

    /// The pre-release identifiers (`rc.1`), if this is a pre-release.
    pub fn pre(&self) -> Option<&str> {
        self.pre.as_deref()
    }

    /// Whether this is a pre-release.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some()
    }

    /// The variant suffix (`alpine`), if any.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// What another version must share to replace this one.
    pub fn shape(&self) -> Shape<'_> {
        Shape {
            v_prefix: self.v_prefix,
            parts: self.parts.len(),
            variant: self.variant.as_deref(),
        }
    }

    /// The version as a `semver::Version` for range matching: the first three parts
    /// (missing ones as zero) and the pre-release; the variant is left out.
    pub fn to_semver(&self) -> semver::Version {
        let mut v = semver::Version::new(self.part(0), self.part(1), self.part(2));
        if let Some(pre) = &self.pre {
            // Our pre-release grammar is looser than SemVer's (`beta2`, leading zeros);
            // fall back to a single alphanumeric identifier that still sorts sensibly.
            v.pre = semver::Prerelease::new(pre).unwrap_or_else(|_| {
                let cleaned: String = pre
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                semver::Prerelease::new(&format!("x{cleaned}")).unwrap_or(semver::Prerelease::EMPTY)
            });
        }
        v
    }
}

/// Splits `-rc.1-alpine` into the pre-release `rc.1` and the variant `alpine`.
fn split_suffix(suffix: &str) -> Option<(Option<String>, Option<String>)> {
    let (body, build) = match suffix.find('+') {
        Some(i) => (&suffix[..i], Some(&suffix[i..])),
        None => (suffix, None),
    };
    let body = match body.strip_prefix('-') {
        Some(b) => b,
        None if body.is_empty() => "",
        None => return None,
    };
    if body.is_empty() && suffix.starts_with('-') {
        return None;
    }
    let mut pre_segments: Vec<&str> = Vec::new();
    let mut variant_segments: Vec<&str> = Vec::new();
    for segment in body.split('-').filter(|_| !body.is_empty()) {
        if segment.is_empty() {
            return None;
        }
        if variant_segments.is_empty() && is_prerelease_segment(segment) {
            pre_segments.push(segment);
        } else {
            variant_segments.push(segment);
        }
    }
    let pre = (!pre_segments.is_empty()).then(|| pre_segments.join("-"));
    let mut variant = variant_segments.join("-");
    if let Some(build) = build {
        if build.len() == 1 {
            return None;
        }
        variant.push_str(build);
    }
    Some((pre, (!variant.is_empty()).then_some(variant)))
}

/// `rc.1`, `beta2`, `alpha`, `1` (a numeric identifier after a pre-release word).
fn is_prerelease_segment(segment: &str) -> bool {
    let first = segment.split('.').next().unwrap_or("");
    let word: String = first
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    let rest = &first[word.len()..];
    PRERELEASE_WORDS.contains(&word.as_str()) && rest.bytes().all(|b| b.is_ascii_digit())
}

/// Compares pre-release strings as SemVer does: identifiers split on `.`, numeric ones
/// numerically and below alphanumeric ones, a shorter list first when it is a prefix.
fn cmp_prerelease(a: &str, b: &str) -> Ordering {
    let mut left = a.split(['.', '-']);
    let mut right = b.split(['.', '-']);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = cmp_identifier(x, y);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn cmp_identifier(x: &str, y: &str) -> Ordering {
    let xn = !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    let yn = !y.is_empty() && y.bytes().all(|b| b.is_ascii_digit());
    match (xn, yn) {
        (true, true) => {
            let xt = x.trim_start_matches('0');
            let yt = y.trim_start_matches('0');
            xt.len().cmp(&yt.len()).then_with(|| xt.cmp(yt))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (0..MAX_PARTS)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => cmp_prerelease(a, b),
            })
            .then_with(|| self.raw.cmp(&other.raw))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (tag, parts, pre-release, variant, v prefix)
    type Case<'a> = (&'a str, &'a [u64], Option<&'a str>, Option<&'a str>, bool);

    #[test]
    fn parses_the_tags_real_registries_use() {
        let cases: &[Case] = &[
            ("1.2.3", &[1, 2, 3], None, None, false),
            ("v1.2.3", &[1, 2, 3], None, None, true),
            ("1.2", &[1, 2], None, None, false),
            ("15", &[15], None, None, false),
            ("2024.01.15", &[2024, 1, 15], None, None, false),
            ("1.2.3.4", &[1, 2, 3, 4], None, None, false),
            ("1.2.3-alpine", &[1, 2, 3], None, Some("alpine"), false),
            (
                "1.25.3-bookworm",
                &[1, 25, 3],
                None,
                Some("bookworm"),
                false,
            ),
            (
                "1.2.3-alpine3.18",
                &[1, 2, 3],
                None,
                Some("alpine3.18"),
                false,
            ),
            ("1.2.3-rc.1", &[1, 2, 3], Some("rc.1"), None, false),
            ("1.2.3-beta2", &[1, 2, 3], Some("beta2"), None, false),
            (
                "1.2.3-rc.1-alpine",
                &[1, 2, 3],
                Some("rc.1"),
                Some("alpine"),
                false,
            ),
            ("1.2.3+build.5", &[1, 2, 3], None, Some("+build.5"), false),
        ];
        for (tag, parts, pre, variant, v) in cases {
            let got = Version::parse(tag).unwrap_or_else(|| panic!("{tag} should parse"));
            assert_eq!(got.parts(), *parts, "{tag}");
            assert_eq!(got.pre(), *pre, "{tag}");
            assert_eq!(got.variant(), *variant, "{tag}");
            assert_eq!(got.shape().v_prefix, *v, "{tag}");
            assert_eq!(got.as_str(), *tag);
        }
    }

    #[test]
    fn rejects_tags_that_are_not_versions() {
        for tag in [
            "latest",
            "main",
            "",
            "v",
            "1.",
            ".1",
            "1..2",
            "1.2.3.4.5",
            "1.2.3-",
            "1.2.3--x",
            "sha-1a2b3c",
            "1.2.x",
            "1.2.3+",
            "-1",
            "1.2.3_alpine",
        ] {
            assert_eq!(Version::parse(tag), None, "{tag} should not parse");
        }
    }

    #[test]
    fn orders_like_a_human_expects() {
        let ordered = [
            "1.2.3-alpha",
            "1.2.3-alpha.1",
            "1.2.3-beta",
            "1.2.3-rc.1",
            "1.2.3-rc.2",
            "1.2.3-rc.10",
            "1.2.3",
            "1.2.4",
            "1.2.10",
            "1.10.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            let a = Version::parse(pair[0]).unwrap();
            let b = Version::parse(pair[1]).unwrap();
            assert!(a < b, "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn a_variant_is_not_a_prerelease() {
        // semver would sort 1.2.3-alpine below 1.2.3; we treat it as the same release.
        let variant = Version::parse("1.2.3-alpine").unwrap();
        let plain = Version::parse("1.2.3").unwrap();
        assert!(!variant.is_prerelease());
        assert_ne!(variant.shape(), plain.shape());
        assert!(Version::parse("1.2.4-alpine").unwrap() > variant);
    }

    fn arb_tag() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop::collection::vec(0u64..30, 1..=4),
            prop::option::of(prop::sample::select(vec![
                "rc.1", "rc.2", "beta", "alpha.3", "rc.10",
            ])),
            prop::option::of(prop::sample::select(vec!["alpine", "bookworm"])),
        )
            .prop_map(|(v, parts, pre, variant)| {
                let mut s = if v { "v".to_owned() } else { String::new() };
                s.push_str(
                    &parts
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join("."),
                );
                if let Some(p) = pre {
                    s.push('-');
                    s.push_str(p);
                }
                if let Some(x) = variant {
                    s.push('-');
                    s.push_str(x);
                }
                s
            })
    }

    proptest! {
        #[test]
        fn generated_tags_round_trip(tag in arb_tag()) {
            let v = Version::parse(&tag).expect("generated tags parse");
            prop_assert_eq!(v.as_str(), tag.as_str());
        }

        #[test]
        fn order_is_total_and_consistent(a in arb_tag(), b in arb_tag(), c in arb_tag()) {
            let (a, b, c) = (Version::parse(&a).unwrap(), Version::parse(&b).unwrap(), Version::parse(&c).unwrap());
            // antisymmetric, and equal only when identical
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
            // transitive
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn sorting_is_stable_under_permutation(mut tags in prop::collection::vec(arb_tag(), 0..20)) {
            let mut sorted: Vec<Version> = tags.iter().map(|t| Version::parse(t).unwrap()).collect();
            sorted.sort();
            tags.reverse();
            let mut again: Vec<Version> = tags.iter().map(|t| Version::parse(t).unwrap()).collect();
            again.sort();
            prop_assert_eq!(sorted, again);
        }
    }
}
