//! The composed decision for the scenarios of issue 11, pass after pass.

use super::*;
use crate::runs::catchup::NoCatchUp;
use crate::runs::change::{NoRestartWhy, RestartWhy};
use crate::runs::decide::{
    NothingReason, RecordReason, RestartReason, RunsAction, RunsDecision, Tracked, decide,
};
use crate::runs::target::Target;

fn nodes() -> Vec<Node> {
    vec![node("amd-1", "linux/amd64"), node("arm-1", "linux/arm64")]
}

fn run(pods: &[Pod], target: &Target, previous: Option<&Target>, catch_up: bool) -> RunsDecision {
    let nodes = nodes();
    let index_ = NodeIndex::new(&nodes, &NodePlatformRules::default());
    let owned = owned(pods);
    let wp = workload_platforms(&owned.pods, &arch_in(&["amd64", "arm64"]), &index_);
    let tracked = Tracked {
        container: "app",
        image: IMAGE,
        target,
        previous,
        catch_up,
    };
    decide(&tracked, &owned, &wp, &index_)
}

fn stale_names(a: &RunsAction) -> Vec<String> {
    match a {
        RunsAction::Restart {
            why: RestartReason::CatchUp { pods },
        }
        | RunsAction::Nothing {
            why: NothingReason::StillStale { pods },
        } => pods.names.clone(),
        _ => vec![],
    }
}

#[test]
fn stale_latest_pods_are_caught_up_on_enrolment_unless_catch_up_is_off() {
    let now = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let pods = [
        pod("a").on("amd-1").runs(d(9)),
        pod("b").on("arm-1").runs(d(1)),
    ];
    let got = run(&pods, &now, None, true);
    assert_eq!(stale_names(&got.action), ["a"]);
    assert!(matches!(got.action, RunsAction::Restart { .. }));
    assert_eq!(
        run(&pods, &now, None, false).action,
        RunsAction::Record {
            why: RecordReason::Baseline {
                why: NoCatchUp::Disabled
            }
        }
    );
    let current = [pod("a").on("amd-1").runs(d(1))];
    assert_eq!(
        run(&current, &now, None, true).action,
        RunsAction::Record {
            why: RecordReason::Baseline {
                why: NoCatchUp::Current
            }
        }
    );
    // What is recorded with the target: every platform the workload may run on.
    assert_eq!(
        got.record.into_iter().collect::<Vec<_>>(),
        [
            ("linux/amd64".to_owned(), Some(d(2))),
            ("linux/arm64".to_owned(), Some(d(3)))
        ]
    );
}

#[test]
fn an_amd64_only_target_is_refused_for_a_workload_with_arm64_pods() {
    let before = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let amd_only = image(7, Some("linux/amd64"));
    let pods = [
        pod("a").on("amd-1").runs(d(1)),
        pod("b").on("arm-1").runs(d(1)),
    ];
    for previous in [None, Some(&before)] {
        let got = run(&pods, &amd_only, previous, true);
        let RunsAction::Block { missing } = &got.action else {
            panic!("{got:?}")
        };
        assert_eq!(missing.missing[0].platform, "linux/arm64");
        assert_eq!(missing.missing[0].running.names, ["arm-1"]);
    }
}

#[test]
fn an_index_change_that_only_touches_arm64_restarts_only_arm64_workloads() {
    let before = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let after = index(4, &[("linux/amd64", 2), ("linux/arm64", 5)]);
    let recorded = Target::recorded(d(1), &before.record([&p("linux/amd64"), &p("linux/arm64")]));
    let amd = [pod("a").on("amd-1").runs(d(1))];
    assert_eq!(
        run(&amd, &after, Some(&recorded), true).action,
        RunsAction::Record {
            why: RecordReason::Unchanged {
                why: NoRestartWhy::OtherPlatformsOnly {
                    from: d(1),
                    to: d(4),
                    platforms: vec!["linux/amd64".into()]
                }
            }
        }
    );
    let arm = [pod("b").on("arm-1").runs(d(1))];
    assert_eq!(
        run(&arm, &after, Some(&recorded), true).action,
        RunsAction::Restart {
            why: RestartReason::Changed {
                why: RestartWhy::PlatformsChanged {
                    platforms: vec!["linux/arm64".into()],
                    from: d(1),
                    to: d(4)
                }
            }
        }
    );
    // Unchanged for amd64, but this pod runs an even older image: catch it up.
    let older = [pod("a").on("amd-1").runs(d(8))];
    assert_eq!(
        stale_names(&run(&older, &after, Some(&recorded), true).action),
        ["a"]
    );
}

#[test]
fn nothing_is_written_when_the_tag_names_what_is_recorded_even_with_stale_pods() {
    let now = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let current = [pod("a").on("amd-1").runs(d(1))];
    assert_eq!(
        run(&current, &now, Some(&now), true).action,
        RunsAction::Nothing {
            why: NothingReason::AlreadyRecorded
        }
    );
    // Right after a restart the old ReplicaSet's pods still run the old image: no loop.
    let rolling = [
        pod("new").on("amd-1").runs(d(1)),
        pod("old").on("amd-1").runs(d(9)),
    ];
    let got = run(&rolling, &now, Some(&now), true);
    assert_eq!(stale_names(&got.action), ["old"]);
    assert!(matches!(got.action, RunsAction::Nothing { .. }));
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["action"]["action"], "nothing");
    assert_eq!(json["action"]["why"]["reason"], "stillStale");
    assert_eq!(json["guard"]["guard"], "offers");
    assert_eq!(json["freshness"]["state"], "stale");
}
