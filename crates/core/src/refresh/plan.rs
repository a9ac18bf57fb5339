//! Planning one workload's refresh: facts in, a [`WorkloadPlan`] value out.
//!
//! Owns the decisions of the cluster refresh: which containers restart, which images
//! or env vars change, the audit annotations, the failure streaks and when a streak
//! escalates. Must not talk to the cluster or a registry: the shell gathers the
//! [`Workload`] and the registry facts, calls [`plan`], and performs the plan's one
//! patch. Running [`plan`] again on the patched workload with the same facts yields
//! an empty plan (idempotence), which is how a second run makes zero writes.
//!
//! State lives on the workload, in annotations:
//! - `freshet.io/refreshed`: JSON `{image: {"digest", "at"}}`, the digest each
//!   tracked image was last refreshed to, and when (the audit trail; for a digest
//!   watch it is also the baseline: the first sight of a workload records it and
//!   restarts nothing);
//! - `freshet.io/refresh-consecutive-failures`: JSON `{image: count}`;
//! - `freshet.io/refresh-last-error`: the message of the last escalated failure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::enroll::{ActionKind, Enrollment, EnvValue, IfNotAlways};
use crate::policy::{Current, Decision, Facts, Policy, PolicyKind, decide};
use crate::{Digest, Reference};

/// `freshet.io/refreshed`.
pub const REFRESHED: &str = "freshet.io/refreshed";
/// `freshet.io/refresh-consecutive-failures`.
pub const FAILURES: &str = "freshet.io/refresh-consecutive-failures";
/// `freshet.io/refresh-last-error`.
pub const LAST_ERROR: &str = "freshet.io/refresh-last-error";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The workload kinds freshet refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 CronJob (its `jobTemplate`).
    CronJob,
}

impl WorkloadKind {
    /// The JSON path of the pod template, as object keys from the root.
    pub fn template_path(self) -> &'static [&'static str] {
        match self {
            Self::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }
}

/// One container of a workload's pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The container name.
    pub name: String,
    /// The image string as written.
    pub image: String,
    /// An init container.
    pub init: bool,
    /// `imagePullPolicy` as written (`None`: Kubernetes' default).
    pub pull_policy: Option<String>,
    /// Literal env values (`None` for `valueFrom`).
    pub env: BTreeMap<String, Option<String>>,
}

impl Container {
    /// The pull policy Kubernetes applies: as written, else `Always` for `:latest` or
    /// no tag, else `IfNotPresent`.
    pub fn effective_pull_policy(&self) -> &str {
        if let Some(p) = &self.pull_policy {
            return p;
        }
        match Reference::parse(&self.image) {
            Ok(r) if r.tag().is_none_or(|t| t == "latest") && r.digest().is_none() => "Always",
            _ => "IfNotPresent",
        }
    }
}

/// What the shell read of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.resourceVersion`, sent back as the patch's precondition.
    pub resource_version: String,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Containers then init containers of the pod template.
    pub containers: Vec<Container>,
}

/// The audit record of one tracked image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refreshed {
    /// The digest the image was refreshed to.
    pub digest: String,
    /// When (RFC 3339).
    pub at: String,
}

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

/// A tracked image whose failure streak reached the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// The image.
    pub image: String,
    /// Failures in a row.
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
    /// Failures below the threshold: (image, count, message).
    pub transient: Vec<(String, u32, String)>,
    /// Failures at or above the threshold.
    pub escalations: Vec<Escalation>,
    /// The annotations to set (`Some`) or remove (`None`); empty when unchanged.
    pub annotations: BTreeMap<String, Option<String>>,
}

impl WorkloadPlan {
    /// Whether the plan writes anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.annotations.is_empty()
    }

    /// The strategic-merge patch that performs the plan, with the resource-version
    /// precondition; `None` when there is nothing to write.
    pub fn patch(&self, workload: &Workload, now: &str) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut containers: BTreeMap<(bool, String), serde_json::Map<String, Value>> =
            BTreeMap::new();
        fn entry<'a>(
            containers: &'a mut BTreeMap<(bool, String), serde_json::Map<String, Value>>,
            init: bool,
            name: &str,
        ) -> &'a mut serde_json::Map<String, Value> {
            containers
                .entry((init, name.to_owned()))
                .or_insert_with(|| {
                    let mut m = serde_json::Map::new();
                    m.insert("name".into(), name.into());
                    m
                })
        }
        let mut restart = false;
        for change in &self.changes {
            match change {
                Change::Restart { .. } => restart = true,
                Change::SetImage {
                    container,
                    init,
                    to,
                    ..
                } => {
                    entry(&mut containers, *init, container)
                        .insert("image".into(), to.as_str().into());
                }
                Change::SetEnv {
                    container,
                    init,
                    var,
                    to,
                    ..
                } => {
                    let c = entry(&mut containers, *init, container);
                    let env = c.entry("env").or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(list) = env {
                        list.push(json!({"name": var, "value": to}));
                    }
                }
            }
        }
        let mut spec = serde_json::Map::new();
        for ((init, _), c) in containers {
            let key = if init { "initContainers" } else { "containers" };
            let list = spec.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(Value::Object(c));
            }
        }
        let mut template = serde_json::Map::new();
        if restart {
            template.insert(
                "metadata".into(),
                json!({"annotations": {RESTARTED_AT: now}}),
            );
        }
        if !spec.is_empty() {
            template.insert("spec".into(), Value::Object(spec));
        }
        let mut root = json!({
            "metadata": {
                "resourceVersion": workload.resource_version,
                "annotations": self.annotations,
            }
        });
        if !template.is_empty() {
            let mut node = Value::Object(template);
            for key in workload.kind.template_path().iter().rev() {
                node = json!({ *key: node });
            }
            merge(&mut root, node);
        }
        Some(root)
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// What the registry said about one tracked image (keyed by its canonical name).
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
        for c in workload
            .containers
            .iter()
            .filter(|c| enrollment.covers(&c.name))
        {
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

/// Plans one workload's refresh. `now` is RFC 3339; `facts` holds what the registry
/// said per tracked image's canonical name (a missing entry counts as a failure).
pub fn plan(
    workload: &Workload,
    enrollment: &Enrollment,
    facts: &ImageFacts,
    now: &str,
) -> WorkloadPlan {
    let mut out = WorkloadPlan::default();
    let old_refreshed: BTreeMap<String, Refreshed> = read_json(&workload.annotations, REFRESHED);
    let old_failures: BTreeMap<String, u32> = read_json(&workload.annotations, FAILURES);
    let mut refreshed = old_refreshed.clone();
    let mut failures = old_failures.clone();
    let mut restarts: BTreeMap<String, (Vec<String>, Digest, Digest)> = BTreeMap::new();

    for (reference, policy) in tracked_images(workload, enrollment) {
        let image = reference.canonical();
        let tag = reference.tag_or_latest().unwrap_or("latest").to_owned();
        let fact = facts.get(&image);
        if let Some(message) = failure(fact, &tag, policy.needs(Some(&tag)).tag_list) {
            let count = old_failures.get(&image).copied().unwrap_or(0) + 1;
            failures.insert(image.clone(), count);
            if count >= enrollment.threshold {
                out.escalations.push(Escalation {
                    image,
                    count,
                    message,
                });
            } else {
                out.transient.push((image, count, message));
            }
            continue;
        }
        failures.remove(&image);
        let fact = fact.expect("no failure means facts exist");
        let resolved = fact
            .digests
            .get(&tag)
            .and_then(|d| d.as_ref().ok())
            .cloned();

        // Env vars that follow this image.
        for s in enrollment.set_env.iter().filter(|s| s.image == reference) {
            let Some(digest) = &resolved else { continue };
            let value = match s.value {
                EnvValue::Digest => digest.to_string(),
                EnvValue::Reference => format!("{}@{digest}", reference.name()),
            };
            let Some(c) = workload.containers.iter().find(|c| c.name == s.container) else {
                out.warnings.push(format!(
                    "{}: set-env names container {:?}, which the pod template does not have",
                    s.var, s.container
                ));
                continue;
            };
            let current = c.env.get(&s.var).cloned().flatten();
            if current.as_deref() != Some(value.as_str()) {
                out.changes.push(Change::SetEnv {
                    container: c.name.clone(),
                    init: c.init,
                    var: s.var.clone(),
                    from: current,
                    to: value,
                    image: image.clone(),
                });
                refreshed.insert(
                    image.clone(),
                    Refreshed {
                        digest: digest.to_string(),
                        at: now.into(),
                    },
                );
            } else {
                refreshed.entry(image.clone()).or_insert_with(|| Refreshed {
                    digest: digest.to_string(),
                    at: now.into(),
                });
            }
        }

        // Containers running this image.
        let Some(policy) = enrollment.policy.as_ref() else {
            continue;
        };
        let containers: Vec<&Container> = workload
            .containers
            .iter()
            .filter(|c| enrollment.covers(&c.name))
            .filter(|c| Reference::parse(&c.image).is_ok_and(|r| r.without_digest() == reference))
            .collect();
        if containers.is_empty() {
            continue;
        }
        let is_digest_watch = matches!(policy.kind(), PolicyKind::Digest)
            || policy.needs(Some(&tag)).digest_of.is_some();
        let action = match enrollment.action {
            ActionKind::Restart if !is_digest_watch => ActionKind::SetImage,
            a => a,
        };
        match action {
            ActionKind::SetImage => {
                let decision = decide(Current::tag(&tag), policy, fact);
                match decision {
                    Decision::Update {
                        to, reason, digest, ..
                    } if to != tag => {
                        // The audit record moves to the new tag, with its digest when
                        // the shell resolved it (facts for `to` on this image).
                        let to_digest = digest.or_else(|| {
                            fact.digests.get(&to).and_then(|d| d.as_ref().ok()).cloned()
                        });
                        if let (Ok(target), Some(d)) = (reference.with_tag(&to), to_digest) {
                            refreshed.remove(&image);
                            refreshed.insert(
                                target.canonical(),
                                Refreshed {
                                    digest: d.to_string(),
                                    at: now.into(),
                                },
                            );
                        }
                        for c in &containers {
                            let new = reference.with_tag(&to).map(|r| r.familiar_like(&c.image));
                            if let Ok(new) = new {
                                out.changes.push(Change::SetImage {
                                    container: c.name.clone(),
                                    init: c.init,
                                    from: c.image.clone(),
                                    to: new,
                                    reason: reason.clone(),
                                });
                            }
                        }
                    }
                    Decision::Keep { warning: Some(w) } => {
                        out.warnings.push(format!("{image}: {w}"))
                    }
                    _ => {}
                }
            }
            ActionKind::Pin => {
                let Some(digest) = &resolved else { continue };
                pin(&mut out, &containers, &reference, digest, "pin");
                if old_refreshed
                    .get(&image)
                    .is_none_or(|r| r.digest != digest.as_str())
                {
                    refreshed.insert(
                        image.clone(),
                        Refreshed {
                            digest: digest.to_string(),
                            at: now.into(),
                        },
                    );
                }
            }
            ActionKind::Restart => {
                let Some(digest) = resolved else { continue };
                let Some(previous) = old_refreshed.get(&image) else {
                    out.baselines.push(image.clone());
                    refreshed.insert(
                        image.clone(),
                        Refreshed {
                            digest: digest.to_string(),
                            at: now.into(),
                        },
                    );
                    continue;
                };
                if previous.digest == digest.as_str() {
                    continue;
                }
                // An image that names a digest runs that digest whatever a restart
                // does: re-pin it to the new digest instead.
                let (pinned, floating): (Vec<&Container>, Vec<&Container>) = containers
                    .iter()
                    .partition(|c| Reference::parse(&c.image).is_ok_and(|r| r.digest().is_some()));
                pin(
                    &mut out,
                    &pinned,
                    &reference,
                    &digest,
                    "re-pin (the image names a digest, so a restart would not move it)",
                );
                let (pulling, not_pulling): (Vec<&Container>, Vec<&Container>) = floating
                    .iter()
                    .partition(|c| c.effective_pull_policy() == "Always");
                if !not_pulling.is_empty() {
                    let names: Vec<&str> = not_pulling.iter().map(|c| c.name.as_str()).collect();
                    match enrollment.if_not_always {
                        IfNotAlways::Skip => {
                            out.warnings.push(format!(
                                "{image} moved to {digest}, but containers {names:?} have imagePullPolicy {}: a restart would not pull it, so freshet skips them; set imagePullPolicy: Always, or freshet.io/if-pull-policy-not-always: pin",
                                not_pulling[0].effective_pull_policy()
                            ));
                            continue;
                        }
                        IfNotAlways::Pin => {
                            out.warnings.push(format!(
                                "{image} moved to {digest}; containers {names:?} would not pull on restart, so freshet pins the digest"
                            ));
                            pin(
                                &mut out,
                                &not_pulling,
                                &reference,
                                &digest,
                                "pin (pull policy is not Always)",
                            );
                        }
                    }
                }
                if !pulling.is_empty() {
                    let from = Digest::parse(&previous.digest).unwrap_or_else(|_| digest.clone());
                    restarts.insert(
                        image.clone(),
                        (
                            pulling.iter().map(|c| c.name.clone()).collect(),
                            from,
                            digest.clone(),
                        ),
                    );
                }
                refreshed.insert(
                    image.clone(),
                    Refreshed {
                        digest: digest.to_string(),
                        at: now.into(),
                    },
                );
            }
        }
    }
    for (image, (containers, from, to)) in restarts {
        out.changes.push(Change::Restart {
            image,
            containers,
            from,
            to,
        });
    }

    // Annotations: write only what differs.
    if refreshed != old_refreshed {
        out.annotations
            .insert(REFRESHED.into(), Some(to_json(&refreshed)));
    }
    if failures != old_failures {
        let value = (!failures.is_empty()).then(|| to_json(&failures));
        out.annotations.insert(FAILURES.into(), value);
    }
    let last_error = workload.annotations.get(LAST_ERROR);
    if let Some(e) = out.escalations.first() {
        let message = format!("{}: {} failures in a row: {}", e.image, e.count, e.message);
        if last_error != Some(&message) {
            out.annotations.insert(LAST_ERROR.into(), Some(message));
        }
    } else if failures.is_empty() && last_error.is_some() {
        out.annotations.insert(LAST_ERROR.into(), None);
    }
    out
}

fn pin(
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

/// Why the facts for an image are unusable, or `None` when they are fine.
fn failure(fact: Option<&Facts>, tag: &str, wants_tags: bool) -> Option<String> {
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

fn read_json<T: for<'de> Deserialize<'de> + Default>(
    annotations: &BTreeMap<String, String>,
    key: &str,
) -> T {
    annotations
        .get(key)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps of strings serialise")
}

trait FamiliarLike {
    /// Renders the reference in the same spelling family as `written`: familiar
    /// (`nginx:1`) when it was written familiar, canonical otherwise.
    fn familiar_like(&self, written: &str) -> String;
}

impl FamiliarLike for Reference {
    fn familiar_like(&self, written: &str) -> String {
        let familiar = self.familiar();
        let canonical = self.canonical();
        if written.starts_with("docker.io/") || written.starts_with("index.docker.io/") {
            canonical
        } else {
            familiar
        }
    }
}
