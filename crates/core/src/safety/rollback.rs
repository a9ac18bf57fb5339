//! Rollback: the one change that restores a workload's last good state after a
//! failed rollout, and the hold that stops freshet from rolling the bad digest out
//! again.
//!
//! Owns the failure response (`onFailure: rollback | pause | none`, default
//! `rollback`) and the rollback target per action:
//!
//! | action | restores | why |
//! |---|---|---|
//! | `restart` of a floating tag | `repo:tag@sha256:<last good>` | `kubectl rollout undo` brings back a template that still names the tag, so pods would pull the bad image again; only a digest pin restores the old image |
//! | `pin`, `set-image` | the previous image string | |
//! | `set-env` | the previous value (or removes a variable that was unset) | |
//!
//! [`respond`] answers a failed rollout from its record; [`refused`] counts a
//! rollback the API refused in the failure streak; [`to_digest`] is the
//! manual `freshet rollback … --to DIGEST` (and, with `running: None`, the pin of
//! `freshet pin`). A container whose value is no longer what freshet rolled out (a person or a GitOps
//! tool changed it since) is left alone and reported in [`Rollback::skipped`]. Must
//! not write or look anything up: the shell checks the target digest exists in the
//! registry, then sends [`Rollback::restores`] and [`Rollback::annotations`] in one
//! patch with `resourceVersion`, and emits the `RolledBack` Warning Event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::hold::{HOLD, Holds};
use super::rollout::{Action, ROLLOUT, Rollout, RolloutChange};
use super::spec::{Container, Restore, pinned};
use super::threshold::Threshold;
use crate::refresh::audit::Audit;
use crate::refresh::plan::annotation_text;
use crate::refresh::{Streak, WorkloadPlan};
use crate::{Digest, Reference};

/// `freshet.io/on-failure`.
pub const ON_FAILURE: &str = "freshet.io/on-failure";

/// What the accepted `onFailure` values are, for error messages.
pub const ON_FAILURE_FIX: &str = "use rollback (the default), pause or none";

/// Why an `onFailure` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// The value is not `rollback`, `pause` or `none`.
    #[error("{key}: {value:?} is not a failure response; {ON_FAILURE_FIX}")]
    OnFailure {
        /// The annotation or config key (`freshet.io/on-failure`, `rules[0].onFailure`).
        key: String,
        /// The value as written.
        value: String,
    },
}

/// What freshet does when a rollout it started fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Restore the last good state and hold the bad digest.
    #[default]
    Rollback,
    /// Hold the bad digest and pause the rollout (a Deployment's `spec.paused`) for a
    /// person to decide; nothing is restored.
    Pause,
    /// Only report (Event, failure streak); nothing is held or restored.
    None,
}

impl OnFailure {
    /// Parses `rollback`, `pause` or `none` (case-insensitive, spaces ignored).
    pub fn parse(key: &str, value: &str) -> Result<OnFailure, RollbackError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "rollback" => Ok(OnFailure::Rollback),
            "pause" => Ok(OnFailure::Pause),
            "none" => Ok(OnFailure::None),
            _ => Err(RollbackError::OnFailure {
                key: key.to_owned(),
                value: value.to_owned(),
            }),
        }
    }

    /// The workload's `freshet.io/on-failure` annotation, else the rule's value,
    /// else `rollback`.
    pub fn from_annotations(
        annotations: &crate::Labels,
        rule: Option<OnFailure>,
    ) -> Result<OnFailure, RollbackError> {
        match annotations.get(ON_FAILURE).filter(|v| !v.trim().is_empty()) {
            Some(v) => OnFailure::parse(ON_FAILURE, v),
            None => Ok(rule.unwrap_or_default()),
        }
    }

    /// The spelling in annotations and config.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Pause => "pause",
            OnFailure::None => "none",
        }
    }
}

/// The response to one failed rollout: one patch's worth of changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollback {
    /// Pod-template changes that restore the last good state.
    pub restores: Vec<Restore>,
    /// Pause the rollout (`spec.paused: true` on a Deployment; other kinds cannot
    /// pause, and the shell warns instead).
    pub pause: bool,
    /// The annotations to set (`Some`) or remove (`None`): the rollout record goes,
    /// the hold is written.
    pub annotations: BTreeMap<String, Option<String>>,
    /// The holds after the response (what `freshet.io/hold` now says).
    pub holds: Holds,
    /// Changes left alone, with why (for the Event and the log).
    pub skipped: Vec<String>,
}

impl Rollback {
    /// Whether the response writes a pod-template change (and is thus a rollout the
    /// shell follows like any other).
    pub fn restores_anything(&self) -> bool {
        !self.restores.is_empty()
    }
}

/// The response to the failed `rollout`: `containers` are the workload's containers
/// now, `holds` its current holds, `now` the time the hold starts.
pub fn respond(
    mode: OnFailure,
    rollout: &Rollout,
    containers: &[Container],
    holds: &Holds,
    now: DateTime<Utc>,
) -> Rollback {
    let mut out = Rollback {
        holds: holds.clone(),
        pause: mode == OnFailure::Pause,
        ..Rollback::default()
    };
    out.annotations.insert(ROLLOUT.into(), None);
    if mode == OnFailure::None {
        return out;
    }
    for change in &rollout.changes {
        let mut floating = BTreeMap::new();
        if mode == OnFailure::Rollback {
            restore(change, containers, &mut out, &mut floating);
        }
        if let Ok(digest) = Digest::parse(&change.digest) {
            out.holds.hold(&change.image, &digest, floating, now);
        }
    }
    if out.holds != *holds {
        out.annotations.insert(HOLD.into(), out.holds.render());
    }
    out
}

/// `freshet rollback … --to DIGEST`: pins every container running `repository` to
/// `to` (keeping each one's tag and spelling) and holds `running`, the digest the
/// pods run now (from their `imageID`), when it differs. The shell checks first that
/// the registry has `to`. Containers that were floating are remembered, so a lifted
/// hold or `freshet release` puts them back on their tag.
pub fn to_digest(
    repository: &str,
    to: &Digest,
    running: Option<&Digest>,
    containers: &[Container],
    holds: &Holds,
    now: DateTime<Utc>,
) -> Rollback {
    let mut out = Rollback {
        holds: holds.clone(),
        ..Rollback::default()
    };
    let mut floating = BTreeMap::new();
    for c in containers {
        let Ok(r) = Reference::parse(&c.image) else {
            continue;
        };
        if r.name() != repository {
            continue;
        }
        let Some(pin) = pinned(&c.image, to).filter(|p| *p != c.image) else {
            continue;
        };
        if r.digest().is_none() {
            floating.insert(c.name.clone(), c.image.clone());
        }
        out.restores.push(Restore::Image {
            container: c.name.clone(),
            init: c.init,
            from: c.image.clone(),
            to: pin,
        });
    }
    if let Some(bad) = running.filter(|d| *d != to) {
        out.holds.hold(repository, bad, floating, now);
    }
    if out.holds != *holds {
        out.annotations.insert(HOLD.into(), out.holds.render());
    }
    out
}

fn restore(
    change: &RolloutChange,
    containers: &[Container],
    out: &mut Rollback,
    floating: &mut BTreeMap<String, String>,
) {
    for name in &change.containers {
        let Some(c) = containers
            .iter()
            .find(|c| &c.name == name && c.init == change.init)
        else {
            out.skipped
                .push(format!("{name}: the container is gone; nothing to restore"));
            continue;
        };
        let skip = |out: &mut Rollback, why: &str| {
            out.skipped.push(format!("{name}: {why}; left alone"));
        };
        match change.action {
            Action::Restart => {
                let now = Reference::parse(&c.image).ok();
                let ours = now
                    .as_ref()
                    .is_some_and(|r| r.digest().is_none() && r.name() == change.image);
                let last_good = change.from.as_deref().and_then(|d| Digest::parse(d).ok());
                match (ours, last_good.and_then(|d| pinned(&c.image, &d))) {
                    (true, Some(to)) => {
                        floating.insert(c.name.clone(), c.image.clone());
                        out.restores.push(Restore::Image {
                            container: c.name.clone(),
                            init: c.init,
                            from: c.image.clone(),
                            to,
                        });
                    }
                    _ => skip(
                        out,
                        &format!(
                            "the image is {:?}, no longer the floating tag freshet restarted",
                            c.image
                        ),
                    ),
                }
            }
            Action::Pin | Action::SetImage => match &change.from {
                Some(from) if c.image == change.to => out.restores.push(Restore::Image {
                    container: c.name.clone(),
                    init: c.init,
                    from: c.image.clone(),
                    to: from.clone(),
                }),
                _ => skip(
                    out,
                    &format!(
                        "the image is {:?}, not {:?} as freshet set it",
                        c.image, change.to
                    ),
                ),
            },
            Action::SetEnv => {
                let var = change.var.clone().unwrap_or_default();
                let now = c.env.get(&var).cloned().flatten();
                if now.as_deref() == Some(change.to.as_str()) {
                    out.restores.push(Restore::Env {
                        container: c.name.clone(),
                        init: c.init,
                        var,
                        from: now,
                        to: change.from.clone(),
                    });
                } else {
                    skip(out, &format!("{var} changed since freshet set it"));
                }
            }
        }
    }
}

/// A failed rollout (rolled back, or whose rollback the API refused: its patch was
/// denied or invalid): a failure of each image the rollout changed, counted in the
/// workload's failure streak like any other failure
/// (`freshet.io/refresh-consecutive-failures`), so it warns below the image's
/// threshold and escalates at it (with `freshet.io/refresh-last-error`). A rollback
/// writes it in its own patch; a refused one alone, and its record stays, so the
/// next pass judges and tries the rollback again, and counts again if refused
/// again. Returns the plan recording it: annotations and streaks only, no spec
/// change.
pub fn refused(
    annotations: &crate::Labels,
    record: &Rollout,
    threshold: impl Fn(&str) -> Threshold,
    message: &str,
) -> WorkloadPlan {
    let old = Audit::read(annotations);
    let mut new = old.clone();
    let mut out = WorkloadPlan::default();
    let mut images: Vec<&str> = record.changes.iter().map(|c| c.image.as_str()).collect();
    images.sort_unstable();
    images.dedup();
    for image in images {
        let count = old.failures_of(image).saturating_add(1);
        new.failures.insert(image.to_owned(), count);
        let streak = Streak {
            image: image.to_owned(),
            count,
            message: message.to_owned(),
        };
        let t = threshold(image);
        if t.escalates(count) {
            if !t.escalates(count - 1) {
                out.reached.push(streak.clone());
            }
            out.escalations.push(streak);
        } else {
            out.transient.push(streak);
        }
    }
    if let Some(e) = out.escalations.first() {
        new.last_error = Some(annotation_text(&format!(
            "{}: {} failures in a row: {}",
            e.image, e.count, e.message
        )));
    }
    out.annotations = old.diff(&new);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::hold::HoldCheck;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
    }

    fn rollout(action: Action, from: Option<&str>, to: &str, var: Option<&str>) -> Rollout {
        Rollout {
            started: t(0),
            deadline: t(600),
            changes: vec![RolloutChange {
                image: "ghcr.io/acme/api".into(),
                action,
                containers: vec!["api".into()],
                init: false,
                var: var.map(Into::into),
                from: from.map(Into::into),
                to: to.into(),
                digest: d('b'),
            }],
        }
    }

    fn api(image: &str, env: &[(&str, &str)]) -> Vec<Container> {
        vec![Container {
            name: "api".into(),
            init: false,
            image: image.into(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect(),
        }]
    }

    /// Table: (action, from, to, var, container image now, env now, restored to).
    #[test]
    fn each_action_restores_its_last_good_state() {
        let pinned_a = format!("ghcr.io/acme/api:1.2@{}", d('a'));
        let pinned_b = format!("ghcr.io/acme/api:1.2@{}", d('b'));
        let latest_a = format!("ghcr.io/acme/api:latest@{}", d('a'));
        type Case<'a> = (
            Action,
            Option<String>,
            String,
            Option<&'a str>,
            &'a str,
            Vec<(&'a str, String)>,
            Restore,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                Action::Restart,
                Some(d('a')),
                d('b'),
                None,
                "ghcr.io/acme/api:latest",
                vec![],
                Restore::Image {
                    container: "api".into(),
                    init: false,
                    from: "ghcr.io/acme/api:latest".into(),
                    to: latest_a.clone(),
                },
            ),
            (
                Action::Pin,
                Some(pinned_a.clone()),
                pinned_b.clone(),
                None,
                &pinned_b,
                vec![],
                Restore::Image {
                    container: "api".into(),
                    init: false,
                    from: pinned_b.clone(),
                    to: pinned_a.clone(),
                },
            ),
            (
                Action::SetImage,
                Some("ghcr.io/acme/api:1.2".into()),
                "ghcr.io/acme/api:1.3".into(),
                None,
                "ghcr.io/acme/api:1.3",
                vec![],
                Restore::Image {
                    container: "api".into(),
                    init: false,
                    from: "ghcr.io/acme/api:1.3".into(),
                    to: "ghcr.io/acme/api:1.2".into(),
                },
            ),
            (
                Action::SetEnv,
                Some(d('a')),
                d('b'),
                Some("WORKER_DIGEST"),
                "ghcr.io/acme/api:1",
                vec![("WORKER_DIGEST", d('b'))],
                Restore::Env {
                    container: "api".into(),
                    init: false,
                    var: "WORKER_DIGEST".into(),
                    from: Some(d('b')),
                    to: Some(d('a')),
                },
            ),
            (
                Action::SetEnv,
                None,
                d('b'),
                Some("WORKER_DIGEST"),
                "ghcr.io/acme/api:1",
                vec![("WORKER_DIGEST", d('b'))],
                Restore::Env {
                    container: "api".into(),
                    init: false,
                    var: "WORKER_DIGEST".into(),
                    from: Some(d('b')),
                    to: None,
                },
            ),
        ];
        for (action, from, to, var, image, env, want) in cases {
            let r = rollout(action, from.as_deref(), &to, var);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let out = respond(
                OnFailure::Rollback,
                &r,
                &api(image, &env),
                &Holds::default(),
                t(700),
            );
            assert_eq!(out.restores, vec![want], "{action}");
            assert!(out.skipped.is_empty(), "{action}: {:?}", out.skipped);
            assert_eq!(out.annotations[ROLLOUT], None);
            let b = Digest::parse(&d('b')).unwrap();
            assert!(out.holds.is_held("ghcr.io/acme/api", &b), "{action}");
            assert_eq!(out.annotations[HOLD], out.holds.render());
        }
    }

    #[test]
    fn a_restart_rollback_pins_and_the_next_good_digest_unpins() {
        let r = rollout(Action::Restart, Some(&d('a')), &d('b'), None);
        let out = respond(
            OnFailure::Rollback,
            &r,
            &api("ghcr.io/acme/api:latest", &[]),
            &Holds::default(),
            t(700),
        );
        let pinned = format!("ghcr.io/acme/api:latest@{}", d('a'));
        // The pods now run the pinned last good digest; the bad one is held.
        let now = api(&pinned, &[]);
        let b = Digest::parse(&d('b')).unwrap();
        let c = Digest::parse(&d('c')).unwrap();
        assert!(matches!(
            out.holds.check("ghcr.io/acme/api", &b, &now),
            HoldCheck::Held { .. }
        ));
        let HoldCheck::Lift { holds, unpin } = out.holds.check("ghcr.io/acme/api", &c, &now) else {
            panic!("a newer digest lifts the hold")
        };
        assert_eq!(holds.render(), None);
        assert_eq!(
            unpin,
            vec![Restore::Image {
                container: "api".into(),
                init: false,
                from: pinned,
                to: "ghcr.io/acme/api:latest".into()
            }]
        );
    }

    #[test]
    fn changes_made_since_the_rollout_are_left_alone() {
        let r = rollout(
            Action::SetImage,
            Some("ghcr.io/acme/api:1.2"),
            "ghcr.io/acme/api:1.3",
            None,
        );
        let out = respond(
            OnFailure::Rollback,
            &r,
            &api("ghcr.io/acme/api:1.4", &[]),
            &Holds::default(),
            t(700),
        );
        assert!(out.restores.is_empty());
        assert!(out.skipped[0].contains("left alone"), "{:?}", out.skipped);
        let r = rollout(Action::Restart, Some(&d('a')), &d('b'), None);
        let out = respond(
            OnFailure::Rollback,
            &r,
            &api("ghcr.io/acme/other:latest", &[]),
            &Holds::default(),
            t(700),
        );
        assert!(out.restores.is_empty() && out.skipped.len() == 1);
        let out = respond(OnFailure::Rollback, &r, &[], &Holds::default(), t(700));
        assert!(out.skipped[0].contains("gone"));
    }

    #[test]
    fn pause_holds_without_restoring_and_none_only_forgets_the_record() {
        let r = rollout(Action::Restart, Some(&d('a')), &d('b'), None);
        let now = api("ghcr.io/acme/api:latest", &[]);
        let out = respond(OnFailure::Pause, &r, &now, &Holds::default(), t(700));
        assert!(out.pause && out.restores.is_empty());
        assert!(out.annotations[HOLD].is_some());
        let out = respond(OnFailure::None, &r, &now, &Holds::default(), t(700));
        assert!(!out.pause && out.restores.is_empty());
        assert_eq!(out.annotations.len(), 1);
        assert_eq!(out.annotations[ROLLOUT], None);
    }

    #[test]
    fn a_manual_rollback_pins_every_container_of_the_repository_and_holds_what_runs() {
        let a = Digest::parse(&d('a')).unwrap();
        let b = Digest::parse(&d('b')).unwrap();
        let containers = vec![
            Container {
                name: "api".into(),
                image: "ghcr.io/acme/api:latest".into(),
                ..Container::default()
            },
            Container {
                name: "migrate".into(),
                init: true,
                image: format!("ghcr.io/acme/api:latest@{b}"),
                ..Container::default()
            },
            Container {
                name: "proxy".into(),
                image: "envoy:1".into(),
                ..Container::default()
            },
        ];
        let out = to_digest(
            "ghcr.io/acme/api",
            &a,
            Some(&b),
            &containers,
            &Holds::default(),
            t(0),
        );
        let pinned = format!("ghcr.io/acme/api:latest@{a}");
        let targets: Vec<(&str, &str)> = out
            .restores
            .iter()
            .map(|r| match r {
                Restore::Image { container, to, .. } => (container.as_str(), to.as_str()),
                Restore::Env { .. } => panic!(),
            })
            .collect();
        assert_eq!(
            targets,
            [("api", pinned.as_str()), ("migrate", pinned.as_str())]
        );
        let held = &out.holds.0["ghcr.io/acme/api"];
        assert!(held.digests.contains(b.as_str()));
        assert_eq!(
            held.floating,
            BTreeMap::from([("api".to_owned(), "ghcr.io/acme/api:latest".to_owned())])
        );
        assert_eq!(out.annotations[HOLD], out.holds.render());
        // Rolling back to what already runs holds nothing.
        let same = to_digest(
            "ghcr.io/acme/api",
            &b,
            Some(&b),
            &containers,
            &Holds::default(),
            t(0),
        );
        assert!(same.annotations.is_empty());
    }

    #[test]
    fn a_second_response_to_the_same_rollout_restores_nothing() {
        // What a second replica (or a retried run) would compute after the first
        // rollback landed: the containers no longer hold what freshet rolled out.
        let r = rollout(Action::Restart, Some(&d('a')), &d('b'), None);
        let first = respond(
            OnFailure::Rollback,
            &r,
            &api("ghcr.io/acme/api:latest", &[]),
            &Holds::default(),
            t(700),
        );
        let Restore::Image { to, .. } = &first.restores[0] else {
            panic!()
        };
        let second = respond(OnFailure::Rollback, &r, &api(to, &[]), &first.holds, t(800));
        assert!(second.restores.is_empty());
        assert_eq!(second.holds, first.holds);
        assert!(!second.annotations.contains_key(HOLD));
    }

    proptest::proptest! {
        /// A restart's rollback pins the container's own repository and tag to the
        /// last good digest, in the spelling it was written in.
        #[test]
        fn restart_rollbacks_pin_the_same_repository_and_tag(
            registry in proptest::sample::select(vec!["", "docker.io/", "ghcr.io/", "127.0.0.1:5000/"]),
            repo in "[a-z]{1,8}(/[a-z]{1,8})?",
            tag in proptest::option::of("[a-z0-9][a-z0-9._-]{0,10}"),
            good in "[0-9a-f]{64}",
        ) {
            let written = format!("{registry}{repo}{}", tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default());
            let current = Reference::parse(&written).unwrap();
            let mut r = rollout(Action::Restart, Some(&format!("sha256:{good}")), &d('b'), None);
            r.changes[0].image = current.name();
            let out = respond(OnFailure::Rollback, &r, &api(&written, &[]), &Holds::default(), t(700));
            proptest::prop_assert_eq!(out.restores.len(), 1);
            let Restore::Image { to, .. } = &out.restores[0] else { panic!() };
            let pinned = Reference::parse(to).unwrap();
            proptest::prop_assert_eq!(pinned.name(), current.name());
            proptest::prop_assert_eq!(pinned.tag(), current.tag());
            proptest::prop_assert_eq!(pinned.digest().map(|d| d.hex().to_owned()), Some(good));
            proptest::prop_assert_eq!(to.starts_with("docker.io/"), written.starts_with("docker.io/"));
        }
    }

    #[test]
    fn on_failure_parses_with_a_default_and_names_the_key() {
        let ann = |v: &str| crate::Labels::from_iter([(ON_FAILURE.to_owned(), v.to_owned())]);
        assert_eq!(
            OnFailure::from_annotations(&crate::Labels::new(), None),
            Ok(OnFailure::Rollback)
        );
        assert_eq!(
            OnFailure::from_annotations(&crate::Labels::new(), Some(OnFailure::None)),
            Ok(OnFailure::None)
        );
        assert_eq!(
            OnFailure::from_annotations(&ann("Pause"), Some(OnFailure::None)),
            Ok(OnFailure::Pause)
        );
        for v in ["rollback", "pause", "none"] {
            assert_eq!(OnFailure::parse("k", v).unwrap().as_str(), v);
        }
        let e = OnFailure::from_annotations(&ann("undo"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(ON_FAILURE) && e.contains("\"undo\"") && e.contains("rollback"),
            "{e}"
        );
        let e = OnFailure::parse("rules[1].onFailure", "revert")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("rules[1].onFailure"), "{e}");
    }

    /// Regression: a rollback whose patch the API refused was only reported, and
    /// never counted in the failure streak nor escalated.
    #[test]
    fn a_refused_rollback_counts_in_the_streak_and_escalates_at_the_threshold() {
        let record = rollout(Action::Restart, Some(&d('a')), &d('b'), None);
        let image = record.changes[0].image.clone();
        let at_two = |_: &str| Threshold::Count(2);
        let first = refused(&crate::Labels::new(), &record, at_two, "denied");
        assert_eq!(first.transient.len(), 1);
        assert!(first.escalations.is_empty());
        let failures = first.annotations[crate::refresh::audit::FAILURES]
            .clone()
            .unwrap();
        assert_eq!(failures, format!("{{\"{image}\":1}}"));
        let annotations =
            crate::Labels::from_iter([(crate::refresh::audit::FAILURES.to_owned(), failures)]);
        let second = refused(&annotations, &record, at_two, "denied");
        assert_eq!(second.escalations[0].count, 2);
        assert_eq!(second.reached.len(), 1, "reached now");
        assert!(
            second.annotations[crate::refresh::audit::LAST_ERROR]
                .as_deref()
                .is_some_and(|e| e.contains("2 failures in a row: denied"))
        );
        assert!(second.changes.is_empty(), "no spec change");
        let warn = refused(&annotations, &record, |_: &str| Threshold::Warn, "denied");
        assert!(warn.escalations.is_empty() && warn.transient.len() == 1);
    }
}
