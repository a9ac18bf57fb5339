//! Per-image failure thresholds: how many failures in a row an image may have
//! before freshet fails loudly, chosen by image glob.
//!
//! Owns a rule's `thresholds:` list and its matching: the first entry whose glob
//! matches the image's repository (canonical `ghcr.io/acme/api` or familiar
//! `nginx`, the way rules match `images:`) decides; an image no entry matches gets
//! the rule's (or the workload's) threshold. A threshold is a count (at least 1)
//! or `warn`: failures of that image only ever warn, so a flaky registry never
//! escalates while an egress-blocked one fails a run at 3.
//!
//! ```yaml
//! thresholds:
//!   - images: "registry.internal/*"
//!     threshold: 3
//!   - images: "quay.io/flaky/*"
//!     threshold: warn
//! ```
//!
//! Must not count failures: `refresh::plan` keeps the streaks; it asks this module
//! for the threshold of each image.

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::Reference;

/// Why a threshold entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// The glob does not compile.
    #[error("{key}: {value:?} is not a valid glob ({reason}); write e.g. ghcr.io/acme/*")]
    Glob {
        /// The config key, e.g. `rules[0].thresholds[1].images`.
        key: String,
        /// The glob as written.
        value: String,
        /// What globset said.
        reason: String,
    },
    /// The threshold is neither a count of at least 1 nor `warn`.
    #[error(
        "{key}: {value:?} is not a threshold; use a whole number of at least 1, or warn (failures only warn)"
    )]
    Threshold {
        /// The config key, e.g. `rules[0].thresholds[1].threshold`.
        key: String,
        /// The value as written.
        value: String,
    },
}

/// When an image's failures escalate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// After this many failures in a row.
    Count(u32),
    /// Never: failures only warn.
    Warn,
}

impl Threshold {
    /// Whether `failures` in a row escalate.
    pub fn escalates(self, failures: u32) -> bool {
        match self {
            Threshold::Count(n) => failures >= n,
            Threshold::Warn => false,
        }
    }
}

/// A threshold value as written: a number or a word.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ThresholdValue {
    /// `threshold: 3`.
    Count(i64),
    /// `threshold: warn`.
    Word(String),
}

/// One `thresholds:` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// A glob over the image repository.
    pub images: String,
    /// The threshold.
    pub threshold: ThresholdValue,
}

/// Parses a threshold value; `key` names it in errors.
pub fn parse_threshold(key: &str, value: &ThresholdValue) -> Result<Threshold, ThresholdError> {
    match value {
        ThresholdValue::Count(n) if *n >= 1 && *n <= i64::from(u32::MAX) => {
            Ok(Threshold::Count(*n as u32))
        }
        ThresholdValue::Word(w) if w.trim().eq_ignore_ascii_case("warn") => Ok(Threshold::Warn),
        ThresholdValue::Word(w) => match w.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Threshold::Count(n)),
            _ => Err(ThresholdError::Threshold {
                key: key.to_owned(),
                value: w.clone(),
            }),
        },
        ThresholdValue::Count(n) => Err(ThresholdError::Threshold {
            key: key.to_owned(),
            value: n.to_string(),
        }),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    glob: String,
    matcher: GlobMatcher,
    threshold: Threshold,
}

/// A rule's per-image thresholds, in order.
#[derive(Debug, Clone, Default)]
pub struct ImageThresholds(Vec<Entry>);

impl PartialEq for ImageThresholds {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.glob == b.glob && a.threshold == b.threshold)
    }
}

impl Eq for ImageThresholds {}

impl ImageThresholds {
    /// Validates a `thresholds:` list; `key` is its config path
    /// (`rules[0].thresholds`).
    pub fn parse(key: &str, specs: &[ThresholdSpec]) -> Result<ImageThresholds, ThresholdError> {
        let mut out = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let matcher = GlobBuilder::new(s.images.trim())
                .literal_separator(false)
                .build()
                .map_err(|e| ThresholdError::Glob {
                    key: format!("{key}[{i}].images"),
                    value: s.images.clone(),
                    reason: e.kind().to_string(),
                })?
                .compile_matcher();
            let threshold = parse_threshold(&format!("{key}[{i}].threshold"), &s.threshold)?;
            out.push(Entry {
                glob: s.images.trim().to_owned(),
                matcher,
                threshold,
            });
        }
        Ok(ImageThresholds(out))
    }

    /// The threshold of the first entry matching `image` (an image string as
    /// written; tag and digest are ignored), if any.
    pub fn for_image(&self, image: &str) -> Option<Threshold> {
        let r = Reference::parse(image).ok()?;
        let name = r.name();
        let familiar = r.familiar();
        let familiar = familiar.split(['@', ':']).next().unwrap_or(&familiar);
        self.0
            .iter()
            .find(|e| e.matcher.is_match(&name) || e.matcher.is_match(familiar))
            .map(|e| e.threshold)
    }

    /// The threshold for `image`: the first matching entry's, else `default`.
    pub fn threshold(&self, image: &str, default: u32) -> Threshold {
        self.for_image(image)
            .unwrap_or(Threshold::Count(default.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(images: &str, threshold: ThresholdValue) -> ThresholdSpec {
        ThresholdSpec {
            images: images.into(),
            threshold,
        }
    }

    #[test]
    fn the_first_matching_glob_decides_else_the_default() {
        let t = ImageThresholds::parse(
            "rules[0].thresholds",
            &[
                spec("registry.internal/*", ThresholdValue::Count(3)),
                spec("quay.io/flaky/*", ThresholdValue::Word("warn".into())),
                spec("nginx", ThresholdValue::Word("7".into())),
                spec("*", ThresholdValue::Count(10)),
            ],
        )
        .unwrap();
        let cases = [
            ("registry.internal/team/api:1.2", Threshold::Count(3)),
            ("quay.io/flaky/thing:1", Threshold::Warn),
            ("nginx:1.27", Threshold::Count(7)),
            ("docker.io/library/nginx:1.27", Threshold::Count(7)),
            ("ghcr.io/acme/api:latest", Threshold::Count(10)),
        ];
        for (image, want) in cases {
            assert_eq!(t.threshold(image, 3), want, "{image}");
        }
        let only_internal = ImageThresholds::parse(
            "thresholds",
            &[spec("registry.internal/*", ThresholdValue::Count(1))],
        )
        .unwrap();
        assert_eq!(
            only_internal.threshold("ghcr.io/a/b:1", 5),
            Threshold::Count(5)
        );
        assert_eq!(only_internal.for_image("Not An Image"), None);
    }

    #[test]
    fn escalation_follows_the_threshold_and_warn_never_escalates() {
        assert!(!Threshold::Count(3).escalates(2));
        assert!(Threshold::Count(3).escalates(3));
        assert!(!Threshold::Warn.escalates(u32::MAX));
    }

    #[test]
    fn bad_entries_name_the_key_and_the_fix() {
        let cases = [
            (
                spec("ghcr.io/[acme", ThresholdValue::Count(3)),
                "rules[1].thresholds[0].images",
                "glob",
            ),
            (
                spec("*", ThresholdValue::Count(0)),
                "rules[1].thresholds[0].threshold",
                "at least 1, or warn",
            ),
            (
                spec("*", ThresholdValue::Word("often".into())),
                "rules[1].thresholds[0].threshold",
                "\"often\"",
            ),
        ];
        for (s, key, want) in cases {
            let e = ImageThresholds::parse("rules[1].thresholds", &[s])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(key) && e.contains(want), "{e}");
        }
    }

    #[test]
    fn specs_deserialise_numbers_and_words() {
        let specs: Vec<ThresholdSpec> = serde_json::from_str(
            r#"[{"images":"a/*","threshold":3},{"images":"b/*","threshold":"warn"}]"#,
        )
        .unwrap();
        let t = ImageThresholds::parse("thresholds", &specs).unwrap();
        assert_eq!(t.threshold("a/x:1", 9), Threshold::Count(3));
        assert_eq!(t.threshold("b/x:1", 9), Threshold::Warn);
        assert!(
            serde_json::from_str::<Vec<ThresholdSpec>>(r#"[{"image":"a/*","threshold":3}]"#)
                .is_err()
        );
        let yaml: Vec<ThresholdSpec> = serde_saphyr::from_str(
            "- images: \"registry.internal/*\"\n  threshold: 3\n- images: \"quay.io/flaky/*\"\n  threshold: warn\n",
        )
        .unwrap();
        assert_eq!(
            yaml,
            [
                spec("registry.internal/*", ThresholdValue::Count(3)),
                spec("quay.io/flaky/*", ThresholdValue::Word("warn".into()))
            ]
        );
    }
}
