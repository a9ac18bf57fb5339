//! The per-container report `status` shows, as JSON.

use serde_json::json;

use super::*;
use crate::runs::report::{Resolved, runs_report};

#[test]
fn report_shows_digests_per_platform_and_explains_the_rest() {
    let nodes = vec![
        node("amd-1", "linux/amd64"),
        node("arm-1", "linux/arm64"),
        node("bare", ""),
    ];
    let index_ = NodeIndex::new(&nodes, &NodePlatformRules::default());
    let pods = vec![
        pod("a").on("amd-1").runs(d(1)),
        pod("b").on("arm-1").runs(d(1)),
        pod("c").on("bare").runs(d(1)),
        pod("d").on("amd-1").runs(d(9)),
        pod("e").on("amd-1").image_id(&format!("docker://{}", d(7))),
        pod("f").on("amd-1").image("nginx:1.0").runs(d(8)),
        pod("g").on("arm-1").waiting(
            "ErrImagePull",
            "no matching manifest for linux/arm64 in the manifest list entries",
        ),
    ];
    let owned = owned(&pods);
    let target = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
    let report = runs_report(
        "app",
        IMAGE,
        &owned,
        &index_,
        Some(Resolved {
            target: &target,
            known: &[],
        }),
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["running"],
        json!([
            {"digest": d(1).to_string(), "pods": 3, "platforms": ["linux/amd64", "linux/arm64"],
             "platformUnknownPods": 1, "nodes": {"names": ["amd-1", "arm-1", "bare"], "more": 0}},
            {"digest": d(9).to_string(), "pods": 1, "platforms": ["linux/amd64"],
             "platformUnknownPods": 0, "nodes": {"names": ["amd-1"], "more": 0}},
        ])
    );
    assert_eq!(json["unknown"][0]["pod"], "e");
    assert_eq!(json["unknown"][0]["why"]["reason"], "imageId");
    assert_eq!(json["unknown"][0]["why"]["error"]["reason"], "localImageId");
    assert_eq!(json["unknown"][1]["pod"], "g");
    assert_eq!(json["unknown"][1]["why"]["error"]["reason"], "empty");
    assert_eq!(json["otherImage"]["names"], json!(["f"]));
    assert_eq!(
        json["stuck"]["containers"][0]["cause"],
        json!({"cause": "platformMissing", "platform": "linux/arm64"})
    );
    assert_eq!(json["freshness"]["state"], "stale");
    assert_eq!(json["freshness"]["pods"]["names"], json!(["d"]));
    assert!(json.get("truncated").is_none());

    let without = runs_report("app", IMAGE, &owned, &index_, None);
    assert!(without.freshness.is_none());
    assert_eq!(without.running, report.running);
}
