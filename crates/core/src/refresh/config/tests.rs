//! Tests of [`super`]: table tests of its parsing and its errors.
use super::*;
use crate::refresh::ActionKind;

/// A map of `pairs`: labels ([`crate::Labels`]) or annotations (a `BTreeMap`).
fn labels<M: FromIterator<(String, String)>>(pairs: &[(&str, &str)]) -> M {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const CONFIG: &str = r#"
version: 1
namespaces: [dev, prod]
threshold: 5
rules:
  - namespaces: [dev]
    selector: "app in (web,api),tier!=db"
    images: ["127.0.0.1:*/team/*"]
    policy: digest
    threshold: 2
    schedule: "*/15 * * * *"
  - policy: semver:minor
    action: set-image
"#;

#[test]
fn catch_up_defaults_on_a_rule_turns_it_off_and_the_annotation_wins() {
    let c = ClusterConfig::parse("rules:\n  - policy: digest\n    catchUp: false\n").unwrap();
    let none = crate::Labels::new();
    let no_labels = crate::Labels::new();
    let containers = [("app", "ghcr.io/a/b:latest")];
    let subject = |a| Subject {
        namespace: "dev",
        labels: &no_labels,
        annotations: a,
        containers: &containers,
    };
    assert!(!c.enroll(&subject(&none)).unwrap().unwrap().catch_up);
    let on = labels(&[(CATCH_UP, "true")]);
    assert!(c.enroll(&subject(&on)).unwrap().unwrap().catch_up);
    let plain = ClusterConfig::parse("rules:\n  - policy: digest\n").unwrap();
    assert!(plain.enroll(&subject(&none)).unwrap().unwrap().catch_up);
    let bad = labels(&[(CATCH_UP, "sometimes")]);
    let e = plain.enroll(&subject(&bad)).unwrap_err();
    assert!(e.to_string().contains("true or false"), "{e}");
}

#[test]
fn rules_match_by_namespace_selector_and_image_and_annotations_override() {
    let c = ClusterConfig::parse(CONFIG).unwrap();
    let web = labels(&[("app", "web")]);
    let none = crate::Labels::new();
    let containers = [
        ("app", "127.0.0.1:5000/team/api:stable"),
        ("side", "busybox:1"),
    ];
    let subject = |ns, l, a| Subject {
        namespace: ns,
        labels: l,
        annotations: a,
        containers: &containers,
    };
    let e = c.enroll(&subject("dev", &web, &none)).unwrap().unwrap();
    assert_eq!(e.source, Source::Rule(0));
    assert_eq!(e.threshold, 2);
    assert_eq!(e.containers, Some(["app".to_owned()].into()));
    assert_eq!(e.action, ActionKind::Restart);
    // No selector match in dev: the catch-all rule with the global threshold.
    let db = labels(&[("app", "web"), ("tier", "db")]);
    let e = c.enroll(&subject("dev", &db, &none)).unwrap().unwrap();
    assert_eq!((e.source, e.threshold), (Source::Rule(1), 5));
    assert_eq!(e.action, ActionKind::SetImage);
    // Outside the allowlist: nothing, whatever the annotations say.
    let own = labels(&[(POLICY, "digest")]);
    assert_eq!(c.enroll(&subject("kube-system", &web, &own)).unwrap(), None);
    // Annotations override the rule; never always wins.
    let e = c.enroll(&subject("dev", &web, &own)).unwrap().unwrap();
    assert_eq!(e.source, Source::Annotations);
    assert_eq!(e.containers, None);
    let never = labels(&[(POLICY, "never")]);
    assert_eq!(c.enroll(&subject("dev", &web, &never)).unwrap(), None);
}

#[test]
fn keel_labels_count_as_annotations_and_a_never_label_stops_a_rule() {
    let c = ClusterConfig::parse(CONFIG).unwrap();
    let containers = [("app", "127.0.0.1:5000/team/api:stable")];
    let none = crate::Labels::new();
    let subject = |l| Subject {
        namespace: "dev",
        labels: l,
        annotations: &none,
        containers: &containers,
    };
    let never = labels(&[("app", "web"), (KEEL_POLICY, "never")]);
    assert_eq!(c.enroll(&subject(&never)).unwrap(), None);
    let force = labels(&[("app", "web"), (KEEL_POLICY, "force")]);
    let e = c.enroll(&subject(&force)).unwrap().unwrap();
    assert_eq!(e.source, Source::Keel);
    // The annotation wins over the label.
    let own = labels(&[(KEEL_POLICY, "minor")]);
    let s = Subject {
        annotations: &own,
        ..subject(&never)
    };
    assert_eq!(c.enroll(&s).unwrap().unwrap().action, ActionKind::SetImage);
    let merged = keel_labels_under(&own, &never);
    assert_eq!(merged.get(KEEL_POLICY).unwrap(), "minor");
    assert!(!merged.contains_key("app"), "only keel.sh/ labels merge");
}

#[test]
fn an_empty_config_enrolls_by_annotation_only() {
    let c = ClusterConfig::parse("").unwrap();
    let none = crate::Labels::new();
    let no_labels = crate::Labels::new();
    let s = Subject {
        namespace: "x",
        labels: &no_labels,
        annotations: &none,
        containers: &[("a", "nginx:1")],
    };
    assert_eq!(c.enroll(&s).unwrap(), None);
}

#[test]
fn invalid_configs_name_the_key_and_the_fix() {
    let cases = [
        ("rules:\n  - policy: digest\n    polcy: x\n", "polcy"),
        ("rules:\n  - policy: sometimes\n", "rules[0].policy"),
        ("threshold: 0\n", "threshold: 0 is below 1"),
        (
            "rules:\n  - policy: digest\n    threshold: 0\n",
            "rules[0].threshold",
        ),
        (
            "rules:\n  - policy: digest\n    selector: \"app in web\"\n",
            "rules[0].selector",
        ),
        (
            "rules:\n  - policy: digest\n    selector: \"a=b=c\"\n",
            "rules[0].selector",
        ),
        (
            "rules:\n  - policy: digest\n    action: bounce\n",
            "rules[0].action",
        ),
        (
            "rules:\n  - policy: digest\n    schedule: every hour\n",
            "rules[0].schedule",
        ),
        ("namespaces: [Prod]\n", "namespaces[0]"),
        ("version: 2\n", "version"),
    ];
    for (text, expected) in cases {
        let e = ClusterConfig::parse(text).unwrap_err().to_string();
        assert!(e.contains(expected), "{text:?}: {e}");
        assert!(e.contains("fix") || e.contains("keys are"), "{text:?}: {e}");
    }
}

#[test]
fn a_rule_schedule_applies_unless_the_workload_has_its_own() {
    let c = ClusterConfig::parse(CONFIG).unwrap();
    let web = labels(&[("app", "web")]);
    let containers = [("app", "127.0.0.1:5000/team/api:stable")];
    let enroll = |annotations: &crate::Labels| {
        c.enroll(&Subject {
            namespace: "dev",
            labels: &web,
            annotations,
            containers: &containers,
        })
        .unwrap()
        .unwrap()
        .schedule
        .map(|s| s.as_str().to_owned())
    };
    assert_eq!(
        enroll(&crate::Labels::new()).as_deref(),
        Some("*/15 * * * *")
    );
    let keel = labels(&[("keel.sh/pollSchedule", "@every 1h")]);
    assert_eq!(enroll(&keel).as_deref(), Some("@every 1h"));
    let own = labels(&[("freshet.io/schedule", "@daily")]);
    assert_eq!(enroll(&own).as_deref(), Some("@daily"));
}

#[test]
fn selectors_follow_kubernetes_semantics() {
    let s = Selector::parse("app=web,tier!=db,env in (dev,qa),!legacy,team").unwrap();
    assert!(s.matches(&labels(&[("app", "web"), ("env", "qa"), ("team", "x")])));
    assert!(
        !s.matches(&labels(&[("app", "web"), ("env", "qa")])),
        "team missing"
    );
    assert!(!s.matches(&labels(&[
        ("app", "web"),
        ("env", "qa"),
        ("team", "x"),
        ("legacy", "1")
    ])));
    let notin = Selector::parse("env notin (prod)").unwrap();
    assert!(notin.matches(&crate::Labels::new()));
    assert!(!notin.matches(&labels(&[("env", "prod")])));
    assert!(Selector::parse("").is_err());
}
