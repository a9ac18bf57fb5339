//! Table and property tests for the decision engine.

use super::*;
use proptest::prelude::*;

fn d(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn p(s: &str) -> Policy {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn update_to(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::Update { to, .. } => Some(to),
        Decision::Keep { .. } => None,
    }
}

const TAGS: &[&str] = &[
    "latest",
    "1.2.2",
    "1.2.3",
    "1.2.4",
    "1.2.10",
    "1.3.0",
    "1.3.1-rc.1",
    "1.4.0-rc.1",
    "2.0.0",
    "2.1.0-beta",
    "1.2.3-alpine",
    "1.2.4-alpine",
    "1.3.0-alpine",
    "v1.2.3",
    "v1.2.5",
    "1.2",
    "1.3",
    "3.0.0-rc.1",
];

#[test]
fn semver_policies_pick_the_newest_admissible_tag() {
    // (current, policy, expected update or None for keep)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("1.2.3", "semver:patch", Some("1.2.10")),
        ("1.2.3", "semver:minor", Some("1.3.0")),
        ("1.2.3", "semver:major", Some("2.0.0")),
        ("1.2.3", "semver:all", Some("3.0.0-rc.1")),
        ("1.2.3", "patch", Some("1.2.10")),
        ("1.2.3", "minor", Some("1.3.0")),
        ("1.2.3", "major", Some("2.0.0")),
        ("1.2.3", "all", Some("3.0.0-rc.1")),
        ("1.2.3", "semver:~1.2", Some("1.2.10")),
        ("1.2.3", "semver:^1", Some("1.3.0")),
        ("1.2.3", "semver:>=1.2 <1.3", Some("1.2.10")),
        ("1.2.3", "semver:>= 1.2, < 2", Some("1.3.0")),
        ("2.0.0", "semver:major", None),
        ("2.0.0", "semver:^1", None), // never downgrade, even outside the range
        // variants stay variants
        ("1.2.3-alpine", "semver:patch", Some("1.2.4-alpine")),
        ("1.2.3-alpine", "semver:minor", Some("1.3.0-alpine")),
        // the v prefix is part of the shape
        ("v1.2.3", "semver:minor", Some("v1.2.5")),
        // two-part tags move only to two-part tags
        ("1.2", "semver:minor", Some("1.3")),
        // a pre-release current tag welcomes pre-releases
        ("1.3.1-rc.1", "semver:minor", Some("1.4.0-rc.1")),
        ("1.3.0", "semver:minor", None),
        ("1.3.0", "semver:patch", None),
        ("latest", "semver:minor", None),
        ("1.2.3", "never", None),
    ];
    for (current, policy, expected) in cases {
        let decision = decide(
            Current::tag(current),
            &p(policy),
            &Facts::with_tags(TAGS.iter().copied()),
        );
        assert_eq!(
            update_to(&decision),
            *expected,
            "{current} under {policy}: {decision:?}"
        );
    }
}

#[test]
fn prerelease_option_lets_releases_move_to_prereleases() {
    let policy = p("semver:minor").with_prerelease(true);
    let decision = decide(
        Current::tag("1.2.3"),
        &policy,
        &Facts::with_tags(TAGS.iter().copied()),
    );
    assert_eq!(update_to(&decision), Some("1.4.0-rc.1"));
}

#[test]
fn regex_policies_order_by_the_named_capture() {
    let tags = ["main-9", "main-10", "main-2", "feature-99", "main-x"];
    let numerical = p(r"regex:^main-(?P<build>\d+)$")
        .with_order(Order::Numerical)
        .unwrap();
    let decision = decide(Current::tag("main-2"), &numerical, &Facts::with_tags(tags));
    assert_eq!(update_to(&decision), Some("main-10"));

    let alphabetical = p(r"regex:^main-(?P<build>\d+)$");
    let decision = decide(
        Current::tag("main-2"),
        &alphabetical,
        &Facts::with_tags(tags),
    );
    assert_eq!(update_to(&decision), Some("main-9"));

    let semver = p(r"regexp:^release-(?P<v>.+)$")
        .with_order(Order::Semver)
        .unwrap();
    let tags = [
        "release-1.2.0",
        "release-1.10.0",
        "release-2.0.0-rc.1",
        "release-bad",
    ];
    let decision = decide(
        Current::tag("release-1.2.0"),
        &semver,
        &Facts::with_tags(tags),
    );
    assert_eq!(update_to(&decision), Some("release-1.10.0"));

    let glob = p("glob:build-2024*");
    let tags = ["build-20240101", "build-20240301", "build-20230101"];
    let decision = decide(
        Current::tag("build-20240101"),
        &glob,
        &Facts::with_tags(tags),
    );
    assert_eq!(update_to(&decision), Some("build-20240301"));
}

#[test]
fn regex_policy_keeps_and_warns_when_the_current_tag_does_not_match() {
    let policy = p(r"regex:^main-\d+$");
    let decision = decide(
        Current::tag("latest"),
        &policy,
        &Facts::with_tags(["latest", "main-1"]),
    );
    assert!(
        matches!(decision, Decision::Keep { warning: Some(_) }),
        "{decision:?}"
    );
}

#[test]
fn never_downgrades_when_the_tag_list_is_empty_failed_or_lost_the_current_tag() {
    let policy = p("semver:major");
    let current = Current::tag("1.2.3");
    let cases = [
        Facts::default(),
        Facts::with_tags(Vec::<String>::new()),
        Facts {
            tags: Some(Err("401 unauthorized".into())),
            ..Facts::default()
        },
        Facts::with_tags(["1.0.0", "2.0.0"]),
    ];
    for facts in cases {
        let decision = decide(current, &policy, &facts);
        match decision {
            Decision::Keep { warning: Some(w) } => assert!(!w.is_empty()),
            other => panic!("expected a warning for {facts:?}, got {other:?}"),
        }
    }
}

#[test]
fn digest_policy_updates_when_the_tag_moves() {
    let policy = p("digest");
    let old = d(1);
    let new = d(2);
    let facts = Facts::default().digest("latest", new.clone());
    let moved = decide(
        Current {
            tag: Some("latest"),
            digest: Some(&old),
        },
        &policy,
        &facts,
    );
    assert_eq!(
        moved,
        Decision::Update {
            to: "latest".into(),
            digest: Some(new.clone()),
            reason: format!("digest: tag latest moved from {old} to {new}"),
        }
    );
    let same = decide(
        Current {
            tag: Some("latest"),
            digest: Some(&new),
        },
        &policy,
        &facts,
    );
    assert_eq!(same, Decision::Keep { warning: None });
    let unpinned = decide(Current::tag("latest"), &policy, &facts);
    assert!(unpinned.is_update());
    let failed = Facts {
        digests: [("latest".to_owned(), Err("timeout".to_owned()))].into(),
        ..Facts::default()
    };
    assert!(matches!(
        decide(Current::tag("latest"), &policy, &failed),
        Decision::Keep { warning: Some(_) }
    ));
}

#[test]
fn keel_force_keeps_the_tag_and_follows_its_digest_even_on_a_version_tag() {
    let force = p("force");
    for tag in ["latest", "16", "1.2.3"] {
        assert_eq!(
            force.needs(Some(tag)),
            Needs {
                tag_list: false,
                digest_of: Some(tag.into())
            },
            "{tag}"
        );
    }
    // Given a tag list with newer versions, force still does not move the tag.
    let decision = decide(
        Current::tag("1.2.3"),
        &force,
        &Facts::with_tags(TAGS.iter().copied()),
    );
    assert_eq!(update_to(&decision), None, "{decision:?}");
}

#[test]
fn needs_asks_only_for_what_the_policy_uses() {
    assert_eq!(p("never").needs(Some("1.0.0")), Needs::default());
    assert_eq!(
        p("digest").needs(Some("latest")).digest_of.as_deref(),
        Some("latest")
    );
    assert!(p("semver:minor").needs(Some("1.0.0")).tag_list);
    assert!(!p("semver:minor").needs(None).tag_list);
}

#[test]
fn policy_strings_parse_or_fail_precisely() {
    for ok in [
        "digest",
        "never",
        "force",
        "patch",
        "minor",
        "major",
        "all",
        "semver:patch",
        "semver:minor",
        "semver:major",
        "semver:all",
        "semver:~1.4",
        "semver:^2",
        "semver:>=1.4 <2",
        "semver:>= 1.4 < 2",
        "regex:^v\\d+$",
        "regexp:^(?P<ts>\\d{8})$",
        "glob:1.2.*",
        " Semver:Minor ",
    ] {
        assert!(ok.parse::<Policy>().is_ok(), "{ok} should parse");
    }
    let err = |s: &str| s.parse::<Policy>().unwrap_err();
    assert_eq!(err(""), PolicyError::Empty);
    assert!(matches!(err("semver"), PolicyError::MissingArgument(_)));
    assert!(matches!(err("regex:"), PolicyError::MissingArgument(_)));
    assert!(matches!(err("latest"), PolicyError::Unknown(_)));
    assert!(matches!(err("semver:banana"), PolicyError::BadRange { .. }));
    assert!(matches!(
        err("regex:(unclosed"),
        PolicyError::BadRegex { .. }
    ));
    assert!(matches!(
        err("regex:\\w{1000}{1000}"),
        PolicyError::BadRegex { .. }
    ));
    assert!(err("latest").to_string().contains("semver:<range>"));
    assert!(
        "patch"
            .parse::<Policy>()
            .unwrap()
            .with_order(Order::Numerical)
            .is_err()
    );
}

fn arb_tag() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(0u64..6, 1..=4),
        prop::option::of(prop::sample::select(vec!["rc.1", "rc.2", "beta"])),
        prop::option::of(prop::sample::select(vec!["alpine"])),
    )
        .prop_map(|(v, parts, pre, variant)| {
            let mut s = if v { "v".to_owned() } else { String::new() };
            s.push_str(
                &parts
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            );
            if let Some(p) = pre {
                s.push('-');
                s.push_str(p);
            }
            if let Some(x) = variant {
                s.push('-');
                s.push_str(x);
            }
            s
        })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(vec![
        "semver:patch",
        "semver:minor",
        "semver:major",
        "semver:all",
        "semver:^1",
        "semver:~2.1",
        "semver:>=1 <3",
        "regex:^(?P<v>.*)$",
        "regex:^v?\\d+\\.\\d+$",
        "force",
        "never",
    ])
    .prop_flat_map(|s| {
        let policy = p(s);
        let orderable = matches!(policy.kind(), PolicyKind::Regex(_));
        (
            Just(policy),
            any::<bool>(),
            if orderable {
                prop::sample::select(vec![Order::Alphabetical, Order::Semver]).boxed()
            } else {
                Just(Order::Alphabetical).boxed()
            },
        )
    })
    .prop_map(|(policy, pre, order)| {
        let policy = policy.with_prerelease(pre);
        if matches!(policy.kind(), PolicyKind::Regex(_)) {
            policy.with_order(order).unwrap()
        } else {
            policy
        }
    })
}

proptest! {
    #[test]
    fn decisions_never_go_down_and_are_idempotent(
        tags in prop::collection::vec(arb_tag(), 1..25),
        pick in any::<prop::sample::Index>(),
        policy in arb_policy(),
    ) {
        let current = tags[pick.index(tags.len())].clone();
        let facts = Facts::with_tags(tags.clone());
        let decision = decide(Current::tag(&current), &policy, &facts);
        if let Decision::Update { to, .. } = &decision {
            prop_assert!(tags.contains(to), "{to} is not a listed tag");
            prop_assert_eq!(compare(&policy, to, &current), Some(Ordering::Greater), "{} -> {} went down", current, to);
            prop_assert!(policy.admits(&current, to));
            // idempotent: deciding again from the result keeps it
            let again = decide(Current::tag(to), &policy, &facts);
            prop_assert_eq!(again, Decision::Keep { warning: None });
        }
        // deterministic regardless of listing order
        let mut reversed = tags.clone();
        reversed.reverse();
        prop_assert_eq!(decide(Current::tag(&current), &policy, &Facts::with_tags(reversed)), decision);
    }

    #[test]
    fn a_current_tag_missing_from_the_list_never_updates(
        tags in prop::collection::vec(arb_tag(), 0..25),
        current in arb_tag(),
        policy in arb_policy(),
    ) {
        prop_assume!(!tags.contains(&current));
        let decision = decide(Current::tag(&current), &policy, &Facts::with_tags(tags));
        prop_assert!(!decision.is_update());
    }

    #[test]
    fn compare_is_a_total_order_on_admitted_tags(a in arb_tag(), b in arb_tag(), policy in arb_policy()) {
        if let (Some(ab), Some(ba)) = (compare(&policy, &a, &b), compare(&policy, &b, &a)) {
            prop_assert_eq!(ab, ba.reverse());
            prop_assert_eq!(ab == Ordering::Equal, a == b);
        }
    }
}
