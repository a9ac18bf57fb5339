//! `ImageUpdater` resources from Image Updater's documentation: selection by specificity and labels, the settings cascade, and what freshet refuses.

use serde_json::json;

use super::{iu, map};
use crate::argocd::crd::{AppMeta, CrError, ImageUpdater};
use crate::argocd::image::{HelmTarget, Strategy};
use crate::argocd::writeback::{GitCreds, Method, Target};

fn meta<'a>(
    name: &'a str,
    labels: &'a crate::Labels,
    annotations: &'a crate::Labels,
) -> AppMeta<'a> {
    AppMeta {
        name,
        namespace: "argocd",
        labels,
        annotations,
    }
}

/// docs/configuration/applications.md (v1.3.0), "Complete Example" of specificity.
fn specificity_cr() -> ImageUpdater {
    ImageUpdater::from_value(&json!({
        "apiVersion": "argocd-image-updater.argoproj.io/v1alpha1",
        "kind": "ImageUpdater",
        "metadata": {"name": "my-image-updater", "namespace": "argocd"},
        "spec": {"applicationRefs": [
            {"namePattern": "app-*", "images": [{"alias": "redis", "imageName": "redis:6.2"}]},
            {"namePattern": "app-prod-*", "images": [{"alias": "nginx", "imageName": "nginx:1.20"}]},
            {"namePattern": "app-1", "images": [{"alias": "test1", "imageName": "test:1.1.0"}]},
            {"namePattern": "web-*", "labelSelectors": {
                "matchLabels": {"tier": "frontend"},
                "matchExpressions": [{"key": "environment", "operator": "In", "values": ["production", "staging"]}]
             }, "images": [{"alias": "webapp", "imageName": "myregistry.example/webapp:latest"}]}
        ]}
    }))
    .unwrap()
}

#[test]
fn the_most_specific_rule_selects_an_application() {
    let cr = specificity_cr();
    let none: crate::Labels = map(&[]);
    let no_labels = crate::Labels::new();
    let cases = [
        ("app-1", Some("test1")),
        ("app-prod-eu", Some("nginx")),
        ("app-2", Some("redis")),
        ("other", None),
    ];
    for (name, alias) in cases {
        let got = cr
            .resolve(&meta(name, &no_labels, &none))
            .unwrap()
            .map(|c| c.images[0].alias.clone().unwrap());
        assert_eq!(got.as_deref(), alias, "{name}");
    }
    let front = map(&[("tier", "frontend"), ("environment", "staging")]);
    let dev = map(&[("tier", "frontend"), ("environment", "dev")]);
    assert!(cr.select(&meta("web-shop", &front, &none)).is_some());
    assert!(cr.select(&meta("web-shop", &dev, &none)).is_none());
    // Applications outside the resource's namespace are not its business.
    let elsewhere = AppMeta {
        namespace: "team-a",
        ..meta("app-1", &no_labels, &none)
    };
    assert!(cr.select(&elsewhere).is_none());
}

#[test]
fn settings_cascade_global_then_application_ref_then_image() {
    // docs/configuration/applications.md (v1.3.0), "Complete example".
    let cr = ImageUpdater::from_value(&json!({
        "metadata": {"name": "production-updater", "namespace": "argocd"},
        "spec": {
            "commonUpdateSettings": {
                "updateStrategy": "semver", "forceUpdate": false,
                "allowTags": "regexp:^v[0-9]+\\.[0-9]+\\.[0-9]+$",
                "ignoreTags": ["latest", "dev", "test"]
            },
            "writeBackConfig": {"method": "argocd"},
            "applicationRefs": [
                {"namePattern": "frontend-*",
                 "labelSelectors": {"matchLabels": {"environment": "production"}},
                 "commonUpdateSettings": {"updateStrategy": "alphabetical", "forceUpdate": true},
                 "writeBackConfig": {"method": "git", "gitConfig": {
                     "repository": "git@github.com:myorg/frontend-config.git", "branch": "main",
                     "writeBackTarget": "helmvalues:/values.yaml"}},
                 "images": [
                     {"alias": "frontend", "imageName": "myregistry.example/frontend:v1.0",
                      "commonUpdateSettings": {"allowTags": "regexp:^v[0-9]+\\.[0-9]+\\.[0-9]+-prod$"}},
                     {"alias": "nginx", "imageName": "nginx:1.20",
                      "manifestTargets": {"helm": {"name": "nginx.image", "tag": "nginx.tag"}}}
                 ]},
                {"namePattern": "backend", "images": [
                     {"alias": "api", "imageName": "myregistry.example/backend:v2.0",
                      "commonUpdateSettings": {"updateStrategy": "digest"}}
                ]}
            ]
        }
    }))
    .unwrap();
    let labels = map(&[("environment", "production")]);
    let none: crate::Labels = map(&[]);
    let no_labels = crate::Labels::new();
    let front = cr
        .resolve(&meta("frontend-web", &labels, &none))
        .unwrap()
        .unwrap();
    let [frontend, nginx] = front.images.as_slice() else {
        panic!()
    };
    assert_eq!(frontend.strategy, Strategy::Alphabetical);
    assert!(frontend.force_update);
    assert!(frontend.allow_tags.allows("v1.2.3-prod") && !frontend.allow_tags.allows("v1.2.3"));
    assert_eq!(frontend.ignore_tags, ["latest", "dev", "test"]);
    assert!(nginx.allow_tags.allows("v1.2.3"));
    assert_eq!(
        nginx.target.helm,
        HelmTarget::Names {
            name: "nginx.image".into(),
            tag: "nginx.tag".into()
        }
    );
    assert_eq!(
        front.write_back.method,
        Method::Git {
            creds: GitCreds::RepoCreds
        }
    );
    assert_eq!(
        front.write_back.target,
        Target::HelmValues {
            file: Some("/values.yaml".into())
        }
    );
    assert_eq!(
        front
            .write_back
            .target
            .resolve("apps/frontend", "x")
            .as_deref(),
        Some("values.yaml")
    );

    let back = cr
        .resolve(&meta("backend", &no_labels, &none))
        .unwrap()
        .unwrap();
    assert_eq!(back.images[0].strategy, Strategy::Digest);
    assert_eq!(back.images[0].tracked_tag(), Some("v2.0"));
    assert_eq!(back.write_back.method, Method::Argocd);
}

#[test]
fn use_annotations_reads_the_application() {
    let cr = ImageUpdater::from_value(&json!({
        "metadata": {"name": "annotated", "namespace": "argocd"},
        "spec": {"applicationRefs": [{"namePattern": "*", "useAnnotations": true,
            "labelSelectors": {"matchLabels": {"image-updater": "annotated"}}}]}
    }))
    .unwrap();
    let labels = map(&[("image-updater", "annotated")]);
    let preview = map(&[
        (&iu("image-list"), "backend=ghcr.io/acme/backend:preview"),
        (&iu("backend.update-strategy"), "digest"),
    ]);
    let prod = map(&[]);
    let c = cr
        .resolve(&meta("backend-preview", &labels, &preview))
        .unwrap()
        .unwrap();
    assert_eq!(c.images[0].strategy, Strategy::Digest);
    assert!(
        cr.resolve(&meta("backend-prod", &labels, &prod))
            .unwrap()
            .is_none()
    );
    let bad = map(&[(&iu("image-list"), "backend=")]);
    assert!(matches!(
        cr.resolve(&meta("x", &labels, &bad)),
        Err(CrError::Annotations(_))
    ));
}

#[test]
fn what_freshet_cannot_do_is_said() {
    let cr = ImageUpdater::from_value(&json!({
        "metadata": {"name": "u", "namespace": "argocd"},
        "spec": {
            "imagesVerification": {"cosignKey": {"secretName": "k", "key": "cosign.pub"}},
            "applicationRefs": [{"namePattern": "a", "images": [
                {"alias": "signed", "imageName": "ghcr.io/o/signed:1.x"},
                {"alias": "unsigned", "imageName": "ghcr.io/o/unsigned:1.x", "imagesVerification": {"enabled": false}},
                {"alias": "plug", "imageName": "ghcr.io/o/plug:1.x", "manifestTargets": {"plugin": {"spec": "IMAGE"}}}
            ]}]
        }
    }))
    .unwrap();
    let none: crate::Labels = map(&[]);
    let no_labels = crate::Labels::new();
    let c = cr.resolve(&meta("a", &no_labels, &none)).unwrap().unwrap();
    let followed: Vec<bool> = c.images.iter().map(|i| i.policy.is_some()).collect();
    assert_eq!(followed, [false, true, false]);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.message.contains("cosign")));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.source.ends_with("manifestTargets.plugin"))
    );

    let pr = ImageUpdater::from_value(&json!({
        "metadata": {"name": "u", "namespace": "argocd"},
        "spec": {"writeBackConfig": {"method": "git", "gitConfig": {"branch": "main", "pullRequest": {"github": {}}}},
                 "applicationRefs": [{"namePattern": "a", "images": [{"alias": "x", "imageName": "nginx"}]}]}
    }))
    .unwrap();
    let err = pr
        .resolve(&meta("a", &no_labels, &none))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.writeBackConfig.gitConfig.pullRequest") && err.contains("pull requests"),
        "{err}"
    );
}

#[test]
fn invalid_resources_name_the_field() {
    let cases = [
        (
            json!({"metadata": {"name": "u", "namespace": "n"}, "spec": {"applicationRefs": [{"namePattern": "a[", "images": [{"alias": "x", "imageName": "nginx"}]}]}}),
            "namePattern",
        ),
        (
            json!({"metadata": {"name": "u", "namespace": "n"}, "spec": {"applicationRefs": [{"namePattern": "a", "labelSelectors": {"matchExpressions": [{"key": "k", "operator": "Near"}]}, "images": [{"alias": "x", "imageName": "nginx"}]}]}}),
            "labelSelectors",
        ),
        (
            json!({"metadata": {"name": "u", "namespace": "n"}, "spec": {"applicationRefs": [{"namePattern": "a"}]}}),
            "useAnnotations",
        ),
        (
            json!({"metadata": {"name": "u", "namespace": "n"}, "spec": {"applicationRefs": "a"}}),
            "u",
        ),
    ];
    for (value, needle) in cases {
        let err = ImageUpdater::from_value(&value).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    let cr = ImageUpdater::from_value(&json!({"metadata": {"name": "u", "namespace": "argocd"}, "spec": {"applicationRefs": [
        {"namePattern": "a", "images": [{"alias": "x", "imageName": "nginx", "commonUpdateSettings": {"updateStrategy": "fastest"}}]}]}}))
    .unwrap();
    let none: crate::Labels = map(&[]);
    let no_labels = crate::Labels::new();
    let err = cr
        .resolve(&meta("a", &no_labels, &none))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.applicationRefs[0].images[0].commonUpdateSettings.updateStrategy"),
        "{err}"
    );
}
