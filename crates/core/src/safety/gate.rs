//! The gate between a plan and its write: a workload pinned by `freshet pin`, or
//! one that asks for approvals, does not roll an update until it may.
//!
//! Owns one decision: given the [`WorkloadPlan`] the refresh planned, the
//! workload's settings (annotations with Keel's labels merged under them) and the
//! time, either let the plan through or hold its spec changes back, keeping what it
//! records (failure streaks) and writing the approval request it waits on
//! ([`super::approval`]). A held-back plan records no refresh and starts no rollout
//! (`freshet.io/refreshed` and `freshet.io/rollout` are not written), so the next
//! run plans the same update again. Must not read the clock, the cluster or a
//! registry: the shell passes `now` and writes the plan this returns.

use chrono::{DateTime, Utc};

use super::approval::{
    self, APPROVAL, ApprovalDecision, ApprovalError, ApprovalPolicy, ApprovalRequest,
};
use super::command::{PIN, Pin, PinError};
use super::rollout::ROLLOUT;
use crate::refresh::audit::REFRESHED;
use crate::refresh::{Change, WorkloadPlan};

/// Why a workload's approval or pin settings were rejected (the workload is refused
/// with the key and the fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// An approval count, deadline or stored request is invalid.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The `freshet.io/pin` record is invalid.
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// Why a plan's changes were held back, or that approvals let them through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gated {
    /// `freshet pin` stopped tracking since `since`; `freshet release` resumes it.
    Pinned {
        /// When it was pinned.
        since: DateTime<Utc>,
    },
    /// Waiting for approvals of `target`.
    Waiting {
        /// The update waiting.
        target: String,
        /// Approvals so far.
        have: u32,
        /// Approvals needed.
        need: u32,
        /// The deadline.
        expires: DateTime<Utc>,
    },
    /// The request for `target` expired at `at`; the update does not roll.
    Expired {
        /// The update.
        target: String,
        /// When it expired.
        at: DateTime<Utc>,
    },
    /// Enough approvals: the update rolls and the request is removed.
    Approved {
        /// The update.
        target: String,
    },
}

impl std::fmt::Display for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = super::format_time;
        match self {
            Gated::Pinned { since } => write!(
                f,
                "pinned by `freshet pin` since {}: updates wait until `freshet release`",
                t(*since)
            ),
            Gated::Waiting {
                target,
                have,
                need,
                expires,
            } => write!(
                f,
                "waiting for approval of {target}: {have} of {need}, until {} (`freshet approve`)",
                t(*expires)
            ),
            Gated::Expired { target, at } => write!(
                f,
                "the approval request for {target} expired at {}; it does not roll (a newer update asks again)",
                t(*at)
            ),
            Gated::Approved { target } => write!(f, "approved: {target}"),
        }
    }
}

/// The string an approval is given for: every change's target, in plan order.
pub fn target_of(changes: &[Change]) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Restart { image, to, .. } => format!("{image}@{to}"),
            Change::SetImage { container, to, .. } => format!("{container}={to}"),
            Change::SetEnv {
                container, var, to, ..
            } => format!("{container}/{var}={to}"),
        })
        .collect();
    parts.join(", ")
}

/// Lets `plan` through, or holds its changes back. `settings`: the workload's
/// annotations with `keel.sh/` labels merged under them; `annotations`: its own
/// annotations (where freshet keeps the pin and the request).
pub fn gate(
    mut plan: WorkloadPlan,
    settings: &crate::Labels,
    annotations: &crate::Labels,
    now: DateTime<Utc>,
) -> Result<(WorkloadPlan, Option<Gated>), GateError> {
    let policy = ApprovalPolicy::from_annotations(settings)?;
    let written = annotations.get(APPROVAL).map(String::as_str);
    let current = ApprovalRequest::parse(written)?;
    let pin = Pin::parse(annotations.get(PIN).map(String::as_str))?;
    if plan.changes.is_empty() {
        return Ok((plan, None));
    }
    if let Some(pin) = pin {
        hold_back(&mut plan);
        return Ok((plan, Some(Gated::Pinned { since: pin.since })));
    }
    let target = target_of(&plan.changes);
    let decided = approval::decide(policy.as_ref(), current.as_ref(), &target, now);
    let rendered = decided.request.as_ref().map(ApprovalRequest::render);
    if rendered.as_deref() != written {
        plan.annotations.insert(APPROVAL.into(), rendered);
    }
    let gated = match decided.decision {
        ApprovalDecision::NotRequired => None,
        ApprovalDecision::Approved => Some(Gated::Approved { target }),
        ApprovalDecision::Waiting {
            have,
            need,
            expires,
        } => Some(Gated::Waiting {
            target,
            have,
            need,
            expires,
        }),
        ApprovalDecision::Expired { at } => Some(Gated::Expired { target, at }),
    };
    if !decided.decision.may_roll() {
        hold_back(&mut plan);
    }
    Ok((plan, gated))
}

/// Drops the spec changes and what records them as done.
fn hold_back(plan: &mut WorkloadPlan) {
    plan.changes.clear();
    for key in [REFRESHED, ROLLOUT] {
        if plan.annotations.get(key).is_some_and(Option::is_some) {
            plan.annotations.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;
    use crate::refresh::audit::FAILURES;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
    }

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> crate::Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn restart_plan() -> WorkloadPlan {
        WorkloadPlan {
            changes: vec![Change::Restart {
                image: "ghcr.io/acme/api:latest".into(),
                containers: vec!["api".into()],
                from: d('a'),
                to: d('b'),
            }],
            annotations: [
                (REFRESHED.to_owned(), Some("{}".to_owned())),
                (FAILURES.to_owned(), None),
            ]
            .into(),
            ..WorkloadPlan::default()
        }
    }

    /// Applies a plan's annotation diff to `annotations`, as the API would.
    fn applied(annotations: &mut crate::Labels, plan: &WorkloadPlan) {
        for (k, v) in &plan.annotations {
            match v {
                Some(v) => annotations.insert(k.clone(), v.clone()),
                None => annotations.remove(k),
            };
        }
    }

    #[test]
    fn no_approvals_asked_lets_the_plan_through_untouched() {
        let (plan, gated) = gate(restart_plan(), &map(&[]), &map(&[]), t(0)).unwrap();
        assert_eq!((plan, gated), (restart_plan(), None));
    }

    #[test]
    fn approvals_reached_roll_and_remove_the_request() {
        let settings = map(&[("keel.sh/approvals", "2")]);
        let mut ann = settings.clone();
        // First pass: a request is written, nothing rolls, no refresh recorded.
        let (plan, gated) = gate(restart_plan(), &settings, &ann, t(0)).unwrap();
        assert!(plan.changes.is_empty());
        assert!(!plan.annotations.contains_key(REFRESHED));
        assert_eq!(plan.annotations.get(FAILURES), Some(&None), "streaks kept");
        let Some(Gated::Waiting {
            have: 0,
            need: 2,
            expires,
            target,
        }) = gated.clone()
        else {
            panic!("{gated:?}")
        };
        assert_eq!(expires, t(24 * 3600), "Keel's default deadline is 24 h");
        assert!(target.contains(d('b').as_str()), "{target}");
        applied(&mut ann, &plan);
        // Two approvals (one voter twice counts once).
        let policy = ApprovalPolicy::from_annotations(&settings)
            .unwrap()
            .unwrap();
        let mut request = ApprovalRequest::parse(ann.get(APPROVAL).map(String::as_str))
            .unwrap()
            .unwrap();
        for voter in ["ana", "ana", "bo"] {
            request = request.approve(voter, &policy, t(60)).unwrap();
        }
        ann.insert(APPROVAL.into(), request.render());
        let (plan, gated) = gate(restart_plan(), &settings, &ann, t(120)).unwrap();
        assert_eq!(plan.changes, restart_plan().changes);
        assert_eq!(
            plan.annotations.get(APPROVAL),
            Some(&None),
            "request removed"
        );
        assert!(matches!(gated, Some(Gated::Approved { .. })), "{gated:?}");
    }

    #[test]
    fn an_expired_request_never_rolls_and_a_new_target_asks_again() {
        let settings = map(&[
            ("freshet.io/approvals", "1"),
            ("keel.sh/approvalDeadline", "2"),
        ]);
        let mut ann = settings.clone();
        let (plan, _) = gate(restart_plan(), &settings, &ann, t(0)).unwrap();
        applied(&mut ann, &plan);
        let (plan, gated) = gate(restart_plan(), &settings, &ann, t(2 * 3600)).unwrap();
        assert!(plan.changes.is_empty());
        assert!(plan.annotations.is_empty() || !plan.annotations.contains_key(APPROVAL));
        assert!(
            matches!(gated, Some(Gated::Expired { at, .. }) if at == t(7200)),
            "{gated:?}"
        );
        assert!(gated.unwrap().to_string().contains("expired"));
        // A newer digest starts a new request.
        let mut newer = restart_plan();
        if let Change::Restart { to, .. } = &mut newer.changes[0] {
            *to = d('c');
        }
        let (plan, gated) = gate(newer, &settings, &ann, t(3 * 3600)).unwrap();
        assert!(plan.changes.is_empty());
        assert!(matches!(gated, Some(Gated::Waiting { have: 0, .. })));
        assert!(
            plan.annotations[APPROVAL]
                .as_ref()
                .unwrap()
                .contains(d('c').as_str())
        );
    }

    #[test]
    fn a_pin_holds_every_change_and_bad_settings_are_refused() {
        let pin = Pin {
            since: t(0),
            floating: Default::default(),
        };
        let rendered = pin.render();
        let ann = map(&[(PIN, rendered.as_str())]);
        let (plan, gated) = gate(restart_plan(), &ann, &ann, t(10)).unwrap();
        assert!(plan.changes.is_empty());
        assert_eq!(gated, Some(Gated::Pinned { since: t(0) }));
        let cases: [&[(&str, &str)]; 4] = [
            &[("keel.sh/approvals", "two")],
            &[
                ("freshet.io/approvals", "1"),
                ("freshet.io/approval-deadline", "0"),
            ],
            &[(APPROVAL, "{")],
            &[(PIN, "[]")],
        ];
        for bad in cases {
            let s = map(bad);
            let e = gate(restart_plan(), &s, &s, t(0)).unwrap_err().to_string();
            let key = bad.last().unwrap().0;
            assert!(e.contains(key), "{bad:?}: {e}");
        }
    }
}
