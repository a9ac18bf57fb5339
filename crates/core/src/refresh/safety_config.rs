//! The safety keys of the cluster config: the cluster-wide `pacing:` block, and per
//! rule `pacing`, `windows`, `onFailure` and `thresholds`.
//!
//! Owns turning these keys, as written, into the typed values of
//! [`crate::safety`] ([`Pacing`], [`Windows`], [`OnFailure`], [`ImageThresholds`]),
//! with errors that name the key path and the fix. Must not decide anything: the
//! shell paces, checks windows and responds to failures with these values.
//!
//! ```yaml
//! pacing: {max: 5, per: 6h, maxInProgress: 2, namespaces: {prod: {max: 1, per: 1h}}}
//! rules:
//!   - policy: digest
//!     pacing: {max: 2, per: 1h}
//!     windows: ["Mon-Fri 02:00-05:00 Europe/Berlin"]
//!     onFailure: rollback          # rollback (default), pause or none
//!     thresholds:
//!       - {images: "registry.internal/*", threshold: 3}
//!       - {images: "quay.io/flaky/*", threshold: warn}
//! ```

use crate::safety::pacing::{BudgetSpec, PacingSpec};
use crate::safety::threshold::ThresholdSpec;
use crate::safety::{ImageThresholds, OnFailure, Pacing, Windows};

/// A rule's safety keys as written.
#[derive(Debug, Clone, Default)]
pub(super) struct RawRuleSafety {
    pub(super) windows: Vec<String>,
    pub(super) on_failure: Option<String>,
    pub(super) thresholds: Vec<ThresholdSpec>,
}

/// A rule's validated safety settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSafety {
    /// When the rule's workloads may start rollouts (empty: always).
    pub windows: Windows,
    /// What a failed rollout does (`None`: the default, rollback, unless the
    /// workload's annotation says otherwise).
    pub on_failure: Option<OnFailure>,
    /// Failure thresholds per image glob.
    pub thresholds: ImageThresholds,
}

fn safety_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Validates rule number `index`'s safety keys; the error message starts with the
/// key path and says the fix.
pub(super) fn rule_safety(index: usize, raw: &RawRuleSafety) -> Result<RuleSafety, String> {
    let key = |k: &str| format!("rules[{index}].{k}");
    let windows = Windows::parse(&key("windows"), &raw.windows).map_err(safety_error)?;
    let on_failure = raw
        .on_failure
        .as_deref()
        .map(|v| OnFailure::parse(&key("onFailure"), v))
        .transpose()
        .map_err(safety_error)?;
    let thresholds =
        ImageThresholds::parse(&key("thresholds"), &raw.thresholds).map_err(safety_error)?;
    Ok(RuleSafety {
        windows,
        on_failure,
        thresholds,
    })
}

/// Validates the cluster-wide `pacing:` block with the rules' budgets (by index).
pub(super) fn pacing(
    spec: Option<&PacingSpec>,
    rules: &[(usize, &BudgetSpec)],
) -> Result<Pacing, String> {
    Pacing::from_spec(spec, rules).map_err(safety_error)
}
