//! The pure planner: found references + markers + `freshet.yaml` + registry facts →
//! [`Update`]s with their [`Edit`]s.
//!
//! Owns which references are tracked and with which policy and pin form ([`track`]:
//! a marker beats a rule, a rule beats `--all`), and the step-by-step decision for one
//! tracked reference ([`Tracked::step`]): it may first ask for the digest of the tag it
//! chose ([`Step::NeedDigest`]), so the shell fetches only what is needed.
//!
//! Must not fetch anything or touch files.

use super::{Config, Edit, Found, PinForm, Target, edits_for, render};
use crate::Reference;
use crate::policy::{Current, Decision, Facts, Needs, Policy, PolicyKind, Version, decide};

/// Why a reference is tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum TrackedBy {
    /// An inline marker on the given line.
    Marker {
        /// 1-based line of the marker.
        line: usize,
    },
    /// The `freshet.yaml` rule with this index.
    Rule {
        /// Index in `rules:`.
        index: usize,
    },
    /// `--all` with the default policy.
    All,
}

/// A reference freshet will plan for.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The file, as the shell names it.
    pub file: String,
    /// Where and how it is written.
    pub found: Found,
    /// The reference, parsed and normalised.
    pub reference: Reference,
    /// The policy that applies.
    pub policy: Policy,
    /// How to write it after an update.
    pub pin: PinForm,
    /// Why it is tracked.
    pub by: TrackedBy,
}

/// A pending change to one reference in a file. Serialises as
/// `{file, line, current, new, policy, reason}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Update {
    /// The file.
    pub file: String,
    /// 1-based line of the reference.
    pub line: usize,
    /// The reference as written now.
    pub current: String,
    /// The reference as it will be written.
    pub new: String,
    /// The policy that chose it.
    pub policy: String,
    /// Why.
    pub reason: String,
    /// The text edits that make the change.
    #[serde(skip)]
    pub edits: Vec<Edit>,
}

/// A problem with one reference or file. Serialises as `{file, line, message}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanError {
    /// The file.
    pub file: String,
    /// 1-based line (0 for the whole file).
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

/// The next thing the planner needs, or its answer, for one tracked reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Fetch the digest of this tag into [`Facts::digests`] and call again.
    NeedDigest(String),
    /// Nothing to do; the warning says why when something is wrong.
    Keep {
        /// Why nothing changes.
        warning: Option<String>,
    },
    /// Change the reference.
    Update(Update),
    /// The reference cannot be edited.
    Error(PlanError),
}

/// Decides which found references are tracked, with which policy and pin form.
pub fn track(
    file: &str,
    found: Vec<Found>,
    config: &Config,
    all: bool,
) -> (Vec<Tracked>, Vec<PlanError>) {
    let mut tracked = Vec::new();
    let mut errors = Vec::new();
    for f in found {
        let error = |message: String| PlanError {
            file: file.to_owned(),
            line: f.line,
            message,
        };
        let reference = match Reference::parse(&f.image) {
            Ok(r) => r,
            Err(e) => {
                if f.marker.is_some() {
                    errors.push(error(e.to_string()));
                }
                continue;
            }
        };
        let natural_pin = match (reference.tag(), reference.digest()) {
            (Some(_), Some(_)) => PinForm::TagDigest,
            (None, Some(_)) => PinForm::Digest,
            _ => PinForm::Tag,
        };
        let (policy, pin, by) = match &f.marker {
            Some(Err(e)) => {
                errors.push(error(e.to_string()));
                continue;
            }
            Some(Ok(m)) => {
                let rule_pin = config.rule_for(file, &f.image).and_then(|r| r.pin);
                (
                    m.policy.clone(),
                    m.pin.or(rule_pin),
                    TrackedBy::Marker { line: m.line },
                )
            }
            None => match config.rule_for(file, &f.image) {
                Some(rule) => (
                    rule.policy.clone(),
                    rule.pin,
                    TrackedBy::Rule { index: rule.index },
                ),
                None if all => {
                    // `--all` skips what the default policy cannot order, instead of warning.
                    let orderable = match config.default_policy.kind() {
                        PolicyKind::Semver(_) => reference.tag().and_then(Version::parse).is_some(),
                        _ => true,
                    };
                    if !orderable {
                        continue;
                    }
                    (config.default_policy.clone(), None, TrackedBy::All)
                }
                None => continue,
            },
        };
        if policy.is_never() {
            continue;
        }
        tracked.push(Tracked {
            file: file.to_owned(),
            pin: pin.or(config.default_pin).unwrap_or(natural_pin),
            found: f,
            reference,
            policy,
            by,
        });
    }
    (tracked, errors)
}

impl Tracked {
    /// What to fetch before the first [`Tracked::step`].
    pub fn needs(&self) -> Needs {
        self.policy.needs(Current::from(&self.reference).tag)
    }

    /// One planning step. `text` is the file's text the reference was found in.
    pub fn step(&self, text: &str, facts: &Facts) -> Step {
        let current = Current::from(&self.reference);
        let digest_of = |tag: &str| facts.digests.get(tag);
        let (tag, digest, reason) = match decide(current, &self.policy, facts) {
            Decision::Keep { warning: Some(w) } => return Step::Keep { warning: Some(w) },
            Decision::Keep { warning: None } => {
                let Some(tag) = current.tag else {
                    return Step::Keep { warning: None };
                };
                match (self.pin, current.digest) {
                    (PinForm::Tag, Some(_)) if self.reference.tag().is_some() => (
                        tag.to_owned(),
                        None,
                        format!("pin={}: drop the digest", self.pin),
                    ),
                    (PinForm::TagDigest | PinForm::Digest, None) => (
                        tag.to_owned(),
                        None,
                        format!("pin={}: pin {tag} to its digest", self.pin),
                    ),
                    // Pinned and current: the tag may still have been pushed again, so
                    // the pin follows the tag's digest.
                    (PinForm::TagDigest | PinForm::Digest, Some(old))
                        if self.reference.tag().is_some() =>
                    {
                        match digest_of(tag) {
                            None => return Step::NeedDigest(tag.to_owned()),
                            Some(Err(e)) => {
                                return Step::Keep {
                                    warning: Some(format!(
                                        "resolving {tag} failed ({e}); keeping {}",
                                        self.found.image
                                    )),
                                };
                            }
                            Some(Ok(new)) if new == old => return Step::Keep { warning: None },
                            Some(Ok(new)) => (
                                tag.to_owned(),
                                Some(new.clone()),
                                format!("pin={}: {tag} moved from {old} to {new}", self.pin),
                            ),
                        }
                    }
                    _ => return Step::Keep { warning: None },
                }
            }
            Decision::Update { to, digest, reason } => (to, digest, reason),
        };
        let digest = if self.pin.has_digest() {
            match digest {
                Some(d) => Some(d),
                None => match digest_of(&tag) {
                    None => return Step::NeedDigest(tag),
                    Some(Err(e)) => {
                        return Step::Keep {
                            warning: Some(format!(
                                "resolving {tag} failed ({e}); keeping {}",
                                self.found.image
                            )),
                        };
                    }
                    Some(Ok(d)) => Some(d.clone()),
                },
            }
        } else {
            None
        };
        let target = Target { tag, digest };
        let error = |e: super::EditError| {
            Step::Error(PlanError {
                file: self.file.clone(),
                line: self.found.line,
                message: e.to_string(),
            })
        };
        let edits = match edits_for(text, &self.found, &target, self.pin) {
            Ok(e) => e,
            Err(e) => return error(e),
        };
        if edits.is_empty() {
            return Step::Keep { warning: None };
        }
        let new = match render(&self.found.image, &target, self.pin) {
            Ok(n) => n,
            Err(e) => return error(e),
        };
        Step::Update(Update {
            file: self.file.clone(),
            line: self.found.line,
            current: self.found.image.clone(),
            new,
            policy: self.policy.to_string(),
            reason,
            edits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::scan;

    fn tracked(text: &str, config: &str, all: bool) -> Vec<(usize, String, PinForm, TrackedBy)> {
        let config = Config::parse(config).unwrap();
        let (tracked, errors) = track(
            "deploy/a.yaml",
            scan("deploy/a.yaml", text).unwrap(),
            &config,
            all,
        );
        assert!(errors.is_empty(), "{errors:?}");
        tracked
            .into_iter()
            .map(|t| (t.found.line, t.policy.to_string(), t.pin, t.by))
            .collect()
    }

    #[test]
    fn a_marker_beats_a_rule_and_a_rule_beats_all() {
        let text = "a:\n  - image: nginx:1.0.0 # freshet: policy=semver:patch\n  - image: nginx:1.0.0\n  - image: redis:1.0.0\n  - image: redis:1.0.0@sha256:0000000000000000000000000000000000000000000000000000000000000000\n";
        let config = "defaultPolicy: semver:major\nrules:\n  - paths: [\"deploy/**\"]\n    images: [nginx]\n    policy: semver:minor\n    pin: tag+digest\n";
        assert_eq!(
            tracked(text, config, false),
            [
                (
                    2,
                    "semver:patch".into(),
                    PinForm::TagDigest,
                    TrackedBy::Marker { line: 2 }
                ),
                (
                    3,
                    "semver:minor".into(),
                    PinForm::TagDigest,
                    TrackedBy::Rule { index: 0 }
                ),
            ]
        );
        assert_eq!(
            tracked(text, config, true)[2..],
            [
                (4, "semver:major".into(), PinForm::Tag, TrackedBy::All),
                // With no pin from a marker, rule or defaultPin, the written form is kept.
                (5, "semver:major".into(), PinForm::TagDigest, TrackedBy::All),
            ]
        );
        // defaultPin applies when neither marker nor rule sets one.
        let pinned = tracked(text, "defaultPin: digest\n", true);
        assert!(
            pinned.iter().all(|(_, _, pin, _)| *pin == PinForm::Digest),
            "{pinned:?}"
        );
    }

    #[test]
    fn an_invalid_marked_reference_is_an_error_naming_its_line() {
        let text = "x:\n  image: \"Bad Ref\" # freshet: policy=minor\n  other: 1\n";
        let (tracked, errors) = track(
            "a.yaml",
            scan("a.yaml", text).unwrap(),
            &Config::default(),
            true,
        );
        assert!(tracked.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].file.as_str(), errors[0].line), ("a.yaml", 2));
        assert!(errors[0].message.contains("Bad Ref"), "{errors:?}");
    }
}
