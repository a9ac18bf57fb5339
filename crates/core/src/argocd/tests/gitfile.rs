//! Golden tests of the Git write-back's file changes: the override file, Helm values and kustomizations, edited byte-minimally.

use super::{digest, iu, map};
use crate::argocd::AppConfig;
use crate::argocd::annotations::from_annotations;
use crate::argocd::gitfile::{
    GitFileError, helm_values_file, kustomization_file, override_file, override_file_name,
};
use crate::argocd::image::DigestForm;
use crate::argocd::patch::{NewImage, Write};
use crate::argocd::source::SourceKind;
use crate::files;

fn config(pairs: &[(String, &str)]) -> AppConfig {
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    from_annotations("argocd", &map(&pairs)).unwrap().unwrap()
}

fn seed() -> AppConfig {
    config(&[
        (iu("image-list"), "backend=ghcr.io/acme/backend:preview"),
        (iu("backend.update-strategy"), "digest"),
        (iu("backend.helm.image-name"), "image.repository"),
        (iu("backend.helm.image-tag"), "image.tag"),
        (iu("write-back-method"), "git"),
    ])
}

fn preview(c: char) -> NewImage {
    NewImage {
        name: "ghcr.io/acme/backend".into(),
        tag: Some("preview".into()),
        digest: Some(digest(c)),
    }
}

#[test]
fn the_override_file_is_named_as_upstream_names_it() {
    assert_eq!(
        override_file_name("web", "argocd", Some("argocd")),
        ".argocd-source-web.yaml"
    );
    assert_eq!(
        override_file_name("web", "team-a", Some("argocd")),
        ".argocd-source-team-a_web.yaml"
    );
    assert_eq!(
        override_file_name("web", "team-a", None),
        ".argocd-source-web.yaml"
    );
}

#[test]
fn a_new_override_file_has_image_updaters_shape() {
    let cfg = seed();
    let new = preview('a');
    let change = override_file(
        "charts/backend/.argocd-source-backend.yaml",
        None,
        SourceKind::Helm,
        &[Write {
            image: &cfg.images[0],
            new: &new,
        }],
    )
    .unwrap()
    .unwrap();
    let want = format!(
        "helm:\n  parameters:\n  - name: image.repository\n    value: ghcr.io/acme/backend\n    forcestring: true\n  - name: image.tag\n    value: preview@{}\n    forcestring: true\n",
        digest('a')
    );
    assert_eq!(change.text, want);
    assert!(change.create);
    assert_eq!(
        change.edits,
        [files::Edit {
            span: 0..0,
            new: want.clone()
        }]
    );
}

#[test]
fn an_existing_override_file_is_edited_byte_minimally() {
    let old_digest = digest('0');
    let text = format!(
        "# managed by the image updater\nhelm:\n    parameters:\n      - name: image.repository\n        value: ghcr.io/acme/backend   # repo\n        forcestring: true\n      - name: image.tag\n        value: \"sha256:{}\"\n        forcestring: true\n",
        old_digest.hex()
    );
    let cfg = seed();
    let new = preview('b');
    let change = override_file(
        "x.yaml",
        Some(&text),
        SourceKind::Helm,
        &[Write {
            image: &cfg.images[0],
            new: &new,
        }],
    )
    .unwrap()
    .unwrap();
    // Only the tag changes; the bare form already written is kept, and its quotes.
    assert_eq!(
        change.text,
        text.replace(old_digest.hex(), digest('b').hex())
    );
    assert_eq!(change.edits.len(), 1);
    assert!(!change.create);
    // The same again changes nothing.
    let again = override_file(
        "x.yaml",
        Some(&change.text),
        SourceKind::Helm,
        &[Write {
            image: &cfg.images[0],
            new: &new,
        }],
    )
    .unwrap();
    assert_eq!(again, None);

    // A parameter the file lacks is appended in the file's own indentation.
    let other = config(&[
        (iu("image-list"), "worker=ghcr.io/acme/worker:1.x"),
        (iu("worker.helm.image-name"), "worker.image.repository"),
        (iu("worker.helm.image-tag"), "worker.image.tag"),
    ]);
    let w = NewImage {
        name: "ghcr.io/acme/worker".into(),
        tag: Some("1.10".into()),
        digest: None,
    };
    let change = override_file(
        "x.yaml",
        Some(&text),
        SourceKind::Helm,
        &[Write {
            image: &other.images[0],
            new: &w,
        }],
    )
    .unwrap()
    .unwrap();
    let appended = "      - name: worker.image.repository\n        value: ghcr.io/acme/worker\n        forcestring: true\n      - name: worker.image.tag\n        value: \"1.10\"\n        forcestring: true\n";
    assert_eq!(change.text, format!("{text}{appended}"));
}

#[test]
fn a_kustomize_override_file_lists_images() {
    let cfg = config(&[
        (iu("image-list"), "argocd=ghcr.io/argoproj/argocd:latest"),
        (iu("argocd.update-strategy"), "digest"),
        (iu("argocd.kustomize.image-name"), "quay.io/argoproj/argocd"),
    ]);
    let new = NewImage {
        name: "ghcr.io/argoproj/argocd".into(),
        tag: Some("latest".into()),
        digest: Some(digest('c')),
    };
    let w = [Write {
        image: &cfg.images[0],
        new: &new,
    }];
    let created = override_file("a.yaml", None, SourceKind::Kustomize, &w)
        .unwrap()
        .unwrap();
    let entry = format!(
        "quay.io/argoproj/argocd=ghcr.io/argoproj/argocd:latest@{}",
        digest('c')
    );
    assert_eq!(
        created.text,
        format!("kustomize:\n  images:\n  - {entry}\n")
    );
    let existing = "kustomize:\n  images:\n  - redis=redis:7 # cache\n";
    let edited = override_file("a.yaml", Some(existing), SourceKind::Kustomize, &w)
        .unwrap()
        .unwrap();
    assert_eq!(edited.text, format!("{existing}  - {entry}\n"));
}

const VALUES: &str = "# Bootstrap pin; freshet moves it in preview.\nimage:\n  repository: acme/backend  # short name on purpose\n  tag: 'sha-1a2b3c4'\n  pullPolicy: IfNotPresent\nreplicaCount: 1\n";

#[test]
fn a_helm_values_file_is_edited_in_place_in_both_digest_forms() {
    let mut cfg = seed();
    let new = preview('d');
    for (form, tag) in [
        (DigestForm::Digest, digest('d').to_string()),
        (DigestForm::TagDigest, format!("preview@{}", digest('d'))),
    ] {
        cfg.images[0].digest_form = Some(form);
        let change = helm_values_file(
            "charts/backend/values.yaml",
            Some(VALUES),
            &[Write {
                image: &cfg.images[0],
                new: &new,
            }],
        )
        .unwrap()
        .unwrap();
        // The short name stays short (upstream's rule); the tag keeps its quotes.
        assert_eq!(change.text, VALUES.replace("sha-1a2b3c4", &tag), "{form:?}");
        assert_eq!(change.edits.len(), 1);
    }
}

#[test]
fn helm_values_errors_name_the_file_and_the_fix() {
    let cfg = seed();
    let new = preview('d');
    let w = [Write {
        image: &cfg.images[0],
        new: &new,
    }];
    assert_eq!(
        helm_values_file("charts/backend/values.yaml", None, &w),
        Err(GitFileError::Missing {
            path: "charts/backend/values.yaml".into()
        })
    );
    let err = helm_values_file("v.yaml", Some("image:\n  tag: x\n"), &w)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("image.repository") && err.contains("bootstrap pin"),
        "{err}"
    );
    let err = helm_values_file("v.yaml", Some("image: [\n"), &w).unwrap_err();
    assert!(matches!(err, GitFileError::Parse { .. }), "{err}");
    let err = helm_values_file(
        "v.yaml",
        Some("image:\n  repository: x\n  tag: |\n    y\n"),
        &w,
    )
    .unwrap_err();
    assert!(matches!(err, GitFileError::NotEditable { .. }), "{err}");
}

#[test]
fn a_kustomization_is_set_as_kustomize_edit_set_image_would() {
    let cfg = config(&[
        (iu("image-list"), "api=ghcr.io/acme/api:1.x"),
        (iu("api.kustomize.image-name"), "api"),
        (iu("write-back-method"), "git"),
        (iu("write-back-target"), "kustomization:../base"),
    ]);
    let text = "resources:\n- deploy.yaml\nimages:\n- name: api\n  newName: ghcr.io/acme/api\n  newTag: \"1.4.0\"\n";
    let new = NewImage {
        name: "ghcr.io/acme/api".into(),
        tag: Some("1.5.0".into()),
        digest: None,
    };
    let w = [Write {
        image: &cfg.images[0],
        new: &new,
    }];
    let change = kustomization_file("overlays/base/kustomization.yaml", Some(text), &w)
        .unwrap()
        .unwrap();
    assert_eq!(change.text, text.replace("1.4.0", "1.5.0"));
    // A pin adds the digest line; a missing entry is an error naming the fix.
    let pinned = NewImage {
        digest: Some(digest('e')),
        ..new.clone()
    };
    let change = kustomization_file(
        "k/kustomization.yaml",
        Some(text),
        &[Write {
            image: &cfg.images[0],
            new: &pinned,
        }],
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        change.text,
        format!(
            "{}  digest: {}\n",
            text.replace("1.4.0", "1.5.0"),
            digest('e')
        )
    );
    let err = kustomization_file(
        "k/kustomization.yaml",
        Some("images:\n- name: web\n  newTag: \"1\"\n"),
        &w,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no entry named \"api\""), "{err}");
    assert!(matches!(
        kustomization_file("k/kustomization.yaml", None, &w),
        Err(GitFileError::Missing { .. })
    ));
}
