//! Pacing: the issue's 5-per-6h scenario, queue order, scopes, bad settings, and a
//! property test that no window of `per` ever holds more than `max` rollouts.

use proptest::prelude::*;

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
}

const H: i64 = 3600;

fn due(id: &str, namespace: &str, rule: Option<usize>, waiting_since: i64) -> DueWorkload {
    DueWorkload {
        id: id.into(),
        namespace: namespace.into(),
        rule,
        waiting_since: t(waiting_since),
    }
}

fn five_per_6h() -> Pacing {
    Pacing {
        cluster: Some(Budget::parse("pacing", 5, "6h").unwrap()),
        ..Pacing::default()
    }
}

#[test]
fn five_per_6h_over_20_due_workloads_rolls_exactly_5_and_queues_the_rest_with_due_times() {
    let pacing = five_per_6h();
    let workloads: Vec<DueWorkload> = (0..20)
        .map(|i| due(&format!("Deployment/shop/w{i:02}"), "shop", Some(0), -i))
        .collect();
    let now = t(0);
    let p = pace(&pacing, &PacingState::default(), &workloads, 0, now);
    assert_eq!(p.roll.len(), 5);
    assert_eq!(p.queued.len(), 15);
    // The longest-waiting roll first.
    assert_eq!(
        p.roll,
        ["w19", "w18", "w17", "w16", "w15"].map(|w| format!("Deployment/shop/{w}"))
    );
    // The rest are due as the slots free up: five at +6h, five at +12h, five at +18h.
    for (i, q) in p.queued.iter().enumerate() {
        let window = 1 + i as i64 / 5;
        assert_eq!(q.due, Some(t(window * 6 * H)), "{q:?}");
        assert_eq!(
            q.reason,
            QueueReason::Budget {
                scope: CLUSTER.into()
            }
        );
    }
    assert_eq!(p.state.slots[CLUSTER], vec![Slot(now); 5]);

    // A second pass an hour later (the state stored and read back) rolls nothing.
    let state = PacingState::parse(&p.state.render()).unwrap();
    let rest: Vec<DueWorkload> = workloads
        .iter()
        .filter(|w| !p.roll.contains(&w.id))
        .cloned()
        .collect();
    let p2 = pace(&pacing, &state, &rest, 0, t(H));
    assert!(p2.roll.is_empty());
    assert_eq!(p2.queued[0].due, Some(t(6 * H)));
    // At +6h the next five roll, and the spent slots have expired from the state.
    let p3 = pace(&pacing, &p2.state, &rest, 0, t(6 * H));
    assert_eq!(p3.roll.len(), 5);
    assert_eq!(p3.state.slots[CLUSTER], vec![Slot(t(6 * H)); 5]);
}

#[test]
fn queue_order_is_rule_order_then_longest_waiting_then_annotation_enrolled() {
    let pacing = Pacing {
        cluster: Some(Budget::parse("pacing", 3, "1h").unwrap()),
        ..Pacing::default()
    };
    let workloads = [
        due("annotated-old", "a", None, -1000),
        due("rule1-old", "a", Some(1), -500),
        due("rule0-new", "a", Some(0), -10),
        due("rule0-old", "a", Some(0), -20),
        due("rule1-new", "a", Some(1), -5),
    ];
    let p = pace(&pacing, &PacingState::default(), &workloads, 0, t(0));
    assert_eq!(p.roll, ["rule0-old", "rule0-new", "rule1-old"]);
    let queued: Vec<&str> = p.queued.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(queued, ["rule1-new", "annotated-old"]);
}

#[test]
fn every_scope_must_have_room_and_a_full_scope_does_not_block_others() {
    let mut pacing = five_per_6h();
    pacing.namespaces.insert(
        "dev".into(),
        Budget::parse("pacing.namespaces.dev", 1, "1h").unwrap(),
    );
    pacing
        .rules
        .insert(2, Budget::parse("rules[2].pacing", 2, "2h").unwrap());
    let workloads = [
        due("dev-1", "dev", Some(0), -30),
        due("dev-2", "dev", Some(0), -20),
        due("prod-1", "prod", Some(0), -10),
        due("r2-1", "prod", Some(2), -3),
        due("r2-2", "prod", Some(2), -2),
        due("r2-3", "prod", Some(2), -1),
    ];
    let p = pace(&pacing, &PacingState::default(), &workloads, 0, t(0));
    assert_eq!(p.roll, ["dev-1", "prod-1", "r2-1", "r2-2"]);
    let q: BTreeMap<&str, &Queued> = p.queued.iter().map(|q| (q.id.as_str(), q)).collect();
    assert_eq!(q["dev-2"].due, Some(t(H)));
    assert_eq!(
        q["dev-2"].reason,
        QueueReason::Budget {
            scope: "namespace:dev".into()
        }
    );
    // Its rule frees up at +2h, but dev-2 (ahead in the queue) takes the cluster's
    // last slot at +1h, so the cluster budget holds it until +6h.
    assert_eq!(q["r2-3"].due, Some(t(6 * H)));
    assert_eq!(
        q["r2-3"].reason,
        QueueReason::Budget {
            scope: CLUSTER.into()
        }
    );
    assert_eq!(p.state.slots["namespace:dev"].len(), 1);
    assert_eq!(p.state.slots["rule:2"].len(), 2);
    assert_eq!(p.state.slots[CLUSTER].len(), 4);
}

#[test]
fn max_in_progress_queues_without_a_due_time() {
    let pacing = Pacing {
        max_in_progress: Some(2),
        ..Pacing::default()
    };
    let workloads = [
        due("a", "x", None, -3),
        due("b", "x", None, -2),
        due("c", "x", None, -1),
    ];
    let p = pace(&pacing, &PacingState::default(), &workloads, 1, t(0));
    assert_eq!(p.roll, ["a"]);
    assert_eq!(p.queued.len(), 2);
    assert!(
        p.queued
            .iter()
            .all(|q| q.due.is_none() && q.reason == QueueReason::InProgress { max: 2 })
    );
    // No budget: no slots are recorded.
    assert!(p.state.slots.is_empty());
}

/// Regression: a one-shot run saw every workload as waiting since its own start,
/// so the queue order after the rule was the id, not the longest-waiting.
#[test]
fn the_waiting_time_survives_passes_in_the_state() {
    let pacing = Pacing {
        cluster: Some(Budget::parse("pacing", 1, "1h").unwrap()),
        ..Pacing::default()
    };
    // 0: `a` rolls, `z` waits from now on.
    let p = pace(
        &pacing,
        &PacingState::default(),
        &[due("a", "x", None, 0), due("z", "x", None, 0)],
        0,
        t(0),
    );
    assert_eq!(p.roll, ["a"]);
    assert_eq!(p.state.waiting, BTreeMap::from([("z".into(), Slot(t(0)))]));
    // +30m: `b` is due too; each pass sees both as waiting since it started.
    let state = PacingState::parse(&p.state.render()).unwrap();
    let now = [due("b", "x", None, H / 2), due("z", "x", None, H / 2)];
    let p = pace(&pacing, &state, &now, 0, t(H / 2));
    assert!(p.roll.is_empty());
    assert_eq!(p.queued[0].id, "z", "z waits longest");
    assert_eq!(p.state.waiting["z"], Slot(t(0)));
    assert_eq!(p.state.waiting["b"], Slot(t(H / 2)));
    // +1h: `z` rolls before `b` (by id it would not); `b` keeps its time, and
    // `z` is forgotten.
    let state = PacingState::parse(&p.state.render()).unwrap();
    let now = [due("b", "x", None, H), due("z", "x", None, H)];
    let p = pace(&pacing, &state, &now, 0, t(H));
    assert_eq!(p.roll, ["z"]);
    assert_eq!(
        p.state.waiting,
        BTreeMap::from([("b".into(), Slot(t(H / 2)))])
    );
    // A workload no longer due is forgotten too; the rule still orders first.
    let p = pace(
        &pacing,
        &p.state,
        &[due("c", "x", Some(0), 2 * H)],
        0,
        t(2 * H),
    );
    assert_eq!(p.roll, ["c"]);
    assert!(p.state.waiting.is_empty());
}

#[test]
fn at_most_max_waiting_are_remembered_the_longest_waiting_first() {
    let mut state = PacingState::default();
    let none = PacingState::default();
    for i in 0..(MAX_WAITING as i64 + 10) {
        state.keep_waiting(&none, &format!("w{i:05}"), t(-i));
    }
    state.cap_waiting();
    assert_eq!(state.waiting.len(), MAX_WAITING);
    assert!(
        state
            .waiting
            .contains_key(&format!("w{:05}", MAX_WAITING + 9))
    );
    assert!(!state.waiting.contains_key("w00000"));
}

#[test]
fn slots_spent_earlier_count_until_they_expire() {
    let pacing = five_per_6h();
    let state = PacingState {
        slots: BTreeMap::from([(CLUSTER.into(), vec![Slot(t(-5 * H)); 3])]),
        ..PacingState::default()
    };
    let workloads: Vec<DueWorkload> = (0..4)
        .map(|i| due(&format!("w{i}"), "x", None, i))
        .collect();
    let p = pace(&pacing, &state, &workloads, 0, t(0));
    assert_eq!(p.roll, ["w0", "w1"]);
    assert_eq!(p.queued[0].due, Some(t(H)));
    assert_eq!(p.queued[1].due, Some(t(H)));
    // A scope no longer configured is dropped from the state.
    let stale = PacingState {
        slots: BTreeMap::from([("namespace:gone".into(), vec![Slot(t(0))])]),
        ..PacingState::default()
    };
    assert!(stale.pruned(&pacing, t(0)).slots.is_empty());
}

#[test]
fn bad_settings_name_the_key_and_the_fix() {
    let cases: Vec<(Result<Budget, PacingError>, &str, &str)> = vec![
        (
            Budget::parse("pacing", 0, "6h"),
            "pacing.max",
            "from 1 to 10000",
        ),
        (
            Budget::parse("pacing", -3, "6h"),
            "pacing.max",
            "from 1 to 10000",
        ),
        (
            Budget::parse("rules[1].pacing", 5, "six hours"),
            "rules[1].pacing.per",
            "per: 6h",
        ),
        (
            Budget::parse("pacing", 5, "10s"),
            "pacing.per",
            "from 1m to 30d",
        ),
        (
            Budget::parse("pacing", 5, "90d"),
            "pacing.per",
            "from 1m to 30d",
        ),
    ];
    for (result, key, fix) in cases {
        let e = result.unwrap_err().to_string();
        assert!(e.starts_with(key) && e.contains(fix), "{e}");
    }
    let spec: PacingSpec = serde_json::from_str(r#"{"max":5}"#).unwrap();
    let e = Pacing::from_spec(Some(&spec), &[]).unwrap_err().to_string();
    assert!(e.contains("pacing.per") && e.contains("set both"), "{e}");
    let spec: PacingSpec = serde_json::from_str(r#"{"maxInProgress":0}"#).unwrap();
    let e = Pacing::from_spec(Some(&spec), &[]).unwrap_err().to_string();
    assert!(e.contains("pacing.maxInProgress"), "{e}");
    let spec: PacingSpec = serde_json::from_str(
        r#"{"max":5,"per":"6h","maxInProgress":2,"namespaces":{"dev":{"max":1,"per":"1h"}}}"#,
    )
    .unwrap();
    let rule = BudgetSpec {
        max: 2,
        per: "2h".into(),
    };
    let p = Pacing::from_spec(Some(&spec), &[(3, &rule)]).unwrap();
    assert_eq!(
        p.cluster,
        Some(Budget {
            max: 5,
            per: Duration::from_secs(6 * 3600)
        })
    );
    assert_eq!(p.max_in_progress, Some(2));
    assert_eq!(p.namespaces["dev"].max, 1);
    assert_eq!(p.rules[&3].per, Duration::from_secs(7200));
    assert!(serde_json::from_str::<PacingSpec>(r#"{"rate":5}"#).is_err());
    let e = PacingState::parse("{\"slot\":{}}").unwrap_err().to_string();
    assert!(e.contains("delete the object"), "{e}");
}

proptest! {
    /// Passes at arbitrary times, with workloads always due again: no window of
    /// `per` ever holds more than `max` slots, and the state round-trips.
    #[test]
    fn no_window_holds_more_than_max(
        max in 1u32..6,
        per_minutes in 1i64..180,
        gaps in proptest::collection::vec(0i64..120, 1..40),
        workloads in 1usize..12,
    ) {
        let pacing = Pacing {
            cluster: Some(Budget { max, per: Duration::from_secs(per_minutes as u64 * 60) }),
            ..Pacing::default()
        };
        let due_list: Vec<DueWorkload> =
            (0..workloads).map(|i| due(&format!("w{i}"), "x", None, 0)).collect();
        let mut state = PacingState::default();
        let mut spent: Vec<i64> = Vec::new();
        let mut now = 0i64;
        for gap in gaps {
            now += gap * 60;
            let p = pace(&pacing, &state, &due_list, 0, t(now));
            prop_assert_eq!(p.roll.len() + p.queued.len(), workloads);
            for q in &p.queued {
                prop_assert!(q.due.is_some_and(|d| d > t(now)));
            }
            spent.extend(std::iter::repeat_n(now, p.roll.len()));
            state = PacingState::parse(&p.state.render()).unwrap();
            prop_assert_eq!(&state, &p.state);
        }
        let per = per_minutes * 60;
        for &s in &spent {
            let in_window = spent.iter().filter(|&&x| x >= s && x < s + per).count();
            prop_assert!(in_window <= max as usize, "{in_window} slots in [{s}, {s}+{per})");
        }
    }
}

#[test]
fn a_large_budget_and_queue_stay_cheap() {
    // 10 000 slots per day over 30 000 due workloads: every lookup is a binary
    // search, so this is instant rather than quadratic.
    let pacing = Pacing {
        cluster: Some(Budget::parse("pacing", 10_000, "1d").unwrap()),
        ..Pacing::default()
    };
    let workloads: Vec<DueWorkload> = (0..30_000)
        .map(|i| due(&format!("w{i:05}"), "x", None, 0))
        .collect();
    let p = pace(&pacing, &PacingState::default(), &workloads, 0, t(0));
    assert_eq!(p.roll.len(), 10_000);
    assert_eq!(p.queued.last().unwrap().due, Some(t(2 * 24 * H)));
}
