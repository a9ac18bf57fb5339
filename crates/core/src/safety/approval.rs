//! Approvals: an update waits until enough people approve it, or expires.
//!
//! Owns Keel's approval vocabulary with Keel's meaning (`keel.sh/approvals: "N"`,
//! `keel.sh/approvalDeadline` in hours, default 24; see `types/types.go` in
//! keel-hq/keel) and freshet's spellings, which win (`freshet.io/approvals`,
//! `freshet.io/approval-deadline`); the pending request freshet keeps on the workload
//! (`freshet.io/approval`: the update's target, when it was requested, who
//! approved); and the decision for a run: approved, waiting, or expired. An update
//! whose workload asks for approvals never rolls without them: a bad count is an
//! error, never "no approvals needed". Must not write or read the clock: the shell
//! writes [`Approval::request`] back when it changed, and `freshet approve` calls
//! [`ApprovalRequest::approve`].
//!
//! The target is a string the shell derives from the plan (for example
//! `ghcr.io/acme/api:1.4@sha256:…`): a different target starts a new request, so an
//! approval never carries over to a version nobody saw. An expired request stays
//! until a different target replaces it. Keel also reads these keys from labels;
//! the shell passes labels merged under annotations to honour that.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_ANNOTATION, json_reason, rfc3339};

/// `keel.sh/approvals`.
pub const KEEL_APPROVALS: &str = "keel.sh/approvals";
/// `keel.sh/approvalDeadline` (hours).
pub const KEEL_APPROVAL_DEADLINE: &str = "keel.sh/approvalDeadline";
/// `freshet.io/approvals`.
pub const APPROVALS: &str = "freshet.io/approvals";
/// `freshet.io/approval-deadline` (hours).
pub const APPROVAL_DEADLINE: &str = "freshet.io/approval-deadline";
/// `freshet.io/approval`: the pending request.
pub const APPROVAL: &str = "freshet.io/approval";

/// Keel's default deadline, in hours.
pub const DEFAULT_DEADLINE_HOURS: u32 = 24;
/// The most approvals a workload may ask for.
pub const MAX_APPROVALS: u32 = 100;
/// The longest deadline, in hours (a year).
pub const MAX_DEADLINE_HOURS: u32 = 8760;

/// Why an approval setting, request or vote was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// The approval count is not a whole number in range.
    #[error(
        "annotation {key}={value:?}: not an approval count; use a whole number from 0 to {MAX_APPROVALS} (0: no approval needed)"
    )]
    Count {
        /// The annotation key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// The deadline is not a whole number of hours in range.
    #[error(
        "annotation {key}={value:?}: not a deadline; use a whole number of hours from 1 to {MAX_DEADLINE_HOURS} (default {DEFAULT_DEADLINE_HOURS})"
    )]
    Deadline {
        /// The annotation key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// The stored request does not parse.
    #[error(
        "annotation {APPROVAL}: {reason}; freshet writes it itself: remove it to start the request again"
    )]
    Request {
        /// What the parser said.
        reason: String,
    },
    /// A vote came after the deadline.
    #[error("the approval request for {target} expired at {}; a newer update starts a new request", super::format_time(*at))]
    Expired {
        /// The request's target.
        target: String,
        /// When it expired.
        at: DateTime<Utc>,
    },
    /// The voter name is empty, too long or not printable.
    #[error("approver {voter:?}: use a non-empty printable name of at most 253 characters")]
    Voter {
        /// The name as given.
        voter: String,
    },
}

/// What a workload asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Approvals needed (at least 1).
    pub required: u32,
    /// How long a request stays open.
    pub deadline: Duration,
}

impl ApprovalPolicy {
    /// Reads the approval keys (freshet's spelling wins over Keel's). `Ok(None)`:
    /// no approval needed (no count, or `0`).
    pub fn from_annotations(
        annotations: &crate::Labels,
    ) -> Result<Option<ApprovalPolicy>, ApprovalError> {
        let get = |freshet: &'static str, keel: &'static str| {
            let value = |k: &'static str| {
                annotations
                    .get(k)
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .map(|v| (k, v))
            };
            value(freshet).or_else(|| value(keel))
        };
        let required = match get(APPROVALS, KEEL_APPROVALS) {
            None => return Ok(None),
            Some((key, v)) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_APPROVALS)
                .ok_or_else(|| ApprovalError::Count {
                    key,
                    value: v.to_owned(),
                })?,
        };
        let hours = match get(APPROVAL_DEADLINE, KEEL_APPROVAL_DEADLINE) {
            None => DEFAULT_DEADLINE_HOURS,
            Some((key, v)) => v
                .parse::<u32>()
                .ok()
                .filter(|h| (1..=MAX_DEADLINE_HOURS).contains(h))
                .ok_or_else(|| ApprovalError::Deadline {
                    key,
                    value: v.to_owned(),
                })?,
        };
        Ok((required > 0).then(|| ApprovalPolicy {
            required,
            deadline: Duration::from_secs(u64::from(hours) * 3600),
        }))
    }
}

/// A pending request, kept in `freshet.io/approval`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalRequest {
    /// The update waiting for approval.
    pub target: String,
    /// When freshet first wanted it.
    #[serde(with = "rfc3339")]
    pub requested: DateTime<Utc>,
    /// Who approved it.
    #[serde(default)]
    pub approved_by: BTreeSet<String>,
}

impl ApprovalRequest {
    /// Parses the annotation value (`None` or empty: no request).
    pub fn parse(value: Option<&str>) -> Result<Option<ApprovalRequest>, ApprovalError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if value.len() > MAX_ANNOTATION {
            return Err(ApprovalError::Request {
                reason: format!("the value is {} bytes, over 256 KiB", value.len()),
            });
        }
        let r: ApprovalRequest =
            serde_json::from_str(value).map_err(|e| ApprovalError::Request {
                reason: json_reason(&e),
            })?;
        if r.target.is_empty() {
            return Err(ApprovalError::Request {
                reason: "target is empty".into(),
            });
        }
        if r.approved_by.len() > MAX_APPROVALS as usize {
            return Err(ApprovalError::Request {
                reason: format!("more than {MAX_APPROVALS} approvers"),
            });
        }
        Ok(Some(r))
    }

    /// The annotation value.
    pub fn render(&self) -> String {
        serde_json::to_string(self).expect("an approval request serialises")
    }

    /// When the request expires under `policy`.
    pub fn expires(&self, policy: &ApprovalPolicy) -> DateTime<Utc> {
        let d = TimeDelta::from_std(policy.deadline).unwrap_or(TimeDelta::MAX);
        self.requested
            .checked_add_signed(d)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The request with `voter`'s approval (`freshet approve`); approving twice
    /// counts once. Refused after the deadline.
    pub fn approve(
        &self,
        voter: &str,
        policy: &ApprovalPolicy,
        now: DateTime<Utc>,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let v = voter.trim();
        if v.is_empty() || v.chars().count() > 253 || v.chars().any(char::is_control) {
            return Err(ApprovalError::Voter {
                voter: voter.chars().take(300).collect(),
            });
        }
        let at = self.expires(policy);
        if now >= at {
            return Err(ApprovalError::Expired {
                target: self.target.clone(),
                at,
            });
        }
        let mut out = self.clone();
        if out.approved_by.len() < MAX_APPROVALS as usize {
            out.approved_by.insert(v.to_owned());
        }
        Ok(out)
    }
}

/// The decision for one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// The workload asks for no approval: roll.
    NotRequired,
    /// Enough approvals: roll.
    Approved,
    /// Not yet: `have` of `need`, until `expires`.
    Waiting {
        /// Approvals so far.
        have: u32,
        /// Approvals needed.
        need: u32,
        /// The deadline.
        expires: DateTime<Utc>,
    },
    /// The deadline passed: do not roll this target.
    Expired {
        /// When it expired.
        at: DateTime<Utc>,
    },
}

impl ApprovalDecision {
    /// Whether the update may roll now.
    pub fn may_roll(&self) -> bool {
        matches!(
            self,
            ApprovalDecision::NotRequired | ApprovalDecision::Approved
        )
    }
}

/// The decision and the request to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// What to do with the update.
    pub decision: ApprovalDecision,
    /// The `freshet.io/approval` value after this run (`None`: remove it); the shell
    /// writes it when it differs from what it read.
    pub request: Option<ApprovalRequest>,
}

/// Decides whether the update to `target` may roll at `now`.
pub fn decide(
    policy: Option<&ApprovalPolicy>,
    current: Option<&ApprovalRequest>,
    target: &str,
    now: DateTime<Utc>,
) -> Approval {
    let Some(policy) = policy else {
        return Approval {
            decision: ApprovalDecision::NotRequired,
            request: None,
        };
    };
    let request = match current.filter(|r| r.target == target) {
        Some(r) => r.clone(),
        None => ApprovalRequest {
            target: target.to_owned(),
            requested: now,
            approved_by: BTreeSet::new(),
        },
    };
    let have = u32::try_from(request.approved_by.len()).unwrap_or(u32::MAX);
    if have >= policy.required {
        return Approval {
            decision: ApprovalDecision::Approved,
            request: None,
        };
    }
    let expires = request.expires(policy);
    let decision = if now >= expires {
        ApprovalDecision::Expired { at: expires }
    } else {
        ApprovalDecision::Waiting {
            have,
            need: policy.required,
            expires,
        }
    };
    Approval {
        decision,
        request: Some(request),
    }
}

#[cfg(test)]
mod tests;
