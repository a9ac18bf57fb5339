//! The cluster config file (`freshet run --config freshet.yaml`; in the cluster, a
//! ConfigMap): enrollment by rules instead of annotations on every workload.
//!
//! Owns the schema, strict validation (unknown keys, bad policies, actions,
//! thresholds, selectors, globs and schedules are errors naming the key path and the
//! fix), label-selector matching, and how rules and annotations combine: the first
//! rule matching a workload's namespace, labels and images supplies defaults, and the
//! workload's own annotations override them (`freshet.io/policy: never` always wins).
//!
//! ```yaml
//! version: 1
//! namespaces: [dev, staging]     # the phase: only these namespaces (default: all)
//! threshold: 3                   # failures in a row before a run fails (default 3)
//! rules:
//!   - namespaces: [dev]          # default: every allowed namespace
//!     selector: app=web,tier!=db # a label selector (default: every workload)
//!     images: ["ghcr.io/acme/*"] # globs over the image name (default: every image)
//!     policy: digest
//!     action: restart            # restart, pin or set-image (default: by policy)
//!     threshold: 2
//!     ifPullPolicyNotAlways: pin # skip or pin
//!     schedule: "*/15 * * * *"   # when this rule's workloads are due (run mode)
//! ```
//!
//! Must not read the file: the shell passes its text.

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use super::enroll::{
    self, ACTION, AUDIT_ANNOTATION, CATCH_UP, CONTAINERS, EnrollError, Enrollment, IF_NOT_ALWAYS,
    KEEL_POLICY, KEEL_POLL_SCHEDULE, POLICY, SCHEDULE, Source, THRESHOLD,
};
use super::safety_config::{self, RawRuleSafety, RuleSafety, rule_safety};
use super::schedule::{SCHEDULE_FORMS, Schedule, ScheduleError};
use crate::Reference;
use crate::notify::config::RawNotifications;
use crate::notify::{NotifyConfig, NotifyConfigError};
use crate::policy::Policy;
use crate::safety::Pacing;
use crate::safety::pacing::{BudgetSpec, PacingSpec};
use crate::safety::threshold::ThresholdSpec;
use crate::webhook::{ValidWebhooks, WebhooksConfig};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    threshold: Option<i64>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    pacing: Option<PacingSpec>,
    #[serde(default)]
    notifications: Option<RawNotifications>,
    #[serde(default)]
    webhooks: Option<WebhooksConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    selector: Option<String>,
    #[serde(default)]
    images: Vec<String>,
    policy: String,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    threshold: Option<i64>,
    #[serde(default)]
    if_pull_policy_not_always: Option<String>,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    catch_up: Option<bool>,
    #[serde(default)]
    pacing: Option<BudgetSpec>,
    #[serde(default)]
    windows: Vec<String>,
    #[serde(default)]
    on_failure: Option<String>,
    #[serde(default)]
    thresholds: Vec<ThresholdSpec>,
    #[serde(default)]
    audit_annotation: Option<String>,
}

const KEYS: &str = "version, namespaces, threshold, pacing, notifications, webhooks, rules[].namespaces, rules[].selector, rules[].images, rules[].policy, rules[].action, rules[].threshold, rules[].ifPullPolicyNotAlways, rules[].schedule, rules[].pacing, rules[].windows, rules[].onFailure, rules[].thresholds, rules[].catchUp, rules[].auditAnnotation";

/// Why the cluster config was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The YAML does not parse or does not fit the schema (unknown key, wrong type).
    #[error("line {line}, column {column}: {message}; the keys are: {KEYS}")]
    Syntax {
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A value is well-formed YAML but invalid.
    #[error("{key}: {message}; fix: {fix}")]
    Invalid {
        /// The key path, e.g. `rules[2].policy`.
        key: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// A safety key (pacing, windows, onFailure, thresholds) is invalid; the
    /// message starts with the key path and says the fix.
    #[error("{message}")]
    Safety {
        /// The safety layer's message.
        message: String,
    },
}

/// A label selector: terms that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<Term>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Selector {
    /// Parses `app=web,tier!=db,env in (a,b),!legacy`.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // A term runs to the next comma outside parentheses.
            let mut depth = 0usize;
            let mut end = rest.len();
            for (i, ch) in rest.char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            terms.push(term(rest[..end].trim())?);
            rest = rest[end..].trim_start_matches(',').trim();
        }
        if terms.is_empty() {
            return Err("the selector is empty".into());
        }
        Ok(Selector(terms))
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &crate::Labels) -> bool {
        self.0.iter().all(|t| match t {
            Term::Eq(k, v) => labels.get(k) == Some(v),
            Term::NotEq(k, v) => labels.get(k) != Some(v),
            Term::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Term::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Term::Exists(k) => labels.contains_key(k),
            Term::NotExists(k) => !labels.contains_key(k),
        })
    }
}

fn term(t: &str) -> Result<Term, String> {
    let key = |k: &str| -> Result<String, String> {
        let k = k.trim();
        let ok = !k.is_empty()
            && k.len() <= 253
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if ok {
            Ok(k.to_owned())
        } else {
            Err(format!("{k:?} is not a label key"))
        }
    };
    let value = |v: &str| -> Result<String, String> {
        let v = v.trim();
        let ok = v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(v.to_owned())
        } else {
            Err(format!("{v:?} is not a label value"))
        }
    };
    let set = |s: &str| -> Result<Vec<String>, String> {
        let inner = s
            .trim()
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("{s:?}: a set is written (a,b)"))?;
        inner.split(',').map(value).collect()
    };
    if let Some((k, v)) = t.split_once("!=") {
        return Ok(Term::NotEq(key(k)?, value(v)?));
    }
    if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
        return Ok(Term::Eq(key(k)?, value(v)?));
    }
    if let Some((k, s)) = t.split_once(" notin ") {
        return Ok(Term::NotIn(key(k)?, set(s)?));
    }
    if let Some((k, s)) = t.split_once(" in ") {
        return Ok(Term::In(key(k)?, set(s)?));
    }
    if let Some(k) = t.strip_prefix('!') {
        return Ok(Term::NotExists(key(k)?));
    }
    Ok(Term::Exists(key(t)?))
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Index in `rules:`.
    pub index: usize,
    namespaces: Option<Vec<String>>,
    selector: Option<Selector>,
    images: Vec<GlobMatcher>,
    /// The policy, as written (validated).
    pub policy: String,
    action: Option<String>,
    threshold: Option<u32>,
    if_not_always: Option<String>,
    /// The schedule, as written (validated).
    pub schedule: Option<String>,
    /// `catchUp` (`None`: the default, true).
    pub catch_up: Option<bool>,
    /// Windows, failure response and per-image thresholds.
    pub safety: RuleSafety,
    /// The extra audit annotation (validated).
    pub audit_annotation: Option<String>,
}

/// A validated cluster config.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    /// The namespace allowlist (`None`: all).
    pub namespaces: Option<Vec<String>>,
    /// The global failure threshold.
    pub threshold: Option<u32>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// The pacing budgets (cluster-wide, per rule by index, per namespace).
    pub pacing: Pacing,
    /// The `notifications:` section (no sinks when absent).
    pub notifications: NotifyConfig,
    /// The `webhooks:` section (controller mode; `None` when absent).
    pub webhooks: Option<ValidWebhooks>,
}

/// What a rule matches a workload on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// `metadata.labels`.
    pub labels: &'a crate::Labels,
    /// `metadata.annotations`.
    pub annotations: &'a crate::Labels,
    /// (container name, image) pairs.
    pub containers: &'a [(&'a str, &'a str)],
}

fn invalid(key: String, message: impl Into<String>, fix: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
        fix: fix.into(),
    }
}

fn threshold(key: String, value: Option<i64>) -> Result<Option<u32>, ConfigError> {
    match value {
        None => Ok(None),
        Some(n) if n >= 1 && n <= i64::from(u32::MAX) => Ok(Some(n as u32)),
        Some(n) => Err(invalid(
            key,
            format!("{n} is below 1"),
            "use an integer of at least 1 (default 3)",
        )),
    }
}

fn schedule(key: String, value: &str) -> Result<(), ConfigError> {
    match Schedule::parse(value) {
        Ok(_) => Ok(()),
        Err(ScheduleError::Invalid { value, reason }) => Err(invalid(
            key,
            format!("{value:?} is not a schedule ({reason})"),
            SCHEDULE_FORMS,
        )),
    }
}

/// Checks that every entry of `list` is a namespace name.
fn check_namespaces(key: String, list: &Option<Vec<String>>) -> Result<(), ConfigError> {
    for (i, ns) in list.iter().flatten().enumerate() {
        let ok = !ns.is_empty()
            && ns.len() <= 63
            && ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(invalid(
                format!("{key}[{i}]"),
                format!("{ns:?} is not a namespace name"),
                "use lowercase letters, digits and '-'",
            ));
        }
    }
    Ok(())
}

/// Validates rule number `index`.
fn rule(index: usize, r: RawRule) -> Result<Rule, ConfigError> {
    let key = |k: &str| format!("rules[{index}].{k}");
    let safety = rule_safety(
        index,
        &RawRuleSafety {
            windows: r.windows.clone(),
            on_failure: r.on_failure.clone(),
            thresholds: r.thresholds.clone(),
        },
    )
    .map_err(|message| ConfigError::Safety { message })?;
    check_namespaces(key("namespaces"), &r.namespaces)?;
    let policy = Policy::parse(&r.policy)
        .map_err(|e| invalid(key("policy"), e.to_string(), "write e.g. policy: digest"))?;
    if let Some(action) = &r.action
        && !matches!(action.as_str(), "restart" | "pin" | "set-image")
    {
        return Err(invalid(
            key("action"),
            format!("unknown action {action:?}"),
            "use restart, pin or set-image",
        ));
    }
    if let Some(v) = &r.if_pull_policy_not_always
        && !matches!(v.as_str(), "skip" | "pin")
    {
        return Err(invalid(
            key("ifPullPolicyNotAlways"),
            format!("unknown choice {v:?}"),
            "use skip or pin",
        ));
    }
    let selector = r
        .selector
        .as_deref()
        .map(|s| {
            Selector::parse(s).map_err(|e| {
                invalid(
                    key("selector"),
                    e,
                    "write a label selector, e.g. app=web,tier!=db or env in (dev,qa)",
                )
            })
        })
        .transpose()?;
    let images = image_globs(index, &r.images)?;
    if let Some(s) = &r.schedule {
        schedule(key("schedule"), s)?;
    }
    if let Some(a) = &r.audit_annotation {
        enroll::audit_annotation_key(a)
            .map_err(|fix| invalid(key("auditAnnotation"), format!("{a:?} is not allowed"), fix))?;
    }
    Ok(Rule {
        index,
        namespaces: r.namespaces,
        selector,
        images,
        policy: policy.to_string(),
        action: r.action,
        threshold: threshold(key("threshold"), r.threshold)?,
        if_not_always: r.if_pull_policy_not_always,
        schedule: r.schedule,
        catch_up: r.catch_up,
        safety,
        audit_annotation: r.audit_annotation,
    })
}

/// The image globs of rule number `index`.
fn image_globs(index: usize, globs: &[String]) -> Result<Vec<GlobMatcher>, ConfigError> {
    globs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            GlobBuilder::new(p)
                .literal_separator(false)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| {
                    invalid(
                        format!("rules[{index}].images[{i}]"),
                        format!("{p:?} is not a valid glob: {e}"),
                        "write e.g. ghcr.io/acme/*",
                    )
                })
        })
        .collect()
}

impl ClusterConfig {
    /// Parses and validates the config text.
    pub fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(ClusterConfig::default());
        }
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column, message) = crate::yaml_error(&e);
            ConfigError::Syntax {
                line,
                column,
                message,
            }
        })?;
        if let Some(v) = raw.version
            && v != 1
        {
            return Err(invalid(
                "version".into(),
                format!("unsupported version {v}"),
                "write version: 1 or leave it out",
            ));
        }
        check_namespaces("namespaces".into(), &raw.namespaces)?;
        let global = threshold("threshold".into(), raw.threshold)?;
        let budgets: Vec<(usize, &BudgetSpec)> = raw
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.pacing.as_ref()?)))
            .collect();
        let pacing = safety_config::pacing(raw.pacing.as_ref(), &budgets)
            .map_err(|message| ConfigError::Safety { message })?;
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, r)| rule(index, r))
            .collect::<Result<Vec<_>, _>>()?;
        let notifications = match raw.notifications {
            Some(n) => NotifyConfig::from_raw(n).map_err(|e| match e {
                NotifyConfigError::Invalid { key, message, fix } => {
                    ConfigError::Invalid { key, message, fix }
                }
                other => invalid(
                    "notifications".into(),
                    other.to_string(),
                    "see docs/notifications.md",
                ),
            })?,
            None => NotifyConfig::default(),
        };
        let webhooks = raw
            .webhooks
            .map(|w| w.validate())
            .transpose()
            .map_err(|e| {
                invalid(
                    "webhooks".into(),
                    e.to_string(),
                    "see the README's Registry webhooks",
                )
            })?;
        Ok(ClusterConfig {
            namespaces: raw.namespaces,
            threshold: global,
            rules,
            pacing,
            notifications,
            webhooks,
        })
    }

    /// Whether the allowlist admits `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|l| l.iter().any(|n| n == namespace))
    }

    /// The first rule matching a workload, with the containers its images match.
    pub fn rule_for(&self, subject: &Subject<'_>) -> Option<(&Rule, Vec<String>)> {
        if !self.allows(subject.namespace) {
            return None;
        }
        self.rules.iter().find_map(|r| {
            if r.namespaces
                .as_ref()
                .is_some_and(|l| !l.iter().any(|n| n == subject.namespace))
            {
                return None;
            }
            if r.selector
                .as_ref()
                .is_some_and(|s| !s.matches(subject.labels))
            {
                return None;
            }
            let containers: Vec<String> = subject
                .containers
                .iter()
                .filter(|(_, image)| {
                    r.images.is_empty()
                        || Reference::parse(image).is_ok_and(|i| {
                            let name = i.name();
                            let familiar = i.familiar();
                            let familiar = familiar.split([':', '@']).next().unwrap_or(&familiar);
                            r.images
                                .iter()
                                .any(|g| g.is_match(&name) || g.is_match(familiar))
                        })
                })
                .map(|(n, _)| (*n).to_owned())
                .collect();
            (!containers.is_empty()).then_some((r, containers))
        })
    }

    /// How a workload is tracked: the first matching rule's settings, overridden by
    /// the workload's annotations. `Ok(None)`: not enrolled (outside the allowlist,
    /// no rule and no annotation, or `freshet.io/policy: never`).
    pub fn enroll(&self, subject: &Subject<'_>) -> Result<Option<Enrollment>, EnrollError> {
        if !self.allows(subject.namespace) {
            return Ok(None);
        }
        let mut merged = crate::Labels::new();
        let rule = self.rule_for(subject);
        // Keel reads its keys from labels too: a label counts as the annotation
        // (which wins when both are set), so a `keel.sh/policy: never` label stops a rule.
        let own = keel_labels_under(subject.annotations, subject.labels);
        let subject = &Subject {
            annotations: &own,
            ..*subject
        };
        if let Some(t) = self.threshold {
            merged.insert(THRESHOLD.into(), t.to_string());
        }
        let own_policy = subject.annotations.contains_key(POLICY)
            || subject.annotations.contains_key(KEEL_POLICY);
        if let Some((r, containers)) = &rule {
            if !own_policy {
                merged.insert(POLICY.into(), r.policy.clone());
                if !r.images.is_empty() {
                    merged.insert(CONTAINERS.into(), containers.join(","));
                }
            }
            if let Some(a) = &r.action {
                merged.insert(ACTION.into(), a.clone());
            }
            if let Some(t) = r.threshold {
                merged.insert(THRESHOLD.into(), t.to_string());
            }
            if let Some(v) = &r.if_not_always {
                merged.insert(IF_NOT_ALWAYS.into(), v.clone());
            }
            if let Some(v) = r.catch_up {
                merged.insert(CATCH_UP.into(), v.to_string());
            }
            // The workload's own schedule (freshet's or Keel's) overrides the rule's.
            let own_schedule = subject.annotations.contains_key(SCHEDULE)
                || subject.annotations.contains_key(KEEL_POLL_SCHEDULE);
            if let (Some(v), false) = (&r.schedule, own_schedule) {
                merged.insert(SCHEDULE.into(), v.clone());
            }
            if let Some(a) = &r.audit_annotation {
                merged.insert(AUDIT_ANNOTATION.into(), a.clone());
            }
        }
        merged.extend(
            subject
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let enrollment = enroll::from_annotations(&merged)?;
        if let Some(e) = &enrollment {
            e.check_containers(subject.containers)?;
        }
        Ok(enrollment.map(|mut e| {
            if let (Some((r, _)), false) = (&rule, own_policy) {
                e.source = Source::Rule(r.index);
            }
            if let Some((r, _)) = &rule {
                e.thresholds = r.safety.thresholds.clone();
            }
            e
        }))
    }
}

/// `annotations` with the `keel.sh/` labels added where no annotation of the same
/// key exists (Keel reads its settings from either; freshet lets the annotation win).
pub fn keel_labels_under(annotations: &crate::Labels, labels: &crate::Labels) -> crate::Labels {
    let mut out = annotations.clone();
    for (k, v) in labels.iter().filter(|(k, _)| k.starts_with("keel.sh/")) {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}

#[cfg(test)]
mod tests;
