//! The pacing budget: how many rollouts may start now, and when the rest are due.
//!
//! Owns the budget vocabulary (`pacing: {max: 5, per: 6h}` cluster-wide, optionally
//! per rule and per namespace, plus `maxInProgress`), the budget state (the times of
//! the slots spent, per scope) with its strict parsing and rendering, and the
//! decision [`pace`]: given the due workloads and `now`, which roll now and when each
//! of the others is due. A rollout spends one slot in every scope that applies to it
//! (the cluster, its rule, its namespace); a slot is free again `per` after it was
//! spent (a sliding window), so no window of length `per` ever holds more than `max`
//! rollouts of a scope.
//!
//! The queue order is deterministic: rule order (workloads enrolled by their own
//! annotations after every rule), then the longest-waiting, then the workload id.
//! When a workload started waiting is part of the state ([`PacingState::waiting`]),
//! so the order survives one-shot runs: [`pace`] keeps the earliest time it knows
//! for each queued workload and forgets those that roll or are no longer due.
//! A workload whose scopes are full is queued with the time its slots free up,
//! counting the slots the workloads ahead of it will take; a later workload whose
//! scopes have room still rolls now.
//!
//! Must not store anything or read the clock: the shell keeps [`PacingState`] in a
//! cluster object freshet owns and writes [`Pace::state`] back with the
//! `resourceVersion` it read, retrying the whole decision on a conflict, so two
//! replicas or runs never spend the same slot. Maintenance windows are separate
//! ([`crate::safety::window`]): a queued workload is due at the later of its pacing
//! time and the next window.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{json_reason, rfc3339};

/// The largest `max` accepted.
pub const MAX_SLOTS: u32 = 10_000;
/// The shortest `per` accepted.
pub const MIN_PER: Duration = Duration::from_secs(60);
/// The longest `per` accepted.
pub const MAX_PER: Duration = Duration::from_secs(30 * 24 * 3600);
/// The largest state value parsed (a ConfigMap holds 1 MiB).
pub const MAX_STATE: usize = 1024 * 1024;
/// The most waiting workloads remembered (the longest-waiting are kept; the others
/// count as waiting since the pass that sees them), so the state stays far below
/// [`MAX_STATE`].
pub const MAX_WAITING: usize = 5_000;

/// The scope key of the cluster-wide budget in [`PacingState`].
pub const CLUSTER: &str = "cluster";

/// Why a pacing setting or the pacing state was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacingError {
    /// A budget value is out of range or does not parse.
    #[error("{key}: {value:?} {reason}; fix: {fix}")]
    Invalid {
        /// The config key, e.g. `pacing.per` or `rules[1].pacing.max`.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong.
        reason: String,
        /// How to fix it.
        fix: &'static str,
    },
    /// The stored state does not parse.
    #[error(
        "pacing state: {reason}; freshet writes it itself: delete the object to reset the budget"
    )]
    State {
        /// What the parser said.
        reason: String,
    },
}

/// One budget: at most `max` rollouts in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Rollouts per window.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

/// A budget as written in the config file (`{max: 5, per: 6h}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Rollouts per window.
    pub max: i64,
    /// The window, e.g. `6h` or `1h30m`.
    pub per: String,
}

/// The cluster-wide `pacing:` block as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PacingSpec {
    /// Rollouts per window, cluster-wide (with `per`).
    #[serde(default)]
    pub max: Option<i64>,
    /// The window (with `max`).
    #[serde(default)]
    pub per: Option<String>,
    /// Rollouts in progress at once, cluster-wide.
    #[serde(default)]
    pub max_in_progress: Option<i64>,
    /// Budgets per namespace.
    #[serde(default)]
    pub namespaces: BTreeMap<String, BudgetSpec>,
}

impl Budget {
    /// Validates `max` (1 to [`MAX_SLOTS`]) and `per` (a duration from 1m to 30d);
    /// `key` is the config path of the budget, e.g. `pacing` or `rules[1].pacing`.
    pub fn parse(key: &str, max: i64, per: &str) -> Result<Budget, PacingError> {
        let max = u32::try_from(max)
            .ok()
            .filter(|m| (1..=MAX_SLOTS).contains(m))
            .ok_or_else(|| PacingError::Invalid {
                key: format!("{key}.max"),
                value: max.to_string(),
                reason: "is not a rollout count".into(),
                fix: "write an integer from 1 to 10000, e.g. max: 5",
            })?;
        let bad = |reason: String| PacingError::Invalid {
            key: format!("{key}.per"),
            value: per.to_owned(),
            reason,
            fix: "write a duration from 1m to 30d, e.g. per: 6h or per: 1h30m",
        };
        let parsed = humantime::parse_duration(per.trim())
            .map_err(|e| bad(format!("is not a duration ({e})")))?;
        if !(MIN_PER..=MAX_PER).contains(&parsed) {
            return Err(bad("is out of range".into()));
        }
        Ok(Budget { max, per: parsed })
    }

    fn per(&self) -> TimeDelta {
        TimeDelta::from_std(self.per).expect("per is at most 30 days")
    }
}

impl BudgetSpec {
    /// Validates the budget; `key` is its config path.
    pub fn validate(&self, key: &str) -> Result<Budget, PacingError> {
        Budget::parse(key, self.max, &self.per)
    }
}

/// Every budget that applies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pacing {
    /// The cluster-wide budget.
    pub cluster: Option<Budget>,
    /// Budgets per rule index.
    pub rules: BTreeMap<usize, Budget>,
    /// Budgets per namespace.
    pub namespaces: BTreeMap<String, Budget>,
    /// Rollouts in progress at once.
    pub max_in_progress: Option<u32>,
}

impl Pacing {
    /// The config's `pacing:` block (key `pacing`) and the rules' `pacing:` blocks
    /// (key `rules[i].pacing`), validated.
    pub fn from_spec(
        spec: Option<&PacingSpec>,
        rules: &[(usize, &BudgetSpec)],
    ) -> Result<Pacing, PacingError> {
        let mut out = Pacing::default();
        if let Some(spec) = spec {
            out.cluster = match (spec.max, &spec.per) {
                (Some(max), Some(per)) => Some(Budget::parse("pacing", max, per)?),
                (None, None) => None,
                (max, per) => {
                    return Err(PacingError::Invalid {
                        key: if max.is_none() {
                            "pacing.max"
                        } else {
                            "pacing.per"
                        }
                        .into(),
                        value: String::new(),
                        reason: format!(
                            "is missing (pacing.{} is set)",
                            if per.is_some() { "per" } else { "max" }
                        ),
                        fix: "set both max and per, e.g. pacing: {max: 5, per: 6h}",
                    });
                }
            };
            if let Some(n) = spec.max_in_progress {
                out.max_in_progress = Some(
                    u32::try_from(n)
                        .ok()
                        .filter(|n| (1..=MAX_SLOTS).contains(n))
                        .ok_or_else(|| PacingError::Invalid {
                            key: "pacing.maxInProgress".into(),
                            value: n.to_string(),
                            reason: "is not a rollout count".into(),
                            fix: "write an integer from 1 to 10000, e.g. maxInProgress: 2",
                        })?,
                );
            }
            for (ns, b) in &spec.namespaces {
                out.namespaces
                    .insert(ns.clone(), b.validate(&format!("pacing.namespaces.{ns}"))?);
            }
        }
        for (index, b) in rules {
            out.rules
                .insert(*index, b.validate(&format!("rules[{index}].pacing"))?);
        }
        Ok(out)
    }

    /// The scopes (state keys) and budgets that apply to a workload.
    fn scopes(&self, w: &DueWorkload) -> Vec<(String, Budget)> {
        let mut out = Vec::new();
        if let Some(b) = self.cluster {
            out.push((CLUSTER.to_owned(), b));
        }
        if let Some(b) = w.rule.and_then(|r| self.rules.get(&r)) {
            out.push((rule_scope(w.rule.unwrap_or_default()), *b));
        }
        if let Some(b) = self.namespaces.get(&w.namespace) {
            out.push((namespace_scope(&w.namespace), *b));
        }
        out
    }

    fn budget_of(&self, scope: &str) -> Option<Budget> {
        if scope == CLUSTER {
            return self.cluster;
        }
        if let Some(ns) = scope.strip_prefix("namespace:") {
            return self.namespaces.get(ns).copied();
        }
        let rule = scope.strip_prefix("rule:")?.parse::<usize>().ok()?;
        self.rules.get(&rule).copied()
    }
}

/// The state key of a rule's budget.
pub fn rule_scope(index: usize) -> String {
    format!("rule:{index}")
}

/// The state key of a namespace's budget.
pub fn namespace_scope(namespace: &str) -> String {
    format!("namespace:{namespace}")
}

/// The slots spent, per scope (times ascending), and since when each queued
/// workload waits. Stored by the shell.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacingState {
    /// Slot times per scope key ([`CLUSTER`], [`rule_scope`], [`namespace_scope`]).
    pub slots: BTreeMap<String, Vec<Slot>>,
    /// Workload id -> since when it waits (queued by the budget or outside its
    /// windows); at most [`MAX_WAITING`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub waiting: BTreeMap<String, Slot>,
}

/// One slot spent at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slot(#[serde(with = "rfc3339")] pub DateTime<Utc>);

impl PacingState {
    /// Parses the stored value (empty: no slots spent).
    pub fn parse(value: &str) -> Result<PacingState, PacingError> {
        if value.trim().is_empty() {
            return Ok(PacingState::default());
        }
        if value.len() > MAX_STATE {
            return Err(PacingError::State {
                reason: format!("the value is {} bytes, over 1 MiB", value.len()),
            });
        }
        let mut state: PacingState =
            serde_json::from_str(value).map_err(|e| PacingError::State {
                reason: json_reason(&e),
            })?;
        for slots in state.slots.values_mut() {
            slots.sort();
        }
        Ok(state)
    }

    /// The value to store.
    pub fn render(&self) -> String {
        serde_json::to_string(self).expect("the pacing state serialises")
    }

    /// Since when `id`, asking at `since`, waits: the earlier of `since` and the
    /// time this state remembers.
    pub fn waiting_since(&self, id: &str, since: DateTime<Utc>) -> DateTime<Utc> {
        self.waiting.get(id).map_or(since, |s| s.0.min(since))
    }

    /// Remembers that `id` waits since `previous.waiting_since(id, since)` (also
    /// for a workload outside its windows, which [`pace`] does not see); call
    /// [`PacingState::cap_waiting`] after the last.
    pub fn keep_waiting(&mut self, previous: &PacingState, id: &str, since: DateTime<Utc>) {
        let at = previous.waiting_since(id, since);
        self.waiting.insert(id.to_owned(), Slot(at));
    }

    /// Keeps the [`MAX_WAITING`] longest-waiting entries.
    pub fn cap_waiting(&mut self) {
        if self.waiting.len() <= MAX_WAITING {
            return;
        }
        let mut all: Vec<(Slot, String)> = std::mem::take(&mut self.waiting)
            .into_iter()
            .map(|(id, at)| (at, id))
            .collect();
        all.sort();
        all.truncate(MAX_WAITING);
        self.waiting = all.into_iter().map(|(at, id)| (id, at)).collect();
    }

    /// The state without slots that no budget counts any more at `now`.
    pub fn pruned(&self, pacing: &Pacing, now: DateTime<Utc>) -> PacingState {
        let mut out = PacingState::default();
        for (scope, slots) in &self.slots {
            let Some(budget) = pacing.budget_of(scope) else {
                continue;
            };
            let mut kept: Vec<Slot> = slots
                .iter()
                .copied()
                .filter(|s| s.0 + budget.per() > now)
                .collect();
            kept.sort();
            if !kept.is_empty() {
                out.slots.insert(scope.clone(), kept);
            }
        }
        out
    }
}

/// A workload that is due for a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWorkload {
    /// Its id, e.g. `Deployment/shop/api`.
    pub id: String,
    /// Its namespace.
    pub namespace: String,
    /// The config rule that enrolled it (`None`: its own annotations).
    pub rule: Option<usize>,
    /// Since when it has been due as this pass sees it (the longest-waiting goes
    /// first; the state's earlier time for it wins).
    pub waiting_since: DateTime<Utc>,
}

/// Why a workload waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueReason {
    /// A budget is spent; the scope that frees up last.
    Budget {
        /// The scope key.
        scope: String,
    },
    /// `maxInProgress` rollouts are in progress.
    InProgress {
        /// The limit.
        max: u32,
    },
}

/// A workload that waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its id.
    pub id: String,
    /// When it is due (`None`: when a rollout in progress finishes).
    pub due: Option<DateTime<Utc>>,
    /// Why it waits.
    pub reason: QueueReason,
}

/// The decision for one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pace {
    /// Ids that roll now, in queue order.
    pub roll: Vec<String>,
    /// The others, in queue order.
    pub queued: Vec<Queued>,
    /// The state to store (pruned, with the slots spent now, and the queued
    /// workloads' waiting times).
    pub state: PacingState,
}

/// Decides which `due` workloads roll now; `in_progress` is the number of rollouts
/// freshet is following.
pub fn pace(
    pacing: &Pacing,
    state: &PacingState,
    due: &[DueWorkload],
    in_progress: u32,
    now: DateTime<Utc>,
) -> Pace {
    let mut order: Vec<(&DueWorkload, DateTime<Utc>)> = due
        .iter()
        .map(|w| (w, state.waiting_since(&w.id, w.waiting_since)))
        .collect();
    order.sort_by(|(a, a_since), (b, b_since)| {
        (a.rule.is_none(), a.rule, a_since, &a.id).cmp(&(b.rule.is_none(), b.rule, b_since, &b.id))
    });
    let mut real = state.pruned(pacing, now);
    let mut planned = real.clone();
    let mut running = in_progress;
    let mut out = Pace {
        roll: Vec::new(),
        queued: Vec::new(),
        state: PacingState::default(),
    };
    let mut waiting = Vec::new();
    for (w, since) in order {
        if let Some(max) = pacing.max_in_progress.filter(|m| running >= *m) {
            waiting.push((w.id.as_str(), since));
            out.queued.push(Queued {
                id: w.id.clone(),
                due: None,
                reason: QueueReason::InProgress { max },
            });
            continue;
        }
        let scopes = pacing.scopes(w);
        let (at, binding) = earliest_all(&planned, &scopes, now);
        for (scope, _) in &scopes {
            let slots = planned.slots.entry(scope.clone()).or_default();
            let i = slots.partition_point(|s| s.0 <= at);
            slots.insert(i, Slot(at));
        }
        if at == now {
            for (scope, _) in &scopes {
                real.slots.entry(scope.clone()).or_default().push(Slot(now));
            }
            running += 1;
            out.roll.push(w.id.clone());
        } else {
            waiting.push((w.id.as_str(), since));
            out.queued.push(Queued {
                id: w.id.clone(),
                due: Some(at),
                reason: QueueReason::Budget {
                    scope: binding.unwrap_or_default(),
                },
            });
        }
    }
    for slots in real.slots.values_mut() {
        slots.sort();
    }
    for (id, since) in waiting {
        real.keep_waiting(state, id, since);
    }
    real.cap_waiting();
    out.state = real;
    out
}

/// The earliest time from `from` at which every scope has a free slot, and the scope
/// that waited longest (`None` when nothing waited).
fn earliest_all(
    state: &PacingState,
    scopes: &[(String, Budget)],
    from: DateTime<Utc>,
) -> (DateTime<Utc>, Option<String>) {
    let mut at = from;
    let mut binding = None;
    loop {
        let mut moved = false;
        for (scope, budget) in scopes {
            let slots = state.slots.get(scope).map_or(&[][..], Vec::as_slice);
            let t = earliest(slots, *budget, at);
            if t > at {
                at = t;
                binding = Some(scope.clone());
                moved = true;
            }
        }
        if !moved {
            return (at, binding);
        }
    }
}

/// The earliest time from `from` at which fewer than `max` of `slots` (sorted) are
/// active (a slot at `s` is active during `[s, s + per)`).
fn earliest(slots: &[Slot], budget: Budget, from: DateTime<Utc>) -> DateTime<Utc> {
    let per = budget.per();
    let max = budget.max as usize;
    let mut at = from;
    loop {
        let lo = slots.partition_point(|s| s.0 + per <= at);
        let hi = slots.partition_point(|s| s.0 <= at);
        let active = hi.saturating_sub(lo);
        if active < max {
            return at;
        }
        // Wait until all but max - 1 of the active slots have expired.
        at = slots[lo + active - max].0 + per;
    }
}

#[cfg(test)]
mod tests;
