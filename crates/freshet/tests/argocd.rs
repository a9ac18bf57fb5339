//! Argo CD Applications end to end, with real components: the built binary runs
//! `freshet run --once` against the API test bed (Applications applied with the real
//! kubectl) and the real registry, where the `:preview` tag moves; what freshet wrote
//! is then rendered with real Helm (its Go SDK through helm-python-sdk) and real
//! kustomize (the one kubectl embeds), and the `git` write-back is pushed to a real
//! bare repository.
//!
//! Proven here: the seed's structure (preview annotated, prod not) with a chart whose
//! `_helpers.tpl` switches `:`/`@` on a `sha256:` prefix renders `repo@sha256:<new>`,
//! and prod stays byte for byte; the `tag@sha256` form with a chart that joins with
//! `:`; kustomize images; the right source of a multi-source Application; one commit
//! per repository and branch for the `git` write-back; the guard on a Deployment Argo
//! CD manages; and bad input refused with an Event naming the annotation.

mod chart_support;

mod argocd_support;

use std::path::Path;

use argocd_support::{Bed, IU, annotations, application, report_of};
use chart_support::helm;
use freshet_testbed::git::{git, identify};
use freshet_testbed::kubectl::kubectl;
use serde_json::{Value, json};

/// A chart in `dir`: `values.yaml` pins `image.tag: sha-1a2b3c4`; with `switching`,
/// `_helpers.tpl` chooses `@` for a `sha256:` tag and `:` otherwise (the seed's
/// chart), else the template joins repository and tag with `:`.
fn chart(dir: &Path, repo: &str, switching: bool) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: backend\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("values.yaml"),
        format!("image:\n  repository: {repo}\n  tag: sha-1a2b3c4\n"),
    )
    .unwrap();
    let helper = if switching {
        r#"{{- define "backend.image" -}}
{{- $tag := toString .Values.image.tag -}}
{{- if hasPrefix "sha256:" $tag -}}
{{ .Values.image.repository }}@{{ $tag }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}
"#
    } else {
        r#"{{- define "backend.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
"#
    };
    std::fs::write(dir.join("templates/_helpers.tpl"), helper).unwrap();
    std::fs::write(
        dir.join("templates/deployment.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  selector:
    matchLabels: {app: backend}
  template:
    metadata:
      labels: {app: backend}
    spec:
      containers:
        - name: app
          image: {{ include "backend.image" . | quote }}
"#,
    )
    .unwrap();
}

/// Helm parameters (`image.tag` → value) as the values they set.
fn parameter_values(params: &Value) -> Value {
    let mut values = json!({});
    for p in params.as_array().unwrap() {
        let mut at = &mut values;
        let name = p["name"].as_str().unwrap();
        let parts: Vec<&str> = name.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = at
                .as_object_mut()
                .unwrap()
                .entry(*part)
                .or_insert_with(|| json!({}));
        }
        at[parts[parts.len() - 1]] = p["value"].clone();
    }
    values
}

/// The image of the Deployment the chart in `dir` renders with `params`, by real Helm.
fn rendered_image(dir: &Path, params: &Value) -> String {
    let answer = helm(&json!({
        "op": "render", "chart": dir, "values": parameter_values(params),
        "name": "backend", "namespace": "preview",
    }));
    assert!(answer.get("error").is_none(), "{answer}");
    let objects = &answer["templates"]["backend/templates/deployment.yaml"];
    objects[0]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

/// The image kustomize renders for a Deployment on `base` with the Application's
/// kustomize image overrides, each turned into its kustomization entry as
/// `kustomize edit set image` writes it (Argo CD runs that before the build).
async fn kustomized_image(base: &str, overrides: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deployment.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: backend}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: {base}\n"
        ),
    )
    .unwrap();
    let mut images = Vec::new();
    for o in overrides.as_array().unwrap() {
        let o = o.as_str().unwrap();
        let (name, image) = o.split_once('=').unwrap_or(("", o));
        let (rest, digest) = image
            .split_once('@')
            .map_or((image, None), |(r, d)| (r, Some(d)));
        let slash = rest.rfind('/').unwrap_or(0);
        let (repo, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        let name = if name.is_empty() { repo } else { name };
        let mut entry = json!({"name": name});
        if name != repo {
            entry["newName"] = json!(repo);
        }
        if let Some(t) = tag {
            entry["newTag"] = json!(t);
        }
        if let Some(d) = digest {
            entry["digest"] = json!(d);
        }
        images.push(entry);
    }
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        json!({"resources": ["deployment.yaml"], "images": images}).to_string(),
    )
    .unwrap();
    let out = kubectl(&["kustomize", dir.path().to_str().unwrap()], None).await;
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("- image:") || l.trim_start().starts_with("image:"))
        .unwrap_or_else(|| panic!("{out}"));
    line.split_once("image:").unwrap().1.trim().to_owned()
}

#[tokio::test]
async fn the_seed_preview_application_renders_the_new_digest_with_real_helm_and_prod_is_untouched()
{
    let mut bed = Bed::start().await;
    let charts = tempfile::tempdir().unwrap();
    let switching = charts.path().join("switching");
    chart(&switching, &bed.repo, true);
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    let source = json!({"repoURL": "https://git.example/acme/deploy.git", "path": "charts/backend",
                        "targetRevision": "main", "helm": {"valueFiles": ["values.yaml"]}});
    let preview = application(
        "backend-preview",
        annotations(&[
            (
                &format!("{IU}image-list"),
                &format!("backend={}:preview", bed.repo),
            ),
            (&format!("{IU}backend.update-strategy"), "digest"),
            (&format!("{IU}backend.helm.image-name"), "image.repository"),
            (&format!("{IU}backend.helm.image-tag"), "image.tag"),
            ("freshet.io/backend.digest-form", "digest"),
        ]),
        json!({"project": "default", "source": source}),
        "Helm",
        &pinned,
    );
    let prod = application(
        "backend-prod",
        annotations(&[]),
        json!({"project": "default", "source": source}),
        "Helm",
        &pinned,
    );
    // A Deployment Argo CD manages (its instance label), enrolled for a direct patch.
    let managed = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "backend", "namespace": "default",
                     "labels": {"app.kubernetes.io/instance": "backend-preview"},
                     "annotations": {"freshet.io/policy": "digest"}},
        "spec": {"selector": {"matchLabels": {"app": "backend"}},
                 "template": {"metadata": {"labels": {"app": "backend"}},
                              "spec": {"containers": [{"name": "app", "image": format!("{}:preview", bed.repo)}]}}}
    });
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    bed.apply(&[preview, prod, managed]).await;
    // Before freshet: the chart renders values.yaml's human pin.
    assert_eq!(rendered_image(&switching, &json!([])), pinned);
    let prod_before = bed.app_text("backend-prod").await;

    let (out, report) = bed.run(&[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = report_of(&report, "Application", "backend-preview");
    assert_eq!(r["status"], "refreshed", "{report}");
    assert!(r["written"].as_bool().unwrap());
    let first = bed.api.digest("preview").to_owned();
    let params = bed.app("backend-preview").await["spec"]["source"]["helm"]["parameters"].clone();
    assert_eq!(
        params,
        json!([{"name": "image.repository", "value": bed.repo, "forceString": true},
               {"name": "image.tag", "value": first, "forceString": true}])
    );
    assert_eq!(
        rendered_image(&switching, &params),
        format!("{}@{first}", bed.repo)
    );
    let refreshed = bed
        .events("argocd", "backend-preview", "ImageRefreshed")
        .await;
    assert!(
        refreshed.iter().any(|n| n.contains(&first)),
        "{refreshed:?}"
    );

    // The guard: a Warning Event on the Deployment naming the Application.
    let d = report_of(&report, "Deployment", "backend");
    assert!(d["warnings"].to_string().contains("backend-preview"), "{d}");
    let guard = bed.events("default", "backend", "ManagedByArgoCD").await;
    assert!(
        guard
            .iter()
            .any(|n| n.contains("\"backend-preview\"") && n.contains("self-heal")),
        "{guard:?}"
    );

    // The tag moves: the next pass writes the new digest, and nothing else changes.
    let second = bed.move_preview("2").await;
    assert_ne!(first, second);
    let (out, report) = bed.run(&[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report_of(&report, "Application", "backend-preview")["status"],
        "refreshed"
    );
    let params = bed.app("backend-preview").await["spec"]["source"]["helm"]["parameters"].clone();
    assert_eq!(
        rendered_image(&switching, &params),
        format!("{}@{second}", bed.repo)
    );
    // A pass in which nothing moved writes nothing.
    let rv = bed.app("backend-preview").await["metadata"]["resourceVersion"].clone();
    let (_, report) = bed.run(&[]).await;
    assert_eq!(
        report_of(&report, "Application", "backend-preview")["status"],
        "current"
    );
    assert_eq!(
        bed.app("backend-preview").await["metadata"]["resourceVersion"],
        rv
    );

    // prod carries no annotation: never written, byte for byte.
    assert_eq!(bed.app_text("backend-prod").await, prod_before);
    assert!(
        report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["name"] != "backend-prod"),
        "{report}"
    );
}

#[tokio::test]
async fn the_tag_digest_form_kustomize_images_and_multi_source_render_with_real_tools() {
    let bed = Bed::start().await;
    let charts = tempfile::tempdir().unwrap();
    let joining = charts.path().join("joining");
    chart(&joining, &bed.repo, false);
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    let digest_notes = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            (
                format!("{IU}image-list"),
                format!("backend={}:preview", bed.repo),
            ),
            (format!("{IU}backend.update-strategy"), "digest".to_owned()),
        ];
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        annotations(&pairs)
    };
    let helm_name = format!("{IU}backend.helm.image-name");
    let helm_tag = format!("{IU}backend.helm.image-tag");
    // Tag-digest form (the default) for a chart that joins with ':'.
    let tagdigest = application(
        "tagdigest",
        digest_notes(&[(&helm_name, "image.repository"), (&helm_tag, "image.tag")]),
        json!({"source": {"repoURL": "https://git.example/d.git", "path": "chart", "helm": {}}}),
        "Helm",
        &pinned,
    );
    // Kustomize images.
    let kustomize = application(
        "kustomized",
        digest_notes(&[]),
        json!({"source": {"repoURL": "https://git.example/d.git", "path": "k", "kustomize": {}}}),
        "Kustomize",
        &pinned,
    );
    let kustomize_bare = application(
        "kustomized-bare",
        digest_notes(&[("freshet.io/digest-form", "digest")]),
        json!({"source": {"repoURL": "https://git.example/d.git", "path": "k", "kustomize": {}}}),
        "Kustomize",
        &pinned,
    );
    // Multi-source: the chart from one repository, values from another (a `ref`).
    let multi = application(
        "multi",
        digest_notes(&[(&helm_name, "image.repository"), (&helm_tag, "image.tag")]),
        json!({"sources": [
            {"repoURL": "https://git.example/values.git", "targetRevision": "main", "ref": "values"},
            {"repoURL": "https://charts.example", "chart": "backend", "targetRevision": "0.1.0",
             "helm": {"valueFiles": ["$values/backend/values.yaml"],
                      "parameters": [{"name": "replicas", "value": "2"}]}}
        ]}),
        "Helm",
        &pinned,
    );
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    bed.apply(&[tagdigest, kustomize, kustomize_bare, multi])
        .await;
    let (out, report) = bed.run(&[]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = bed.api.digest("preview");

    let params = bed.app("tagdigest").await["spec"]["source"]["helm"]["parameters"].clone();
    assert_eq!(params[1]["value"], format!("preview@{d}"), "{report}");
    assert_eq!(
        rendered_image(&joining, &params),
        format!("{}:preview@{d}", bed.repo)
    );

    let images = bed.app("kustomized").await["spec"]["source"]["kustomize"]["images"].clone();
    assert_eq!(
        images,
        json!([format!("{}:preview@{d}", bed.repo)]),
        "{report}"
    );
    assert_eq!(
        kustomized_image(&pinned, &images).await,
        format!("{}:preview@{d}", bed.repo)
    );

    let images = bed.app("kustomized-bare").await["spec"]["source"]["kustomize"]["images"].clone();
    assert_eq!(images, json!([format!("{}@{d}", bed.repo)]), "{report}");
    assert_eq!(
        kustomized_image(&pinned, &images).await,
        format!("{}@{d}", bed.repo)
    );

    let multi = bed.app("multi").await;
    let sources = &multi["spec"]["sources"];
    assert_eq!(
        sources[0],
        json!({"repoURL": "https://git.example/values.git", "targetRevision": "main", "ref": "values"}),
        "the values source is not touched"
    );
    assert_eq!(
        sources[1]["helm"]["parameters"][0],
        json!({"name": "replicas", "value": "2"})
    );
    assert_eq!(
        sources[1]["helm"]["parameters"][2]["value"],
        format!("preview@{d}")
    );
    assert_eq!(
        rendered_image(&joining, &sources[1]["helm"]["parameters"]),
        format!("{}:preview@{d}", bed.repo)
    );
}

#[tokio::test]
async fn bad_input_is_an_event_naming_the_annotation_and_nothing_is_written() {
    let bed = Bed::start().await;
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    let src =
        json!({"source": {"repoURL": "https://git.example/d.git", "path": "chart", "helm": {}}});
    let cases = [
        (
            "strategy",
            vec![
                (format!("{IU}image-list"), format!("b={}:preview", bed.repo)),
                (format!("{IU}b.update-strategy"), "newest".to_owned()),
            ],
            "b.update-strategy",
        ),
        (
            "imagelist",
            vec![(format!("{IU}image-list"), "b=".to_owned())],
            "image-list",
        ),
        (
            "branch",
            vec![
                (format!("{IU}image-list"), format!("b={}:preview", bed.repo)),
                (format!("{IU}b.update-strategy"), "digest".to_owned()),
                (format!("{IU}write-back-method"), "git".to_owned()),
                (format!("{IU}git-branch"), "main:{{.Nope}}".to_owned()),
            ],
            "git-branch",
        ),
    ];
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    let mut before = Vec::new();
    for (name, pairs, _) in &cases {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        bed.apply(&[application(
            name,
            annotations(&pairs),
            src.clone(),
            "Helm",
            &pinned,
        )])
        .await;
        before.push(bed.app_text(name).await);
    }
    let (out, report) = bed.run(&[]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed Application fails the pass: {report}"
    );
    for ((name, _, annotation), before) in cases.iter().zip(before) {
        let r = report_of(&report, "Application", name);
        assert_eq!(r["status"], "failed", "{r}");
        let error = r["error"].as_str().unwrap();
        assert!(error.contains(annotation), "{name}: {error}");
        let notes = bed
            .events("argocd", name, "InvalidRefreshAnnotations")
            .await;
        assert!(
            notes.iter().any(|n| n.contains(annotation)),
            "{name}: {notes:?}"
        );
        assert_eq!(bed.app_text(name).await, before, "{name} is not written");
    }
}

/// A bare repository (`main`) holding `apps/<app>/` directories with a Helm chart's
/// `values.yaml`; returns its file:// URL.
fn bare_repo(root: &Path, apps: &[&str], repo: &str) -> String {
    let bare = root.join("remote.git");
    let work = root.join("seed");
    git(
        root,
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            bare.to_str().unwrap(),
        ],
    );
    git(
        root,
        &[
            "init",
            "--quiet",
            "--initial-branch=main",
            work.to_str().unwrap(),
        ],
    );
    identify(&work);
    for app in apps {
        let dir = work.join("apps").join(app);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("values.yaml"),
            format!("# pinned by hand\nimage:\n  repository: {repo}  # the registry\n  tag: \"sha-1a2b3c4\"\n"),
        )
        .unwrap();
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "seed"]);
    let url = format!("file://{}", bare.display());
    git(&work, &["push", "--quiet", &url, "main"]);
    url
}

#[tokio::test]
async fn git_write_back_is_one_commit_per_repository_and_branch_edited_byte_minimally() {
    let bed = Bed::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let url = bare_repo(tmp.path(), &["one", "two", "three"], &bed.repo);
    let pinned = format!("{}:sha-1a2b3c4", bed.repo);
    let app = |name: &str, target: Option<&str>| {
        let mut pairs = vec![
            (
                format!("{IU}image-list"),
                format!("backend={}:preview", bed.repo),
            ),
            (format!("{IU}backend.update-strategy"), "digest".to_owned()),
            (
                format!("{IU}backend.helm.image-name"),
                "image.repository".to_owned(),
            ),
            (
                format!("{IU}backend.helm.image-tag"),
                "image.tag".to_owned(),
            ),
            (format!("{IU}write-back-method"), "git".to_owned()),
            (
                "freshet.io/backend.digest-form".to_owned(),
                "digest".to_owned(),
            ),
        ];
        if let Some(t) = target {
            pairs.push((format!("{IU}write-back-target"), t.to_owned()));
        }
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        application(
            name,
            annotations(&pairs),
            json!({"source": {"repoURL": url, "path": format!("apps/{name}"), "targetRevision": "main", "helm": {}}}),
            "Helm",
            &pinned,
        )
    };
    bed.kubectl(&["create", "namespace", "argocd"], None).await;
    bed.apply(&[
        app("one", None),
        app("two", Some("helmvalues:values.yaml")),
        app("three", Some("helmvalues:missing.yaml")),
    ])
    .await;
    let (out, report) = bed.run(&[]).await;
    assert_eq!(out.status.code(), Some(1), "three fails: {report}");
    let d = bed.api.digest("preview");

    let check = tmp.path().join("check");
    git(
        tmp.path(),
        &["clone", "--quiet", &url, check.to_str().unwrap()],
    );
    assert_eq!(
        git(&check, &["rev-list", "--count", "HEAD"]),
        "2",
        "one commit for two Applications: {report}"
    );
    let message = git(&check, &["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("build: automatic update of one, two"),
        "{message}: {report}"
    );
    // The override file Image Updater writes, in the source path.
    let overrides =
        std::fs::read_to_string(check.join("apps/one/.argocd-source-one.yaml")).unwrap();
    assert!(
        overrides.contains(&format!("value: {d}"))
            || overrides.contains(&format!("value: \"{d}\""))
            || overrides.contains(&format!("value: '{d}'")),
        "{overrides}"
    );
    assert!(overrides.contains("image.repository"), "{overrides}");
    // values.yaml edited byte-minimally: comments and quoting kept, only the tag changed.
    assert_eq!(
        std::fs::read_to_string(check.join("apps/two/values.yaml")).unwrap(),
        format!(
            "# pinned by hand\nimage:\n  repository: {}  # the registry\n  tag: \"{d}\"\n",
            bed.repo
        )
    );
    // The missing target: an error naming the annotation; nothing written for it.
    let three = report_of(&report, "Application", "three");
    assert_eq!(three["status"], "failed");
    assert!(
        three["error"]
            .as_str()
            .unwrap()
            .contains("write-back-target"),
        "{three}"
    );
    assert_eq!(
        std::fs::read_to_string(check.join("apps/three/values.yaml")).unwrap(),
        format!(
            "# pinned by hand\nimage:\n  repository: {}  # the registry\n  tag: \"sha-1a2b3c4\"\n",
            bed.repo
        )
    );
    let one = report_of(&report, "Application", "one");
    assert_eq!(one["status"], "refreshed", "{one}");
    // The live Application is not patched by a git write-back: only the audit record.
    let live = bed.app("one").await;
    assert!(
        live["spec"]["source"]["helm"].get("parameters").is_none(),
        "{live}"
    );
    assert!(
        live["metadata"]["annotations"]["freshet.io/refreshed"]
            .as_str()
            .unwrap()
            .contains(d)
    );
}
