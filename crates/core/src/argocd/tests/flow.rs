//! The whole pure flow a shell runs for one Application, as the integrator wires it:
//! configuration → source → current state → policy decision → patch or file change.

use serde_json::json;

use super::{digest, iu, map};
use crate::argocd::annotations::from_annotations;
use crate::argocd::gitfile::{override_file, override_file_name};
use crate::argocd::patch::{NewImage, Write, argocd_patch, current_tag, is_live, live_images};
use crate::argocd::source::{choose, git_place};
use crate::argocd::writeback::{Context, ImageChange};
use crate::policy::{Current, Decision, Facts, decide};

#[test]
fn the_seed_flows_from_annotations_to_a_patch_and_is_idempotent() {
    let annotations = map(&[
        (&iu("image-list"), "backend=ghcr.io/acme/backend:preview"),
        (&iu("backend.update-strategy"), "digest"),
        (&iu("backend.helm.image-name"), "image.repository"),
        (&iu("backend.helm.image-tag"), "image.tag"),
        ("freshet.io/backend.digest-form", "digest"),
    ]);
    let mut app = json!({
        "metadata": {"name": "backend-preview", "namespace": "argocd", "resourceVersion": "1", "annotations": json_map(&annotations)},
        "spec": {"source": {"repoURL": "https://git.example/acme/deploy.git", "path": "charts/backend",
                            "targetRevision": "main", "helm": {"valueFiles": ["values-preview.yaml"]}}},
        "status": {"sourceType": "Helm", "summary": {"images": ["ghcr.io/acme/backend:sha-1a2b3c4"]}}
    });
    let config = from_annotations("argocd", &annotations).unwrap().unwrap();
    let source = choose(&app, &config.write_back).unwrap();
    for (round, moved_to) in [(1, 'a'), (2, 'a'), (3, 'b')] {
        let image = &config.images[0];
        assert!(is_live(image, &live_images(&app)));
        let policy = image.policy.as_ref().unwrap();
        let (tag, current_digest) = current_tag(&app, &source, image);
        let current = Current {
            tag: tag.as_deref(),
            digest: current_digest.as_ref(),
        };
        let needs = policy.needs(current.tag);
        assert_eq!(needs.digest_of.as_deref(), Some("preview"));
        // The registry says where :preview points now.
        let facts = Facts::default().digest("preview", digest(moved_to));
        let decision = decide(current, policy, &facts);
        let Decision::Update {
            to,
            digest: Some(d),
            ..
        } = decision
        else {
            assert_eq!(
                round, 2,
                "only the second round finds nothing new: {decision:?}"
            );
            continue;
        };
        let new = NewImage {
            name: image.image.name.clone(),
            tag: Some(to),
            digest: Some(d.clone()),
        };
        let patch = argocd_patch(&app, &source, &[Write { image, new: &new }])
            .unwrap()
            .unwrap();
        // The API server applies it (the test bed does the same with real JSON patch).
        let params = patch.json_patch[1]["value"].clone();
        app["spec"]["source"]["helm"]["parameters"] = params;
        app["metadata"]["resourceVersion"] = json!(format!("{}", round + 1));
        assert_eq!(
            app["spec"]["source"]["helm"]["parameters"][1]["value"],
            json!(d.to_string())
        );
    }
}

#[test]
fn a_git_write_back_flows_to_an_override_file_and_a_branch() {
    let annotations = map(&[
        (&iu("image-list"), "api=ghcr.io/acme/api:~1.4"),
        (&iu("write-back-method"), "git"),
        (
            &iu("git-branch"),
            "main:freshet/{{.AppName}}{{range .Images}}-{{.Alias}}-{{.NewTag}}{{end}}",
        ),
    ]);
    let app = json!({
        "metadata": {"name": "api", "namespace": "team-a", "resourceVersion": "1"},
        "spec": {"source": {"repoURL": "https://git.example/acme/deploy.git", "path": "apps/api",
                            "targetRevision": "main", "helm": {}}},
        "status": {"sourceType": "Helm", "summary": {"images": ["ghcr.io/acme/api:1.4.0"]}}
    });
    let config = from_annotations("team-a", &annotations).unwrap().unwrap();
    let source = choose(&app, &config.write_back).unwrap();
    let file = override_file_name("api", "team-a", Some("argocd"));
    let place = git_place(&app, &source, &config.write_back, &file).unwrap();
    assert_eq!(place.target, "apps/api/.argocd-source-team-a_api.yaml");
    let image = &config.images[0];
    let (tag, _) = current_tag(&app, &source, image);
    assert_eq!(tag.as_deref(), Some("1.4.0"));
    let decision = decide(
        Current::tag("1.4.0"),
        image.policy.as_ref().unwrap(),
        &Facts::with_tags(image.filter_tags(
            &["1.4.0".into(), "1.4.2".into(), "1.5.0".into()],
            Some("1.4.0"),
        )),
    );
    let Decision::Update { to, .. } = decision else {
        panic!("{decision:?}")
    };
    let new = NewImage {
        name: image.image.name.clone(),
        tag: Some(to.clone()),
        digest: None,
    };
    let change = override_file(
        &place.target,
        None,
        source.kind,
        &[Write { image, new: &new }],
    )
    .unwrap()
    .unwrap();
    assert!(change.text.contains("value: 1.4.2"), "{}", change.text);
    let ctx = Context {
        app_name: "api".into(),
        app_namespace: "team-a".into(),
        target_key: place.target_key.clone(),
        changes: vec![ImageChange::new(
            &image.image.name,
            "api",
            (Some("1.4.0"), None),
            (Some(&to), None),
        )],
    };
    let branch = config
        .write_back
        .branch
        .write
        .as_ref()
        .unwrap()
        .render(&ctx)
        .unwrap();
    assert_eq!(branch, "freshet/api-api-1.4.2");
    assert_eq!(place.checkout.as_deref(), Some("main"));
}

#[test]
fn a_written_bare_digest_is_read_back_when_the_repository_has_a_registry_port() {
    let annotations = map(&[
        (&iu("image-list"), "backend=127.0.0.1:5000/team/api:preview"),
        (&iu("backend.update-strategy"), "digest"),
        (&iu("backend.helm.image-name"), "image.repository"),
        (&iu("backend.helm.image-tag"), "image.tag"),
    ]);
    let d = digest('a');
    let app = json!({
        "metadata": {"name": "p", "namespace": "argocd", "resourceVersion": "1", "annotations": json_map(&annotations)},
        "spec": {"source": {"repoURL": "https://git.example/d.git", "path": "c", "helm": {"parameters": [
            {"name": "image.repository", "value": "127.0.0.1:5000/team/api", "forceString": true},
            {"name": "image.tag", "value": d.to_string(), "forceString": true}]}}},
        "status": {"sourceType": "Helm", "summary": {"images": ["127.0.0.1:5000/team/api:x"]}}
    });
    let config = from_annotations("argocd", &annotations).unwrap().unwrap();
    let source = choose(&app, &config.write_back).unwrap();
    let (tag, written) = current_tag(&app, &source, &config.images[0]);
    assert_eq!(tag.as_deref(), Some("preview"));
    assert_eq!(
        written,
        Some(d),
        "the digest after the port's colon is still found"
    );
}

/// `annotations` as a JSON object (an Application's `metadata.annotations`).
fn json_map(annotations: &crate::Labels) -> serde_json::Value {
    annotations
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
