//! The runbook commands as decisions: `freshet rollback`, `pin`, `hold`, `release`
//! and `approve`, each turned into one [`Rollback`]-shaped value (pod-template
//! changes and annotations) that the shell sends as one patch with the
//! `resourceVersion` it read.
//!
//! Owns the grammar of a command's target (`KIND/NAMESPACE/NAME`), the choice of
//! containers (`--container`, or the one image the workload runs), the
//! `freshet.io/pin` record (what `freshet pin` pinned and the floating image strings
//! to go back to, honoured by [`super::gate`] until `freshet release`), and what
//! each command changes. Must not read the cluster, a registry or the clock: the
//! shell passes the workload's containers, the digests its pods run (their
//! `imageID`), its holds and `now`, checks a rollback target exists in the registry
//! before any write, and performs the result.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::hold::{HOLD, Holds};
use super::rollback::{Rollback, to_digest};
use super::spec::{Container, Restore};
use super::{MAX_ANNOTATION, json_reason, rfc3339};
use crate::refresh::WorkloadKind;
use crate::{Digest, Reference};

/// `freshet.io/pin`: what `freshet pin` pinned, until `freshet release`.
pub const PIN: &str = "freshet.io/pin";

/// Why a command was refused before anything was read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The target is not `KIND/NAMESPACE/NAME`.
    #[error(
        "{given:?}: {reason}; write KIND/NAMESPACE/NAME, e.g. deployment/shop/api (kinds: deployment, statefulset, daemonset, cronjob)"
    )]
    Target {
        /// The argument as given (bounded).
        given: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `--container` names no container of the workload.
    #[error("the workload has no container {given:?}; its containers: {names}")]
    NoContainer {
        /// The name given.
        given: String,
        /// The containers it has.
        names: String,
    },
    /// No `--container`, and the workload runs several images.
    #[error("the workload runs several images ({images}); pass --container NAME")]
    Ambiguous {
        /// The repositories.
        images: String,
    },
    /// The container's image does not parse.
    #[error("container {container}: image {image:?} is not a reference freshet can pin")]
    Image {
        /// The container.
        container: String,
        /// Its image.
        image: String,
    },
    /// `freshet pin`: no pod reports the digest a container runs.
    #[error(
        "container {container}: no running pod reports its image digest (imageID); nothing to pin: wait for a pod to start, or use freshet rollback --to DIGEST"
    )]
    NotRunning {
        /// The container.
        container: String,
    },
    /// `freshet pin`: pods run several digests (a rollout in progress).
    #[error(
        "container {container}: pods run several digests ({digests}); wait for the rollout to finish, or choose one with freshet rollback --to DIGEST"
    )]
    Mixed {
        /// The container.
        container: String,
        /// The digests.
        digests: String,
    },
    /// `freshet release`: nothing is pinned or held.
    #[error("nothing to release: the workload has no freshet.io/pin and no freshet.io/hold{repo}")]
    NothingToRelease {
        /// ` for REPOSITORY`, or nothing.
        repo: String,
    },
}

/// Why a `freshet.io/pin` record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "annotation {PIN}: {reason}; freshet writes it itself: use `freshet release` (or remove the annotation) to resume tracking"
)]
pub struct PinError {
    /// What the parser said.
    pub reason: String,
}

/// A workload a command acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Its kind.
    #[serde(skip)]
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Target {
    /// Parses `KIND/NAMESPACE/NAME` (kinds case-insensitive, with kubectl's short
    /// names `deploy`, `sts`, `ds`, `cj`).
    pub fn parse(text: &str) -> Result<Target, CommandError> {
        let bad = |reason| CommandError::Target {
            given: text.chars().take(300).collect(),
            reason,
        };
        let parts: Vec<&str> = text.split('/').collect();
        let [kind, namespace, name] = parts[..] else {
            return Err(bad("expected three parts separated by /"));
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
            "cronjob" | "cronjobs" | "cj" => WorkloadKind::CronJob,
            _ => return Err(bad("unknown kind")),
        };
        let dns = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !dns(namespace) || !dns(name) {
            return Err(bad(
                "the namespace and name must be lowercase DNS names (a-z, 0-9, '-', '.')",
            ));
        }
        Ok(Target {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

/// The `freshet.io/pin` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// When `freshet pin` pinned it.
    #[serde(with = "rfc3339")]
    pub since: DateTime<Utc>,
    /// Pinned containers, with the image string each had before (for `release`).
    #[serde(default)]
    pub floating: BTreeMap<String, String>,
}

impl Pin {
    /// Parses the annotation value (`None` or empty: not pinned).
    pub fn parse(value: Option<&str>) -> Result<Option<Pin>, PinError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if value.len() > MAX_ANNOTATION {
            return Err(PinError {
                reason: format!("the value is {} bytes, over 256 KiB", value.len()),
            });
        }
        serde_json::from_str(value).map(Some).map_err(|e| PinError {
            reason: json_reason(&e),
        })
    }

    /// The annotation value.
    pub fn render(&self) -> String {
        serde_json::to_string(self).expect("a pin serialises")
    }
}

/// The containers a command acts on: `--container`'s, else every (non-init)
/// container running the workload's one image.
pub fn select<'c>(
    containers: &'c [Container],
    container: Option<&str>,
) -> Result<Vec<&'c Container>, CommandError> {
    if let Some(name) = container {
        return match containers.iter().find(|c| c.name == name) {
            Some(c) => Ok(vec![c]),
            None => Err(CommandError::NoContainer {
                given: name.chars().take(253).collect(),
                names: containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        };
    }
    let main: Vec<&Container> = containers.iter().filter(|c| !c.init).collect();
    let repos: BTreeSet<String> = main
        .iter()
        .map(|c| repository(c))
        .collect::<Result<_, _>>()?;
    if repos.len() > 1 {
        return Err(CommandError::Ambiguous {
            images: repos.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(main)
}

/// The canonical repository of a container's image.
pub fn repository(c: &Container) -> Result<String, CommandError> {
    Reference::parse(&c.image)
        .map(|r| r.name())
        .map_err(|_| CommandError::Image {
            container: c.name.clone(),
            image: c.image.chars().take(300).collect(),
        })
}

/// `freshet rollback … --to DIGEST` (or the digest of `--to-revision N`): pins the
/// selected containers to `to`, keeping each one's tag and spelling, and holds every
/// other digest their pods run (`running`, from `imageID`).
pub fn rollback(
    selected: &[&Container],
    to: &Digest,
    running: &BTreeMap<String, BTreeSet<Digest>>,
    holds: &Holds,
    now: DateTime<Utc>,
) -> Result<Rollback, CommandError> {
    let mut out = Rollback {
        holds: holds.clone(),
        ..Rollback::default()
    };
    for c in selected {
        let repo = repository(c)?;
        let bad: Vec<&Digest> = running
            .get(&c.name)
            .into_iter()
            .flatten()
            .filter(|d| *d != to)
            .collect();
        let one = [(*c).clone()];
        let mut step = to_digest(&repo, to, bad.first().copied(), &one, &out.holds, now);
        for d in bad.iter().skip(1) {
            step.holds.hold(&repo, d, BTreeMap::new(), now);
        }
        out.restores.append(&mut step.restores);
        out.holds = step.holds;
    }
    if out.holds != *holds {
        out.annotations.insert(HOLD.into(), out.holds.render());
    }
    Ok(out)
}

/// `freshet pin`: pins each selected container to the one digest its pods run, and
/// records the pin so freshet stops tracking the workload until `freshet release`.
pub fn pin(
    selected: &[&Container],
    running: &BTreeMap<String, BTreeSet<Digest>>,
    current: Option<&Pin>,
    now: DateTime<Utc>,
) -> Result<Rollback, CommandError> {
    let mut out = Rollback::default();
    let mut record = current.cloned().unwrap_or(Pin {
        since: now,
        floating: BTreeMap::new(),
    });
    for c in selected {
        let digests = running.get(&c.name).cloned().unwrap_or_default();
        let digest = match digests.len() {
            0 => {
                return Err(CommandError::NotRunning {
                    container: c.name.clone(),
                });
            }
            1 => digests.into_iter().next().expect("one digest"),
            _ => {
                return Err(CommandError::Mixed {
                    container: c.name.clone(),
                    digests: digests
                        .iter()
                        .map(Digest::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };
        let repo = repository(c)?;
        let step = to_digest(
            &repo,
            &digest,
            None,
            &[(*c).clone()],
            &Holds::default(),
            now,
        );
        for r in step.restores {
            if let Restore::Image {
                container, from, ..
            } = &r
            {
                record
                    .floating
                    .entry(container.clone())
                    .or_insert_with(|| from.clone());
            }
            out.restores.push(r);
        }
    }
    if current != Some(&record) {
        out.annotations.insert(PIN.into(), Some(record.render()));
    }
    Ok(out)
}

/// `freshet hold … DIGEST`: holds `digest` for the selected containers' repositories.
pub fn hold(
    selected: &[&Container],
    digest: &Digest,
    holds: &Holds,
    now: DateTime<Utc>,
) -> Result<Rollback, CommandError> {
    let mut out = Rollback {
        holds: holds.clone(),
        ..Rollback::default()
    };
    for c in selected {
        out.holds
            .hold(&repository(c)?, digest, BTreeMap::new(), now);
    }
    if out.holds != *holds {
        out.annotations.insert(HOLD.into(), out.holds.render());
    }
    Ok(out)
}

/// `freshet release`: removes the pin and the holds of the selected containers'
/// repositories (all of them without `--container`), and puts containers a pin or
/// a rollback pinned back on their floating image string.
pub fn release(
    containers: &[Container],
    only: Option<&[&Container]>,
    pin: Option<&Pin>,
    holds: &Holds,
) -> Result<Rollback, CommandError> {
    let repos: Option<BTreeSet<String>> = only
        .map(|cs| cs.iter().map(|c| repository(c)).collect())
        .transpose()?;
    let wanted = |repo: &str| repos.as_ref().is_none_or(|r| r.contains(repo));
    let mut out = Rollback {
        holds: holds.clone(),
        ..Rollback::default()
    };
    let mut floating: BTreeMap<String, String> = BTreeMap::new();
    for repo in holds.0.keys().filter(|r| wanted(r)) {
        if let Some(held) = out.holds.release(repo) {
            for r in held.unpin(repo, containers) {
                floating.insert(r.container().to_owned(), restore_to(&r));
            }
        }
    }
    if let Some(pin) = pin {
        let mut left = pin.clone();
        for (name, image) in &pin.floating {
            let Some(c) = containers.iter().find(|c| &c.name == name) else {
                left.floating.remove(name);
                continue;
            };
            if !wanted(&repository(c)?) {
                continue;
            }
            left.floating.remove(name);
            if c.image != *image {
                floating
                    .entry(name.clone())
                    .or_insert_with(|| image.clone());
            }
        }
        let value = (!left.floating.is_empty() && only.is_some()).then(|| left.render());
        out.annotations.insert(PIN.into(), value);
    }
    if out.holds != *holds {
        out.annotations.insert(HOLD.into(), out.holds.render());
    }
    if out.annotations.is_empty() {
        return Err(CommandError::NothingToRelease {
            repo: repos
                .map(|r| format!(" for {}", r.into_iter().collect::<Vec<_>>().join(", ")))
                .unwrap_or_default(),
        });
    }
    for (name, to) in floating {
        let c = containers
            .iter()
            .find(|c| c.name == name)
            .expect("found above");
        out.restores.push(Restore::Image {
            container: name,
            init: c.init,
            from: c.image.clone(),
            to,
        });
    }
    Ok(out)
}

fn restore_to(r: &Restore) -> String {
    match r {
        Restore::Image { to, .. } => to.clone(),
        Restore::Env { to, .. } => to.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
