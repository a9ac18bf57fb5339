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

use super::config::ConfigError;

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

fn safety_error(e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Safety {
        message: e.to_string(),
    }
}

/// Validates rule number `index`'s safety keys.
pub(super) fn rule_safety(index: usize, raw: &RawRuleSafety) -> Result<RuleSafety, ConfigError> {
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
) -> Result<Pacing, ConfigError> {
    Pacing::from_spec(spec, rules).map_err(safety_error)
}

#[cfg(test)]
mod tests {
    use crate::refresh::config::ClusterConfig;
    use crate::safety::{OnFailure, Threshold};

    #[test]
    fn safety_keys_parse_into_typed_values() {
        let c = ClusterConfig::parse(
            r#"
pacing: {max: 5, per: 6h, maxInProgress: 2}
rules:
  - policy: digest
    pacing: {max: 2, per: 1h}
    windows: ["Mon-Fri 02:00-05:00 Europe/Berlin"]
    onFailure: pause
    thresholds:
      - {images: "registry.internal/*", threshold: 3}
      - {images: "quay.io/flaky/*", threshold: warn}
  - policy: digest
"#,
        )
        .unwrap();
        let cluster = c.pacing.cluster.unwrap();
        assert_eq!((cluster.max, cluster.per.as_secs()), (5, 6 * 3600));
        assert_eq!(c.pacing.max_in_progress, Some(2));
        assert_eq!(c.pacing.rules[&0].max, 2);
        let s = &c.rules[0].safety;
        assert_eq!(s.windows.0.len(), 1);
        assert_eq!(s.on_failure, Some(OnFailure::Pause));
        assert_eq!(
            s.thresholds.threshold("registry.internal/x", 9),
            Threshold::Count(3)
        );
        assert_eq!(
            s.thresholds.threshold("quay.io/flaky/y", 9),
            Threshold::Warn
        );
        assert_eq!(c.rules[1].safety, Default::default());
    }

    /// Bad input: each bad safety value is refused with its key and the fix.
    #[test]
    fn bad_safety_values_name_the_key_and_the_fix() {
        let cases = [
            (
                "pacing: {max: 0, per: 6h}",
                "pacing",
            ),
            ("pacing: {max: 5}", "pacing.per"),
            (
                "rules: [{policy: digest, pacing: {max: 2, per: soon}}]",
                "rules[0].pacing",
            ),
            (
                "rules: [{policy: digest, windows: [\"Mon 02:00-05:00 Mars/Olympus\"]}]",
                "rules[0].windows[0]",
            ),
            (
                "rules: [{policy: digest, windows: [\"Someday 02:00-05:00 UTC\"]}]",
                "rules[0].windows[0]",
            ),
            (
                "rules: [{policy: digest, onFailure: panic}]",
                "rules[0].onFailure",
            ),
            (
                "rules: [{policy: digest, thresholds: [{images: \"a/*\", threshold: 0}]}]",
                "rules[0].thresholds[0].threshold",
            ),
        ];
        for (text, key) in cases {
            let e = ClusterConfig::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(key), "{text}: {e}");
            assert!(
                e.contains("write") || e.contains("use") || e.contains("set"),
                "{text}: no fix in {e}"
            );
        }
    }
}
