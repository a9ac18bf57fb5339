//! Table and scenario tests of the refresh plan, including idempotence: applying a
//! plan and planning again with the same facts writes nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::audit::{FAILURES, LAST_ERROR, REFRESHED};
use super::enroll::{self, POLICY, SET_ENV, THRESHOLD};
use super::patch::RESTARTED_AT;
use super::*;
use crate::Digest;
use crate::policy::Facts;

const NOW: &str = "2026-11-23T10:00:00Z";

fn now() -> Timestamp {
    Timestamp::parse(NOW).unwrap()
}

fn d(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.into(),
        image: image.into(),
        init: false,
        pull_policy: Some("Always".into()),
        env: BTreeMap::new(),
    }
}

fn workload(
    kind: WorkloadKind,
    annotations: &[(&str, &str)],
    containers: Vec<Container>,
) -> Workload {
    Workload {
        kind,
        namespace: "team".into(),
        name: "api".into(),
        resource_version: "41".into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        containers,
    }
}

fn digest_facts(pairs: &[(&str, &str, Digest)]) -> plan::ImageFacts {
    let mut out = plan::ImageFacts::new();
    for (image, tag, digest) in pairs {
        out.entry((*image).into())
            .or_default()
            .digests
            .insert((*tag).into(), Ok(digest.clone()));
    }
    out
}

fn failed(image: &str, tag: &str, message: &str) -> plan::ImageFacts {
    let mut f = Facts::default();
    f.digests.insert(tag.into(), Err(message.into()));
    [(image.to_owned(), f)].into()
}

/// What the API server does with the plan's patch (as far as the plan cares).
fn apply(w: &Workload, p: &WorkloadPlan) -> Workload {
    let mut w = w.clone();
    for (k, v) in &p.annotations {
        match v {
            Some(v) => w.annotations.insert(k.clone(), v.clone()),
            None => w.annotations.remove(k),
        };
    }
    for change in &p.changes {
        match change {
            Change::SetImage { container, to, .. } => {
                w.containers
                    .iter_mut()
                    .find(|c| &c.name == container)
                    .unwrap()
                    .image = to.clone();
            }
            Change::SetEnv {
                container, var, to, ..
            } => {
                let c = w
                    .containers
                    .iter_mut()
                    .find(|c| &c.name == container)
                    .unwrap();
                c.env.insert(var.clone(), Some(to.clone()));
            }
            Change::Restart { .. } => {}
        }
    }
    w.resource_version = format!("{}0", w.resource_version);
    w
}

fn run(w: &Workload, facts: &plan::ImageFacts) -> (WorkloadPlan, Workload) {
    let e = enroll::from_annotations(&w.annotations)
        .unwrap()
        .expect("enrolled");
    let p = plan(w, &e, facts, now());
    let after = apply(w, &p);
    // Idempotence: the same facts on the patched workload plan nothing new.
    let again = plan(&after, &e, facts, now());
    assert!(
        again.changes.is_empty()
            && again
                .annotations
                .iter()
                .all(|(k, _)| k == FAILURES || k == LAST_ERROR),
        "second plan not empty: {again:?}"
    );
    (p, after)
}

#[test]
fn digest_watch_records_a_baseline_then_restarts_when_the_tag_moves() {
    let w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "digest")],
        vec![container("api", "ghcr.io/acme/api:stable")],
    );
    let img = "ghcr.io/acme/api:stable";

    let (first, w) = run(&w, &digest_facts(&[(img, "stable", d(1))]));
    assert!(first.changes.is_empty());
    assert_eq!(first.baselines, [img]);
    assert!(
        w.annotations
            .get(REFRESHED)
            .unwrap()
            .contains(d(1).as_str())
    );

    let (second, _) = run(&w, &digest_facts(&[(img, "stable", d(1))]));
    assert!(second.is_empty(), "nothing moved: zero writes");

    let (third, w3) = run(&w, &digest_facts(&[(img, "stable", d(2))]));
    assert_eq!(
        third.changes,
        [Change::Restart {
            image: img.into(),
            containers: vec!["api".into()],
            from: d(1),
            to: d(2)
        }]
    );
    assert!(
        w3.annotations
            .get(REFRESHED)
            .unwrap()
            .contains(d(2).as_str())
    );
    let patch = third.patch(&w, now()).unwrap();
    assert_eq!(
        patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
        NOW
    );
    assert_eq!(
        patch["metadata"]["resourceVersion"],
        w.resource_version.as_str()
    );
    assert!(
        patch["spec"]["template"].get("spec").is_none(),
        "the image string stays: {patch}"
    );
}

#[test]
fn set_env_writes_the_digest_and_adds_no_restart() {
    let w = workload(
        WorkloadKind::Deployment,
        &[(
            SET_ENV,
            "api/INGESTOR_IMAGE_DIGEST=ghcr.io/tracebloc/ingestor:0.3",
        )],
        vec![
            container("api", "ghcr.io/acme/api:1.0"),
            container("sidecar", "nginx:1"),
        ],
    );
    let facts = digest_facts(&[("ghcr.io/tracebloc/ingestor:0.3", "0.3", d(7))]);
    let (p, after) = run(&w, &facts);
    assert_eq!(p.changes.len(), 1);
    let patch = p.patch(&w, now()).unwrap();
    let containers = &patch["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers,
        &serde_json::json!([{"name": "api", "env": [{"name": "INGESTOR_IMAGE_DIGEST", "value": d(7).as_str()}]}])
    );
    assert!(
        patch["spec"]["template"].get("metadata").is_none(),
        "no restart annotation: {patch}"
    );
    assert_eq!(
        after.containers[0].env["INGESTOR_IMAGE_DIGEST"].as_deref(),
        Some(d(7).as_str())
    );
}

/// A team's own dashboard annotation (a workload's or a set-env entry's) is written
/// with each refresh, beside freshet's, and not again while the digest holds.
#[test]
fn extra_audit_annotations_follow_each_refresh() {
    let app = "ghcr.io/acme/api:stable";
    let ing = "ghcr.io/tracebloc/ingestor:0.3";
    let w = workload(
        WorkloadKind::Deployment,
        &[
            (POLICY, "digest"),
            (
                enroll::AUDIT_ANNOTATION,
                "example.com/last-refreshed-api-digest",
            ),
            (
                SET_ENV,
                "api/ING=ghcr.io/tracebloc/ingestor:0.3 annotation=example.com/ing-digest",
            ),
        ],
        vec![container("api", app)],
    );
    let facts = |n: u8| digest_facts(&[(app, "stable", d(n)), (ing, "0.3", d(n + 10))]);
    let (first, w) = run(&w, &facts(1));
    assert_eq!(
        first
            .annotations
            .get("example.com/last-refreshed-api-digest")
            .unwrap()
            .as_deref(),
        Some(d(1).as_str()),
        "the baseline is recorded there too"
    );
    assert_eq!(
        w.annotations.get("example.com/ing-digest").unwrap(),
        d(11).as_str()
    );
    let (second, w) = run(&w, &facts(1));
    assert!(second.is_empty(), "nothing moved: zero writes");
    let (third, w) = run(&w, &facts(2));
    assert_eq!(third.changes.len(), 2);
    assert_eq!(
        w.annotations
            .get("example.com/last-refreshed-api-digest")
            .unwrap(),
        d(2).as_str()
    );
    assert_eq!(
        w.annotations.get("example.com/ing-digest").unwrap(),
        d(12).as_str()
    );
    let bad = workload(
        WorkloadKind::Deployment,
        &[
            (POLICY, "digest"),
            (enroll::AUDIT_ANNOTATION, "freshet.io/refreshed"),
        ],
        vec![container("api", app)],
    );
    let err = enroll::from_annotations(&bad.annotations).unwrap_err();
    assert!(err.to_string().contains("annotation key"), "{err}");
}

#[test]
fn failure_streak_warns_below_the_threshold_escalates_at_it_and_clears_on_success() {
    let img = "ghcr.io/acme/api:stable";
    let mut w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "digest"), (THRESHOLD, "3")],
        vec![container("api", img)],
    );
    let down = failed(img, "stable", "ghcr.io: connection refused: check egress");
    for round in 1..=3u32 {
        let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
        let p = plan(&w, &e, &down, now());
        assert!(p.changes.is_empty());
        let failures: BTreeMap<String, u32> =
            serde_json::from_str(p.annotations.get(FAILURES).unwrap().as_ref().unwrap()).unwrap();
        assert_eq!(failures[img], round);
        if round < 3 {
            assert_eq!(p.transient.len(), 1);
            assert!(p.escalations.is_empty());
            assert!(!p.annotations.contains_key(LAST_ERROR));
        } else {
            assert_eq!(p.escalations.len(), 1);
            let error = p.annotations.get(LAST_ERROR).unwrap().as_ref().unwrap();
            assert!(
                error.contains("3 failures in a row") && error.contains("egress"),
                "{error}"
            );
        }
        w = apply(&w, &p);
    }
    let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
    let ok = plan(&w, &e, &digest_facts(&[(img, "stable", d(1))]), now());
    assert_eq!(
        ok.annotations[FAILURES], None,
        "one success clears the streak"
    );
    assert_eq!(ok.annotations[LAST_ERROR], None, "and the error");
}

/// Notifications announce a streak once, when it reaches its threshold, and once
/// when it recovers: `reached` and `recovered` say so, and nothing else does.
#[test]
fn a_streak_is_reached_once_and_recovers_once() {
    let img = "ghcr.io/acme/api:stable";
    let mut w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "digest"), (THRESHOLD, "2")],
        vec![container("api", img)],
    );
    let down = failed(img, "stable", "ghcr.io: connection refused");
    let mut reached = Vec::new();
    for _ in 0..3 {
        let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
        let p = plan(&w, &e, &down, now());
        assert!(p.recovered.is_empty());
        reached.push(p.reached.iter().map(|s| s.count).collect::<Vec<_>>());
        w = apply(&w, &p);
    }
    assert_eq!(reached, [vec![], vec![2], vec![]], "announced at 2 only");
    let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
    let ok = plan(&w, &e, &digest_facts(&[(img, "stable", d(1))]), now());
    assert_eq!(ok.recovered.len(), 1);
    assert_eq!(
        (ok.recovered[0].image.as_str(), ok.recovered[0].count),
        (img, 3)
    );
    let w = apply(&w, &ok);
    let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
    let again = plan(&w, &e, &digest_facts(&[(img, "stable", d(1))]), now());
    assert!(again.recovered.is_empty() && again.reached.is_empty());
}

#[test]
fn restart_never_silently_keeps_an_old_digest_when_pods_would_not_pull() {
    let img = "ghcr.io/acme/api:1.4";
    let mut c = container("api", img);
    c.pull_policy = None; // a versioned tag defaults to IfNotPresent
    let refreshed = serde_json::json!({img: {"digest": d(1).as_str(), "at": NOW}}).to_string();
    let w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "digest"), (REFRESHED, &refreshed)],
        vec![c],
    );
    let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
    let p = plan(&w, &e, &digest_facts(&[(img, "1.4", d(2))]), now());
    assert!(p.changes.is_empty());
    assert!(
        p.warnings[0].contains("IfNotPresent") && p.warnings[0].contains("skips"),
        "{:?}",
        p.warnings
    );
    assert!(
        p.is_empty(),
        "skipped: the audit trail still says d(1), so the next run warns again"
    );

    // With `pin`, the digest is pinned instead.
    let mut w = w;
    w.annotations
        .insert(enroll::IF_NOT_ALWAYS.into(), "pin".into());
    let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
    let p = plan(&w, &e, &digest_facts(&[(img, "1.4", d(2))]), now());
    assert!(
        matches!(&p.changes[..], [Change::SetImage { to, .. }] if *to == format!("{img}@{}", d(2)))
    );
}

#[test]
fn pin_and_set_image_rewrite_only_the_tracked_containers() {
    let w = workload(
        WorkloadKind::StatefulSet,
        &[
            (POLICY, "digest"),
            (enroll::ACTION, "pin"),
            (enroll::CONTAINERS, "api"),
        ],
        vec![
            container("api", "nginx:1.27"),
            container("worker", "nginx:1.27"),
        ],
    );
    let (p, after) = run(
        &w,
        &digest_facts(&[("docker.io/library/nginx:1.27", "1.27", d(3))]),
    );
    assert_eq!(p.changes.len(), 1);
    assert_eq!(
        after.containers[0].image,
        format!("nginx:1.27@{}", d(3)),
        "familiar stays familiar"
    );
    assert_eq!(after.containers[1].image, "nginx:1.27");

    let w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "semver:minor")],
        vec![container("api", "ghcr.io/acme/api:1.4.0")],
    );
    let facts: plan::ImageFacts = [(
        "ghcr.io/acme/api:1.4.0".to_owned(),
        Facts::with_tags(["1.4.0", "1.5.2", "2.0.0", "1.6.0-rc.1"]),
    )]
    .into();
    let (p, after) = run(&w, &facts);
    assert!(
        matches!(&p.changes[..], [Change::SetImage { reason, .. }] if reason.contains("1.5.2")),
        "{p:?}"
    );
    assert_eq!(after.containers[0].image, "ghcr.io/acme/api:1.5.2");
}

#[test]
fn cronjob_patches_land_in_the_job_template() {
    let w = workload(
        WorkloadKind::CronJob,
        &[(POLICY, "digest"), (enroll::ACTION, "pin")],
        vec![container("job", "busybox:1")],
    );
    let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
    let p = plan(
        &w,
        &e,
        &digest_facts(&[("docker.io/library/busybox:1", "1", d(4))]),
        now(),
    );
    let patch = p.patch(&w, now()).unwrap();
    let image = &patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image, &Value::from(format!("busybox:1@{}", d(4))));
}

#[test]
fn untracked_and_opted_out_workloads_plan_nothing() {
    assert!(
        enroll::from_annotations(&crate::Labels::new())
            .unwrap()
            .is_none()
    );
    let never: crate::Labels = [(POLICY.to_owned(), "never".to_owned())]
        .into_iter()
        .collect();
    assert!(enroll::from_annotations(&never).unwrap().is_none());
}

/// Regression: a pinned image whose digest did not move was re-stamped with the new
/// run's time, so every run of a `pin` workload wrote its annotations again.
#[test]
fn pin_writes_nothing_when_a_later_run_finds_the_same_digest() {
    let img = "ghcr.io/acme/api:stable";
    let w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "digest"), (enroll::ACTION, "pin")],
        vec![container("api", img)],
    );
    let facts = digest_facts(&[(img, "stable", d(3))]);
    let (first, after) = run(&w, &facts);
    assert_eq!(first.changes.len(), 1);
    let e = enroll::from_annotations(&after.annotations)
        .unwrap()
        .unwrap();
    let later = plan(
        &after,
        &e,
        &facts,
        Timestamp::parse("2026-11-23T10:15:00Z").unwrap(),
    );
    assert!(later.is_empty(), "nothing moved: zero writes: {later:?}");
}

/// Regression: a container whose image names a digest (`repo:tag@sha256:…`) was
/// "restarted" onto the digest it already pins, silently keeping the old image.
#[test]
fn restart_re_pins_a_container_whose_image_names_a_digest() {
    let img = "ghcr.io/acme/api:stable";
    let pinned = format!("{img}@{}", d(1));
    let refreshed = format!(r#"{{"{img}":{{"digest":"{}","at":"{NOW}"}}}}"#, d(1));
    let w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "digest"), (REFRESHED, &refreshed)],
        vec![container("api", &pinned), container("worker", img)],
    );
    let (p, after) = run(&w, &digest_facts(&[(img, "stable", d(2))]));
    assert!(
        p.changes.contains(&Change::SetImage {
            container: "api".into(),
            init: false,
            from: pinned.clone(),
            to: format!("{img}@{}", d(2)),
            reason: format!(
                "re-pin (the image names a digest, so a restart would not move it): {img} is {}",
                d(2)
            ),
        }),
        "{p:?}"
    );
    assert!(
        p.changes.iter().any(|c| matches!(c, Change::Restart { containers, .. } if containers == &["worker".to_owned()])),
        "{p:?}"
    );
    assert_eq!(after.containers[0].image, format!("{img}@{}", d(2)));
}

#[test]
fn set_image_moves_the_audit_record_to_the_new_tag_with_its_digest() {
    let w = workload(
        WorkloadKind::Deployment,
        &[(POLICY, "semver:minor")],
        vec![container("api", "ghcr.io/acme/api:1.0.0")],
    );
    let mut facts = plan::ImageFacts::new();
    let mut f = Facts::with_tags(["1.0.0", "1.1.0", "2.0.0"]);
    f.digests.insert("1.1.0".into(), Ok(d(9)));
    facts.insert("ghcr.io/acme/api:1.0.0".into(), f);
    let e = enroll::from_annotations(&w.annotations).unwrap().unwrap();
    let p = plan(&w, &e, &facts, now());
    assert!(
        matches!(&p.changes[..], [Change::SetImage { to, .. }] if to == "ghcr.io/acme/api:1.1.0")
    );
    let audit: Value =
        serde_json::from_str(p.annotations.get(REFRESHED).unwrap().as_deref().unwrap()).unwrap();
    assert_eq!(
        audit,
        serde_json::json!({"ghcr.io/acme/api:1.1.0": {"digest": d(9).as_str(), "at": NOW}})
    );
}

/// The safety keys of the config file (`safety_config`).
mod safety_keys {
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
            ("pacing: {max: 0, per: 6h}", "pacing"),
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
