//! Golden tests of the argocd write-back's patch bodies, for single- and multi-source Applications, Helm and kustomize, in both digest forms.

use serde_json::{Value, json};

use super::{digest, iu, map};
use crate::argocd::AppConfig;
use crate::argocd::annotations::from_annotations;
use crate::argocd::image::{DigestForm, ImageConfig};
use crate::argocd::patch::{
    NewImage, PatchError, Write, argocd_patch, current, current_tag, is_live, live_images,
    written_digest,
};
use crate::argocd::source::{SourceAt, SourceChoice, SourceKind, choose, git_place};
use crate::argocd::writeback::WriteBack;

fn config(pairs: &[(String, &str)]) -> AppConfig {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    from_annotations("argocd", &map(&pairs)).unwrap().unwrap()
}

fn preview_app(params: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "backend-preview", "namespace": "argocd", "resourceVersion": "4711"},
        "spec": {"source": {
            "repoURL": "https://git.example/acme/deploy.git",
            "path": "charts/backend",
            "targetRevision": "main",
            "helm": {"valueFiles": ["values-preview.yaml"], "parameters": params}
        }},
        "status": {"sourceType": "Helm", "summary": {"images": ["ghcr.io/acme/backend:sha-1a2b3c4"]}}
    })
}

fn seed(form: Option<&str>) -> AppConfig {
    let mut pairs = vec![
        (iu("image-list"), "backend=ghcr.io/acme/backend:preview"),
        (iu("backend.update-strategy"), "digest"),
        (iu("backend.helm.image-name"), "image.repository"),
        (iu("backend.helm.image-tag"), "image.tag"),
    ];
    if let Some(f) = form {
        pairs.push(("freshet.io/backend.digest-form".into(), f));
    }
    config(&pairs)
}

fn new_preview(c: char) -> NewImage {
    NewImage {
        name: "ghcr.io/acme/backend".into(),
        tag: Some("preview".into()),
        digest: Some(digest(c)),
    }
}

#[test]
fn the_seed_gets_image_tag_as_a_bare_digest_with_a_resource_version_precondition() {
    let app = preview_app(json!([{"name": "replicaCount", "value": "1"}]));
    let cfg = seed(Some("digest"));
    let source = choose(&app, &cfg.write_back).unwrap();
    assert_eq!(
        source,
        SourceChoice {
            at: SourceAt::Single,
            kind: SourceKind::Helm
        }
    );
    let new = new_preview('b');
    let patch = argocd_patch(
        &app,
        &source,
        &[Write {
            image: &cfg.images[0],
            new: &new,
        }],
    )
    .unwrap()
    .expect("a change");
    let hex_b = "b".repeat(64);
    let params = json!([
        {"name": "replicaCount", "value": "1"},
        {"name": "image.repository", "value": "ghcr.io/acme/backend", "forceString": true},
        {"name": "image.tag", "value": format!("sha256:{hex_b}"), "forceString": true}
    ]);
    assert_eq!(
        patch.json_patch,
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "4711"},
            {"op": "replace", "path": "/spec/source/helm/parameters", "value": params}
        ])
    );
    assert_eq!(
        patch.merge_patch,
        json!({"metadata": {"resourceVersion": "4711"}, "spec": {"source": {"helm": {"parameters": params}}}})
    );
    assert_eq!(patch.changes.len(), 2);
    // The configured parameters are new on this Application: said, not hidden.
    assert_eq!(patch.warnings.len(), 2);
    assert!(
        patch.warnings[0]
            .message
            .contains("check that the chart reads image.repository")
    );

    // Applying it and asking again writes nothing.
    let mut after = app.clone();
    after["spec"]["source"]["helm"]["parameters"] = params;
    assert_eq!(
        argocd_patch(
            &after,
            &source,
            &[Write {
                image: &cfg.images[0],
                new: &new
            }]
        )
        .unwrap(),
        None
    );
    assert_eq!(
        current(&after, &source, &cfg.images[0]).as_deref(),
        Some(format!("ghcr.io/acme/backend:sha256:{hex_b}").as_str())
    );
}

#[test]
fn the_digest_form_is_chosen_per_image_or_kept_from_what_is_written() {
    let hex_a = "a".repeat(64);
    let hex_c = "c".repeat(64);
    let cases: &[(Option<&str>, Option<String>, String)] = &[
        // Nothing chosen, nothing written: what Image Updater writes today.
        (None, None, format!("preview@sha256:{hex_c}")),
        // Nothing chosen: keep the bare form an older updater left.
        (
            None,
            Some(format!("sha256:{hex_a}")),
            format!("sha256:{hex_c}"),
        ),
        (
            None,
            Some(format!("preview@sha256:{hex_a}")),
            format!("preview@sha256:{hex_c}"),
        ),
        // Chosen: wins over what is written.
        (
            Some("tag-digest"),
            Some(format!("sha256:{hex_a}")),
            format!("preview@sha256:{hex_c}"),
        ),
        (
            Some("digest"),
            Some(format!("preview@sha256:{hex_a}")),
            format!("sha256:{hex_c}"),
        ),
    ];
    for (form, written, want) in cases {
        let params = match written {
            Some(w) => {
                json!([{"name": "image.repository", "value": "ghcr.io/acme/backend"}, {"name": "image.tag", "value": w}])
            }
            None => json!([]),
        };
        let app = preview_app(params);
        let cfg = seed(*form);
        let source = choose(&app, &cfg.write_back).unwrap();
        let new = new_preview('c');
        let patch = argocd_patch(
            &app,
            &source,
            &[Write {
                image: &cfg.images[0],
                new: &new,
            }],
        )
        .unwrap()
        .unwrap();
        let tag = patch.json_patch[1]["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "image.tag")
            .unwrap()["value"]
            .clone();
        assert_eq!(tag, json!(want), "{form:?} {written:?}");
    }
}

#[test]
fn new_image_renders_both_forms() {
    let d = digest('d');
    let with_tag = NewImage {
        name: "ghcr.io/o/a".into(),
        tag: Some("v1".into()),
        digest: Some(d.clone()),
    };
    let bare = NewImage {
        name: "ghcr.io/o/a".into(),
        tag: None,
        digest: Some(d.clone()),
    };
    let plain = NewImage {
        name: "nginx".into(),
        tag: Some("1.27".into()),
        digest: None,
    };
    assert_eq!(
        with_tag.tag_value(DigestForm::TagDigest),
        Some(format!("v1@{d}"))
    );
    assert_eq!(
        bare.tag_value(DigestForm::TagDigest),
        Some(format!("latest@{d}"))
    );
    assert_eq!(with_tag.tag_value(DigestForm::Digest), Some(d.to_string()));
    assert_eq!(plain.tag_value(DigestForm::Digest), Some("1.27".into()));
    assert_eq!(
        with_tag.reference(DigestForm::TagDigest),
        format!("ghcr.io/o/a:v1@{d}")
    );
    assert_eq!(
        with_tag.reference(DigestForm::Digest),
        format!("ghcr.io/o/a@{d}")
    );
    assert_eq!(
        bare.reference(DigestForm::TagDigest),
        format!("ghcr.io/o/a@{d}")
    );
    assert_eq!(plain.reference(DigestForm::TagDigest), "nginx:1.27");
}

#[test]
fn image_spec_sets_one_parameter_and_keeps_the_others_in_order() {
    let cfg = config(&[
        (iu("image-list"), "api=ghcr.io/acme/api:preview"),
        (iu("api.update-strategy"), "digest"),
        (iu("api.helm.image-spec"), "api.image"),
    ]);
    let app = preview_app(json!([
        {"name": "a", "value": "1"},
        {"name": "api.image", "value": "ghcr.io/acme/api:preview@sha256:".to_owned() + &"0".repeat(64), "forceString": true},
        {"name": "z", "value": "2"}
    ]));
    let source = choose(&app, &WriteBack::default()).unwrap();
    let new = NewImage {
        name: "ghcr.io/acme/api".into(),
        tag: Some("preview".into()),
        digest: Some(digest('e')),
    };
    let patch = argocd_patch(
        &app,
        &source,
        &[Write {
            image: &cfg.images[0],
            new: &new,
        }],
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        patch.json_patch[1]["value"],
        json!([
            {"name": "a", "value": "1"},
            {"name": "api.image", "value": format!("ghcr.io/acme/api:preview@{}", digest('e')), "forceString": true},
            {"name": "z", "value": "2"}
        ])
    );
    assert!(patch.warnings.is_empty());
}

fn multi_source_app() -> Value {
    json!({
        "metadata": {"name": "shop", "namespace": "argocd", "resourceVersion": "9"},
        "spec": {"sources": [
            {"repoURL": "https://git.example/acme/deploy.git", "ref": "values", "targetRevision": "main"},
            {"repoURL": "oci://ghcr.io/acme/charts", "chart": "shop", "targetRevision": "1.2.0",
             "helm": {"valueFiles": ["$values/shop/values.yaml"]}},
            {"repoURL": "https://git.example/acme/deploy.git", "path": "shop/extra", "targetRevision": "main"}
        ]},
        "status": {"sourceTypes": ["Directory", "Helm", "Kustomize"]}
    })
}

#[test]
fn a_multi_source_application_is_patched_in_its_helm_source() {
    let app = multi_source_app();
    let cfg = config(&[(iu("image-list"), "shop=ghcr.io/acme/shop:~1.4")]);
    let source = choose(&app, &cfg.write_back).unwrap();
    assert_eq!(
        source,
        SourceChoice {
            at: SourceAt::Multi { index: 1 },
            kind: SourceKind::Helm
        }
    );
    let new = NewImage {
        name: "ghcr.io/acme/shop".into(),
        tag: Some("1.4.2".into()),
        digest: None,
    };
    let patch = argocd_patch(
        &app,
        &source,
        &[Write {
            image: &cfg.images[0],
            new: &new,
        }],
    )
    .unwrap()
    .unwrap();
    let params = json!([
        {"name": "image.name", "value": "ghcr.io/acme/shop", "forceString": true},
        {"name": "image.tag", "value": "1.4.2", "forceString": true}
    ]);
    assert_eq!(
        patch.json_patch,
        json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "9"},
            {"op": "add", "path": "/spec/sources/1/helm/parameters", "value": params}
        ])
    );
    // A merge patch replaces lists: the whole sources list, the others untouched.
    let mut sources = app["spec"]["sources"].clone();
    sources[1]["helm"]["parameters"] = params;
    assert_eq!(
        patch.merge_patch,
        json!({"metadata": {"resourceVersion": "9"}, "spec": {"sources": sources}})
    );
}

#[test]
fn source_choice_follows_upstream_rules() {
    let git_kustomize = WriteBack {
        method: crate::argocd::writeback::Method::Git {
            creds: crate::argocd::writeback::GitCreds::RepoCreds,
        },
        target: crate::argocd::writeback::Target::Kustomization { dir: None },
        ..WriteBack::default()
    };
    // The write-back target decides the type; status alignment finds an implicit source.
    assert_eq!(
        choose(&multi_source_app(), &git_kustomize).unwrap(),
        SourceChoice {
            at: SourceAt::Multi { index: 2 },
            kind: SourceKind::Kustomize
        }
    );
    let directory = json!({"metadata": {}, "spec": {"source": {"path": "x"}}, "status": {"sourceType": "Directory"}});
    assert!(
        choose(&directory, &WriteBack::default())
            .unwrap_err()
            .to_string()
            .contains("Directory")
    );
    // No status yet: the spec says Kustomize.
    let fresh = json!({"spec": {"source": {"path": "x", "kustomize": {"images": []}}}});
    assert_eq!(
        choose(&fresh, &WriteBack::default()).unwrap().kind,
        SourceKind::Kustomize
    );
    let hydrator = json!({"spec": {"sourceHydrator": {"drySource": {"path": "x", "helm": {}}}}});
    let c = choose(&hydrator, &WriteBack::default()).unwrap();
    assert_eq!(
        (c.at.clone(), c.pointer()),
        (
            SourceAt::Hydrator,
            "/spec/sourceHydrator/drySource".to_owned()
        )
    );
    let none = json!({"spec": {}, "status": {"sourceType": "Helm"}});
    assert!(choose(&none, &WriteBack::default()).is_err());
}

fn kustomize_app(images: Value) -> Value {
    json!({
        "metadata": {"name": "argocd", "namespace": "argocd", "resourceVersion": "77"},
        "spec": {"source": {"repoURL": "https://git.example/x.git", "path": "argocd", "kustomize": {"images": images}}},
        "status": {"sourceType": "Kustomize", "summary": {"images": ["quay.io/argoproj/argocd:v3.1.0"]}}
    })
}

#[test]
fn kustomize_images_are_replaced_in_place_or_appended() {
    let cfg = config(&[
        (iu("image-list"), "argocd=ghcr.io/argoproj/argocd:latest"),
        (iu("argocd.update-strategy"), "digest"),
        (iu("argocd.kustomize.image-name"), "quay.io/argoproj/argocd"),
    ]);
    let image = &cfg.images[0];
    let d = digest('f');
    let new = NewImage {
        name: "ghcr.io/argoproj/argocd".into(),
        tag: Some("latest".into()),
        digest: Some(d.clone()),
    };
    let cases = [
        (
            json!([]),
            json!([format!(
                "quay.io/argoproj/argocd=ghcr.io/argoproj/argocd:latest@{d}"
            )]),
            "replace",
        ),
        (
            json!([
                "redis=redis:7",
                "quay.io/argoproj/argocd=ghcr.io/argoproj/argocd:latest@sha256:".to_owned()
                    + &"0".repeat(64)
            ]),
            json!([
                "redis=redis:7",
                format!("quay.io/argoproj/argocd=ghcr.io/argoproj/argocd:latest@{d}")
            ]),
            "replace",
        ),
        (
            json!(["ghcr.io/argoproj/argocd:v2"]),
            json!([format!(
                "quay.io/argoproj/argocd=ghcr.io/argoproj/argocd:latest@{d}"
            )]),
            "replace",
        ),
    ];
    for (images, want, op) in cases {
        let app = kustomize_app(images.clone());
        let source = choose(&app, &cfg.write_back).unwrap();
        let patch = argocd_patch(&app, &source, &[Write { image, new: &new }])
            .unwrap()
            .unwrap();
        assert_eq!(
            patch.json_patch[1],
            json!({"op": op, "path": "/spec/source/kustomize/images", "value": want}),
            "{images}"
        );
    }
    // The bare form writes repo@sha256:… into the override.
    let mut bare: ImageConfig = image.clone();
    bare.digest_form = Some(DigestForm::Digest);
    let app = kustomize_app(json!([]));
    let source = choose(&app, &cfg.write_back).unwrap();
    let patch = argocd_patch(
        &app,
        &source,
        &[Write {
            image: &bare,
            new: &new,
        }],
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        patch.json_patch[1]["value"],
        json!([format!(
            "quay.io/argoproj/argocd=ghcr.io/argoproj/argocd@{d}"
        )])
    );
    // Live: the kustomize name runs in the Application.
    assert!(is_live(image, &live_images(&app)));
}

#[test]
fn no_resource_version_no_patch() {
    let mut app = preview_app(json!([]));
    app["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let cfg = seed(None);
    let source = choose(&app, &cfg.write_back).unwrap();
    let new = new_preview('b');
    assert_eq!(
        argocd_patch(
            &app,
            &source,
            &[Write {
                image: &cfg.images[0],
                new: &new
            }]
        ),
        Err(PatchError::NoResourceVersion)
    );
    let mut bad = preview_app(json!("image.tag=x"));
    bad["metadata"]["resourceVersion"] = json!("1");
    assert!(matches!(
        argocd_patch(
            &bad,
            &source,
            &[Write {
                image: &cfg.images[0],
                new: &new
            }]
        ),
        Err(PatchError::Malformed { .. })
    ));
}

#[test]
fn an_image_that_does_not_run_is_skipped_unless_forced() {
    let cfg = config(&[
        (
            iu("image-list"),
            "a=ghcr.io/acme/backend:preview, b=ghcr.io/acme/other:1.x",
        ),
        (iu("a.update-strategy"), "digest"),
        (iu("b.force-update"), "true"),
    ]);
    let live = live_images(&preview_app(json!([])));
    assert!(is_live(&cfg.images[0], &live));
    assert!(is_live(&cfg.images[1], &live));
    let mut unforced = cfg.images[1].clone();
    unforced.force_update = false;
    assert!(!is_live(&unforced, &live));
}

#[test]
fn the_digest_is_read_back_from_every_form() {
    let d = digest('9');
    for value in [
        d.to_string(),
        format!("preview@{d}"),
        format!("ghcr.io/o/a@{d}"),
        format!("localhost:5000/o/a:preview@{d}"),
    ] {
        assert_eq!(written_digest(&value), Some(d.clone()), "{value}");
    }
    for value in ["preview", "sha-1a2b3c4", "ghcr.io/o/a:1.2", "sha256:short"] {
        assert_eq!(written_digest(value), None, "{value}");
    }
}

#[test]
fn the_current_tag_comes_from_the_spec_else_from_the_running_image() {
    let d = digest('7');
    let cfg = seed(None);
    let source = choose(&preview_app(json!([])), &cfg.write_back).unwrap();
    // Nothing written yet: the running image (the bootstrap pin) has no digest.
    let app = preview_app(json!([]));
    assert_eq!(
        current_tag(&app, &source, &cfg.images[0]),
        (Some("preview".into()), None)
    );
    let app = preview_app(json!([
        {"name": "image.repository", "value": "ghcr.io/acme/backend"},
        {"name": "image.tag", "value": d.to_string()}
    ]));
    assert_eq!(
        current_tag(&app, &source, &cfg.images[0]),
        (Some("preview".into()), Some(d.clone()))
    );
    // A semver image reads its tag from the parameters, or from the running image.
    let semver = config(&[(iu("image-list"), "backend=ghcr.io/acme/backend:~1.2")]);
    let app = preview_app(json!([
        {"name": "image.name", "value": "ghcr.io/acme/backend"},
        {"name": "image.tag", "value": "1.2.3"}
    ]));
    assert_eq!(
        current_tag(&app, &source, &semver.images[0]),
        (Some("1.2.3".into()), None)
    );
    let app = preview_app(json!([]));
    assert_eq!(
        current_tag(&app, &source, &semver.images[0]),
        (Some("sha-1a2b3c4".into()), None)
    );
}

#[test]
fn a_git_write_back_commits_where_upstream_would() {
    let cfg = config(&[
        (iu("image-list"), "shop=ghcr.io/acme/shop:~1.4"),
        (iu("write-back-method"), "git"),
        (iu("git-repository"), "https://git.example/acme/deploy.git"),
        (iu("write-back-target"), "helmvalues:/shop/values.yaml"),
    ]);
    let app = multi_source_app();
    let source = choose(&app, &cfg.write_back).unwrap();
    let place = git_place(&app, &source, &cfg.write_back, ".argocd-source-shop.yaml").unwrap();
    assert_eq!(place.repository, "https://git.example/acme/deploy.git");
    // The revision of the source in that repository, not the chart's version.
    assert_eq!(place.checkout.as_deref(), Some("main"));
    assert_eq!(place.target, "shop/values.yaml");
    assert_eq!(place.target_key.len(), 8);

    let default = config(&[
        (iu("image-list"), "backend=ghcr.io/acme/backend:preview"),
        (iu("backend.update-strategy"), "digest"),
        (iu("write-back-method"), "git"),
        (iu("git-branch"), ":preview-{{.SHA256}}"),
    ]);
    let mut app = preview_app(json!([]));
    app["spec"]["source"]["targetRevision"] = json!("HEAD");
    let source = choose(&app, &default.write_back).unwrap();
    let place = git_place(
        &app,
        &source,
        &default.write_back,
        ".argocd-source-backend-preview.yaml",
    )
    .unwrap();
    assert_eq!(place.checkout, None, "HEAD: the remote's default branch");
    assert_eq!(
        place.target,
        "charts/backend/.argocd-source-backend-preview.yaml"
    );
}

#[test]
fn regression_an_unchanged_value_is_not_rewritten_for_force_string() {
    let cfg = seed(Some("digest"));
    let new = new_preview('b');
    let app = preview_app(json!([
        {"name": "image.repository", "value": "ghcr.io/acme/backend"},
        {"name": "image.tag", "value": new.digest.as_ref().unwrap().to_string()}
    ]));
    let source = choose(&app, &cfg.write_back).unwrap();
    assert_eq!(
        argocd_patch(
            &app,
            &source,
            &[Write {
                image: &cfg.images[0],
                new: &new
            }]
        )
        .unwrap(),
        None
    );
}
