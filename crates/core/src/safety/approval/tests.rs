//! Approvals: Keel's keys and defaults, the request life cycle (reached, expired,
//! a new target), and the request annotation.

use proptest::prelude::*;

use super::*;

fn t(h: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000 + h * 3600, 0).unwrap()
}

fn ann(pairs: &[(&str, &str)]) -> crate::Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn policies_come_from_freshet_then_keel_with_keels_default_deadline() {
    let p = |pairs: &[(&str, &str)]| ApprovalPolicy::from_annotations(&ann(pairs)).unwrap();
    assert_eq!(p(&[]), None);
    assert_eq!(p(&[(KEEL_APPROVALS, "0")]), None);
    assert_eq!(
        p(&[(KEEL_APPROVALS, "2")]),
        Some(ApprovalPolicy {
            required: 2,
            deadline: Duration::from_secs(24 * 3600)
        })
    );
    assert_eq!(
        p(&[(KEEL_APPROVALS, "2"), (KEEL_APPROVAL_DEADLINE, "4")])
            .unwrap()
            .deadline,
        Duration::from_secs(4 * 3600)
    );
    let both = p(&[
        (KEEL_APPROVALS, "5"),
        (APPROVALS, "1"),
        (KEEL_APPROVAL_DEADLINE, "4"),
        (APPROVAL_DEADLINE, "2"),
    ])
    .unwrap();
    assert_eq!(
        (both.required, both.deadline),
        (1, Duration::from_secs(7200))
    );
}

#[test]
fn bad_counts_and_deadlines_name_the_key_and_the_fix() {
    let cases = [
        (
            &[(KEEL_APPROVALS, "two")][..],
            "keel.sh/approvals=\"two\"",
            "whole number from 0",
        ),
        (
            &[(KEEL_APPROVALS, "-1")][..],
            "keel.sh/approvals",
            "whole number from 0",
        ),
        (&[(APPROVALS, "1000")][..], "freshet.io/approvals", "to 100"),
        (
            &[(KEEL_APPROVALS, "1"), (KEEL_APPROVAL_DEADLINE, "1d")][..],
            "keel.sh/approvalDeadline=\"1d\"",
            "hours",
        ),
        (
            &[(KEEL_APPROVALS, "1"), (APPROVAL_DEADLINE, "0")][..],
            "freshet.io/approval-deadline",
            "from 1",
        ),
    ];
    for (pairs, key, fix) in cases {
        let e = ApprovalPolicy::from_annotations(&ann(pairs))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key) && e.contains(fix), "{e}");
    }
}

#[test]
fn approvals_reached_roll_and_clear_the_request() {
    let policy = ApprovalPolicy {
        required: 2,
        deadline: Duration::from_secs(24 * 3600),
    };
    let target = "ghcr.io/acme/api:1.4@sha256:abc";
    let first = decide(Some(&policy), None, target, t(0));
    assert_eq!(
        first.decision,
        ApprovalDecision::Waiting {
            have: 0,
            need: 2,
            expires: t(24)
        }
    );
    assert!(!first.decision.may_roll());
    let request = first.request.unwrap();
    let request = request.approve("alice", &policy, t(1)).unwrap();
    let request = request.approve("alice", &policy, t(2)).unwrap();
    let waiting = decide(Some(&policy), Some(&request), target, t(3));
    assert_eq!(
        waiting.decision,
        ApprovalDecision::Waiting {
            have: 1,
            need: 2,
            expires: t(24)
        }
    );
    assert_eq!(waiting.request.as_ref(), Some(&request));
    let request = request.approve("bob", &policy, t(4)).unwrap();
    let done = decide(Some(&policy), Some(&request), target, t(30));
    assert_eq!(done.decision, ApprovalDecision::Approved);
    assert!(done.decision.may_roll());
    assert_eq!(done.request, None);
}

#[test]
fn approvals_expire_and_a_newer_target_starts_over() {
    let policy = ApprovalPolicy {
        required: 1,
        deadline: Duration::from_secs(2 * 3600),
    };
    let request = decide(Some(&policy), None, "api:1.4", t(0))
        .request
        .unwrap();
    let late = decide(Some(&policy), Some(&request), "api:1.4", t(2));
    assert_eq!(late.decision, ApprovalDecision::Expired { at: t(2) });
    assert_eq!(late.request.as_ref(), Some(&request));
    let e = request
        .approve("alice", &policy, t(2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expired") && e.contains("api:1.4"), "{e}");
    // A different target replaces the expired request.
    let newer = decide(Some(&policy), Some(&request), "api:1.5", t(3));
    assert_eq!(
        newer.decision,
        ApprovalDecision::Waiting {
            have: 0,
            need: 1,
            expires: t(5)
        }
    );
    assert_eq!(newer.request.unwrap().requested, t(3));
    // No policy: no request kept.
    let free = decide(None, Some(&request), "api:1.5", t(3));
    assert_eq!(
        (free.decision, free.request),
        (ApprovalDecision::NotRequired, None)
    );
}

#[test]
fn voters_and_request_annotations_are_checked() {
    let policy = ApprovalPolicy {
        required: 1,
        deadline: Duration::from_secs(3600),
    };
    let request = decide(Some(&policy), None, "x", t(0)).request.unwrap();
    for bad in ["", "  ", "a\nb"] {
        assert!(matches!(
            request.approve(bad, &policy, t(0)),
            Err(ApprovalError::Voter { .. })
        ));
    }
    assert_eq!(ApprovalRequest::parse(None).unwrap(), None);
    for (bad, want) in [
        ("{}", "missing field"),
        (
            r#"{"target":"","requested":"2026-11-28T08:00:00Z"}"#,
            "target is empty",
        ),
        (r#"{"target":"x","requested":"soon"}"#, "RFC 3339"),
        (
            r#"{"target":"x","requested":"2026-11-28T08:00:00Z","by":[]}"#,
            "unknown field",
        ),
    ] {
        let e = ApprovalRequest::parse(Some(bad)).unwrap_err().to_string();
        assert!(e.contains(APPROVAL) && e.contains(want), "{e}");
    }
}

proptest! {
    #[test]
    fn requests_round_trip(
        target in "[a-z0-9:/.@-]{1,40}",
        at in 0i64..100_000,
        voters in proptest::collection::btree_set("[a-z]{1,8}", 0..5),
    ) {
        let r = ApprovalRequest { target, requested: t(at), approved_by: voters };
        prop_assert_eq!(ApprovalRequest::parse(Some(&r.render())).unwrap(), Some(r));
    }
}
