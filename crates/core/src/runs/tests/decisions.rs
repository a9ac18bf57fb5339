//! Scenario tables for platforms, catch-up, per-platform change detection, the
//! platform guard and stuck pulls.

use super::*;
use crate::runs::catchup::{
    CatchUp, Freshness, FreshnessUnknown, NoCatchUp, PodUnknown, catch_up, freshness,
};
use crate::runs::change::{Change, NoRestartWhy, RestartWhy, detect_change};
use crate::runs::guard::{EVENT_REASON, FAILURE_CLASS, Guard, Unverified, guard};
use crate::runs::image_id::ImageIdError;
use crate::runs::observe::observe;
use crate::runs::platforms::UnknownNode;
use crate::runs::stuck::{PullCause, pull_cause, stuck_pods};
use crate::runs::target::Target;

fn nodes() -> Vec<Node> {
    vec![
        node("amd-1", "linux/amd64"),
        node("amd-2", "linux/amd64"),
        node("arm-1", "linux/arm64"),
    ]
}

/// Freshness of `app` in `pods` against `target`, with earlier `known` targets.
fn fresh(pods: &[Pod], target: &Target, known: &[Target]) -> Freshness {
    let nodes = nodes();
    let index = NodeIndex::new(&nodes, &NodePlatformRules::default());
    let owned = owned(pods);
    let observed = observe("app", IMAGE, &owned.pods, &index);
    freshness(&observed, target, known, owned.truncated.as_ref())
}

#[test]
fn platforms_run_on_and_may_run_on_are_explained() {
    let mut all = nodes();
    all.push(node("bare", ""));
    let pods = vec![
        pod("a").on("amd-1"),
        pod("b").on("arm-1"),
        pod("c").on("gone"),
        pod("d").on("bare"),
        pod("e"),
        pod("f").on("amd-1"),
    ];
    let wp = platforms_of(&pods, &Scheduling::default(), &all);
    let runs: Vec<(String, Vec<String>)> = wp
        .runs_on
        .iter()
        .map(|(p, n)| (p.to_string(), n.names.clone()))
        .collect();
    assert_eq!(
        runs,
        [
            ("linux/amd64".to_owned(), vec!["amd-1".to_owned()]),
            ("linux/arm64".to_owned(), vec!["arm-1".to_owned()]),
        ]
    );
    assert_eq!(wp.may_run_on[&p("linux/amd64")].names, ["amd-1", "amd-2"]);
    assert_eq!(wp.running_on_unknown.names, ["bare", "gone"]);
    assert_eq!(wp.unscheduled_pods, 1);
    assert!(matches!(&wp.unknown[0], UnknownNode::NoPlatform { .. }));
    assert_eq!(
        wp.unknown[1],
        UnknownNode::NotListed {
            node: "gone".into()
        }
    );
    assert!(
        wp.unknown[0]
            .to_string()
            .contains("node bare has no kubernetes.io/os")
    );

    let amd_only = platforms_of(&[], &arch_in(&["amd64"]), &nodes());
    assert!(amd_only.runs_on.is_empty());
    assert_eq!(
        amd_only.may_run_on.keys().collect::<Vec<_>>(),
        [&p("linux/amd64")]
    );
}

#[test]
fn catch_up_compares_what_pods_run_with_what_the_tag_names() {
    // The tag now names index 1 (amd64 → 2, arm64 → 3); index 4 was the recorded
    // one (amd64 → 2, arm64 → 5).
    let now = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let before = index(4, &[("linux/amd64", 2), ("linux/arm64", 5)]);
    let known = std::slice::from_ref(&before);
    let table: Vec<(&str, Vec<Pod>, &[Target], &str)> = vec![
        (
            "pods run the index",
            vec![pod("a").on("amd-1").runs(d(1))],
            &[],
            "current",
        ),
        (
            "a pod runs its platform's child",
            vec![pod("a").on("arm-1").runs(d(3))],
            &[],
            "current",
        ),
        (
            "stale :latest on enrolment",
            vec![pod("a").on("amd-1").runs(d(9))],
            &[],
            "stale",
        ),
        (
            "one stale pod makes it stale",
            vec![
                pod("a").on("amd-1").runs(d(1)),
                pod("b").on("amd-2").runs(d(9)),
            ],
            &[],
            "stale",
        ),
        (
            "earlier index, same amd64 image",
            vec![pod("a").on("amd-1").runs(d(4))],
            known,
            "current",
        ),
        (
            "earlier index, other arm64 image",
            vec![pod("a").on("arm-1").runs(d(4))],
            known,
            "stale",
        ),
        (
            "earlier index, node unknown",
            vec![pod("a").on("gone").runs(d(4))],
            known,
            "unknown",
        ),
        (
            "earlier index not known",
            vec![pod("a").on("amd-1").runs(d(4))],
            &[],
            "stale",
        ),
        ("imageID empty", vec![pod("a").on("amd-1")], &[], "unknown"),
        (
            "dockershim image ID",
            vec![pod("a").on("amd-1").image_id(&format!("docker://{}", d(7)))],
            &[],
            "unknown",
        ),
        (
            "stale wins over unknown",
            vec![pod("a").on("amd-1"), pod("b").on("amd-1").runs(d(9))],
            &[],
            "stale",
        ),
        ("no pods", vec![], &[], "unknown"),
        (
            "only an older template",
            vec![pod("a").on("amd-1").image("nginx:1.0").runs(d(9))],
            &[],
            "unknown",
        ),
        (
            "a digest pin is the same image",
            vec![
                pod("a")
                    .on("amd-1")
                    .image(&format!("nginx:latest@{}", d(1)))
                    .runs(d(1)),
            ],
            &[],
            "current",
        ),
    ];
    for (what, pods, known, want) in table {
        let got = fresh(&pods, &now, known);
        let state = match &got {
            Freshness::Current { .. } => "current",
            Freshness::Stale { .. } => "stale",
            Freshness::Unknown { .. } => "unknown",
        };
        assert_eq!(state, want, "{what}: {got:?}");
    }
}

#[test]
fn unknown_freshness_always_says_why() {
    let now = index(1, &[("linux/amd64", 2)]);
    let got = fresh(&[pod("a").on("amd-1")], &now, &[]);
    let Freshness::Unknown {
        why: FreshnessUnknown::Pods { pods, more: 0 },
    } = &got
    else {
        panic!("{got:?}")
    };
    assert_eq!(pods[0].pod, "a");
    assert_eq!(
        pods[0].why,
        PodUnknown::ImageId {
            error: ImageIdError::Empty
        }
    );
    assert_eq!(
        fresh(&[], &now, &[]),
        Freshness::Unknown {
            why: FreshnessUnknown::NoPods
        }
    );
    let older = [pod("a").on("amd-1").image("nginx:1.0")];
    assert!(matches!(
        fresh(&older, &now, &[]),
        Freshness::Unknown {
            why: FreshnessUnknown::NoPodRunsImage { .. }
        }
    ));
}

#[test]
fn catch_up_false_keeps_the_baseline_behaviour() {
    let now = index(1, &[("linux/amd64", 2)]);
    let stale = fresh(&[pod("a").on("amd-1").runs(d(9))], &now, &[]);
    assert_eq!(
        catch_up(&stale, false),
        CatchUp::Nothing {
            why: NoCatchUp::Disabled
        }
    );
    let CatchUp::Refresh { pods, target } = catch_up(&stale, true) else {
        panic!()
    };
    assert_eq!(
        (pods.names.as_slice(), target),
        (&["a".to_owned()][..], d(1))
    );
    let current = fresh(&[pod("a").on("amd-1").runs(d(1))], &now, &[]);
    assert_eq!(
        catch_up(&current, true),
        CatchUp::Nothing {
            why: NoCatchUp::Current
        }
    );
    let json = serde_json::to_value(catch_up(&fresh(&[], &now, &[]), true)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"action": "nothing", "why": {"reason": "unknown", "why": {"reason": "noPods"}}})
    );
}

#[test]
fn an_index_change_that_only_touches_arm64_restarts_only_arm64_workloads() {
    let before = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let after = index(4, &[("linux/amd64", 2), ("linux/arm64", 5)]);
    let amd = platforms_of(&[pod("a").on("amd-1")], &Scheduling::default(), &nodes());
    let change = detect_change(&before, &after, &amd);
    let Change::NoRestart { why } = &change else {
        panic!("{change:?}")
    };
    assert_eq!(
        *why,
        NoRestartWhy::OtherPlatformsOnly {
            from: d(1),
            to: d(4),
            platforms: vec!["linux/amd64".into()]
        }
    );
    assert!(
        why.to_string()
            .contains("image for linux/amd64 is unchanged: nothing restarted"),
        "{why}"
    );

    let mixed = platforms_of(
        &[pod("a").on("amd-1"), pod("b").on("arm-1")],
        &Scheduling::default(),
        &nodes(),
    );
    assert_eq!(
        detect_change(&before, &after, &mixed),
        Change::Restart {
            why: RestartWhy::PlatformsChanged {
                platforms: vec!["linux/arm64".into()],
                from: d(1),
                to: d(4)
            }
        }
    );
}

#[test]
fn a_recorded_target_detects_changes_without_fetching_the_old_index() {
    let before = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let after = index(4, &[("linux/amd64", 2), ("linux/arm64", 5)]);
    let amd = platforms_of(&[pod("a").on("amd-1")], &Scheduling::default(), &nodes());
    // What the annotation would keep after the earlier refresh, for the running platforms.
    let kept = before.record(amd.runs_on.keys());
    let recorded = Target::recorded(d(1), &kept);
    assert!(matches!(
        detect_change(&recorded, &after, &amd),
        Change::NoRestart { .. }
    ));
    // A platform that was not recorded cannot be compared: restart as before.
    let both = platforms_of(
        &[pod("a").on("amd-1"), pod("b").on("arm-1")],
        &Scheduling::default(),
        &nodes(),
    );
    assert_eq!(
        detect_change(&recorded, &after, &both),
        Change::Restart {
            why: RestartWhy::TargetPlatformUnknown
        }
    );
    // Catch-up reads the recorded target too: a pod on the old index, same amd64 image.
    let pods = [pod("a").on("amd-1").runs(d(1))];
    assert!(matches!(
        fresh(&pods, &after, &[recorded]),
        Freshness::Current { .. }
    ));
}

#[test]
fn change_detection_restarts_as_before_when_it_cannot_tell() {
    let before = index(1, &[("linux/amd64", 2)]);
    let after = index(4, &[("linux/amd64", 2)]);
    let table: Vec<(&str, Vec<Pod>, &Target, &Target, Change)> = vec![
        (
            "same digest",
            vec![pod("a").on("amd-1")],
            &before,
            &before,
            Change::NoRestart {
                why: NoRestartWhy::SameDigest,
            },
        ),
        (
            "nothing runs",
            vec![pod("a")],
            &before,
            &after,
            Change::Restart {
                why: RestartWhy::NothingRuns,
            },
        ),
    ];
    for (what, pods, from, to, want) in table {
        let wp = platforms_of(&pods, &Scheduling::default(), &nodes());
        assert_eq!(detect_change(from, to, &wp), want, "{what}");
    }
    let unknown = platforms_of(&[pod("a").on("gone")], &Scheduling::default(), &nodes());
    assert!(matches!(
        detect_change(&before, &after, &unknown),
        Change::Restart {
            why: RestartWhy::PlatformsUnknown { .. }
        }
    ));
    let amd = platforms_of(&[pod("a").on("amd-1")], &Scheduling::default(), &nodes());
    // A single amd64 image that became the amd64 child of an index: nothing changed.
    assert!(matches!(
        detect_change(&image(2, Some("linux/amd64")), &after, &amd),
        Change::NoRestart { .. }
    ));
    assert_eq!(
        detect_change(&image(9, None), &after, &amd),
        Change::Restart {
            why: RestartWhy::TargetPlatformUnknown
        }
    );
}

#[test]
fn guard_refuses_an_amd64_only_target_for_a_workload_on_arm64() {
    let target = image(7, Some("linux/amd64"));
    let wp = platforms_of(
        &[pod("a").on("amd-1"), pod("b").on("arm-1")],
        &Scheduling::default(),
        &nodes(),
    );
    let got = guard("ghcr.io/o/app:latest", &target, None, &wp);
    assert!(!got.allows());
    let Guard::Missing(m) = &got else {
        panic!("{got:?}")
    };
    assert_eq!(m.missing.len(), 1);
    assert_eq!(m.missing[0].platform, "linux/arm64");
    assert_eq!(m.missing[0].running.names, ["arm-1"]);
    assert_eq!(m.offered, ["linux/amd64"]);
    assert_eq!(
        m.message(),
        format!(
            "ghcr.io/o/app:latest ({}) offers no image for linux/arm64 (running on arm-1); it offers linux/amd64. Not acting.",
            d(7).short()
        )
    );
    assert_eq!(
        (EVENT_REASON, FAILURE_CLASS),
        ("ImagePlatformMissing", "platform")
    );
}

#[test]
fn guard_counts_nodes_the_workload_may_run_on() {
    let target = index(1, &[("linux/amd64", 2)]);
    let nodes = nodes();
    // Nothing runs on arm64 yet, but the workload may be scheduled there.
    let may = platforms_of(&[pod("a").on("amd-1")], &Scheduling::default(), &nodes);
    let Guard::Missing(m) = guard(IMAGE, &target, None, &may) else {
        panic!()
    };
    assert_eq!(m.missing[0].schedulable.names, ["arm-1"]);
    assert!(m.message().contains("linux/arm64 (schedulable on arm-1)"));
    // ... unless the image it ran before lacked arm64 too: no regression, no block.
    let before = image(5, Some("linux/amd64"));
    let got = guard(IMAGE, &target, Some(&before), &may);
    assert!(got.allows());
    let Guard::NoRegression { still_missing } = &got else {
        panic!("{got:?}")
    };
    assert_eq!(still_missing[0].platform, "linux/arm64");
    // A platform a pod runs on always blocks, whatever ran before.
    let running = platforms_of(&[pod("b").on("arm-1")], &Scheduling::default(), &nodes);
    assert!(!guard(IMAGE, &target, Some(&before), &running).allows());
    // An amd64-only affinity: the target offers all the workload needs.
    let pinned = platforms_of(&[pod("a").on("amd-1")], &arch_in(&["amd64"]), &nodes);
    assert_eq!(guard(IMAGE, &target, None, &pinned), Guard::Offers);
    // Unknowns are reported, and do not block.
    let single = guard(IMAGE, &image(3, None), None, &pinned);
    assert_eq!(
        single,
        Guard::Unverified {
            why: Unverified::TargetPlatformUnknown
        }
    );
    assert!(single.allows());
    let unknown = platforms_of(&[pod("a").on("gone")], &arch_in(&["amd64"]), &nodes);
    assert!(matches!(
        guard(IMAGE, &target, None, &unknown),
        Guard::Unverified {
            why: Unverified::NodesUnknown { .. }
        }
    ));
    let nothing = platforms_of(&[], &arch_in(&["s390x"]), &nodes);
    assert_eq!(
        guard(IMAGE, &target, None, &nothing),
        Guard::Unverified {
            why: Unverified::NoPlatforms
        }
    );
}

#[test]
fn guard_message_is_escaped_and_bounded() {
    let target = image(7, Some("linux/amd64"));
    let wp = platforms_of(&[pod("b").on("arm-1")], &Scheduling::default(), &nodes());
    let Guard::Missing(m) = guard(&format!("evil\n{}", "x".repeat(4000)), &target, None, &wp)
    else {
        panic!()
    };
    let msg = m.message();
    assert!(
        msg.len() <= crate::runs::text::MESSAGE_MAX_BYTES,
        "{}",
        msg.len()
    );
    assert!(!msg.contains('\n'));
}

#[test]
fn pull_failure_causes_from_real_kubelet_messages() {
    let arm = Some("linux/arm64".to_owned());
    let table = [
        (
            "Failed to pull image \"nginx:1\": no matching manifest for linux/arm64/v8 in the manifest list entries",
            None,
            PullCause::PlatformMissing {
                platform: arm.clone(),
            },
        ),
        (
            "failed to pull and unpack image \"docker.io/x/y:1\": no match for platform in manifest sha256:abc: not found",
            arm.clone(),
            PullCause::PlatformMissing {
                platform: arm.clone(),
            },
        ),
        (
            "rpc error: code = NotFound desc = failed to pull and unpack image \"ghcr.io/o/a:9\": ghcr.io/o/a:9: not found",
            None,
            PullCause::NotFound,
        ),
        (
            "Error response from daemon: manifest for x:1 not found: manifest unknown",
            None,
            PullCause::NotFound,
        ),
        (
            "pull access denied for private/app, repository does not exist or may require 'docker login'",
            None,
            PullCause::Denied,
        ),
        (
            "failed to authorize: failed to fetch anonymous token: 401 Unauthorized",
            None,
            PullCause::Denied,
        ),
        (
            "429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit",
            None,
            PullCause::RateLimited,
        ),
        (
            "Back-off pulling image \"nginx:1\"",
            None,
            PullCause::Unrecognised,
        ),
        ("", None, PullCause::Unrecognised),
    ];
    for (message, node, want) in table {
        assert_eq!(pull_cause(message, node), want, "{message}");
    }
}

#[test]
fn stuck_pods_are_reported_even_when_freshet_did_not_cause_them() {
    let nodes = nodes();
    let index = NodeIndex::new(&nodes, &NodePlatformRules::default());
    let pods = vec![
        pod("a").on("arm-1").waiting(
            "ErrImagePull",
            "no matching manifest for linux/arm64 in the manifest list entries\u{1b}[31m",
        ),
        pod("b").on("amd-1").waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"nginx:latest\"",
        ),
        pod("c").on("amd-1").waiting(
            "CrashLoopBackOff",
            "back-off 5m0s restarting failed container",
        ),
        pod("d").on("amd-1").runs(d(1)),
    ];
    let owned = owned(&pods);
    let stuck = stuck_pods(&owned.pods, &index, None);
    assert_eq!(stuck.more, 0);
    let got: Vec<(&str, &str, &str)> = stuck
        .containers
        .iter()
        .map(|s| (s.pod.as_str(), s.reason.as_str(), s.failure_class()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "ErrImagePull", "platform"),
            ("b", "ImagePullBackOff", "pull")
        ]
    );
    assert!(
        stuck.containers[0].message.ends_with("entries\\u{1b}[31m"),
        "{}",
        stuck.containers[0].message
    );
    assert!(
        stuck_pods(&owned.pods, &index, Some("other"))
            .containers
            .is_empty()
    );

    let many: Vec<Pod> = (0..30)
        .map(|i| pod(&format!("p{i:02}")).waiting("ErrImagePull", &"y".repeat(10_000)))
        .collect();
    let owned = super::owned(&many);
    let stuck = stuck_pods(&owned.pods, &index, None);
    assert_eq!(
        (stuck.containers.len(), stuck.more),
        (crate::runs::facts::MAX_NAMES, 20)
    );
    assert!(
        stuck
            .containers
            .iter()
            .all(|s| s.message.len() <= crate::runs::text::MESSAGE_MAX_BYTES)
    );
}
