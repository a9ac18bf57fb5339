//! Property tests: change detection restarts exactly when a running platform's
//! image changed, the guard refuses exactly when a needed platform is missing, and
//! catch-up never acts when disabled nor calls a pod that runs the target stale.

use proptest::prelude::*;

use super::*;
use crate::runs::catchup::{CatchUp, Freshness, NoCatchUp, catch_up, freshness};
use crate::runs::change::{Change, detect_change};
use crate::runs::guard::{Guard, guard};
use crate::runs::image_id::parse_image_id;
use crate::runs::observe::observe;

const PLATFORMS: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/s390x"];
const NODES: [(&str, &str); 3] = [
    ("amd-1", "linux/amd64"),
    ("arm-1", "linux/arm64"),
    ("s390-1", "linux/s390x"),
];

/// An index `n` whose child for `PLATFORMS[i]` is `children[i]` (0: not offered).
fn idx(n: u8, children: &[u8; 3]) -> Target {
    let entries: Vec<(&str, u8)> = PLATFORMS
        .iter()
        .zip(children)
        .filter(|(_, c)| **c != 0)
        .map(|(p, c)| (*p, *c))
        .collect();
    index(n, &entries)
}

use crate::runs::target::Target;

fn all_nodes() -> Vec<Node> {
    NODES.iter().map(|(n, p)| node(n, p)).collect()
}

/// Pods on the nodes whose bit is set in `on`.
fn pods_on(on: [bool; 3], runs: u8) -> Vec<Pod> {
    NODES
        .iter()
        .zip(on)
        .filter(|(_, set)| *set)
        .map(|((n, _), _)| pod(&format!("pod-{n}")).on(n).runs(d(runs)))
        .collect()
}

proptest! {
    #[test]
    fn change_restarts_exactly_when_a_running_platforms_image_changed(
        before in prop::array::uniform3(1u8..4),
        after in prop::array::uniform3(1u8..4),
        on in prop::array::uniform3(any::<bool>()),
    ) {
        let (from, to) = (idx(100, &before), idx(101, &after));
        let wp = platforms_of(&pods_on(on, 1), &Scheduling::default(), &all_nodes());
        let changed = (0..3).any(|i| on[i] && before[i] != after[i]);
        let got = detect_change(&from, &to, &wp);
        if !on.iter().any(|b| *b) {
            prop_assert!(matches!(got, Change::Restart { .. }), "{:?}", got);
        } else {
            prop_assert_eq!(matches!(got, Change::Restart { .. }), changed, "{:?}", got);
        }
    }

    #[test]
    fn guard_refuses_exactly_when_a_needed_platform_is_missing(
        offered in prop::array::uniform3(0u8..3),
        on in prop::array::uniform3(any::<bool>()),
        allowed in prop::array::uniform3(any::<bool>()),
    ) {
        let target = idx(100, &offered);
        let archs: Vec<&str> = PLATFORMS
            .iter()
            .zip(allowed)
            .filter(|(_, a)| *a)
            .map(|(p, _)| p.split('/').nth(1).unwrap())
            .collect();
        let wp = platforms_of(&pods_on(on, 1), &arch_in(&archs), &all_nodes());
        let needed = (0..3).filter(|i| on[*i] || allowed[*i]);
        let missing = needed.clone().any(|i| offered[i] == 0);
        let got = guard(IMAGE, &target, None, &wp);
        prop_assert_eq!(!got.allows(), missing, "{:?}", got);
        if let Guard::Missing(m) = &got {
            let named: Vec<&str> = m.missing.iter().map(|m| m.platform.as_str()).collect();
            let want: Vec<&str> = needed.filter(|i| offered[*i] == 0).map(|i| PLATFORMS[i]).collect();
            prop_assert_eq!(named, want);
        }
    }

    #[test]
    fn with_a_previous_image_only_a_regression_blocks(
        offered in prop::array::uniform3(0u8..3),
        before in prop::array::uniform3(0u8..3),
        on in prop::array::uniform3(any::<bool>()),
    ) {
        let (target, previous) = (idx(100, &offered), idx(99, &before));
        let wp = platforms_of(&pods_on(on, 1), &Scheduling::default(), &all_nodes());
        // Every node fits, so every platform is needed; only a missing platform that
        // runs a pod, or that the previous image offered, is a regression.
        let regression = (0..3).any(|i| offered[i] == 0 && (on[i] || before[i] != 0));
        let got = guard(IMAGE, &target, Some(&previous), &wp);
        prop_assert_eq!(!got.allows(), regression, "{:?}", got);
    }

    #[test]
    fn catch_up_never_acts_when_disabled_and_never_calls_the_target_stale(
        runs in 1u8..6,
        on in prop::array::uniform3(any::<bool>()),
        children in prop::array::uniform3(0u8..6),
    ) {
        let target = idx(1, &children);
        let nodes = all_nodes();
        let index_ = NodeIndex::new(&nodes, &NodePlatformRules::default());
        let pods = pods_on(on, runs);
        let owned = owned(&pods);
        let observed = observe("app", IMAGE, &owned.pods, &index_);
        let f = freshness(&observed, &target, &[], None);
        prop_assert_eq!(catch_up(&f, false), CatchUp::Nothing { why: NoCatchUp::Disabled });
        if target.names(&d(runs)) {
            prop_assert!(!matches!(f, Freshness::Stale { .. }), "{:?}", f);
        } else if on.iter().any(|b| *b) {
            prop_assert!(matches!(catch_up(&f, true), CatchUp::Refresh { .. }), "{:?}", f);
        }
    }

    #[test]
    fn image_id_never_panics_and_keeps_an_exact_digest(
        repo in "[a-z0-9]{1,12}(/[a-z0-9]{1,12}){0,2}",
        hex in "[0-9a-f]{64}",
        prefix in prop::sample::select(vec!["", "docker-pullable://"]),
        junk in "\\PC{0,80}",
    ) {
        let id = format!("{prefix}{repo}@sha256:{hex}");
        let parsed = parse_image_id(&id).unwrap();
        prop_assert_eq!(parsed.digest.hex(), hex.as_str());
        if let Err(e) = parse_image_id(&junk) {
            prop_assert!(!e.to_string().chars().any(char::is_control));
        }
    }
}
