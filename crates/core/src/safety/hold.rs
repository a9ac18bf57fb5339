//! The `freshet.io/hold` annotation: digests freshet must not roll out again.
//!
//! Owns the hold record (per repository: the held digests, since when, and the
//! floating image strings a rollback pinned), its strict parsing and rendering, and
//! the one question a run asks before rolling an image out: is the candidate digest
//! held, or does a newer digest lift the hold? A digest other than every held one
//! lifts the hold by itself, and containers the rollback pinned go back to their
//! floating tag. Must not resolve digests or write: the shell passes the digest the
//! registry resolved and writes what [`Holds::check`] returns.
//!
//! ```json
//! {"ghcr.io/acme/api":{"digests":["sha256:…"],"since":"2026-11-28T08:12:00Z",
//!                      "floating":{"api":"ghcr.io/acme/api:latest"}}}
//! ```
//!
//! Keys are repositories (canonical, no tag or digest): a digest names the same
//! content under every tag, so holding it per repository also covers a version
//! policy that would move to another tag with the same bad digest.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::spec::{Container, Restore};
use super::{MAX_ANNOTATION, json_reason, rfc3339};
use crate::{Digest, Reference};

/// `freshet.io/hold`.
pub const HOLD: &str = "freshet.io/hold";

/// Why a `freshet.io/hold` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// The value is not the record's JSON.
    #[error(
        "annotation {HOLD}: {reason}; write {{\"REPOSITORY\":{{\"digests\":[\"sha256:…\"],\"since\":\"RFC 3339 time\"}}}}, or use `freshet hold` / `freshet release`"
    )]
    Json {
        /// What the parser said.
        reason: String,
    },
    /// A repository key or digest is invalid.
    #[error("annotation {HOLD}: {field}: {reason}; fix: {fix}")]
    Invalid {
        /// Where, e.g. `ghcr.io/acme/api.digests[0]`.
        field: String,
        /// What is wrong.
        reason: String,
        /// How to fix it.
        fix: &'static str,
    },
}

/// What is held for one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// The held digests (sorted, no duplicates).
    pub digests: BTreeSet<String>,
    /// When the first of them was held.
    #[serde(with = "rfc3339")]
    pub since: DateTime<Utc>,
    /// Containers a rollback pinned, with the floating image string each had before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub floating: BTreeMap<String, String>,
}

/// Every hold of one workload, by repository.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Holds(pub BTreeMap<String, Held>);

/// What [`Holds::check`] found for a candidate digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldCheck {
    /// Nothing is held for the repository: go ahead.
    Free,
    /// The candidate is held: do not roll it out.
    Held {
        /// Since when.
        since: DateTime<Utc>,
    },
    /// The candidate is newer than every held digest: the hold is lifted. Write
    /// `holds` (the annotation value: [`Holds::render`]) and the `unpin` changes in
    /// one patch; an unpin is itself a rollout of the candidate, to record and follow
    /// like any other.
    Lift {
        /// The holds without this repository.
        holds: Holds,
        /// Pinned containers back to their floating image string.
        unpin: Vec<Restore>,
    },
}

impl Holds {
    /// Parses the annotation value (`None` or empty: no holds).
    pub fn parse(value: Option<&str>) -> Result<Holds, HoldError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Holds::default());
        };
        if value.len() > MAX_ANNOTATION {
            return Err(HoldError::Json {
                reason: format!("the value is {} bytes, over 256 KiB", value.len()),
            });
        }
        let holds: Holds = serde_json::from_str(value).map_err(|e| HoldError::Json {
            reason: json_reason(&e),
        })?;
        for (repo, held) in &holds.0 {
            if !Reference::parse(repo).is_ok_and(|r| &r.name() == repo) {
                return Err(HoldError::Invalid {
                    field: repo.clone(),
                    reason: "not a canonical repository name without tag or digest".into(),
                    fix: "write the repository as ghcr.io/acme/api or docker.io/library/nginx",
                });
            }
            if held.digests.is_empty() {
                return Err(HoldError::Invalid {
                    field: format!("{repo}.digests"),
                    reason: "the list is empty".into(),
                    fix: "list a digest, or remove the repository to release it",
                });
            }
            for (i, d) in held.digests.iter().enumerate() {
                if Digest::parse(d).is_err() {
                    return Err(HoldError::Invalid {
                        field: format!("{repo}.digests[{i}]"),
                        reason: format!("{d:?} is not a digest"),
                        fix: "write sha256:<64 hex digits>",
                    });
                }
            }
        }
        Ok(holds)
    }

    /// The annotation value, or `None` when nothing is held (remove the annotation).
    pub fn render(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| serde_json::to_string(self).expect("holds serialise"))
    }

    /// Whether `digest` is held for `repository`.
    pub fn is_held(&self, repository: &str, digest: &Digest) -> bool {
        self.0
            .get(repository)
            .is_some_and(|h| h.digests.contains(digest.as_str()))
    }

    /// Holds `digest` for `repository` from `now`, remembering the floating image
    /// strings of containers a rollback pins (kept from an earlier hold otherwise).
    pub fn hold(
        &mut self,
        repository: &str,
        digest: &Digest,
        floating: BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) {
        let held = self.0.entry(repository.to_owned()).or_insert_with(|| Held {
            digests: BTreeSet::new(),
            since: now,
            floating: BTreeMap::new(),
        });
        held.digests.insert(digest.to_string());
        for (container, image) in floating {
            held.floating.entry(container).or_insert(image);
        }
    }

    /// Releases `repository` (`freshet release`), returning what was held.
    pub fn release(&mut self, repository: &str) -> Option<Held> {
        self.0.remove(repository)
    }

    /// Whether `candidate`, the digest the registry resolved for `repository` now,
    /// may roll out. `containers` are the workload's containers as they are now (for
    /// the unpin when the hold lifts).
    pub fn check(
        &self,
        repository: &str,
        candidate: &Digest,
        containers: &[Container],
    ) -> HoldCheck {
        let Some(held) = self.0.get(repository) else {
            return HoldCheck::Free;
        };
        if held.digests.contains(candidate.as_str()) {
            return HoldCheck::Held { since: held.since };
        }
        let mut holds = self.clone();
        holds.0.remove(repository);
        HoldCheck::Lift {
            holds,
            unpin: held.unpin(repository, containers),
        }
    }
}

impl Held {
    /// The changes that put containers a rollback pinned back on their floating image
    /// string (for a lifted hold, and for `freshet release`). A container whose image
    /// no longer names a digest of `repository` was changed since and is left alone.
    pub fn unpin(&self, repository: &str, containers: &[Container]) -> Vec<Restore> {
        self.floating
            .iter()
            .filter_map(|(name, floating)| {
                let c = containers.iter().find(|c| &c.name == name)?;
                let now = Reference::parse(&c.image).ok()?;
                let pinned_here = now.digest().is_some() && now.name() == repository;
                (pinned_here && c.image != *floating).then(|| Restore::Image {
                    container: c.name.clone(),
                    init: c.init,
                    from: c.image.clone(),
                    to: floating.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
    }

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: image.into(),
            ..Container::default()
        }
    }

    #[test]
    fn a_held_digest_is_held_and_a_newer_one_lifts_the_hold_and_unpins() {
        let repo = "ghcr.io/acme/api";
        let mut holds = Holds::default();
        holds.hold(
            repo,
            &d('b'),
            [("api".to_owned(), "ghcr.io/acme/api:latest".to_owned())].into(),
            t(0),
        );
        let text = holds.render().unwrap();
        assert_eq!(Holds::parse(Some(&text)).unwrap(), holds);

        let pinned = format!("ghcr.io/acme/api:latest@{}", d('a'));
        let now = [container("api", &pinned), container("sidecar", "envoy:1")];
        assert_eq!(
            holds.check(repo, &d('b'), &now),
            HoldCheck::Held { since: t(0) }
        );
        assert_eq!(
            holds.check("ghcr.io/acme/other", &d('b'), &now),
            HoldCheck::Free
        );
        let HoldCheck::Lift {
            holds: after,
            unpin,
        } = holds.check(repo, &d('c'), &now)
        else {
            panic!("a newer digest lifts the hold");
        };
        assert_eq!(after.render(), None);
        assert_eq!(
            unpin,
            vec![Restore::Image {
                container: "api".into(),
                init: false,
                from: pinned,
                to: "ghcr.io/acme/api:latest".into(),
            }]
        );
        // A container someone moved since is left alone.
        let moved = [container("api", "ghcr.io/acme/api:2")];
        let HoldCheck::Lift { unpin, .. } = holds.check(repo, &d('c'), &moved) else {
            panic!()
        };
        assert!(unpin.is_empty());
    }

    #[test]
    fn hold_and_release_keep_the_first_time_and_floating_string() {
        let repo = "docker.io/library/nginx";
        let mut holds = Holds::default();
        holds.hold(
            repo,
            &d('b'),
            [("web".into(), "nginx:1".into())].into(),
            t(0),
        );
        holds.hold(
            repo,
            &d('c'),
            [("web".into(), "nginx:2".into())].into(),
            t(60),
        );
        let held = &holds.0[repo];
        assert_eq!(held.since, t(0));
        assert_eq!(held.digests.len(), 2);
        assert_eq!(held.floating["web"], "nginx:1");
        assert!(holds.is_held(repo, &d('c')));
        let pinned = format!("nginx:1@{}", d('a'));
        let released = holds.release(repo).unwrap();
        assert_eq!(
            released.unpin(repo, &[container("web", &pinned)]),
            vec![Restore::Image {
                container: "web".into(),
                init: false,
                from: pinned,
                to: "nginx:1".into()
            }]
        );
        assert_eq!(holds.render(), None);
    }

    #[test]
    fn bad_holds_name_the_annotation_and_the_fix() {
        let since = "\"since\":\"2026-11-28T08:00:00Z\"";
        let cases = [
            ("[1,2]".to_owned(), "freshet hold"),
            (
                format!(
                    r#"{{"ghcr.io/acme/api:1":{{"digests":["{}"],{since}}}}}"#,
                    d('a')
                ),
                "ghcr.io/acme/api:1",
            ),
            (
                format!(r#"{{"ghcr.io/acme/api":{{"digests":[],{since}}}}}"#),
                "digests",
            ),
            (
                format!(r#"{{"ghcr.io/acme/api":{{"digests":["latest"],{since}}}}}"#),
                "digests[0]",
            ),
            (
                format!(r#"{{"ghcr.io/acme/api":{{"digests":["{}"]}}}}"#, d('a')),
                "since",
            ),
        ];
        for (value, want) in cases {
            let e = Holds::parse(Some(&value)).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(HOLD), "{value}: {e}");
        }
        assert_eq!(Holds::parse(None).unwrap(), Holds::default());
        assert_eq!(Holds::parse(Some(" ")).unwrap(), Holds::default());
    }

    proptest! {
        #[test]
        fn holds_round_trip(
            entries in proptest::collection::vec(
                ("[a-z]{1,6}", "[0-9a-f]{64}", 0i64..1_000_000, proptest::option::of("[a-z]{1,5}")),
                0..5,
            )
        ) {
            let mut holds = Holds::default();
            for (repo, hex, at, floating) in entries {
                let repo = format!("ghcr.io/acme/{repo}");
                let floating = floating
                    .map(|c| (c, format!("{repo}:latest")))
                    .into_iter()
                    .collect();
                holds.hold(&repo, &Digest::parse(&format!("sha256:{hex}")).unwrap(), floating, t(at));
            }
            match holds.render() {
                None => prop_assert!(holds.0.is_empty()),
                Some(text) => prop_assert_eq!(Holds::parse(Some(&text)).unwrap(), holds),
            }
        }
    }
}
