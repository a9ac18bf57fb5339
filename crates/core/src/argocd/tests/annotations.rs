//! Annotation sets from Image Updater's documentation, read as upstream reads them, and bad input rejected with the annotation and the fix.

use super::{iu, map};
use crate::argocd::annotations::{AnnotationError, IMAGE_LIST, from_annotations};
use crate::argocd::image::{DigestForm, HelmTarget, PullSecretRef, Strategy};
use crate::argocd::writeback::{GitCreds, Method, Target};
use crate::policy::{Current, Decision, Facts, PolicyKind, decide};

fn parse(
    pairs: &[(String, &str)],
    ns: &str,
) -> Result<Option<crate::argocd::AppConfig>, AnnotationError> {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    from_annotations(ns, &map(&pairs))
}

#[test]
fn the_seed_preview_is_enrolled_and_prod_is_not() {
    let preview = [
        (iu("image-list"), "backend=ghcr.io/acme/backend:preview"),
        (iu("backend.update-strategy"), "digest"),
        (iu("backend.helm.image-name"), "image.repository"),
        (iu("backend.helm.image-tag"), "image.tag"),
        ("freshet.io/backend.digest-form".to_owned(), "digest"),
    ];
    let config = parse(&preview, "argocd")
        .unwrap()
        .expect("preview is enrolled");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let image = &config.images[0];
    assert_eq!(image.alias.as_deref(), Some("backend"));
    assert_eq!(image.image.name, "ghcr.io/acme/backend");
    assert_eq!(image.strategy, Strategy::Digest);
    assert_eq!(image.tracked_tag(), Some("preview"));
    assert!(matches!(
        image.policy.as_ref().unwrap().kind(),
        PolicyKind::Digest
    ));
    assert_eq!(image.digest_form, Some(DigestForm::Digest));
    assert_eq!(
        image.target.helm,
        HelmTarget::Names {
            name: "image.repository".into(),
            tag: "image.tag".into()
        }
    );
    assert_eq!(config.write_back.method, Method::Argocd);

    // Prod carries no Image Updater annotation: nothing to do, not an error.
    let prod = [("argocd.argoproj.io/sync-wave".to_owned(), "1")];
    assert!(parse(&prod, "argocd").unwrap().is_none());
}

#[test]
fn the_migration_guide_annotation_set_reads_as_upstream_does() {
    // docs/configuration/migration.md (v1.3.0), "Before (Annotation-based)".
    let set = [
        (iu("image-list"), "nginx=nginx:1.20,redis=redis:6.2"),
        (iu("write-back-method"), "git"),
        (iu("git-repository"), "git@github.com:myorg/myrepo.git"),
        (iu("git-branch"), "main"),
        (iu("write-back-target"), "helmvalues:./values.yaml"),
        (iu("update-strategy"), "semver"),
        (iu("nginx.allow-tags"), r"regexp:^[0-9]+\.[0-9]+$"),
        (iu("nginx.ignore-tags"), "latest,dev"),
        (iu("redis.update-strategy"), "latest"),
        (
            iu("redis.pull-secret"),
            "secret:my-namespace/redis-secret#username",
        ),
    ];
    let config = parse(&set, "my-namespace").unwrap().unwrap();
    let [nginx, redis] = config.images.as_slice() else {
        panic!("two images")
    };
    assert_eq!(nginx.strategy, Strategy::Semver);
    assert_eq!(nginx.image.constraint.as_deref(), Some("1.20"));
    assert_eq!(nginx.ignore_tags, ["latest", "dev"]);
    assert!(nginx.allow_tags.allows("1.21") && !nginx.allow_tags.allows("1.21.3"));
    assert_eq!(
        nginx.filter_tags(
            &["1.20".into(), "1.21".into(), "latest".into(), "dev".into()],
            Some("1.20")
        ),
        ["1.20", "1.21"]
    );
    // `1.20` is Masterminds `~1.20`: 1.20.x only.
    let d = decide(
        Current::tag("1.20.1"),
        nginx.policy.as_ref().unwrap(),
        &Facts::with_tags(["1.20.1", "1.20.4", "1.21.0"]),
    );
    assert!(
        matches!(d, Decision::Update { ref to, .. } if to == "1.20.4"),
        "{d:?}"
    );

    assert_eq!(redis.strategy, Strategy::NewestBuild);
    assert!(redis.policy.is_none(), "newest-build is not followed");
    assert_eq!(
        redis.pull_secret,
        Some(PullSecretRef::SecretField {
            namespace: "my-namespace".into(),
            name: "redis-secret".into(),
            field: "username".into()
        })
    );
    let sources: Vec<&str> = config.warnings.iter().map(|w| w.source.as_str()).collect();
    assert_eq!(
        sources,
        [iu("redis.update-strategy"), iu("redis.update-strategy")]
    );
    assert!(config.warnings[0].message.contains("newest-build"));
    assert!(
        config.warnings[1]
            .message
            .contains("no newest-build strategy")
    );

    let wb = &config.write_back;
    assert_eq!(
        wb.method,
        Method::Git {
            creds: GitCreds::RepoCreds
        }
    );
    assert_eq!(
        wb.target,
        Target::HelmValues {
            file: Some("./values.yaml".into())
        }
    );
    assert_eq!(
        wb.repository.as_deref(),
        Some("git@github.com:myorg/myrepo.git")
    );
    assert_eq!(wb.branch.base.as_deref(), Some("main"));
    assert_eq!(
        wb.target
            .resolve("charts/app", ".argocd-source-production-app.yaml")
            .as_deref(),
        Some("charts/app/values.yaml")
    );
}

#[test]
fn helm_kustomize_and_alias_rules_from_the_v0_docs() {
    let set = [
        (
            iu("image-list"),
            " dex = quay.io/dexidp/dex , argoproj/argocd=ghcr.io/argoproj/argocd:latest ,, nginx:~1.26 ",
        ),
        (iu("dex.helm.image-name"), "dex.image.name"),
        (iu("dex.helm.image-tag"), "dex.image.tag"),
        (iu("argoproj_argocd.update-strategy"), "digest"),
        (
            iu("argoproj_argocd.kustomize.image-name"),
            "quay.io/argoproj/argocd",
        ),
        (iu("argoproj_argocd.force-update"), "true"),
        (
            iu("argoproj_argocd.platforms"),
            "linux/amd64, linux/arm64/v8",
        ),
    ];
    let config = parse(&set, "argocd").unwrap().unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let [dex, argocd, nginx] = config.images.as_slice() else {
        panic!("three images")
    };
    assert_eq!(
        dex.target.helm,
        HelmTarget::Names {
            name: "dex.image.name".into(),
            tag: "dex.image.tag".into()
        }
    );
    assert!(dex.target.helm_configured);
    assert_eq!(argocd.alias.as_deref(), Some("argoproj/argocd"));
    assert_eq!(argocd.strategy, Strategy::Digest);
    assert!(argocd.force_update);
    assert_eq!(argocd.platforms.len(), 2);
    assert_eq!(
        argocd.target.kustomize_name.as_deref(),
        Some("quay.io/argoproj/argocd")
    );
    assert!(!argocd.target.helm_configured);
    // No alias: only Application-wide settings, upstream's default parameters.
    assert_eq!(nginx.alias, None);
    assert_eq!(nginx.image.constraint.as_deref(), Some("~1.26"));
    assert_eq!(nginx.target.helm, HelmTarget::default());
}

#[test]
fn a_registry_port_is_not_a_constraint() {
    let set = [(iu("image-list"), "app=localhost:5000/team/app:~1.2")];
    let config = parse(&set, "ns").unwrap().unwrap();
    assert_eq!(config.images[0].image.name, "localhost:5000/team/app");
    assert_eq!(config.images[0].image.constraint.as_deref(), Some("~1.2"));
}

#[test]
fn image_spec_wins_over_name_and_tag() {
    let set = [
        (iu("image-list"), "app=ghcr.io/o/app:1.x"),
        (iu("app.helm.image-spec"), "app.image"),
        (iu("app.helm.image-tag"), "app.tag"),
    ];
    let config = parse(&set, "ns").unwrap().unwrap();
    assert_eq!(
        config.images[0].target.helm,
        HelmTarget::Spec {
            spec: "app.image".into()
        }
    );
}

#[test]
fn malformed_annotations_are_errors_naming_the_annotation_and_the_fix() {
    type Case<'a> = (Vec<(String, &'a str)>, String, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![(iu("image-list"), "a=")],
            IMAGE_LIST.into(),
            "alias has no image",
        ),
        (vec![(iu("image-list"), " , ")], IMAGE_LIST.into(), "empty"),
        (
            vec![(iu("image-list"), "a=nginx,a=redis")],
            IMAGE_LIST.into(),
            "used twice",
        ),
        (
            vec![(iu("image-list"), "a=Nginx")],
            IMAGE_LIST.into(),
            "lowercase",
        ),
        (
            vec![(iu("image-list"), "a=nginx:^1 || ^2")],
            IMAGE_LIST.into(),
            "whitespace",
        ),
        (
            vec![(iu("image-list"), "a=nginx:^1||^2")],
            IMAGE_LIST.into(),
            "allow-tags",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.update-strategy"), "newest"),
            ],
            iu("a.update-strategy"),
            "use semver, digest",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.update-strategy"), "digest"),
            ],
            iu("a.update-strategy"),
            "alias=repository:<tag>",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx:~1.2"),
                (iu("a.update-strategy"), "digest"),
            ],
            iu("a.update-strategy"),
            "real tag",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.allow-tags"), "regex:^v"),
            ],
            iu("a.allow-tags"),
            "regexp:<expression>",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.allow-tags"), "regexp:("),
            ],
            iu("a.allow-tags"),
            "does not compile",
        ),
        (
            vec![(iu("image-list"), "a=nginx"), (iu("a.ignore-tags"), "v[")],
            iu("a.ignore-tags"),
            "not closed",
        ),
        (
            vec![(iu("image-list"), "a=nginx"), (iu("a.platforms"), "linux")],
            iu("a.platforms"),
            "os/arch",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.force-update"), "yes please"),
            ],
            iu("a.force-update"),
            "true or false",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.pull-secret"), "env:REGISTRY_CREDS"),
            ],
            iu("a.pull-secret"),
            "own environment",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.pull-secret"), "ext:/auth.sh"),
            ],
            iu("a.pull-secret"),
            "never runs a script",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.pull-secret"), "pullsecret:other/regcred"),
            ],
            iu("a.pull-secret"),
            "cross-namespace",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("a.helm.image-tag"), "t"),
                (iu("a.kustomize.image-name"), "x"),
            ],
            iu("a.kustomize.image-name"),
            "both helm",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("write-back-method"), "svn"),
            ],
            iu("write-back-method"),
            "git:secret:",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("write-back-method"), "git"),
                (iu("write-back-target"), "overlays/kustomization.yaml"),
            ],
            iu("write-back-target"),
            "kustomization:<directory>",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("write-back-method"), "git"),
                (iu("git-branch"), "a:b:c"),
            ],
            iu("git-branch"),
            "more than one",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                (iu("write-back-method"), "git"),
                (iu("git-branch"), "main:up-{{.Foo}}"),
            ],
            iu("git-branch"),
            "does not render",
        ),
        (
            vec![
                (iu("image-list"), "a=nginx"),
                ("freshet.io/a.digest-form".into(), "short"),
            ],
            "freshet.io/a.digest-form".into(),
            "tag-digest",
        ),
    ];
    for (pairs, key, needle) in cases {
        let err = parse(&pairs, "ns").expect_err(&format!("{pairs:?}"));
        assert_eq!(err.annotation(), key, "{pairs:?}: {err}");
        let text = err.to_string();
        assert!(text.contains(&key), "{text}");
        assert!(text.contains(needle), "{pairs:?}: {text}");
    }
}

#[test]
fn unsupported_or_unknown_annotations_are_warnings_not_silence() {
    let set = [
        (iu("image-list"), "a=nginx"),
        (iu("a.tag-match"), "regexp:^1"),
        (iu("a.update-stratgy"), "digest"),
        (iu("b.update-strategy"), "digest"),
        (iu("git-commit-user"), "bot"),
        (iu("write-back-target"), "kustomization"),
        (iu("a.update-strategy"), "name"),
    ];
    let config = parse(&set, "ns").unwrap().unwrap();
    let got: Vec<(String, bool)> = config
        .warnings
        .iter()
        .map(|w| (w.source.clone(), !w.message.is_empty()))
        .collect();
    let sources: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
    for key in [
        iu("a.update-strategy"),
        iu("write-back-target"),
        iu("a.tag-match"),
        iu("a.update-stratgy"),
        iu("b.update-strategy"),
        iu("git-commit-user"),
    ] {
        assert!(sources.contains(&key.as_str()), "{key} in {sources:?}");
    }
    assert_eq!(config.images[0].strategy, Strategy::Alphabetical);
}

#[test]
fn application_wide_settings_apply_under_per_alias_ones() {
    let set = [
        (iu("image-list"), "a=nginx, redis"),
        (iu("update-strategy"), "alphabetical"),
        (iu("allow-tags"), "regexp:^v"),
        (iu("a.allow-tags"), "any"),
        (iu("ignore-tags"), "*-rc*"),
    ];
    let config = parse(&set, "ns").unwrap().unwrap();
    let [a, plain] = config.images.as_slice() else {
        panic!()
    };
    assert_eq!(a.strategy, Strategy::Alphabetical);
    assert!(a.allow_tags.allows("x"));
    assert!(!plain.allow_tags.allows("x") && plain.allow_tags.allows("v2"));
    assert_eq!(plain.ignore_tags, ["*-rc*"]);
    let tags: Vec<String> = ["v1", "v2-rc1", "v3"].map(String::from).to_vec();
    assert_eq!(plain.filter_tags(&tags, Some("v1")), ["v1", "v3"]);
}

#[test]
fn regression_dotted_aliases_do_not_shadow_each_other() {
    let set = [
        (iu("image-list"), "a=nginx, a.b=redis"),
        (iu("a.b.update-strategy"), "alphabetical"),
        (iu("a.update-strategy"), "alphabetical"),
    ];
    let config = parse(&set, "ns").unwrap().unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(
        config
            .images
            .iter()
            .all(|i| i.strategy == Strategy::Alphabetical)
    );
}
