//! `freshet_core::policy`: the policy and tag/version parsers and the decision
//! never panic; `Version` ordering is consistent with itself. Input: the policy on
//! the first line, the current tag on the second, candidate tags after.
#![no_main]

use std::cmp::Ordering;

use freshet_core::policy::{self, Current, Facts, Policy, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let mut lines = input.lines();
    let policy_text = lines.next().unwrap_or_default();
    let current = lines.next().unwrap_or_default();
    let tags: Vec<&str> = lines.take(64).collect();

    let versions: Vec<Version> = tags.iter().filter_map(|t| Version::parse(t)).collect();
    for v in &versions {
        let _ = (v.shape(), v.to_semver(), v.pre(), v.variant(), v.part(7));
        assert_eq!(v.cmp(v), Ordering::Equal);
    }
    for pair in versions.windows(2) {
        assert_eq!(pair[0].cmp(&pair[1]), pair[1].cmp(&pair[0]).reverse());
    }

    let Ok(policy) = Policy::parse(policy_text) else {
        return;
    };
    let _ = policy.needs(Some(current));
    for t in &tags {
        let _ = policy.admits(current, t);
        if let (Some(a), Some(b)) = (
            policy::compare(&policy, current, t),
            policy::compare(&policy, t, current),
        ) {
            assert_eq!(a, b.reverse(), "compare is antisymmetric");
        }
    }
    let facts = Facts::with_tags(tags.iter().copied());
    let _ = policy::decide(Current::tag(current), &policy, &facts);
});
