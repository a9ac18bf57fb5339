//! The `freshet.io/rollout` annotation: the record of a rollout freshet started and
//! has not judged yet.
//!
//! Owns the record's schema, its strict parsing and its rendering. A one-shot run
//! writes the record in the same patch that starts the rollout, and the next run
//! judges it ([`crate::safety::health`]); the controller keeps it too, so a leader
//! change does not lose a rollout. It holds everything a rollback needs without the
//! registry: per change, the image, the action, the containers, the value before
//! (`from`, the last good state) and after (`to`), and the digest rolled out (what a
//! rollback holds). Must not decide anything: health and rollback read it.
//!
//! ```json
//! {"started":"2026-11-28T08:00:00Z","deadline":"2026-11-28T08:10:00Z",
//!  "changes":[{"image":"ghcr.io/acme/api","action":"restart","containers":["api"],
//!              "from":"sha256:…","to":"sha256:…","digest":"sha256:…"}]}
//! ```
//!
//! `from` and `to` are digests for `restart`, image strings for `pin` and
//! `set-image`, and env values for `set-env` (where a missing `from` means the
//! variable was unset). One record lists every change of the one patch, because a
//! plan may move several images of a workload at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_ANNOTATION, json_reason, rfc3339};
use crate::{Digest, Reference};

/// `freshet.io/rollout`.
pub const ROLLOUT: &str = "freshet.io/rollout";

/// What freshet did to a container image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Kept the image string; pods pulled the moved tag again.
    Restart,
    /// Rewrote the image to `repo:tag@sha256:…`.
    Pin,
    /// Moved the tag.
    SetImage,
    /// Set an env var to another image's digest.
    SetEnv,
}

impl Action {
    /// The spelling in annotations and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Pin => "pin",
            Action::SetImage => "set-image",
            Action::SetEnv => "set-env",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `freshet.io/rollout` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    /// The value is not the record's JSON (syntax, unknown or missing field, bad time).
    #[error(
        "annotation {ROLLOUT}: {reason}; freshet writes this record itself: remove the annotation to forget the rollout"
    )]
    Json {
        /// What the parser said.
        reason: String,
    },
    /// The JSON is well-formed but a field is invalid.
    #[error(
        "annotation {ROLLOUT}: {field}: {reason}; freshet writes this record itself: remove the annotation to forget the rollout"
    )]
    Invalid {
        /// The field, e.g. `changes[0].from`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// One change of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutChange {
    /// The repository, canonical and without tag or digest (`ghcr.io/acme/api`).
    pub image: String,
    /// What freshet did.
    pub action: Action,
    /// The containers it did it to.
    pub containers: Vec<String>,
    /// Init containers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// The env var (`set-env` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// The last good value (`None` only for an env var that was unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The value rolled out.
    pub to: String,
    /// The digest rolled out: what a rollback holds.
    pub digest: String,
}

/// A rollout freshet started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// When the patch was sent.
    #[serde(with = "rfc3339")]
    pub started: DateTime<Utc>,
    /// When an unfinished rollout counts as failed.
    #[serde(with = "rfc3339")]
    pub deadline: DateTime<Utc>,
    /// What the patch changed.
    pub changes: Vec<RolloutChange>,
}

impl Rollout {
    /// Parses the annotation value strictly.
    pub fn parse(value: &str) -> Result<Rollout, RolloutError> {
        if value.len() > MAX_ANNOTATION {
            return Err(RolloutError::Json {
                reason: format!("the value is {} bytes, over 256 KiB", value.len()),
            });
        }
        let r: Rollout = serde_json::from_str(value).map_err(|e| RolloutError::Json {
            reason: json_reason(&e),
        })?;
        r.validate()?;
        Ok(r)
    }

    /// The annotation value (fixed field order; `parse(render(r)) == r`).
    pub fn render(&self) -> String {
        serde_json::to_string(self).expect("a rollout record serialises")
    }

    /// Checks what the schema cannot: times in order, digests, references and the
    /// fields each action needs.
    pub fn validate(&self) -> Result<(), RolloutError> {
        let invalid = |field: String, reason: &str| RolloutError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        if self.deadline < self.started {
            return Err(invalid("deadline".into(), "it is before started"));
        }
        if self.changes.is_empty() {
            return Err(invalid("changes".into(), "the list is empty"));
        }
        for (i, c) in self.changes.iter().enumerate() {
            let field = |name: &str| format!("changes[{i}].{name}");
            match Reference::parse(&c.image) {
                Ok(r) if r.name() == c.image => {}
                _ => {
                    return Err(invalid(
                        field("image"),
                        "not a canonical repository name without tag or digest (ghcr.io/acme/api)",
                    ));
                }
            }
            if c.containers.is_empty() || c.containers.iter().any(|n| n.is_empty()) {
                return Err(invalid(
                    field("containers"),
                    "list at least one container name",
                ));
            }
            if Digest::parse(&c.digest).is_err() {
                return Err(invalid(field("digest"), "not a digest (sha256:<64 hex>)"));
            }
            let digest_ok = |v: &str| Digest::parse(v).is_ok();
            let reference_ok = |v: &str| Reference::parse(v).is_ok();
            let (check, what): (&dyn Fn(&str) -> bool, &str) = match c.action {
                Action::Restart => (&digest_ok, "a digest (sha256:<64 hex>)"),
                Action::Pin | Action::SetImage => (&reference_ok, "an image reference"),
                Action::SetEnv => (&|v: &str| !v.is_empty(), "a non-empty env value"),
            };
            match (&c.from, c.action) {
                (None, Action::SetEnv) => {}
                (None, _) => return Err(invalid(field("from"), "missing")),
                (Some(v), _) if !check(v) => {
                    return Err(invalid(field("from"), &format!("must be {what}")));
                }
                _ => {}
            }
            if !check(&c.to) {
                return Err(invalid(field("to"), &format!("must be {what}")));
            }
            match (&c.var, c.action) {
                (Some(v), Action::SetEnv) if !v.is_empty() => {}
                (_, Action::SetEnv) => {
                    return Err(invalid(field("var"), "set-env needs the variable name"));
                }
                (Some(_), _) => {
                    return Err(invalid(field("var"), "only set-env names a variable"));
                }
                (None, _) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn restart() -> Rollout {
        Rollout {
            started: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            deadline: DateTime::from_timestamp(1_795_000_600, 0).unwrap(),
            changes: vec![RolloutChange {
                image: "ghcr.io/acme/api".into(),
                action: Action::Restart,
                containers: vec!["api".into()],
                init: false,
                var: None,
                from: Some(hex('a')),
                to: hex('b'),
                digest: hex('b'),
            }],
        }
    }

    #[test]
    fn renders_the_documented_shape() {
        let text = restart().render();
        assert_eq!(
            text,
            format!(
                r#"{{"started":"2026-11-18T11:06:40Z","deadline":"2026-11-18T11:16:40Z","changes":[{{"image":"ghcr.io/acme/api","action":"restart","containers":["api"],"from":"{a}","to":"{b}","digest":"{b}"}}]}}"#,
                a = hex('a'),
                b = hex('b')
            )
        );
        assert_eq!(Rollout::parse(&text).unwrap(), restart());
    }

    #[test]
    fn bad_records_name_the_annotation_the_field_and_the_fix() {
        let good = restart().render();
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "freshet.io/rollout"),
            (good.replace("\"started\"", "\"begun\""), "unknown field"),
            (
                good.replace("2026-11-18T11:06:40Z", "yesterday"),
                "RFC 3339",
            ),
            (
                good.replace("2026-11-18T11:16:40Z", "2026-11-18T11:00:00Z"),
                "deadline",
            ),
            (
                good.replace("ghcr.io/acme/api", "ghcr.io/acme/api:1"),
                "changes[0].image",
            ),
            (
                good.replacen(&hex('a'), "sha256:short", 1),
                "changes[0].from",
            ),
            (good.replace("\"restart\"", "\"bounce\""), "unknown variant"),
            (good.replace("[\"api\"]", "[]"), "changes[0].containers"),
            (good.replace("\"restart\"", "\"set-env\""), "changes[0].var"),
        ];
        for (value, want) in cases {
            let e = Rollout::parse(&value).unwrap_err().to_string();
            assert!(e.contains(want), "{value}: {e}");
            assert!(e.contains("remove the annotation"), "{e}");
        }
    }

    #[test]
    fn set_env_may_record_an_unset_variable() {
        let mut r = restart();
        r.changes[0].action = Action::SetEnv;
        r.changes[0].var = Some("WORKER_DIGEST".into());
        r.changes[0].from = None;
        assert_eq!(Rollout::parse(&r.render()).unwrap(), r);
        let mut pin = restart();
        pin.changes[0].action = Action::Pin;
        pin.changes[0].from = None;
        assert!(Rollout::parse(&pin.render()).is_err());
    }

    fn change() -> impl Strategy<Value = RolloutChange> {
        (
            "[a-z]{1,8}",
            prop_oneof![
                Just(Action::Restart),
                Just(Action::Pin),
                Just(Action::SetImage),
                Just(Action::SetEnv)
            ],
            proptest::collection::vec("[a-z][a-z0-9-]{0,10}", 1..3),
            any::<bool>(),
            "[0-9a-f]{64}",
            "[0-9a-f]{64}",
            any::<bool>(),
        )
            .prop_map(|(repo, action, containers, init, a, b, unset)| {
                let image = format!("ghcr.io/acme/{repo}");
                let (from, to) = match action {
                    Action::Restart => (format!("sha256:{a}"), format!("sha256:{b}")),
                    Action::Pin => (
                        format!("{image}:1@sha256:{a}"),
                        format!("{image}:1@sha256:{b}"),
                    ),
                    Action::SetImage => (format!("{image}:1.2"), format!("{image}:1.3")),
                    Action::SetEnv => (format!("sha256:{a}"), format!("{image}@sha256:{b}")),
                };
                let set_env = action == Action::SetEnv;
                RolloutChange {
                    image,
                    action,
                    containers,
                    init,
                    var: set_env.then(|| "IMAGE_DIGEST".to_owned()),
                    from: (!(set_env && unset)).then_some(from),
                    to,
                    digest: format!("sha256:{b}"),
                }
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(
            started in 0i64..4_000_000_000,
            wait in 0i64..86_400,
            changes in proptest::collection::vec(change(), 1..4),
        ) {
            let r = Rollout {
                started: DateTime::from_timestamp(started, 0).unwrap(),
                deadline: DateTime::from_timestamp(started + wait, 0).unwrap(),
                changes,
            };
            let text = r.render();
            prop_assert_eq!(Rollout::parse(&text).unwrap(), r);
        }
    }
}
