//! `plan` and `apply` over real files in a temporary directory, with registry facts from
//! a table that counts the questions it is asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use freshet_core::{Digest, Reference};
use freshet_gitops::{FactError, FactSource, PlanOptions, apply, plan, write_atomic};

/// A registry as a table: repository name → tags. Digests are derived from the tag.
#[derive(Default)]
struct Table {
    tags: HashMap<String, Result<Vec<String>, String>>,
    asked: Mutex<Vec<String>>,
}

impl Table {
    fn repo(mut self, name: &str, tags: &[&str]) -> Self {
        self.tags.insert(
            name.to_owned(),
            Ok(tags.iter().map(|t| (*t).to_owned()).collect()),
        );
        self
    }
    fn failing(mut self, name: &str, why: &str) -> Self {
        self.tags.insert(name.to_owned(), Err(why.to_owned()));
        self
    }
    fn asked(&self) -> Vec<String> {
        let mut a = self.asked.lock().unwrap().clone();
        a.sort();
        a
    }
}

fn digest_of(tag: &str) -> Digest {
    let hex: String = tag
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .repeat(64)
        .chars()
        .take(64)
        .collect();
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

#[async_trait::async_trait]
impl FactSource for Table {
    async fn tags(&self, reference: &Reference) -> Result<Vec<String>, FactError> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("tags {}", reference.name()));
        match self.tags.get(&reference.name()) {
            Some(Ok(t)) => Ok(t.clone()),
            Some(Err(e)) => Err(FactError::new(e.clone())),
            None => Err(FactError::new(format!("{}: not found", reference.name()))),
        }
    }
    async fn digest(&self, reference: &Reference) -> Result<Digest, FactError> {
        let tag = reference.tag().expect("digests are asked for tags");
        self.asked
            .lock()
            .unwrap()
            .push(format!("digest {}:{tag}", reference.name()));
        Ok(digest_of(tag))
    }
}

fn registry() -> Table {
    Table::default()
        .repo(
            "docker.io/library/nginx",
            &["1.25.3", "1.25.5", "1.26.1", "1.27.0-rc.1"],
        )
        .repo("docker.io/library/golang", &["1.21.5", "1.22.0"])
        .repo("ghcr.io/acme/api", &["v1.2.3", "v1.3.0", "v2.0.0"])
        .repo("docker.io/bitnami/redis", &["7.2.4", "7.2.5"])
}

fn write(root: &Path, file: &str, text: &str) -> PathBuf {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn read(root: &Path, file: &str) -> String {
    std::fs::read_to_string(root.join(file)).unwrap()
}

fn options(root: &Path, all: bool) -> PlanOptions {
    PlanOptions {
        all,
        root: Some(root.to_owned()),
    }
}

/// A repository with every format, a rule file, and one broken file.
fn fixture(root: &Path) {
    write(
        root,
        "freshet.yaml",
        "rules:\n  - paths: [\"deploy/**\"]\n    images: [\"ghcr.io/acme/*\"]\n    policy: semver:major\n",
    );
    write(
        root,
        "deploy/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - image: \"nginx:1.25.3\" # freshet: policy=semver:patch\n        - image: ghcr.io/acme/api:v1.2.3\n---\napiVersion: batch/v1\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - image: 'nginx:1.25.3'   # freshet: policy=semver:minor\n",
    );
    write(
        root,
        "chart/values.yaml",
        "image:\n  repository: bitnami/redis # freshet: policy=semver:patch\n  tag: \"7.2.4\"\n",
    );
    write(
        root,
        "kustomize/kustomization.yaml",
        "images:\r\n  - name: nginx\r\n    newTag: 1.25.3 # freshet: policy=semver:minor\r\n",
    );
    write(
        root,
        "docker-compose.yml",
        "services:\n  web:\n    image: nginx:1.25.3 # freshet: policy=semver:patch\n",
    );
    write(
        root,
        "build/Dockerfile",
        "# freshet: policy=semver:minor\nFROM --platform=$BUILDPLATFORM golang:1.21.5 AS build\nFROM scratch\n",
    );
    write(
        root,
        "infra/main.tf",
        "resource \"x\" \"y\" {\n  image = \"nginx:1.25.3\" // freshet: policy=semver:patch\n}\n",
    );
    write(
        root,
        "broken.yaml",
        "containers:\n  - image: nginx:1.25.3 # freshet: policy=semver:patch\n    name: [oops\n",
    );
}

#[tokio::test]
async fn plans_every_format_reports_broken_files_and_applies_byte_minimal_edits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fixture(root);
    let broken_before = read(root, "broken.yaml");
    let source = registry();

    let report = plan(&[root.to_owned()], &options(root, false), &source).await;

    let updates: Vec<(String, usize, String, String)> = report
        .updates
        .iter()
        .map(|u| (u.file.clone(), u.line, u.current.clone(), u.new.clone()))
        .collect();
    let expected = [
        ("build/Dockerfile", 2, "golang:1.21.5", "golang:1.22.0"),
        (
            "chart/values.yaml",
            3,
            "bitnami/redis:7.2.4",
            "bitnami/redis:7.2.5",
        ),
        ("deploy/app.yaml", 7, "nginx:1.25.3", "nginx:1.25.5"),
        (
            "deploy/app.yaml",
            8,
            "ghcr.io/acme/api:v1.2.3",
            "ghcr.io/acme/api:v2.0.0",
        ),
        ("deploy/app.yaml", 18, "nginx:1.25.3", "nginx:1.26.1"),
        ("docker-compose.yml", 3, "nginx:1.25.3", "nginx:1.25.5"),
        ("infra/main.tf", 2, "nginx:1.25.3", "nginx:1.25.5"),
        (
            "kustomize/kustomization.yaml",
            3,
            "nginx:1.25.3",
            "nginx:1.26.1",
        ),
    ]
    .map(|(f, l, c, n)| (f.to_owned(), l, c.to_owned(), n.to_owned()));
    assert_eq!(updates, expected);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].file, "broken.yaml");
    assert_eq!(report.errors[0].line, 3);
    assert!(report.errors[0].message.contains("left untouched"));
    assert_eq!(
        report.exit_code(true),
        1,
        "an error wins over pending updates"
    );
    // Every repository is listed once, however many references use it.
    assert_eq!(
        source.asked(),
        [
            "tags docker.io/bitnami/redis",
            "tags docker.io/library/golang",
            "tags docker.io/library/nginx",
            "tags ghcr.io/acme/api",
        ]
    );

    let applied = apply(&report);
    assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    assert_eq!(applied.written.len(), 6);
    assert_eq!(
        read(root, "deploy/app.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - image: \"nginx:1.25.5\" # freshet: policy=semver:patch\n        - image: ghcr.io/acme/api:v2.0.0\n---\napiVersion: batch/v1\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n            - image: 'nginx:1.26.1'   # freshet: policy=semver:minor\n"
    );
    assert_eq!(
        read(root, "kustomize/kustomization.yaml"),
        "images:\r\n  - name: nginx\r\n    newTag: 1.26.1 # freshet: policy=semver:minor\r\n"
    );
    assert_eq!(
        read(root, "chart/values.yaml"),
        "image:\n  repository: bitnami/redis # freshet: policy=semver:patch\n  tag: \"7.2.5\"\n"
    );
    assert_eq!(
        read(root, "build/Dockerfile"),
        "# freshet: policy=semver:minor\nFROM --platform=$BUILDPLATFORM golang:1.22.0 AS build\nFROM scratch\n"
    );
    assert_eq!(read(root, "broken.yaml"), broken_before);
    // No temporary files are left behind.
    let leftovers: Vec<_> = walkdir(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".freshet-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Planning again finds nothing to do.
    let again = plan(&[root.to_owned()], &options(root, false), &registry()).await;
    assert!(again.updates.is_empty(), "{:?}", again.updates);
    assert_eq!(again.exit_code(true), 1, "broken.yaml is still broken");
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn exit_codes_follow_detailed_exitcode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "a.yaml",
        "image: nginx:1.25.3 # freshet: policy=semver:patch\n",
    );
    let report = plan(&[root.to_owned()], &options(root, false), &registry()).await;
    assert_eq!(report.updates.len(), 1);
    assert_eq!(report.exit_code(true), 2);
    assert_eq!(report.exit_code(false), 0);
    apply(&report);
    let report = plan(&[root.to_owned()], &options(root, false), &registry()).await;
    assert_eq!(report.exit_code(true), 0);
}

#[tokio::test]
async fn all_tracks_unmarked_references_with_the_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "a.yaml",
        "containers:\n  - image: nginx:1.25.3\n  - image: nginx:latest\n  - image: nginx:1.25.3 # freshet: policy=never\n",
    );
    let marked_only = plan(&[root.to_owned()], &options(root, false), &registry()).await;
    assert!(marked_only.updates.is_empty());
    let all = plan(&[root.to_owned()], &options(root, true), &registry()).await;
    let news: Vec<&str> = all.updates.iter().map(|u| u.new.as_str()).collect();
    assert_eq!(
        news,
        ["nginx:1.26.1"],
        "semver:minor by default; latest and never are skipped"
    );
    assert_eq!(all.updates[0].policy, "semver:minor");
}

/// Regression (issue 15): a lookup that fails was only a warning, so `plan
/// --detailed-exitcode` said "nothing pending" (exit 0) while the registry was
/// unreachable. It is an error naming its class, file, line and reference.
#[tokio::test]
async fn a_failed_lookup_is_an_error_not_a_silent_keep() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "a.yaml",
        "containers:\n  - image: ghcr.io/acme/api:v1.2.3 # freshet: policy=semver:major\n  - image: ghcr.io/acme/gone:v1.0.0 # freshet: policy=semver:major\n  - image: ghcr.io/acme/empty:v1.0.0 # freshet: policy=semver:major\n",
    );
    let source = Table::default()
        .failing("ghcr.io/acme/api", "401 unauthorized")
        .repo("ghcr.io/acme/gone", &["v0.9.0", "v2.0.0"])
        .repo("ghcr.io/acme/empty", &[]);
    let report = plan(&[root.to_owned()], &options(root, false), &source).await;
    assert!(report.updates.is_empty());
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert_eq!((e.file.as_str(), e.line), ("a.yaml", 2));
    assert!(e.message.contains("401 unauthorized"), "{e:?}");
    assert_eq!(e.class.as_deref(), Some("lookup"));
    assert_eq!(e.reference.as_deref(), Some("ghcr.io/acme/api:v1.2.3"));
    // Kept for a reason that is not a failure: warnings, not errors.
    let warnings: Vec<(usize, &str)> = report
        .warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].1.contains("no longer in the registry"),
        "{warnings:?}"
    );
    assert!(warnings[1].1.contains("no tags"), "{warnings:?}");
    assert_eq!(report.exit_code(true), 1);
}

#[tokio::test]
async fn a_pin_asks_for_the_digest_of_the_chosen_tag_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "a.yaml",
        "image: nginx:1.25.3 # freshet: policy=semver:patch pin=tag+digest\n",
    );
    let source = registry();
    let report = plan(&[root.to_owned()], &options(root, false), &source).await;
    assert_eq!(
        report.updates[0].new,
        format!("nginx:1.25.5@{}", digest_of("1.25.5"))
    );
    assert_eq!(
        source.asked(),
        [
            "digest docker.io/library/nginx:1.25.5",
            "tags docker.io/library/nginx"
        ]
    );
}

#[tokio::test]
async fn a_file_changed_after_planning_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "a.yaml",
        "image: nginx:1.25.3 # freshet: policy=semver:patch\n",
    );
    write(
        root,
        "b.yaml",
        "image: nginx:1.25.3 # freshet: policy=semver:patch\n",
    );
    let report = plan(&[root.to_owned()], &options(root, false), &registry()).await;
    write(
        root,
        "a.yaml",
        "image: nginx:1.25.3 # freshet: policy=semver:patch\n# edited\n",
    );
    let applied = apply(&report);
    assert_eq!(applied.errors.len(), 1);
    assert_eq!(applied.errors[0].file, "a.yaml");
    assert!(
        applied.errors[0]
            .message
            .contains("changed since it was planned")
    );
    assert_eq!(
        read(root, "a.yaml"),
        "image: nginx:1.25.3 # freshet: policy=semver:patch\n# edited\n"
    );
    assert_eq!(
        read(root, "b.yaml"),
        "image: nginx:1.25.5 # freshet: policy=semver:patch\n"
    );
}

#[tokio::test]
async fn a_bad_freshet_yaml_is_reported_with_its_line_and_nothing_is_planned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "freshet.yaml",
        "rules:\n  - policy: minor\n    pathz: [x]\n",
    );
    write(
        root,
        "a.yaml",
        "image: nginx:1.25.3 # freshet: policy=semver:patch\n",
    );
    let report = plan(&[root.to_owned()], &options(root, false), &registry()).await;
    assert!(report.updates.is_empty());
    assert_eq!(report.errors.len(), 1);
    assert_eq!(
        (report.errors[0].file.as_str(), report.errors[0].line),
        ("freshet.yaml", 3)
    );
    assert!(
        report.errors[0].message.contains("pathz"),
        "{:?}",
        report.errors
    );
}

#[tokio::test]
async fn missing_paths_and_unknown_formats_named_explicitly_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let readme = write(root, "README.md", "# hi\n");
    let report = plan(
        &[root.join("nope"), readme],
        &options(root, false),
        &registry(),
    )
    .await;
    let messages: Vec<String> = report.errors.iter().map(|e| e.message.clone()).collect();
    assert_eq!(report.errors.len(), 2, "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("no such file")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("not a format")),
        "{messages:?}"
    );
}

#[test]
fn write_atomic_keeps_permissions_and_replaces_the_contents() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "run.sh", "old\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o751)).unwrap();
    }
    write_atomic(&path, b"new\r\n").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new\r\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o751);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert!(write_atomic(&dir.path().join("missing"), b"x").is_err());
}

/// Regression (issue 15): any repository with a Helm chart made `plan --all .` exit 1,
/// its `templates/*.yaml` reported as YAML errors with `path:line` twice; hidden
/// directories (`.github/workflows`) were not read; a pin went to a new `digest:` key
/// while the chart reads `sha:` as bare hex (`@sha256:{{ .sha }}`).
#[tokio::test]
async fn a_repository_with_a_helm_chart_and_ci_files_plans_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 1.0.0\n",
    );
    write(
        root,
        "chart/templates/deployment.yaml",
        "spec:\n  image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}@sha256:{{ .Values.image.sha }}\"\n{{- if .Values.x }}\n",
    );
    write(
        root,
        "chart/values.yaml",
        "image:\n  repository: nginx\n  tag: 1.25.3\n  sha: \"\" # freshet: policy=semver:patch pin=tag+digest\n",
    );
    write(
        root,
        ".github/workflows/ci.yml",
        "jobs:\n  t:\n    container: golang:1.21.5\n",
    );
    write(root, "broken.yaml", "a: [1\n");
    let report = plan(&[root.to_owned()], &options(root, true), &registry()).await;
    assert_eq!(
        report
            .skipped
            .iter()
            .map(|s| s.file.as_str())
            .collect::<Vec<_>>(),
        ["chart/templates/deployment.yaml"]
    );
    // Only the broken file is an error, and its message does not repeat path:line.
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let e = &report.errors[0];
    assert_eq!(e.file, "broken.yaml");
    assert!(!e.message.contains("broken.yaml"), "{}", e.message);
    let updated: Vec<(&str, &str)> = report
        .updates
        .iter()
        .map(|u| (u.file.as_str(), u.new.as_str()))
        .collect();
    assert_eq!(updated.len(), 2, "{updated:?}");
    assert_eq!(updated[0], (".github/workflows/ci.yml", "golang:1.22.0"));
    apply(&report);
    let hex = digest_of("1.25.5")
        .as_str()
        .trim_start_matches("sha256:")
        .to_owned();
    assert_eq!(
        read(root, "chart/values.yaml"),
        format!(
            "image:\n  repository: nginx\n  tag: 1.25.5\n  sha: \"{hex}\" # freshet: policy=semver:patch pin=tag+digest\n"
        )
    );
}
