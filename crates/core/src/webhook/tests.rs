//! Table tests of the webhook parsers (payload shapes from the vendors' documentation),
//! the authentication checks, pacing and config validation.

use std::time::{Duration, Instant};

use super::auth::{authorization_token, hub_signature, verify_hub_signature, verify_token};
use super::limit::Refusal;
use super::*;
use crate::Reference;

fn refs(list: &[&str]) -> Parsed {
    Parsed::Push(list.iter().map(|s| Reference::parse(s).unwrap()).collect())
}

// Docker Hub: the example payload of docs.docker.com/docker-hub/repos/manage/webhooks/
// (trimmed of the long `dockerfile` field, which the parser ignores).
const DOCKER_HUB_DOC: &str = r#"{
  "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
  "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
  "repository": {
    "comment_count": 0, "date_created": 1417494799, "description": "",
    "full_description": "Docker Hub based automated build from a GitHub repo",
    "is_official": false, "is_private": true, "is_trusted": true,
    "name": "testhook", "namespace": "svendowideit", "owner": "svendowideit",
    "repo_name": "svendowideit/testhook",
    "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
    "star_count": 0, "status": "Active"
  }
}"#;

// GitHub `package` event (docs.github.com "Webhook events and payloads", package), as
// GHCR sends it for a container push; fields the parser ignores are trimmed.
const GITHUB_PACKAGE: &str = r#"{
  "action": "published",
  "package": {
    "id": 1, "name": "App", "namespace": "Octo-Org", "ecosystem": "CONTAINER",
    "package_type": "CONTAINER",
    "package_version": {
      "id": 2, "version": "sha256:3d8b3d39f8d0d0b2b3c1d3d3a4b0b4c8b2b1a9c0e0f1e2d3c4b5a6978899aabb",
      "package_url": "ghcr.io/Octo-Org/App:v1.4.0",
      "container_metadata": {
        "tag": {"name": "v1.4.0", "digest": "sha256:3d8b3d39f8d0d0b2b3c1d3d3a4b0b4c8b2b1a9c0e0f1e2d3c4b5a6978899aabb"},
        "labels": {}, "manifest": {}
      }
    },
    "registry": {"about_url": "https://docs.github.com", "name": "GitHub CONTAINER registry", "type": "CONTAINER", "url": "https://ghcr.io/octo-org", "vendor": "GitHub Inc"}
  },
  "repository": {"full_name": "octo-org/app"},
  "sender": {"login": "octocat"}
}"#;

// GitHub `registry_package` event (GitHub App deliveries): same version object; GitHub
// has been seen to send a package_url with a bare trailing colon.
const GITHUB_REGISTRY_PACKAGE: &str = r#"{
  "action": "published",
  "registry_package": {
    "name": "app", "namespace": "octo-org", "package_type": "container",
    "package_version": {
      "package_url": "ghcr.io/octo-org/app:",
      "container_metadata": {"tag": {"name": "2.0.1", "digest": "sha256:aa"}}
    }
  }
}"#;

// Harbor default-format PUSH_ARTIFACT (goharbor.io "Configure Webhook Notifications").
const HARBOR_PUSH: &str = r#"{
  "type": "PUSH_ARTIFACT",
  "occur_at": 1680501893,
  "operator": "admin",
  "event_data": {
    "resources": [
      {"digest": "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
       "tag": "v1.0.0",
       "resource_url": "harbor.example.com/library/alpine:v1.0.0"},
      {"digest": "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
       "tag": "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
       "resource_url": "harbor.example.com/library/alpine@sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"}
    ],
    "repository": {"date_created": 1680501893, "name": "alpine", "namespace": "library",
                   "repo_full_name": "library/alpine", "repo_type": "public"}
  }
}"#;

// Quay repository push (Red Hat Quay "Repository Notifications", 12.1.1).
const QUAY_PUSH: &str = r#"{
  "name": "repository",
  "repository": "dgangaia/test",
  "namespace": "dgangaia",
  "docker_url": "quay.io/dgangaia/test",
  "homepage": "https://quay.io/repository/dgangaia/repository",
  "updated_tags": ["latest", "1.2"]
}"#;

// Quay's older form (quay.io example gist, 2013): updated_tags is tag -> image ID.
const QUAY_PUSH_OLD: &str = r#"{
  "pushed_image_count": 2, "name": "ubuntu", "repository": "devtable/ubuntu",
  "docker_url": "quay.io/devtable/ubuntu",
  "updated_tags": {"latest": "b750fe79269d2ec9a3c593ef05b4332b1d1a02a62b4accb2c21d589ff2f5f2dc"},
  "namespace": "devtable", "visibility": "private",
  "homepage": "https://quay.io/repository/devtable/ubuntu"
}"#;

#[test]
fn webhook_payloads_of_each_vendor_name_their_images() {
    use SourceKind::*;
    let digest = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4";
    let harbor_digest = format!("harbor.example.com/library/alpine@{digest}");
    let gh_deleted = GITHUB_PACKAGE.replace("\"published\"", "\"deleted\"");
    let gh_npm = GITHUB_PACKAGE.replace(
        "\"package_type\": \"CONTAINER\"",
        "\"package_type\": \"npm\"",
    );
    let harbor_pull = HARBOR_PUSH.replace("PUSH_ARTIFACT", "PULL_ARTIFACT");
    let cases: Vec<(SourceKind, Option<&str>, &str, Parsed)> = vec![
        (
            DockerHub,
            None,
            DOCKER_HUB_DOC,
            refs(&["svendowideit/testhook:latest"]),
        ),
        (
            DockerHub,
            None,
            r#"{"push_data":{},"repository":{"repo_name":"nginx"}}"#,
            refs(&["docker.io/library/nginx"]),
        ),
        (
            GitHub,
            Some("package"),
            GITHUB_PACKAGE,
            refs(&["ghcr.io/octo-org/app:v1.4.0"]),
        ),
        (
            GitHub,
            Some("registry_package"),
            GITHUB_REGISTRY_PACKAGE,
            refs(&["ghcr.io/octo-org/app:2.0.1"]),
        ),
        (
            GitHub,
            Some("ping"),
            r#"{"zen":"Keep it simple."}"#,
            Parsed::Ignored("ping"),
        ),
        (GitHub, Some("push"), "{}", Parsed::Ignored("other_event")),
        (
            GitHub,
            Some("package"),
            &gh_deleted,
            Parsed::Ignored("other_action"),
        ),
        (
            GitHub,
            Some("package"),
            &gh_npm,
            Parsed::Ignored("not_a_container"),
        ),
        (
            Harbor,
            None,
            HARBOR_PUSH,
            refs(&["harbor.example.com/library/alpine:v1.0.0", &harbor_digest]),
        ),
        (Harbor, None, &harbor_pull, Parsed::Ignored("other_event")),
        (
            Quay,
            None,
            QUAY_PUSH,
            refs(&["quay.io/dgangaia/test:latest", "quay.io/dgangaia/test:1.2"]),
        ),
        (
            Quay,
            None,
            QUAY_PUSH_OLD,
            refs(&["quay.io/devtable/ubuntu:latest"]),
        ),
        (
            Generic,
            None,
            r#"{"image":"ghcr.io/o/a:1.2"}"#,
            refs(&["ghcr.io/o/a:1.2"]),
        ),
    ];
    for (kind, event, body, want) in cases {
        let got = parse(kind, event, body.as_bytes());
        assert_eq!(got.as_ref(), Ok(&want), "{kind:?} {event:?} {body}");
    }
}

#[test]
fn webhook_malformed_payloads_are_refused_without_echoing_the_body() {
    use SourceKind::*;
    let many: Vec<String> = (0..=payload::MAX_IMAGES)
        .map(|i| format!("\"t{i}\""))
        .collect();
    let quay_many = format!(
        r#"{{"docker_url":"quay.io/a/b","updated_tags":[{}]}}"#,
        many.join(",")
    );
    let cases: Vec<(SourceKind, Option<&str>, String, &str)> = vec![
        (
            DockerHub,
            None,
            "not json secret-ish".into(),
            "malformed_json",
        ),
        (
            DockerHub,
            None,
            r#"{"push_data":{"tag":"x"}}"#.into(),
            "missing_field",
        ),
        (
            DockerHub,
            None,
            r#"{"repository":{"repo_name":"Bad Name"}}"#.into(),
            "bad_reference",
        ),
        (
            DockerHub,
            None,
            r#"{"repository":{"repo_name":"a/b"},"push_data":{"tag":"-x"}}"#.into(),
            "bad_reference",
        ),
        (
            GitHub,
            Some("package"),
            r#"{"action":"published"}"#.into(),
            "missing_field",
        ),
        (GitHub, Some("package"), "[".into(), "malformed_json"),
        (
            Harbor,
            None,
            r#"{"type":"PUSH_ARTIFACT","event_data":{"resources":[]}}"#.into(),
            "missing_field",
        ),
        (
            Quay,
            None,
            r#"{"updated_tags":["a"]}"#.into(),
            "missing_field",
        ),
        (Quay, None, quay_many, "too_many_images"),
        (
            Generic,
            None,
            r#"{"image":"a:1","extra":true}"#.into(),
            "malformed_json",
        ),
        (Generic, None, r#"{"image":""}"#.into(), "bad_reference"),
    ];
    for (kind, event, body, label) in cases {
        let err = parse(kind, event, body.as_bytes()).expect_err(&body);
        assert_eq!(err.metric_label(), label, "{body}");
        assert!(!err.to_string().contains("secret-ish"), "{err}");
    }
}

#[test]
fn webhook_hub_signature_accepts_only_the_right_hmac() {
    let secret = Secret::new("It's a Secret to Everybody");
    // The worked example of docs.github.com "Validating webhook deliveries".
    let body = b"Hello, World!";
    let want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(hub_signature(&secret, body), want);
    assert_eq!(verify_hub_signature(&secret, Some(want), body), Ok(()));
    let wrong = Secret::new("another secret");
    let cases: Vec<(Option<&str>, &[u8], AuthError)> = vec![
        (None, body, AuthError::Missing),
        (Some(""), body, AuthError::Missing),
        (Some("sha1=abc"), body, AuthError::Malformed),
        (Some("sha256=zz"), body, AuthError::Malformed),
        (Some(&want[..want.len() - 1]), body, AuthError::Malformed),
        (Some(want), b"Hello, World?", AuthError::Mismatch),
    ];
    for (header, body, err) in cases {
        assert_eq!(
            verify_hub_signature(&secret, header, body),
            Err(err),
            "{header:?}"
        );
    }
    let other = hub_signature(&wrong, body);
    assert_eq!(
        verify_hub_signature(&secret, Some(&other), body),
        Err(AuthError::Mismatch)
    );
    assert_eq!(AuthError::Missing.status(), 401);
    assert_eq!(AuthError::Mismatch.status(), 403);
}

#[test]
fn webhook_tokens_compare_exactly_and_never_print() {
    let secret = Secret::new("0123456789abcdef");
    assert_eq!(verify_token(&secret, Some("0123456789abcdef")), Ok(()));
    assert_eq!(
        verify_token(&secret, Some("0123456789abcdeF")),
        Err(AuthError::Mismatch)
    );
    assert_eq!(
        verify_token(&secret, Some("0123456789abcdef0")),
        Err(AuthError::Mismatch)
    );
    assert_eq!(verify_token(&secret, Some("")), Err(AuthError::Missing));
    assert_eq!(verify_token(&secret, None), Err(AuthError::Missing));
    assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    assert_eq!(authorization_token(Some("Bearer abc"), false), Some("abc"));
    assert_eq!(
        authorization_token(Some("bearer  abc "), false),
        Some("abc")
    );
    assert_eq!(authorization_token(Some("abc"), false), None);
    assert_eq!(authorization_token(Some("abc"), true), Some("abc"));
    assert_eq!(authorization_token(Some("Basic abc"), false), None);
    assert_eq!(authorization_token(None, true), None);
}

#[test]
fn webhook_token_bucket_allows_the_burst_then_the_rate() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(Rate {
        burst: 3,
        per_minute: 60,
    });
    let taken = (0..10).filter(|_| bucket.try_take(t0)).count();
    assert_eq!(taken, 3);
    assert!(!bucket.try_take(t0 + Duration::from_millis(500)));
    assert!(bucket.try_take(t0 + Duration::from_secs(1)));
    assert!(!bucket.try_take(t0 + Duration::from_secs(1)));
    // A long pause refills to the burst, not beyond.
    let later = t0 + Duration::from_secs(3600);
    assert_eq!((0..10).filter(|_| bucket.try_take(later)).count(), 3);
}

#[test]
fn webhook_debounce_admits_an_image_once_per_interval_and_stays_bounded() {
    let t0 = Instant::now();
    let mut d = Debouncer::new(Duration::from_secs(10), 2);
    assert_eq!(d.admit("a", t0), Ok(()));
    assert_eq!(
        d.admit("a", t0 + Duration::from_secs(9)),
        Err(Refusal::Debounced)
    );
    assert_eq!(d.admit("b", t0), Ok(()));
    assert_eq!(
        d.admit("c", t0 + Duration::from_secs(1)),
        Err(Refusal::Full)
    );
    assert_eq!(d.admit("a", t0 + Duration::from_secs(10)), Ok(()));
    // b has expired by now, so c finds room.
    assert_eq!(d.admit("c", t0 + Duration::from_secs(11)), Ok(()));
}

#[test]
fn webhook_replay_guard_refuses_a_repeated_delivery_id() {
    let mut g = ReplayGuard::new(2);
    assert!(g.first_time("d1"));
    assert!(!g.first_time("d1"));
    assert!(g.first_time("d2"));
    assert!(g.first_time("d3"));
    // d1 was forgotten (capacity 2): the guard stays bounded.
    assert!(g.first_time("d1"));
}

fn config(yaml: &str) -> Result<ValidWebhooks, String> {
    let c: WebhooksConfig = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    c.validate().map_err(|e| e.to_string())
}

#[test]
fn webhook_config_defaults_and_secret_locations() {
    let v = config(
        "sources:\n  - {name: hub, kind: dockerhub, secret: {file: /run/hub}}\n  - {name: gh, kind: github, secret: {env: GH_SECRET}, rate: {burst: 2, per_minute: 5}}\n  - {name: harbor-1, kind: harbor, secret: {env: H}, registries: [harbor.example.com, index.docker.io]}\n",
    )
    .unwrap();
    assert_eq!(v.max_body_bytes, 1 << 20);
    assert_eq!(v.debounce, Duration::from_secs(10));
    assert_eq!(v.sources[0].secret, SecretLocation::File("/run/hub".into()));
    assert_eq!(v.sources[0].registries, Some(vec!["docker.io".to_owned()]));
    assert_eq!(
        v.sources[1].rate,
        Rate {
            burst: 2,
            per_minute: 5
        }
    );
    assert_eq!(v.sources[1].registries, Some(vec!["ghcr.io".to_owned()]));
    assert_eq!(
        v.sources[2].registries,
        Some(vec![
            "harbor.example.com".to_owned(),
            "docker.io".to_owned()
        ])
    );
}

#[test]
fn webhook_config_errors_name_the_key_and_the_fix() {
    let cases = [
        ("max_body_bytes: 10\n", "webhooks.max_body_bytes is 10"),
        ("debounce: soon\n", "webhooks.debounce \"soon\""),
        (
            "sources: [{name: Hub, kind: dockerhub, secret: {env: X}}]\n",
            "sources[0].name \"Hub\"",
        ),
        (
            "sources: [{name: a/b, kind: quay, secret: {env: X}}]\n",
            "sources[0].name",
        ),
        (
            "sources: [{name: a, kind: quay, secret: {env: X}}, {name: a, kind: quay, secret: {env: Y}}]\n",
            "sources[1].name \"a\" is used twice",
        ),
        (
            "sources: [{name: a, kind: quay, secret: {}}]\n",
            "exactly one of `file` or `env`",
        ),
        (
            "sources: [{name: a, kind: quay, secret: {env: X, file: /f}}]\n",
            "exactly one of `file` or `env`",
        ),
        (
            "sources: [{name: a, kind: quay, secret: {value: hunter2}}]\n",
            "unknown field",
        ),
        (
            "sources: [{name: a, kind: quay, secret: {env: X}, rate: {burst: 0, per_minute: 1}}]\n",
            "rate is out of range",
        ),
        (
            "sources: [{name: a, kind: quay, secret: {env: X}, registries: [\"not a host\"]}]\n",
            "registries has",
        ),
        (
            "sources: [{name: a, kind: gitlab, secret: {env: X}}]\n",
            "unknown variant",
        ),
        ("extra: 1\n", "unknown field"),
    ];
    for (yaml, want) in cases {
        let err = config(yaml).expect_err(yaml);
        assert!(err.contains(want), "{yaml}: {err}");
        assert!(!err.contains("hunter2") || want == "unknown field", "{err}");
    }
}
