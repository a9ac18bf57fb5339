//! The pass's gate before a write: approvals, `freshet pin`, and the warning for
//! Keel settings freshet does not honour.
//!
//! Owns the shell side of `freshet_core::safety::gate` and `safety::keel`: it
//! merges a workload's `keel.sh/` labels under its annotations, lets the core hold
//! a plan's changes back (pinned, waiting for approvals, expired) or let them
//! through, and tells what it decided: a line in the workload's report and an Event
//! (`AwaitingApproval`/`ApprovalExpired`/`KeelSettingsIgnored` as Warnings,
//! `UpdateApproved` as Normal). The approval-needed notification goes out once per
//! workload and target: when the pass writes a new request (`freshet.io/approval`,
//! which names the target, is the memory that it was sent), not on every pass
//! while the update waits. Must not decide: the core does; and it writes only
//! Events (the plan it returns is written by the pass's one patch).

use freshet_core::refresh::config::keel_labels_under;
use freshet_core::refresh::{Timestamp, WorkloadPlan};
use freshet_core::safety::approval::{
    APPROVAL, ApprovalDecision, ApprovalPolicy, ApprovalRequest, decide,
};
use freshet_core::safety::command::{PIN, Pin};
use freshet_core::safety::gate::{Gated, gate};
use freshet_core::safety::keel::unsupported;
use kube::runtime::events::EventType;

use crate::workloads::ReadWorkload;
use crate::writer::Writer;

/// The reason of the Event on a workload waiting for approvals.
pub const AWAITING: &str = "AwaitingApproval";
/// The reason of the Event on a workload whose approval request expired.
pub const EXPIRED: &str = "ApprovalExpired";
/// The reason of the Event when approvals let an update roll.
pub const APPROVED: &str = "UpdateApproved";
/// The reason of the Event naming Keel settings freshet ignores.
pub const KEEL_IGNORED: &str = "KeelSettingsIgnored";

/// What the gate decided for one workload.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The plan to write (changes held back when gated).
    pub plan: WorkloadPlan,
    /// Why changes were held back, or that they were approved.
    pub gated: Option<Gated>,
    /// The Keel settings freshet ignores on the workload.
    pub keel: Option<String>,
    /// Whether this pass asks for approvals of its target for the first time (the
    /// stored request names another target, or none).
    pub asks: bool,
}

impl Checked {
    /// The notifications the gate asks for: an update waiting for approvals, once
    /// per target (a later pass that finds the same request waiting sends none).
    pub fn notices(&self) -> Vec<crate::Notice> {
        match &self.gated {
            Some(g @ Gated::Waiting { target, .. }) if self.asks => {
                let image = target.split_once('@').map_or(target.as_str(), |(i, _)| i);
                vec![crate::Notice::approval_needed(image, target, g.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The lines for the workload's report warnings.
    pub fn warnings(&self) -> Vec<String> {
        let gated = self
            .gated
            .as_ref()
            .filter(|g| !matches!(g, Gated::Approved { .. }))
            .map(ToString::to_string);
        gated.into_iter().chain(self.keel.clone()).collect()
    }

    /// Records the Events of this decision on `read`.
    pub async fn announce(&self, writer: &Writer, read: &ReadWorkload) {
        let event = match &self.gated {
            Some(g @ Gated::Waiting { .. }) => Some((EventType::Warning, AWAITING, g)),
            Some(g @ Gated::Expired { .. }) => Some((EventType::Warning, EXPIRED, g)),
            Some(g @ Gated::Approved { .. }) => Some((EventType::Normal, APPROVED, g)),
            Some(Gated::Pinned { .. }) | None => None,
        };
        if let Some((type_, reason, g)) = event {
            writer.note(read, type_, reason, &g.to_string()).await;
        }
        if let Some(k) = &self.keel {
            writer.note(read, EventType::Warning, KEEL_IGNORED, k).await;
        }
    }
}

/// What `freshet status` shows of the gate for `read` at `now`: Keel settings
/// freshet ignores, a `freshet pin`, an update waiting for approvals.
pub fn notes(read: &ReadWorkload, now: Timestamp) -> Vec<String> {
    let annotations = &read.workload.annotations;
    let mut out: Vec<String> = unsupported(annotations, &read.labels)
        .map(|w| w.to_string())
        .into_iter()
        .collect();
    if let Ok(Some(pin)) = Pin::parse(annotations.get(PIN).map(String::as_str)) {
        out.push(Gated::Pinned { since: pin.since }.to_string());
    }
    let settings = keel_labels_under(annotations, &read.labels);
    let request = ApprovalRequest::parse(annotations.get(APPROVAL).map(String::as_str));
    if let (Ok(Some(policy)), Ok(Some(request))) =
        (ApprovalPolicy::from_annotations(&settings), request)
    {
        let decided = decide(Some(&policy), Some(&request), &request.target, now.utc());
        let gated = match decided.decision {
            ApprovalDecision::Waiting {
                have,
                need,
                expires,
            } => Some(Gated::Waiting {
                target: request.target.clone(),
                have,
                need,
                expires,
            }),
            ApprovalDecision::Expired { at } => Some(Gated::Expired {
                target: request.target.clone(),
                at,
            }),
            _ => None,
        };
        out.extend(gated.map(|g| g.to_string()));
    }
    out
}

/// Lets `plan` through the gate at `now`, or holds its changes back; `Err` with the
/// message when the workload's approval or pin settings are invalid.
pub fn check(read: &ReadWorkload, plan: WorkloadPlan, now: Timestamp) -> Result<Checked, String> {
    let annotations = &read.workload.annotations;
    let settings = keel_labels_under(annotations, &read.labels);
    let keel = unsupported(annotations, &read.labels).map(|w| w.to_string());
    let (plan, gated) = gate(plan, &settings, annotations, now.utc()).map_err(|e| e.to_string())?;
    // `gate` parsed the stored request already: it is valid here.
    let stored = ApprovalRequest::parse(annotations.get(APPROVAL).map(String::as_str))
        .ok()
        .flatten()
        .map(|r| r.target);
    let asks =
        matches!(&gated, Some(Gated::Waiting { target, .. }) if stored.as_ref() != Some(target));
    Ok(Checked {
        plan,
        gated,
        keel,
        asks,
    })
}
