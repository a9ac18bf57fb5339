//! Table tests of the scanners and the edit checks.
use super::*;

#[test]
fn split_written_keeps_the_name_as_written() {
    let cases = [
        ("nginx", ("nginx", None, None)),
        ("nginx:1.27", ("nginx", Some("1.27"), None)),
        ("127.0.0.1:5000/app", ("127.0.0.1:5000/app", None, None)),
        (
            "127.0.0.1:5000/app:v1",
            ("127.0.0.1:5000/app", Some("v1"), None),
        ),
        (
            "ghcr.io/o/a:1@sha256:ab",
            ("ghcr.io/o/a", Some("1"), Some("sha256:ab")),
        ),
        (
            "ghcr.io/o/a@sha256:ab",
            ("ghcr.io/o/a", None, Some("sha256:ab")),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(split_written(input), expected, "{input}");
    }
}

#[test]
fn detects_formats_by_name() {
    let cases = [
        ("deploy/app.yaml", Some(FileFormat::Yaml)),
        ("values.yml", Some(FileFormat::Yaml)),
        ("k/kustomization.yaml", Some(FileFormat::Kustomization)),
        ("Dockerfile", Some(FileFormat::Dockerfile)),
        ("build/Dockerfile.prod", Some(FileFormat::Dockerfile)),
        ("api.Containerfile", Some(FileFormat::Dockerfile)),
        ("main.tf", Some(FileFormat::Hcl)),
        ("freshet.yaml", None),
        ("README.md", None),
    ];
    for (path, expected) in cases {
        assert_eq!(detect(path), expected, "{path}");
    }
}

/// A file name, its text, and what a scan must find in it.
type Case = (&'static str, String, Vec<(RefKind, &'static str)>);

/// Regression table (issue 15): what each format yields, and what it must not.
#[test]
fn detection_table() {
    let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let cases: Vec<Case> = vec![
        (
            "Dockerfile",
            "# syntax=docker/dockerfile:1.6\nARG BASE=alpine:3.19\nFROM $BASE AS b\nCOPY --from=nginx:1.27 /a /a\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\n".into(),
            vec![
                (RefKind::DockerfileSyntax, "docker/dockerfile:1.6"),
                (RefKind::DockerfileArg, "alpine:3.19"),
                (RefKind::DockerfileCopyFrom, "nginx:1.27"),
            ],
        ),
        // An ARG no FROM uses is not an image.
        ("Dockerfile", "ARG X=alpine:3.19\nFROM scratch\n".into(), vec![]),
        (
            "main.tf",
            "variable \"image_tag\" {\n  default = \"abc12345\"\n}\nvariable \"app_image\" {\n  default = \"nginx:1.27\"\n}\nresource \"docker_image\" \"x\" {\n  name = \"redis:7\"\n}\nresource \"other\" \"y\" {\n  name = \"redis:7\"\n}\n".into(),
            vec![
                (RefKind::HclString, "nginx:1.27"),
                (RefKind::HclDockerImage, "redis:7"),
            ],
        ),
        (
            ".github/workflows/ci.yml",
            "jobs:\n  a:\n    container: node:20\n    services:\n      db: {image: postgres:16}\n    steps:\n      - uses: docker://alpine:3.19\n      - uses: actions/checkout@v4\n".into(),
            vec![
                (RefKind::CiImage, "node:20"),
                (RefKind::CiImage, "postgres:16"),
                (RefKind::CiImage, "alpine:3.19"),
            ],
        ),
        // `container:` means nothing outside GitHub Actions.
        ("app.yml", "container: node:20\n".into(), vec![]),
        (
            ".gitlab-ci.yml",
            "image: ruby:3.3\nservices:\n  - postgres:16\n  - name: redis:7\nt:\n  image: {name: go:1.22}\n".into(),
            vec![
                (RefKind::CiImage, "ruby:3.3"),
                (RefKind::CiImage, "postgres:16"),
                (RefKind::CiImage, "redis:7"),
                (RefKind::CiImage, "go:1.22"),
            ],
        ),
        (
            "values.yaml",
            "a: {registry: null, repository: memcached, tag: 1.6}\nb: {repository: null, tag: null}\nc: {registry: docker.io, repository: ghcr.io/o/a, tag: v1}\n".into(),
            vec![
                (RefKind::HelmSplit, "memcached:1.6"),
                (RefKind::HelmSplit, "ghcr.io/o/a:v1"),
            ],
        ),
        (
            "values.yaml",
            format!("a:\n  repository: nginx\n  tag: {d}\n"),
            vec![(RefKind::HelmSplit, "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000")],
        ),
        (
            "kustomization.yaml",
            "images:\n  - name: a\n    newName: b/c\n  - name: d\n    newTag: \"1\"\n".into(),
            vec![(RefKind::Kustomize, "d:1")],
        ),
        // A marker on a non-image key: a tag-only value, never guessed as an image.
        (
            "Pulumi.dev.yaml",
            "config:\n  p:tag: abc12345 # freshet: image=ghcr.io/o/a policy=newest-build\n".into(),
            vec![(RefKind::Value, "abc12345")],
        ),
    ];
    for (path, text, expected) in cases {
        let found: Vec<(RefKind, String)> = scan(path, &text)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_iter()
            .map(|f| (f.kind, f.image))
            .collect();
        let expected: Vec<(RefKind, String)> = expected
            .into_iter()
            .map(|(k, i)| (k, i.to_owned()))
            .collect();
        assert_eq!(found, expected, "{path}:\n{text}");
    }
}

#[test]
fn overlapping_and_out_of_bounds_edits_are_rejected() {
    let text = "image: nginx:1.0\n";
    let overlap = [
        Edit {
            span: 7..12,
            new: "a".into(),
        },
        Edit {
            span: 10..16,
            new: "b".into(),
        },
    ];
    assert!(matches!(
        apply_edits("a.yaml", text, &overlap),
        Err(EditError::Overlap { .. })
    ));
    let oob = [Edit {
        span: 7..99,
        new: "a".into(),
    }];
    assert!(matches!(
        apply_edits("a.yaml", text, &oob),
        Err(EditError::OutOfBounds { .. })
    ));
}

#[test]
fn an_edit_that_breaks_the_file_is_rejected() {
    let text = "image: nginx:1.0\n";
    let bad = [Edit {
        span: 7..16,
        new: "\"nginx".into(),
    }];
    assert!(matches!(
        apply_edits("a.yaml", text, &bad),
        Err(EditError::Rescan(_))
    ));
}
