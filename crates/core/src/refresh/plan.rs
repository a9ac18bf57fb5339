//! Planning one workload's refresh: facts in, a [`WorkloadPlan`] value out.
//!
//! Owns the decisions of the cluster refresh: which containers restart, which images
//! or env vars change, how the audit annotations change, the failure streaks and
//! when a streak escalates. One function per action: [`Planner::restart`],
//! [`Planner::pin`], [`Planner::set_image`] and [`Planner::set_env`], each adding
//! its changes and audit records; the annotation diff is [`Audit::diff`]. Must not
//! talk to the cluster or a registry, nor read the clock: the shell gathers the
//! [`Workload`] and the registry facts, passes the time, calls [`plan`], and
//! performs the plan's one patch ([`WorkloadPlan::patch`]). Running [`plan`] again on
//! the patched workload with the same facts yields an empty plan (idempotence),
//! which is how a second run makes zero writes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::audit::{Audit, Refreshed};
use super::enroll::{ActionKind, Enrollment, EnvValue, IfNotAlways};
use super::time::Timestamp;
use super::workload::{Container, Workload};
use crate::policy::{Current, Decision, Facts, Policy, PolicyKind, decide};
use crate::{Digest, Reference};

mod runs;
pub use runs::{PlanEvent, RunsFacts};

/// One change to a workload's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Restart these containers' pods onto `to` (the image string stays).
    Restart {
        /// The tracked image.
        image: String,
        /// The containers running it.
        containers: Vec<String>,
        /// The digest refreshed from.
        from: Digest,
        /// The digest refreshed to.
        to: Digest,
    },
    /// Rewrite a container's image.
    SetImage {
        /// The container.
        container: String,
        /// An init container.
        init: bool,
        /// The image before.
        from: String,
        /// The image after.
        to: String,
        /// Why.
        reason: String,
    },
    /// Set an env var to another image's digest.
    SetEnv {
        /// The container.
        container: String,
        /// An init container.
        init: bool,
        /// The variable.
        var: String,
        /// The value before (`None`: unset).
        from: Option<String>,
        /// The value after.
        to: String,
        /// The tracked image.
        image: String,
    },
}

/// A tracked image that failed in this run: its failure streak so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Streak {
    /// The image.
    pub image: String,
    /// Failures in a row, this one included.
    pub count: u32,
    /// The last failure's message (names the host and cause).
    pub message: String,
}

/// Everything one run does to one workload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadPlan {
    /// Spec changes.
    pub changes: Vec<Change>,
    /// Baselines recorded (first sight of a digest watch; no restart).
    pub baselines: Vec<String>,
    /// Things worth a warning that change nothing.
    pub warnings: Vec<String>,
    /// Failure streaks below the threshold (warned and skipped).
    pub transient: Vec<Streak>,
    /// Failure streaks at or above the threshold.
    pub escalations: Vec<Streak>,
    /// The escalations that reached the threshold in this run (the rest were already
    /// at it): what a notification announces once.
    pub reached: Vec<Streak>,
    /// Images whose streak had reached the threshold and that succeeded in this run
    /// (`count`: the streak's length before; `message` empty).
    pub recovered: Vec<Streak>,
    /// The annotations to set (`Some`) or remove (`None`); empty when unchanged.
    pub annotations: BTreeMap<String, Option<String>>,
    /// Warning Events about what runs (a missing platform, pods that cannot pull),
    /// emitted with the patch.
    pub events: Vec<PlanEvent>,
}

impl WorkloadPlan {
    /// Whether the plan writes anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.annotations.is_empty()
    }
}

/// What the registry said about each tracked image (keyed by its canonical name).
pub type ImageFacts = BTreeMap<String, Facts>;

/// What the shell must fetch for a workload: (reference, policy) pairs; each
/// reference's [`Policy::needs`] says whether a tag list or a digest is wanted.
pub fn tracked_images(workload: &Workload, enrollment: &Enrollment) -> Vec<(Reference, Policy)> {
    let mut out: Vec<(Reference, Policy)> = Vec::new();
    let mut push = |r: Reference, p: Policy| {
        if !out.iter().any(|(o, _)| o == &r) {
            out.push((r, p));
        }
    };
    if let Some(policy) = &enrollment.policy {
        for c in workload.containers.iter().filter(|c| enrollment.tracks(c)) {
            if let Ok(r) = Reference::parse(&c.image) {
                push(r.without_digest(), policy.clone());
            }
        }
    }
    for s in &enrollment.set_env {
        push(
            s.image.clone(),
            Policy::parse("digest").expect("digest is a policy"),
        );
    }
    out
}

/// The containers of `workload` that `enrollment` covers and that run `reference`
/// (with or without a digest). Empty when the enrollment has no image policy.
pub fn containers_running<'w>(
    workload: &'w Workload,
    enrollment: &Enrollment,
    reference: &Reference,
) -> Vec<&'w Container> {
    if enrollment.policy.is_none() {
        return Vec::new();
    }
    workload
        .containers
        .iter()
        .filter(|c| enrollment.tracks(c))
        .filter(|c| Reference::parse(&c.image).is_ok_and(|r| r.without_digest() == *reference))
        .collect()
}

/// The tag a tracked reference follows (`latest` when it names none).
pub fn tag_of(reference: &Reference) -> String {
    reference.tag_or_latest().unwrap_or("latest").to_owned()
}

/// Why the facts for an image are unusable, or `None` when they are fine.
pub fn failure(fact: Option<&Facts>, tag: &str, wants_tags: bool) -> Option<String> {
    let Some(fact) = fact else {
        return Some("not resolved in this run".into());
    };
    if wants_tags && let Some(Err(e)) = &fact.tags {
        return Some(e.clone());
    }
    match fact.digests.get(tag) {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    }
}

/// Plans one workload's refresh at `now`; `facts` holds what the registry said per
/// tracked image's canonical name (a missing entry counts as a failure).
pub fn plan(
    workload: &Workload,
    enrollment: &Enrollment,
    facts: &ImageFacts,
    now: Timestamp,
) -> WorkloadPlan {
    plan_with_runs(workload, enrollment, facts, None, now)
}

/// [`plan`] with the facts of what runs (see [`RunsFacts`]): digest watches catch
/// up, detect changes per platform and are guarded, and stuck pods are reported.
/// Without them (`None`), exactly [`plan`].
pub fn plan_with_runs(
    workload: &Workload,
    enrollment: &Enrollment,
    facts: &ImageFacts,
    runs: Option<&RunsFacts<'_>>,
    now: Timestamp,
) -> WorkloadPlan {
    let old = Audit::read(&workload.annotations);
    let mut planner = Planner {
        workload,
        enrollment,
        now,
        new: old.clone(),
        old,
        out: WorkloadPlan::default(),
        restarts: BTreeMap::new(),
        runs,
        extra: BTreeMap::new(),
    };
    for (reference, policy) in tracked_images(workload, enrollment) {
        planner.image(&reference, &policy, facts);
    }
    planner.stuck();
    planner.finish()
}

/// The state of one [`plan`] call: the audit before and after, and the plan so far.
struct Planner<'a> {
    workload: &'a Workload,
    enrollment: &'a Enrollment,
    now: Timestamp,
    old: Audit,
    new: Audit,
    out: WorkloadPlan,
    /// Restarts by image, added last (one per image, whatever its containers).
    restarts: BTreeMap<String, Change>,
    /// What runs, when the shell read it.
    runs: Option<&'a RunsFacts<'a>>,
    /// Extra audit annotations to set (key, digest).
    extra: BTreeMap<String, String>,
}

impl Planner<'_> {
    /// Plans one tracked image: its failure streak, the env vars that follow it,
    /// then the action on the containers running it.
    fn image(&mut self, reference: &Reference, policy: &Policy, facts: &ImageFacts) {
        let image = reference.canonical();
        let tag = tag_of(reference);
        let fact = facts.get(&image);
        if let Some(message) = failure(fact, &tag, policy.needs(Some(&tag)).tag_list) {
            self.streak(image, message);
            return;
        }
        if let Some(count) = self.new.failures.remove(&image)
            && self
                .enrollment
                .thresholds
                .threshold(&image, self.enrollment.threshold)
                .escalates(count)
        {
            self.out.recovered.push(Streak {
                image: image.clone(),
                count,
                message: String::new(),
            });
        }
        let Some(fact) = fact else { return };
        let resolved = fact
            .digests
            .get(&tag)
            .and_then(|d| d.as_ref().ok())
            .cloned();
        if let Some(digest) = &resolved {
            self.set_env(reference, &image, digest);
        }
        let containers = containers_running(self.workload, self.enrollment, reference);
        let Some(policy) = self.enrollment.policy.as_ref() else {
            return;
        };
        if containers.is_empty() {
            return;
        }
        let is_digest_watch = matches!(policy.kind(), PolicyKind::Digest)
            || policy.needs(Some(&tag)).digest_of.is_some();
        // A restart needs a digest to watch; on a version policy it moves the tag.
        let action = match self.enrollment.action {
            ActionKind::Restart if !is_digest_watch => ActionKind::SetImage,
            a => a,
        };
        match (action, resolved) {
            (ActionKind::SetImage, _) => self.set_image(reference, &tag, policy, fact, &containers),
            (ActionKind::Pin, Some(digest)) => self.pin(reference, &digest, &containers),
            (ActionKind::Restart, Some(digest)) => self.restart(reference, &digest, &containers),
            _ => {}
        }
    }

    /// Counts a failure of `image`: transient below the threshold, escalated at it.
    fn streak(&mut self, image: String, message: String) -> u32 {
        let count = self.old.failures_of(&image) + 1;
        self.new.failures.insert(image.clone(), count);
        let streak = Streak {
            image,
            count,
            message,
        };
        let threshold = self
            .enrollment
            .thresholds
            .threshold(&streak.image, self.enrollment.threshold);
        if threshold.escalates(count) {
            if !threshold.escalates(count - 1) {
                self.out.reached.push(streak.clone());
            }
            self.out.escalations.push(streak);
        } else {
            self.out.transient.push(streak);
        }
        count
    }

    /// [`Self::record`] for an image env vars follow: the extra audit annotations
    /// are its set-env entries' (the workload's is for its containers' images).
    fn record_env(&mut self, image: String, digest: &Digest) {
        let named = self
            .enrollment
            .set_env
            .iter()
            .filter(|s| s.image.canonical() == image);
        for key in named.filter_map(|s| s.audit_annotation.clone()) {
            self.extra.insert(key, digest.to_string());
        }
        self.record_audit(image, digest);
    }

    /// Records that the containers' `image` was refreshed to `digest` now, in
    /// freshet's audit and in the workload's extra audit annotation.
    fn record(&mut self, image: String, digest: &Digest) {
        if let Some(key) = &self.enrollment.audit_annotation {
            self.extra.insert(key.clone(), digest.to_string());
        }
        self.record_audit(image, digest);
    }

    /// Records `digest` for `image` in `freshet.io/refreshed`.
    fn record_audit(&mut self, image: String, digest: &Digest) {
        self.new.refreshed.insert(
            image,
            Refreshed {
                digest: digest.to_string(),
                at: self.now.to_string(),
                platforms: BTreeMap::new(),
                note: None,
            },
        );
    }

    /// set-env: every env var that follows `reference` gets its digest (or
    /// `name@digest`).
    fn set_env(&mut self, reference: &Reference, image: &str, digest: &Digest) {
        let enrollment = self.enrollment;
        for s in enrollment.set_env.iter().filter(|s| s.image == *reference) {
            let value = match s.value {
                EnvValue::Digest => digest.to_string(),
                EnvValue::Reference => format!("{}@{digest}", reference.name()),
            };
            let Some(c) = self
                .workload
                .containers
                .iter()
                .find(|c| c.name == s.container)
            else {
                self.out.warnings.push(format!(
                    "{}: set-env names container {:?}, which the pod template does not have",
                    s.var, s.container
                ));
                continue;
            };
            let current = c.env.get(&s.var).cloned().flatten();
            if current.as_deref() == Some(value.as_str()) {
                if !self.new.refreshed.contains_key(image) {
                    self.record_env(image.to_owned(), digest);
                }
                continue;
            }
            self.out.changes.push(Change::SetEnv {
                container: c.name.clone(),
                init: c.init,
                var: s.var.clone(),
                from: current,
                to: value,
                image: image.to_owned(),
            });
            self.record_env(image.to_owned(), digest);
        }
    }

    /// set-image: moves the containers to the tag the policy picks; the audit
    /// record moves to the new tag, with its digest when the shell resolved it
    /// (facts for the new tag on this image).
    fn set_image(
        &mut self,
        reference: &Reference,
        tag: &str,
        policy: &Policy,
        fact: &Facts,
        containers: &[&Container],
    ) {
        let image = reference.canonical();
        match decide(Current::tag(tag), policy, fact) {
            Decision::Update {
                to, reason, digest, ..
            } if to != tag => {
                let to_digest =
                    digest.or_else(|| fact.digests.get(&to).and_then(|d| d.as_ref().ok()).cloned());
                if let (Ok(target), Some(d)) = (reference.with_tag(&to), to_digest) {
                    self.new.refreshed.remove(&image);
                    self.record(target.canonical(), &d);
                }
                for c in containers {
                    if let Ok(new) = reference.with_tag(&to).map(|r| r.familiar_like(&c.image)) {
                        self.out.changes.push(Change::SetImage {
                            container: c.name.clone(),
                            init: c.init,
                            from: c.image.clone(),
                            to: new,
                            reason: reason.clone(),
                        });
                    }
                }
            }
            Decision::Keep { warning: Some(w) } => self.out.warnings.push(format!("{image}: {w}")),
            _ => {}
        }
    }

    /// pin: the containers name the digest; the record changes only when the
    /// digest did (so a later run with the same digest writes nothing).
    fn pin(&mut self, reference: &Reference, digest: &Digest, containers: &[&Container]) {
        pin_containers(&mut self.out, containers, reference, digest, "pin");
        let image = reference.canonical();
        if self
            .old
            .record(&image)
            .is_none_or(|r| r.digest != digest.as_str())
        {
            self.record(image, digest);
        }
    }

    /// restart: the first sight records a baseline; a moved digest restarts the
    /// containers that pull on restart, re-pins those that name a digest, and skips
    /// or pins those that would not pull ([`IfNotAlways`]).
    fn restart(&mut self, reference: &Reference, digest: &Digest, containers: &[&Container]) {
        let image = reference.canonical();
        if self.restart_with_runs(reference, digest, containers) {
            return;
        }
        let Some(previous) = self.old.record(&image).cloned() else {
            self.out.baselines.push(image.clone());
            self.record(image, digest);
            return;
        };
        if previous.digest == digest.as_str() {
            return;
        }
        let from = Digest::parse(&previous.digest).unwrap_or_else(|_| digest.clone());
        self.refresh_to(reference, digest, from, containers);
    }

    /// Moves `containers` from `from` to `digest`: re-pins those that name a digest,
    /// restarts those that pull on restart, and skips or pins the others.
    fn refresh_to(
        &mut self,
        reference: &Reference,
        digest: &Digest,
        from: Digest,
        containers: &[&Container],
    ) {
        let image = reference.canonical();
        // An image that names a digest runs that digest whatever a restart does:
        // re-pin it to the new digest instead.
        let (pinned, floating): (Vec<&Container>, Vec<&Container>) = containers
            .iter()
            .partition(|c| Reference::parse(&c.image).is_ok_and(|r| r.digest().is_some()));
        pin_containers(
            &mut self.out,
            &pinned,
            reference,
            digest,
            "re-pin (the image names a digest, so a restart would not move it)",
        );
        let (pulling, not_pulling): (Vec<&Container>, Vec<&Container>) = floating
            .iter()
            .partition(|c| c.effective_pull_policy() == "Always");
        if !not_pulling.is_empty() && !self.not_pulling(reference, digest, &not_pulling) {
            return;
        }
        if !pulling.is_empty() {
            self.restarts.insert(
                image.clone(),
                Change::Restart {
                    image: image.clone(),
                    containers: pulling.iter().map(|c| c.name.clone()).collect(),
                    from,
                    to: digest.clone(),
                },
            );
        }
        self.record(image, digest);
    }

    /// Containers a restart would not make pull: skipped with a warning (returns
    /// `false`: the image is not refreshed) or pinned (returns `true`).
    fn not_pulling(&mut self, reference: &Reference, digest: &Digest, not: &[&Container]) -> bool {
        let image = reference.canonical();
        let names: Vec<&str> = not.iter().map(|c| c.name.as_str()).collect();
        match self.enrollment.if_not_always {
            IfNotAlways::Skip => {
                self.out.warnings.push(format!(
                    "{image} moved to {digest}, but containers {names:?} have imagePullPolicy {}: a restart would not pull it, so freshet skips them; set imagePullPolicy: Always, or freshet.io/if-pull-policy-not-always: pin",
                    not[0].effective_pull_policy()
                ));
                false
            }
            IfNotAlways::Pin => {
                self.out.warnings.push(format!(
                    "{image} moved to {digest}; containers {names:?} would not pull on restart, so freshet pins the digest"
                ));
                pin_containers(
                    &mut self.out,
                    not,
                    reference,
                    digest,
                    "pin (pull policy is not Always)",
                );
                true
            }
        }
    }

    /// The plan: the restarts after the other changes, the last error, and the
    /// annotations that differ.
    fn finish(mut self) -> WorkloadPlan {
        let restarts = std::mem::take(&mut self.restarts);
        self.out.changes.extend(restarts.into_values());
        if let Some(e) = self.out.escalations.first() {
            self.new.last_error = Some(annotation_text(&format!(
                "{}: {} failures in a row: {}",
                e.image, e.count, e.message
            )));
        } else if self.new.failures.is_empty() {
            self.new.last_error = None;
        }
        self.out.annotations = self.old.diff(&self.new);
        for (key, digest) in std::mem::take(&mut self.extra) {
            if self.workload.annotations.get(&key) != Some(&digest) {
                self.out.annotations.insert(key, Some(digest));
            }
        }
        self.out
    }
}

/// The most characters of an error kept in an annotation.
const ANNOTATION_ERROR_CHARS: usize = 1024;

/// `text` fit for an annotation: control characters escaped (a value shown by
/// `kubectl describe` cannot act on a terminal), at most
/// [`ANNOTATION_ERROR_CHARS`] characters (an ellipsis marks a cut).
pub(crate) fn annotation_text(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n >= ANNOTATION_ERROR_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Points `containers` at `digest` (spelled like each one's image), with `why`.
fn pin_containers(
    out: &mut WorkloadPlan,
    containers: &[&Container],
    reference: &Reference,
    digest: &Digest,
    why: &str,
) {
    for c in containers {
        let pinned = reference
            .with_digest(digest.clone())
            .familiar_like(&c.image);
        if pinned != c.image {
            out.changes.push(Change::SetImage {
                container: c.name.clone(),
                init: c.init,
                from: c.image.clone(),
                to: pinned,
                reason: format!("{why}: {} is {digest}", reference.familiar()),
            });
        }
    }
}

trait FamiliarLike {
    /// Renders the reference in the same spelling family as `written`: familiar
    /// (`nginx:1`) when it was written familiar, canonical otherwise.
    fn familiar_like(&self, written: &str) -> String;
}

impl FamiliarLike for Reference {
    fn familiar_like(&self, written: &str) -> String {
        if written.starts_with("docker.io/") || written.starts_with("index.docker.io/") {
            self.canonical()
        } else {
            self.familiar()
        }
    }
}
