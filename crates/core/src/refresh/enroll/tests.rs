//! Tests of [`super`]: table tests of its parsing and its errors.
use super::*;

#[test]
fn audit_annotation_names_are_kubernetes_annotation_keys() {
    for good in [
        "example.com/last-refreshed-app-digest",
        "last-refreshed",
        "a.b-c.io/X_y.z-1",
    ] {
        assert_eq!(audit_annotation_key(good).as_deref(), Ok(good), "{good}");
    }
    for bad in [
        "",
        "example.com/",
        "/name",
        "Example.com/name",
        "example.com/-name",
        "example.com/name-",
        "a/b/c",
        "example..com/name",
        "freshet.io/refreshed",
        "x.freshet.io/y",
        "example.com/has space",
        &format!("example.com/{}", "n".repeat(64)),
        &format!("{}/name", "a".repeat(254)),
    ] {
        assert!(audit_annotation_key(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_set_env_entry_may_name_an_audit_annotation() {
    let e = parse_set_env(
            "api/APP=ghcr.io/acme/app:1 annotation=example.com/last-refreshed-app-digest, api/B=nginx:1",
            EnvValue::Digest,
        )
        .unwrap();
    assert_eq!(
        e[0].audit_annotation.as_deref(),
        Some("example.com/last-refreshed-app-digest")
    );
    assert_eq!(e[1].audit_annotation, None);
    for bad in [
        "api/A=nginx:1 annotation=freshet.io/x",
        "api/A=nginx:1 note=example.com/x",
        "api/A=nginx:1 annotation=example.com/x extra",
    ] {
        assert!(parse_set_env(bad, EnvValue::Digest).is_err(), "{bad}");
    }
}

fn ann(pairs: &[(&str, &str)]) -> crate::Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn not_enrolled_without_annotations_or_with_never() {
    assert_eq!(from_annotations(&ann(&[])).unwrap(), None);
    assert_eq!(from_annotations(&ann(&[("app", "x")])).unwrap(), None);
    assert_eq!(
        from_annotations(&ann(&[(POLICY, "never"), (KEEL_POLICY, "all")])).unwrap(),
        None
    );
}

#[test]
fn freshet_annotations_table() {
    let e = from_annotations(&ann(&[(POLICY, "digest"), (CONTAINERS, "api, worker")]))
        .unwrap()
        .unwrap();
    assert_eq!(e.action, ActionKind::Restart);
    assert!(e.covers("api") && e.covers("worker") && !e.covers("sidecar"));
    assert_eq!(e.threshold, DEFAULT_THRESHOLD);
    assert_eq!(e.source, Source::Annotations);

    let e = from_annotations(&ann(&[(POLICY, "semver:minor")]))
        .unwrap()
        .unwrap();
    assert_eq!(e.action, ActionKind::SetImage);
    let e = from_annotations(&ann(&[
        (POLICY, "digest"),
        (ACTION, "pin"),
        (THRESHOLD, "5"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!((e.action, e.threshold), (ActionKind::Pin, 5));
}

#[test]
fn bad_annotations_name_the_key_and_the_fix() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[(POLICY, "newest")], "freshet.io/policy=\"newest\""),
        (&[(POLICY, "digest"), (THRESHOLD, "0")], "at least 1"),
        (&[(POLICY, "digest"), (THRESHOLD, "three")], "at least 1"),
        (
            &[(POLICY, "digest"), (ACTION, "bounce")],
            "restart, pin or set-image",
        ),
        (
            &[(KEEL_POLICY, "force"), (KEEL_MATCH_TAG, "yes")],
            "true or false",
        ),
        (&[(SET_ENV, "API_DIGEST=ghcr.io/a/b:1")], "CONTAINER/"),
        (&[(SET_ENV, "api/X=Bad:Ref:x")], "api/X=Bad:Ref:x"),
    ];
    for (pairs, want) in cases {
        let err = from_annotations(&ann(pairs)).unwrap_err().to_string();
        assert!(err.contains(want), "{pairs:?}: {err}");
    }
}

#[test]
fn schedules_come_from_freshet_then_keel_and_bad_ones_name_the_annotation() {
    let e = |pairs: &[(&str, &str)]| from_annotations(&ann(pairs));
    let s = e(&[(POLICY, "digest")]).unwrap().unwrap();
    assert_eq!(s.schedule, None);
    let s = e(&[
        (POLICY, "digest"),
        (SCHEDULE, "0 3 * * *"),
        (KEEL_POLL_SCHEDULE, "@every 1m"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(s.schedule.unwrap().as_str(), "0 3 * * *");
    let s = e(&[(POLICY, "digest"), (KEEL_POLL_SCHEDULE, "@every 10m")])
        .unwrap()
        .unwrap();
    assert_eq!(s.schedule.unwrap().as_str(), "@every 10m");
    let bad = e(&[(POLICY, "digest"), (KEEL_POLL_SCHEDULE, "@every often")])
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains(KEEL_POLL_SCHEDULE) && bad.contains("@every 1h30m"),
        "{bad}"
    );
    let bad = e(&[(KEEL_POLICY, "minor"), (KEEL_TRIGGER, "webhook")])
        .unwrap_err()
        .to_string();
    assert!(bad.contains("poll or default"), "{bad}");
    for trigger in ["poll", "default", "Poll"] {
        e(&[(KEEL_POLICY, "minor"), (KEEL_TRIGGER, trigger)])
            .unwrap()
            .unwrap();
    }
}

#[test]
fn set_env_entries_alone_enroll_the_workload() {
    let e = from_annotations(&ann(&[(
        SET_ENV,
        "api/INGESTOR_IMAGE_DIGEST=ghcr.io/tracebloc/ingestor:0.3,\n api/OTHER=nginx:1.27",
    )]))
    .unwrap()
    .unwrap();
    assert_eq!(e.policy, None);
    assert_eq!(e.set_env.len(), 2);
    assert_eq!(e.set_env[0].container, "api");
    assert_eq!(e.set_env[0].var, "INGESTOR_IMAGE_DIGEST");
    assert_eq!(
        e.set_env[0].image.canonical(),
        "ghcr.io/tracebloc/ingestor:0.3"
    );
    assert_eq!(
        e.set_env[1].image.canonical(),
        "docker.io/library/nginx:1.27"
    );
    let dup = from_annotations(&ann(&[(SET_ENV, "api/X=a:1,api/X=b:1")])).unwrap_err();
    assert!(dup.to_string().contains("twice"), "{dup}");
}

#[test]
fn keel_monitor_and_init_containers_narrow_what_is_tracked() {
    use crate::refresh::workload::Container;
    let c = |name: &str, init: bool| Container {
        name: name.into(),
        image: "nginx:1".into(),
        init,
        pull_policy: None,
        env: Default::default(),
    };
    let e = from_annotations(&ann(&[
        (KEEL_POLICY, "force"),
        (KEEL_MONITOR_CONTAINERS, "^(api|worker)$"),
    ]))
    .unwrap()
    .unwrap();
    assert!(e.tracks(&c("api", false)) && e.tracks(&c("worker", false)));
    assert!(!e.tracks(&c("api-sidecar", false)));
    assert!(
        !e.tracks(&c("api", true)),
        "Keel leaves init containers out by default"
    );
    let e = from_annotations(&ann(&[
        (KEEL_POLICY, "force"),
        (KEEL_MONITOR_CONTAINERS, "api"),
        (KEEL_INIT_CONTAINERS, "true"),
    ]))
    .unwrap()
    .unwrap();
    assert!(
        e.tracks(&c("api-migrate", true)),
        "unanchored, as Keel's MatchString"
    );
    let e = from_annotations(&ann(&[(POLICY, "digest")]))
        .unwrap()
        .unwrap();
    assert!(
        e.tracks(&c("init", true)),
        "a freshet enrollment keeps init containers"
    );
    let e = from_annotations(&ann(&[(POLICY, "digest"), (KEEL_INIT_CONTAINERS, "False")]))
        .unwrap()
        .unwrap();
    assert!(!e.tracks(&c("init", true)));
    for (key, value, want) in [
        (KEEL_MONITOR_CONTAINERS, "(api", "^(api|worker)$"),
        (KEEL_INIT_CONTAINERS, "yes", "true or false"),
    ] {
        let err = from_annotations(&ann(&[(KEEL_POLICY, "force"), (key, value)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key) && err.contains(want), "{err}");
    }
}

#[test]
fn keel_annotations_keep_keel_meaning() {
    let keel = |pairs: &[(&str, &str)]| from_annotations(&ann(pairs)).unwrap().unwrap();
    // force + matchTag: a digest watch of the same tag.
    let e = keel(&[(KEEL_POLICY, "force"), (KEEL_MATCH_TAG, "true")]);
    assert!(matches!(
        e.policy.as_ref().unwrap().kind(),
        PolicyKind::Digest
    ));
    assert_eq!(
        (e.action, e.source.clone()),
        (ActionKind::Restart, Source::Keel)
    );
    // minor: a version policy that moves the tag.
    let e = keel(&[
        (KEEL_POLICY, "minor"),
        ("keel.sh/trigger", "poll"),
        (KEEL_POLL_SCHEDULE, "@every 5m"),
    ]);
    assert_eq!(e.action, ActionKind::SetImage);
    assert!(!e.policy.as_ref().unwrap().allows_prerelease());
    assert_eq!(e.schedule.as_ref().map(Schedule::as_str), Some("@every 5m"));
    // matchPreRelease: false lets pre-releases move on.
    let e = keel(&[(KEEL_POLICY, "minor"), (KEEL_MATCH_PRERELEASE, "false")]);
    assert!(e.policy.as_ref().unwrap().allows_prerelease());
    // freshet's own annotation wins over Keel's.
    let e = keel(&[(POLICY, "digest"), (KEEL_POLICY, "major")]);
    assert_eq!(e.source, Source::Annotations);
}
