//! The pure planner: found references + markers + `freshet.yaml` + registry facts →
//! [`Update`]s with their [`Edit`]s.
//!
//! Owns which references are tracked and with which policy and pin form ([`track`]:
//! a marker beats a rule, a rule beats `--all`), and the step-by-step decision for one
//! tracked reference ([`Tracked::step`]): it may first ask for the digest of the tag it
//! chose ([`Step::NeedDigest`]), so the shell fetches only what is needed.
//!
//! Must not fetch anything or touch files.

use super::{
    Config, DigestForm, Edit, Found, PinForm, Spans, Target, ValueForm, WriteForm, edits_for,
    render, split_written,
};
use crate::policy::{
    Builds, Current, Decision, Facts, Needs, Policy, PolicyKind, Version, decide,
    decide_newest_build,
};
use crate::{Platform, Reference};

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
    /// The reference, parsed and normalised (for a value holding only a tag or digest,
    /// joined with the image its marker or rule names).
    pub reference: Reference,
    /// The image name as written (or as the marker or rule names it).
    pub name: String,
    /// The policy that applies.
    pub policy: Policy,
    /// How to write it after an update.
    pub pin: PinForm,
    /// Write the digest into a tag value in this form (Helm's `tag: sha256:…`).
    pub digest_form: Option<DigestForm>,
    /// The platform whose build time `newest-build` compares (default linux/amd64).
    pub platform: Option<Platform>,
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

/// A problem with one reference or file. Serialises as `{file, line, message}`, plus
/// `class` and `reference` when a registry lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanError {
    /// The file.
    pub file: String,
    /// 1-based line (0 for the whole file).
    pub line: usize,
    /// What went wrong.
    pub message: String,
    /// The failure class of a registry lookup (`dns`, `unauthorized`, `not_found`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The reference whose lookup failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl PlanError {
    /// An error about a file and line.
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> Self {
        PlanError {
            file: file.to_owned(),
            line,
            message: message.into(),
            class: None,
            reference: None,
        }
    }
}

/// The next thing the planner needs, or its answer, for one tracked reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Fetch the digest of this tag into [`Facts::digests`] and call again.
    NeedDigest(String),
    /// Fetch the build times of these tags (for `newest-build`) and call again.
    NeedBuilds(Vec<String>),
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

/// What a value or reference holds as written: (tag, digest).
fn written_parts(found: &Found) -> (Option<&str>, Option<&str>) {
    match &found.spans {
        Spans::Value { .. } => ValueForm::parts(&found.image),
        _ => {
            let (_, tag, digest) = split_written(&found.image);
            (tag, digest)
        }
    }
}

/// Joins what is written with the image and tag a marker or rule names.
fn compose(
    found: &Found,
    image: Option<&str>,
    tag: Option<&str>,
) -> Result<(String, Reference), String> {
    let (written_tag, written_digest) = written_parts(found);
    let name = match (&found.spans, image) {
        (Spans::Value { .. }, Some(image)) => image.to_owned(),
        (Spans::Value { .. }, None) => {
            return Err(format!(
                "{:?} holds only a {}; say which image it belongs to with image= on the marker (or image: on the rule), e.g. `# freshet: image=ghcr.io/acme/app policy=…`",
                found.image,
                if written_tag.is_some() {
                    "tag"
                } else {
                    "digest"
                }
            ));
        }
        (Spans::Split { .. }, _) => {
            let n = match written_digest {
                Some(_) if written_tag.is_none() => found.image.split('@').next().unwrap_or(""),
                _ => split_written(&found.image).0,
            };
            n.to_owned()
        }
        _ => split_written(&found.image).0.to_owned(),
    };
    let mut text = name.clone();
    if let Some(t) = written_tag.or(tag) {
        text.push(':');
        text.push_str(t);
    }
    if let Some(d) = written_digest {
        text.push('@');
        text.push_str(d);
    }
    let reference = Reference::parse(&text).map_err(|e| e.to_string())?;
    if reference.tag().is_none() && reference.digest().is_some() {
        return Err(format!(
            "{} is pinned to a digest only; name the tag it follows with tag= on the marker, e.g. `# freshet: tag=1.36 policy=digest`",
            found.image
        ));
    }
    Ok((name, reference))
}

/// The policy, pin form and reason for tracking: a marker beats a rule, a rule beats
/// `--all` (which skips what the default policy cannot order).
fn choose(
    marker: Option<&super::Marker>,
    rule: Option<&super::CompiledRule>,
    config: &Config,
    reference: &Reference,
) -> Option<(Policy, Option<PinForm>, TrackedBy)> {
    Some(match (marker, rule) {
        (Some(m), _) => (
            m.policy.clone(),
            m.pin.or(rule.and_then(|r| r.pin)),
            TrackedBy::Marker { line: m.line },
        ),
        (None, Some(rule)) => (
            rule.policy.clone(),
            rule.pin,
            TrackedBy::Rule { index: rule.index },
        ),
        (None, None) => {
            // `--all` skips what the default policy cannot order, instead of warning.
            let orderable = match config.default_policy.kind() {
                PolicyKind::Semver(_) => reference.tag().and_then(Version::parse).is_some(),
                _ => true,
            };
            if !orderable {
                return None;
            }
            (config.default_policy.clone(), None, TrackedBy::All)
        }
    })
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
        let error = |message: String| PlanError::new(file, f.line, message);
        let marker = match &f.marker {
            Some(Err(e)) => {
                errors.push(error(e.to_string()));
                continue;
            }
            Some(Ok(m)) => Some(m.clone()),
            None => None,
        };
        let is_value = matches!(f.spans, Spans::Value { .. });
        let image_for_rules = match (&marker, is_value) {
            (Some(m), true) => m.image.clone(),
            (_, true) => None,
            (_, false) => Some(f.image.clone()),
        };
        let rule = config.rule_for_key(file, f.key.as_deref(), image_for_rules.as_deref());
        let explicit = marker.is_some() || rule.is_some();
        if !explicit && (!all || is_value) {
            continue;
        }
        let image = marker
            .as_ref()
            .and_then(|m| m.image.clone())
            .or_else(|| rule.and_then(|r| r.image.clone()));
        let tag = marker.as_ref().and_then(|m| m.tag.clone());
        let (name, reference) = match compose(&f, image.as_deref(), tag.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                if explicit {
                    errors.push(error(e));
                }
                continue;
            }
        };
        let natural_pin = match written_parts(&f) {
            (Some(_), Some(_)) => PinForm::TagDigest,
            (None, Some(_)) => PinForm::Digest,
            _ => PinForm::Tag,
        };
        let Some((policy, pin, by)) = choose(marker.as_ref(), rule, config, &reference) else {
            continue;
        };
        if policy.is_never() {
            continue;
        }
        let digest_form = marker
            .as_ref()
            .and_then(|m| m.digest_form)
            .or(rule.and_then(|r| r.digest_form));
        let platform = marker
            .as_ref()
            .and_then(|m| m.platform.clone())
            .or(rule.and_then(|r| r.platform.clone()));
        // `digestForm=` asks for a digest: it implies the matching pin form.
        let form_pin = digest_form.map(|f| match f {
            DigestForm::TagAtDigest => PinForm::TagDigest,
            DigestForm::Digest => PinForm::Digest,
        });
        tracked.push(Tracked {
            file: file.to_owned(),
            pin: pin
                .or(form_pin)
                .or(config.default_pin)
                .unwrap_or(natural_pin),
            found: f,
            reference,
            name,
            policy,
            digest_form,
            platform,
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

    /// The platform `newest-build` compares.
    pub fn build_platform(&self) -> Platform {
        self.platform
            .clone()
            .unwrap_or_else(|| Platform::new("linux", "amd64", None))
    }

    /// One planning step, for policies that need no build times.
    pub fn step(&self, text: &str, facts: &Facts) -> Step {
        self.step_with(text, facts, &Builds::new())
    }

    /// The decision for `newest-build`, or the step to take first.
    fn newest_build(&self, facts: &Facts, builds: &Builds) -> Result<Decision, Box<Step>> {
        let current = Current::from(&self.reference);
        let Some(tag) = current.tag else {
            return Ok(decide(current, &self.policy, facts));
        };
        let tags = match &facts.tags {
            Some(Ok(tags)) => tags,
            None => {
                return Ok(Decision::Keep {
                    warning: Some("the tag list was not fetched; keeping the current tag".into()),
                });
            }
            Some(Err(e)) => {
                return Ok(Decision::Keep {
                    warning: Some(format!("listing tags failed ({e}); keeping {tag}")),
                });
            }
        };
        match self.policy.build_candidates(tag, tags) {
            Some(Ok(candidates)) => {
                let missing: Vec<String> = candidates
                    .into_iter()
                    .filter(|c| !builds.contains_key(c) && tags.contains(c))
                    .collect();
                if !missing.is_empty() {
                    return Err(Box::new(Step::NeedBuilds(missing)));
                }
            }
            Some(Err(n)) => {
                return Err(Box::new(Step::Error(PlanError::new(
                    &self.file,
                    self.found.line,
                    format!(
                        "{} admits {n} tags of {}, more than the {} whose build times it reads; narrow the pattern",
                        self.policy,
                        self.reference.name(),
                        crate::policy::MAX_BUILD_CANDIDATES
                    ),
                ))));
            }
            None => {}
        }
        Ok(decide_newest_build(current, &self.policy, tags, builds))
    }

    /// One planning step. `text` is the file's text the reference was found in;
    /// `builds` holds the build times `newest-build` asked for.
    pub fn step_with(&self, text: &str, facts: &Facts, builds: &Builds) -> Step {
        let current = Current::from(&self.reference);
        let digest_of = |tag: &str| facts.digests.get(tag);
        let decision = match self.policy.kind() {
            PolicyKind::NewestBuild(_) => match self.newest_build(facts, builds) {
                Ok(d) => d,
                Err(step) => return *step,
            },
            _ => decide(current, &self.policy, facts),
        };
        let (tag, digest, reason) = match decision {
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
        self.update(text, tag, digest, reason, &|tag| digest_of(tag).cloned())
    }

    /// The update to `tag` (with its digest, fetched if the pin form needs one).
    fn update(
        &self,
        text: &str,
        tag: String,
        digest: Option<crate::Digest>,
        mut reason: String,
        digest_of: &dyn Fn(&str) -> Option<Result<crate::Digest, String>>,
    ) -> Step {
        if written_parts(&self.found).0.is_none() && self.reference.tag() != Some(tag.as_str()) {
            return Step::Error(PlanError::new(
                &self.file,
                self.found.line,
                format!(
                    "{} would move from tag {} to {tag}, but the file holds only a digest and the marker's tag= names the tag; track it with policy=digest, or write the tag",
                    self.found.image,
                    self.reference.tag().unwrap_or("?"),
                ),
            ));
        }
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
                    Some(Ok(d)) => Some(d),
                },
            }
        } else {
            None
        };
        let target = Target { tag, digest };
        let error = |e: super::EditError| {
            Step::Error(PlanError::new(&self.file, self.found.line, e.to_string()))
        };
        let form = WriteForm {
            pin: self.pin,
            digest_form: self.digest_form,
        };
        let edits = match edits_for(text, &self.found, &target, form) {
            Ok(e) => e,
            Err(e) => return error(e),
        };
        if edits.is_empty() {
            return Step::Keep { warning: None };
        }
        let shown_pin = match (self.pin.has_digest(), self.digest_form) {
            (true, Some(DigestForm::TagAtDigest)) => PinForm::TagDigest,
            (true, Some(DigestForm::Digest)) => PinForm::Digest,
            _ => self.pin,
        };
        let new = match render(&self.name, &target, shown_pin) {
            Ok(n) => n,
            Err(e) => return error(e),
        };
        if let Some(added) = added_key(&self.found, &edits) {
            reason.push_str(&format!("; adds `{added}:`"));
        }
        Step::Update(Update {
            file: self.file.clone(),
            line: self.found.line,
            current: self.current(),
            new,
            policy: self.policy.to_string(),
            reason,
            edits,
        })
    }

    /// The reference as written, joined with its image for a value.
    fn current(&self) -> String {
        match &self.found.spans {
            Spans::Value { form, .. } => match form {
                ValueForm::Digest => format!("{}@{}", self.name, self.found.image),
                _ => format!("{}:{}", self.name, self.found.image),
            },
            _ => self.found.image.clone(),
        }
    }
}

/// The key an update adds to the file (a digest key beside `tag:`, a kustomize
/// `newTag:` or `digest:`), so the plan says so.
fn added_key(found: &Found, edits: &[Edit]) -> Option<String> {
    // An inserted line, not a value filled in between empty quotes.
    let inserted = edits.iter().find(|e| {
        e.span.is_empty() && (e.new.ends_with('\n') || e.new.starts_with(['\r', '\n']))
    })?;
    let key = inserted.new.trim_start().split(':').next()?.to_owned();
    match &found.spans {
        Spans::Split { .. } | Spans::Kustomize { .. } => Some(key),
        _ => None,
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
        assert!(errors[0].class.is_none());
        assert!(errors[0].message.contains("Bad Ref"), "{errors:?}");
    }
}
