//! Enrollment: which workloads and images freshet tracks, read from annotations.
//!
//! Owns the annotation vocabulary (`freshet.io/*`, and Keel's `keel.sh/*` with
//! Keel's meaning) and turns a workload's annotations into an [`Enrollment`] value,
//! or a precise error naming the annotation and the fix. Must not read the cluster:
//! the shell passes the annotations.
//!
//! | annotation | meaning |
//! |---|---|
//! | `freshet.io/policy` | the policy (see [`crate::policy`]); `never` opts out |
//! | `freshet.io/action` | `restart` (default for digest policies), `pin`, `set-image` (default for version policies) |
//! | `freshet.io/containers` | `api,worker`: only these containers (and init containers) |
//! | `freshet.io/set-env` | `api/VAR=image:tag`, several separated by `,` or newlines |
//! | `freshet.io/set-env-value` | `digest` (default) or `reference` (`repo@sha256:…`) |
//! | `freshet.io/failure-threshold` | failures in a row before freshet fails loudly (≥ 1, default 3) |
//! | `freshet.io/if-pull-policy-not-always` | `skip` (default) or `pin`: what a restart does when pods would not pull |
//! | `keel.sh/policy` | Keel's `patch`, `minor`, `major`, `all`, `force`, `glob:`, `regexp:` |
//! | `keel.sh/matchTag` | with `force`: only the same tag (a digest watch) |
//! | `keel.sh/matchPreRelease` | `false` lets a pre-release move to a release |
//! | `freshet.io/schedule` | when the workload is due: cron (`0 3 * * *`), `@daily`, `@every 1h` (default: every run) |
//! | `keel.sh/pollSchedule` | Keel's spelling of the same (`@every 10m`); `freshet.io/schedule` wins |
//! | `keel.sh/trigger` | `poll` or `default`; freshet polls either way (it has no webhook to wait for) |
//! | `keel.sh/monitorContainers` | a regex over container names (unanchored, as Keel's): only those containers |
//! | `keel.sh/initContainers` | `true` tracks init containers too; Keel's default, `false`, applies to a Keel enrollment, and a freshet enrollment tracks them unless this says `false` |
//!
//! Keel also reads its keys from labels; the config's [`super::config::ClusterConfig::enroll`]
//! merges `keel.sh/` labels under the annotations before calling [`from_annotations`].

use std::collections::BTreeSet;

use crate::Reference;
use crate::policy::{Policy, PolicyKind};
use crate::refresh::schedule::Schedule;

/// `freshet.io/policy`.
pub const POLICY: &str = "freshet.io/policy";
/// `freshet.io/action`.
pub const ACTION: &str = "freshet.io/action";
/// `freshet.io/containers`.
pub const CONTAINERS: &str = "freshet.io/containers";
/// `freshet.io/set-env`.
pub const SET_ENV: &str = "freshet.io/set-env";
/// `freshet.io/set-env-value`.
pub const SET_ENV_VALUE: &str = "freshet.io/set-env-value";
/// `freshet.io/failure-threshold`.
pub const THRESHOLD: &str = "freshet.io/failure-threshold";
/// `freshet.io/if-pull-policy-not-always`.
pub const IF_NOT_ALWAYS: &str = "freshet.io/if-pull-policy-not-always";
/// `keel.sh/policy`.
pub const KEEL_POLICY: &str = "keel.sh/policy";
/// `keel.sh/matchTag`.
pub const KEEL_MATCH_TAG: &str = "keel.sh/matchTag";
/// `keel.sh/matchPreRelease`.
pub const KEEL_MATCH_PRERELEASE: &str = "keel.sh/matchPreRelease";
/// `keel.sh/pollSchedule`.
pub const KEEL_POLL_SCHEDULE: &str = "keel.sh/pollSchedule";
/// `keel.sh/trigger`.
pub const KEEL_TRIGGER: &str = "keel.sh/trigger";
/// `freshet.io/schedule`.
pub const SCHEDULE: &str = "freshet.io/schedule";
/// `freshet.io/catch-up`: `"false"` keeps the baseline behaviour of a digest watch
/// (record what the tag names on first sight, restart nothing), `"true"` (the
/// default) refreshes pods that run an older image than the tag names.
pub const CATCH_UP: &str = "freshet.io/catch-up";
/// `keel.sh/monitorContainers`.
pub const KEEL_MONITOR_CONTAINERS: &str = "keel.sh/monitorContainers";
/// `keel.sh/initContainers`.
pub const KEEL_INIT_CONTAINERS: &str = "keel.sh/initContainers";
/// `freshet.io/audit-annotation`: an extra annotation (a Kubernetes annotation key,
/// e.g. `example.com/last-refreshed-app-digest`) set to the digest of each refresh.
pub const AUDIT_ANNOTATION: &str = "freshet.io/audit-annotation";

/// The failure threshold when nothing sets one.
pub const DEFAULT_THRESHOLD: u32 = 3;

/// Why a workload's annotations were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollError {
    /// A policy annotation does not parse.
    #[error("annotation {key}={value:?}: {reason}")]
    Policy {
        /// The annotation key.
        key: &'static str,
        /// Its value.
        value: String,
        /// The policy engine's message (says which policies exist).
        reason: String,
    },
    /// An annotation has a value outside its set.
    #[error("annotation {key}={value:?}: {fix}")]
    Value {
        /// The annotation key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        fix: &'static str,
    },
    /// A schedule annotation does not parse.
    #[error("annotation {key}: {reason}")]
    Schedule {
        /// The annotation key.
        key: &'static str,
        /// The schedule parser's message (names the value and the accepted forms).
        reason: String,
    },
    /// `freshet.io/containers` names a container the workload does not have (or
    /// names none).
    #[error(
        "annotation {CONTAINERS}={value:?} names no container of this workload (missing: {missing}; it has: {has}); list container names separated by commas"
    )]
    NoSuchContainer {
        /// The annotation's value.
        value: String,
        /// The names not found, comma-separated (`(none given)` for an empty list).
        missing: String,
        /// The workload's container names, comma-separated.
        has: String,
    },
    /// A covered container's image is not a valid reference, so it cannot be tracked.
    #[error(
        "container {container}: image {image:?} is not a valid image reference ({reason}); fix the image or leave the container out with {CONTAINERS}"
    )]
    InvalidImage {
        /// The container.
        container: String,
        /// Its image as written.
        image: String,
        /// The reference parser's message.
        reason: String,
    },
    /// A `freshet.io/set-env` entry is malformed.
    #[error(
        "annotation {SET_ENV} entry {entry:?}: {reason}; write CONTAINER/VAR=IMAGE:TAG, e.g. api/WORKER_IMAGE=ghcr.io/acme/worker:1.4"
    )]
    SetEnv {
        /// The entry.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a refresh does to a tracked container image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Keep the image string; set `kubectl.kubernetes.io/restartedAt` so pods pull again.
    Restart,
    /// Rewrite the image to `repo:tag@sha256:…`.
    Pin,
    /// Move the tag as a version policy decides.
    SetImage,
}

/// What a restart does when the container's pull policy is not `Always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfNotAlways {
    /// Warn and leave the workload alone.
    #[default]
    Skip,
    /// Warn and pin the digest instead, which works with any pull policy.
    Pin,
}

/// The form of a `set-env` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvValue {
    /// `sha256:…`.
    #[default]
    Digest,
    /// `registry/repo@sha256:…`.
    Reference,
}

/// One `freshet.io/set-env` entry: container `container`'s env var `var` follows the
/// digest of `image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetEnv {
    /// The container name.
    pub container: String,
    /// The env var name.
    pub var: String,
    /// The tracked image (always a digest watch of its tag).
    pub image: Reference,
    /// The value form.
    pub value: EnvValue,
    /// An extra annotation set to this image's digest with each refresh
    /// (`… annotation=KEY` after the image).
    pub audit_annotation: Option<String>,
}

/// Where an enrollment came from, for logs and `plan` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `freshet.io/*` annotations.
    Annotations,
    /// `keel.sh/*` annotations.
    Keel,
    /// A rule of the config file (its index).
    Rule(usize),
}

/// How one workload is tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The policy for container images (`None`: only `set-env` entries are tracked).
    pub policy: Option<Policy>,
    /// What a refresh does to container images.
    pub action: ActionKind,
    /// Only these containers (`None`: all).
    pub containers: Option<BTreeSet<String>>,
    /// The env vars that follow other images.
    pub set_env: Vec<SetEnv>,
    /// Failures in a row before freshet fails loudly.
    pub threshold: u32,
    /// What a restart does when pods would not pull.
    pub if_not_always: IfNotAlways,
    /// When the workload is due (`None`: every run).
    pub schedule: Option<Schedule>,
    /// An extra annotation set to the digest of each refresh of the workload's
    /// images (`freshet.io/audit-annotation`, or a rule's `auditAnnotation`).
    pub audit_annotation: Option<String>,
    /// Where this came from.
    pub source: Source,
    /// Whether a digest watch refreshes pods that run an older image than the tag
    /// names, on first sight too ([`CATCH_UP`]; default true).
    pub catch_up: bool,
    /// Keel's `keel.sh/monitorContainers`: only containers whose name matches.
    pub monitor: Option<ContainerPattern>,
    /// Whether init containers are tracked (`keel.sh/initContainers`).
    pub init_containers: bool,
    /// Failure thresholds per image glob (the matching rule's `thresholds:`), over
    /// `threshold`.
    pub thresholds: crate::safety::ImageThresholds,
}

impl Enrollment {
    /// Whether the enrollment covers container `name` (by `freshet.io/containers`).
    pub fn covers(&self, name: &str) -> bool {
        self.containers.as_ref().is_none_or(|c| c.contains(name))
    }

    /// Checks the enrollment against the workload's (container, image) pairs:
    /// `freshet.io/containers` must name only containers it has, and with an image
    /// policy every covered container's image must parse. Either failure is
    /// reported like invalid annotations, never as "current".
    pub fn check_containers(&self, containers: &[(&str, &str)]) -> Result<(), EnrollError> {
        if let Some(named) = &self.containers {
            let missing: Vec<&str> = named
                .iter()
                .map(String::as_str)
                .filter(|n| !containers.iter().any(|(c, _)| c == n))
                .collect();
            if named.is_empty() || !missing.is_empty() {
                let list = |v: Vec<&str>, empty: &str| {
                    if v.is_empty() {
                        empty.to_owned()
                    } else {
                        v.join(",")
                    }
                };
                return Err(EnrollError::NoSuchContainer {
                    value: named.iter().cloned().collect::<Vec<_>>().join(","),
                    missing: list(missing, "(none given)"),
                    has: list(containers.iter().map(|(c, _)| *c).collect(), "(none)"),
                });
            }
        }
        if self.policy.is_none() {
            return Ok(());
        }
        for (name, image) in containers.iter().filter(|(n, _)| self.covers(n)) {
            if let Err(e) = crate::Reference::parse(image) {
                return Err(EnrollError::InvalidImage {
                    container: (*name).to_owned(),
                    image: (*image).to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether the enrollment tracks `container`: covered by name, matched by
    /// `keel.sh/monitorContainers`, and not an init container unless those are tracked.
    pub fn tracks(&self, container: &super::workload::Container) -> bool {
        self.covers(&container.name)
            && self
                .monitor
                .as_ref()
                .is_none_or(|m| m.0.is_match(&container.name))
            && (self.init_containers || !container.init)
    }
}

/// A `keel.sh/monitorContainers` regex (compared by its text).
#[derive(Debug, Clone)]
pub struct ContainerPattern(regex::Regex);

impl PartialEq for ContainerPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for ContainerPattern {}

impl ContainerPattern {
    /// Compiles `value` (bounded in size; an invalid regex is an error, where Keel
    /// logs it and watches every container).
    pub fn parse(value: &str) -> Result<ContainerPattern, EnrollError> {
        regex::RegexBuilder::new(value)
            .size_limit(1 << 20)
            .build()
            .map(ContainerPattern)
            .map_err(|e| EnrollError::Value {
                key: KEEL_MONITOR_CONTAINERS,
                value: format!("{} ({e})", value.chars().take(200).collect::<String>()),
                fix: "write a regular expression over container names, e.g. ^(api|worker)$",
            })
    }
}

/// The default action for a policy: digest watches restart, version policies move tags.
pub fn default_action(policy: &Policy) -> ActionKind {
    match policy.kind() {
        PolicyKind::Semver(_) | PolicyKind::Regex(_) => ActionKind::SetImage,
        _ => ActionKind::Restart,
    }
}

/// Reads a workload's annotations. `Ok(None)`: not enrolled (no freshet or Keel
/// annotation, or `freshet.io/policy: never`).
pub fn from_annotations(annotations: &crate::Labels) -> Result<Option<Enrollment>, EnrollError> {
    let get = |k: &str| {
        annotations
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let (policy, source) = match (get(POLICY), get(KEEL_POLICY)) {
        (Some(p), _) => (Some(parse_policy(POLICY, p)?), Source::Annotations),
        (None, Some(k)) => (
            Some(keel_policy(
                k,
                get(KEEL_MATCH_TAG),
                get(KEEL_MATCH_PRERELEASE),
            )?),
            Source::Keel,
        ),
        (None, None) => (None, Source::Annotations),
    };
    if policy.as_ref().is_some_and(Policy::is_never) {
        return Ok(None);
    }
    let set_env = match get(SET_ENV) {
        Some(v) => parse_set_env(v, parse_env_value(get(SET_ENV_VALUE))?)?,
        None => Vec::new(),
    };
    if policy.is_none() && set_env.is_empty() {
        return Ok(None);
    }
    let action = match get(ACTION) {
        Some(v) => parse_action(v)?,
        None => policy.as_ref().map_or(ActionKind::Restart, default_action),
    };
    let containers = get(CONTAINERS).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let threshold = match get(THRESHOLD) {
        Some(v) => parse_threshold(THRESHOLD, v)?,
        None => DEFAULT_THRESHOLD,
    };
    let if_not_always = if_not_always(get(IF_NOT_ALWAYS))?;
    let schedule = match (get(SCHEDULE), get(KEEL_POLL_SCHEDULE)) {
        (Some(v), _) => Some(parse_schedule(SCHEDULE, v)?),
        (None, Some(v)) => Some(parse_schedule(KEEL_POLL_SCHEDULE, v)?),
        (None, None) => None,
    };
    let catch_up = catch_up(get(CATCH_UP))?;
    check_trigger(get(KEEL_TRIGGER))?;
    let (monitor, init_containers) = container_filters(
        get(KEEL_MONITOR_CONTAINERS),
        get(KEEL_INIT_CONTAINERS),
        &source,
    )?;
    let audit_annotation = match get(AUDIT_ANNOTATION) {
        Some(v) => Some(audit_annotation_key(v).map_err(|fix| EnrollError::Value {
            key: AUDIT_ANNOTATION,
            value: v.into(),
            fix,
        })?),
        None => None,
    };
    Ok(Some(Enrollment {
        policy,
        action,
        containers,
        set_env,
        threshold,
        if_not_always,
        schedule,
        audit_annotation,
        source,
        catch_up,
        monitor,
        init_containers,
        thresholds: Default::default(),
    }))
}

/// `freshet.io/if-pull-policy-not-always` (default `skip`).
fn if_not_always(value: Option<&str>) -> Result<IfNotAlways, EnrollError> {
    match value {
        None | Some("skip") => Ok(IfNotAlways::Skip),
        Some("pin") => Ok(IfNotAlways::Pin),
        Some(other) => Err(EnrollError::Value {
            key: IF_NOT_ALWAYS,
            value: other.into(),
            fix: "use skip or pin",
        }),
    }
}

/// `freshet.io/catch-up` (default true).
fn catch_up(value: Option<&str>) -> Result<bool, EnrollError> {
    match value {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(EnrollError::Value {
            key: CATCH_UP,
            value: other.into(),
            fix: "use true or false",
        }),
    }
}

/// `keel.sh/trigger`: freshet polls, so only `poll` and `default` are accepted.
fn check_trigger(value: Option<&str>) -> Result<(), EnrollError> {
    match value {
        None => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("poll") || v.eq_ignore_ascii_case("default") => Ok(()),
        Some(other) => Err(EnrollError::Value {
            key: KEEL_TRIGGER,
            value: other.into(),
            fix: "use poll or default (freshet polls either way)",
        }),
    }
}

/// Keel's container filters: `keel.sh/monitorContainers` and
/// `keel.sh/initContainers` (default: Keel's `false` for a Keel enrollment, else
/// freshet's `true`).
fn container_filters(
    monitor: Option<&str>,
    init: Option<&str>,
    source: &Source,
) -> Result<(Option<ContainerPattern>, bool), EnrollError> {
    let monitor = monitor.map(ContainerPattern::parse).transpose()?;
    let init = match init {
        None => *source != Source::Keel,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(EnrollError::Value {
                key: KEEL_INIT_CONTAINERS,
                value: other.into(),
                fix: "use true or false",
            });
        }
    };
    Ok((monitor, init))
}

fn parse_policy(key: &'static str, value: &str) -> Result<Policy, EnrollError> {
    Policy::parse(value).map_err(|e| EnrollError::Policy {
        key,
        value: value.into(),
        reason: e.to_string(),
    })
}

/// Keel's policy with Keel's modifiers. `force` is a digest watch of the tag as
/// written, with or without `matchTag`; `matchPreRelease: false` lets a
/// pre-release move to a release (Keel's default, `true`, keeps pre-release labels).
fn keel_policy(
    value: &str,
    match_tag: Option<&str>,
    match_pre: Option<&str>,
) -> Result<Policy, EnrollError> {
    let bool_of = |key: &'static str, v: Option<&str>, default: bool| match v {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(EnrollError::Value {
            key,
            value: v.into(),
            fix: "use true or false",
        }),
    };
    let match_tag = bool_of(KEEL_MATCH_TAG, match_tag, false)?;
    let match_pre = bool_of(KEEL_MATCH_PRERELEASE, match_pre, true)?;
    if value.eq_ignore_ascii_case("force") && match_tag {
        return parse_policy(KEEL_POLICY, "digest");
    }
    let policy = parse_policy(KEEL_POLICY, value)?;
    Ok(if match_pre {
        policy
    } else {
        policy.with_prerelease(true)
    })
}

fn parse_action(value: &str) -> Result<ActionKind, EnrollError> {
    match value {
        "restart" => Ok(ActionKind::Restart),
        "pin" => Ok(ActionKind::Pin),
        "set-image" => Ok(ActionKind::SetImage),
        other => Err(EnrollError::Value {
            key: ACTION,
            value: other.into(),
            fix: "use restart, pin or set-image",
        }),
    }
}

fn parse_env_value(value: Option<&str>) -> Result<EnvValue, EnrollError> {
    match value {
        None | Some("digest") => Ok(EnvValue::Digest),
        Some("reference") => Ok(EnvValue::Reference),
        Some(other) => Err(EnrollError::Value {
            key: SET_ENV_VALUE,
            value: other.into(),
            fix: "use digest or reference",
        }),
    }
}

fn parse_schedule(key: &'static str, value: &str) -> Result<Schedule, EnrollError> {
    Schedule::parse(value).map_err(|e| EnrollError::Schedule {
        key,
        reason: e.to_string(),
    })
}

/// Parses a failure threshold: an integer of at least 1.
pub fn parse_threshold(key: &'static str, value: &str) -> Result<u32, EnrollError> {
    match value.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(EnrollError::Value {
            key,
            value: value.into(),
            fix: "use an integer of at least 1 (default 3)",
        }),
    }
}

/// Parses `api/VAR=image:tag` entries separated by commas or newlines.
pub fn parse_set_env(value: &str, form: EnvValue) -> Result<Vec<SetEnv>, EnrollError> {
    let mut out: Vec<SetEnv> = Vec::new();
    for entry in value
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let bad = |reason: &str| EnrollError::SetEnv {
            entry: entry.into(),
            reason: reason.into(),
        };
        let (target, image) = entry.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (container, var) = target
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("no CONTAINER/ before the variable"))?;
        if container.is_empty() || var.is_empty() {
            return Err(bad("empty container or variable name"));
        }
        if !var
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            || var.as_bytes()[0].is_ascii_digit()
        {
            return Err(bad(
                "the variable name must be a C identifier (letters, digits, _; not starting with a digit)",
            ));
        }
        let mut words = image.split_whitespace();
        let image = words.next().unwrap_or_default();
        let audit_annotation = match words.next().map(|w| w.split_once('=')) {
            None => None,
            Some(Some(("annotation", key))) => Some(audit_annotation_key(key).map_err(bad)?),
            Some(_) => return Err(bad("after the image, only annotation=KEY may follow")),
        };
        if words.next().is_some() {
            return Err(bad("after the image, only annotation=KEY may follow"));
        }
        let image = Reference::parse(image).map_err(|e| bad(&e.to_string()))?;
        if out.iter().any(|s| s.container == container && s.var == var) {
            return Err(bad("this container and variable appear twice"));
        }
        out.push(SetEnv {
            container: container.into(),
            var: var.into(),
            image,
            value: form,
            audit_annotation,
        });
    }
    Ok(out)
}

/// Checks an extra audit annotation's name: a Kubernetes annotation key (an
/// optional DNS-subdomain prefix and `/`, then 1 to 63 characters of `[A-Za-z0-9._-]`
/// starting and ending alphanumeric), outside freshet's own `freshet.io/` keys.
pub fn audit_annotation_key(key: &str) -> Result<String, &'static str> {
    const FIX: &str = "use a Kubernetes annotation key such as example.com/last-refreshed-app-digest (prefix: a lowercase DNS subdomain; name: 1 to 63 of A-Z a-z 0-9 . _ -, alphanumeric at both ends; not under freshet.io/)";
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && alnum(name.chars().next())
        && alnum(name.chars().last());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    let ours = prefix.is_some_and(|p| p == "freshet.io" || p.ends_with(".freshet.io"));
    if name_ok && prefix_ok && !ours {
        Ok(key.to_owned())
    } else {
        Err(FIX)
    }
}

#[cfg(test)]
mod tests;
