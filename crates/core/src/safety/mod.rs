//! The safety layer around a rollout, as pure decisions: is the rollout freshet
//! started healthy ([`health`]), what is recorded about it ([`rollout`]), what undoes
//! it ([`rollback`], as [`spec`] changes), which digests freshet must not roll out again ([`hold`]), how
//! many rollouts may start now ([`pacing`]), when freshet may act at all
//! ([`window`]), whether a human agreed ([`approval`]), how many failures in a row an
//! image may have before freshet fails loudly ([`threshold`]), and which Keel
//! annotations freshet does not honour ([`keel`]).
//!
//! Owns the runbook teams perform by hand (`kubectl rollout undo`, pin the last good
//! version, stop the policy) as values: facts in, decisions out. Must not read the
//! cluster, a registry or the clock: no tokio, no kube, no network, and every
//! function that needs the time takes `now` as an argument. The cluster shell reads
//! workloads, pods and its state object into the plain structs of these modules,
//! calls the functions here and writes what they return (annotations, patches,
//! Events), always with a `resourceVersion` precondition.
//!
//! One pass over a workload, as the shell wires it:
//! 1. A `freshet.io/rollout` record ([`Rollout::parse`]) means a rollout is being
//!    followed: [`health::judge`] it with the record's deadline. `Healthy`: remove
//!    the record. `Failed`: [`rollback::respond`] with the workload's [`OnFailure`]
//!    and send its restores and annotations in one patch. `Progressing`: wait.
//! 2. Otherwise plan as usual; before rolling a candidate digest out, ask
//!    [`Holds::check`]: `Held` skips it, `Lift` writes the lifted holds and unpins.
//! 3. [`approval::decide`] for the update's target; only `may_roll()` goes on.
//! 4. Keep the workloads whose [`Windows`] are open, then [`pacing::pace`] them
//!    together; queued ones are due at `Windows::next_open(due)`.
//! 5. The patch that starts a rollout also writes its [`Rollout`] record, with the
//!    deadline from [`health::deadline`].
//!
//! Every write carries the `resourceVersion` the decision was made on, so two
//! replicas or runs never both act on one decision (the loser gets a conflict and
//! decides again on fresh facts).
//!
//! Annotation values freshet writes here are JSON with a fixed field order, parsed
//! strictly (unknown fields, missing fields and bad times are errors naming the
//! annotation and the fix) so a hand edit that breaks them is reported, never
//! silently dropped.

pub mod approval;
pub mod command;
pub mod gate;
pub mod health;
pub mod hold;
pub mod keel;
pub mod pacing;
pub mod rollback;
pub mod rollout;
pub mod spec;
pub mod threshold;
pub mod window;

use chrono::{DateTime, Utc};

pub use approval::{Approval, ApprovalDecision, ApprovalPolicy, ApprovalRequest};
pub use health::{Failure, Health, RolloutStatus};
pub use hold::{HoldCheck, Holds};
pub use keel::KeelWarning;
pub use pacing::{Budget, DueWorkload, Pace, Pacing, PacingState, pace};
pub use rollback::{OnFailure, Rollback};
pub use rollout::{Action, Rollout, RolloutChange};
pub use spec::{Container, Restore};
pub use threshold::{ImageThresholds, Threshold};
pub use window::{Window, Windows};

/// Formats a time the way freshet writes times (RFC 3339, whole seconds, `Z`).
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time into UTC.
pub(crate) fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Serde adapter for RFC 3339 times written with whole seconds and `Z`.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_time(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "{text:?} is not an RFC 3339 time (write 2026-11-23T10:00:00Z)"
            ))
        })
    }
}

/// The first line of a JSON error, bounded, for annotation errors.
pub(crate) fn json_reason(e: &serde_json::Error) -> String {
    e.to_string().chars().take(200).collect()
}

/// Annotation values freshet parses are bounded: Kubernetes caps all annotations of
/// an object at 256 KiB together.
pub(crate) const MAX_ANNOTATION: usize = 256 * 1024;
