//! Write-back settings, the write-branch template, and the guard for workloads Argo CD manages.

use sha2::{Digest as _, Sha256};

use crate::argocd::guard::{TRACKING_ID, Tracking, Workload, managed_by_argo};
use crate::argocd::writeback::{
    BranchError, Context, GitBranch, GitCreds, ImageChange, Method, Target, Template, clean,
    target_key,
};

fn changes() -> Vec<ImageChange> {
    vec![
        ImageChange {
            name: "acme/backend".into(),
            alias: "backend".into(),
            old_tag: "1.0".into(),
            new_tag: "1.1".into(),
        },
        ImageChange {
            name: "acme/worker".into(),
            alias: "worker".into(),
            old_tag: "2.0".into(),
            new_tag: "2.1".into(),
        },
    ]
}

#[test]
fn branch_templates_render_the_documented_variables() {
    let ctx = Context {
        app_name: "shop".into(),
        app_namespace: "argocd".into(),
        target_key: target_key(
            "https://git.example/x.git",
            "main",
            "charts/shop/values.yaml",
        ),
        changes: changes(),
    };
    let sha: String = Sha256::digest(b"acme/backend-1.0-1.1,acme/worker-2.0-2.1,")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cases = [
        // docs/basics/update-methods.md (v1.3.0)
        (
            "image-updater{{range .Images}}-{{.Name}}-{{.NewTag}}{{end}}",
            "image-updater-acme/backend-1.1-acme/worker-2.1".to_owned(),
        ),
        ("image-updater-{{.SHA256}}", format!("image-updater-{sha}")),
        (
            "up/{{ .AppNamespace }}/{{.AppName}}-{{.TargetKey}}",
            format!("up/argocd/shop-{}", ctx.target_key),
        ),
        (
            "u{{- range .Images -}} -{{.Alias}} {{- end}}",
            "u-backend-worker".to_owned(),
        ),
    ];
    for (template, want) in cases {
        assert_eq!(
            Template::parse(template).unwrap().render(&ctx).unwrap(),
            want,
            "{template}"
        );
    }
    assert_eq!(ctx.target_key.len(), 8);
    let long = Template::parse(&"x".repeat(300))
        .unwrap()
        .render(&ctx)
        .unwrap();
    assert_eq!(long.len(), 255);
}

#[test]
fn templates_that_do_not_render_are_errors() {
    for bad in [
        "{{.Foo}}",
        "{{range .Images}}x",
        "{{.Name}}",
        "{{if .AppName}}x{{end}}",
        "{{.AppName",
        "{{range .Images}}{{.AppName}}{{end}}",
    ] {
        let err = Template::parse(bad).unwrap_err();
        assert!(matches!(err, BranchError::Template { .. }), "{bad}: {err}");
    }
    let ctx = Context {
        changes: vec![ImageChange {
            name: "a".into(),
            alias: "a".into(),
            old_tag: "x".into(),
            new_tag: "sha256:ab".into(),
        }],
        ..Context::default()
    };
    let err = Template::parse("up{{range .Images}}-{{.NewTag}}{{end}}")
        .unwrap()
        .render(&ctx)
        .unwrap_err();
    assert!(matches!(err, BranchError::Invalid { .. }), "{err}");
    let empty = Template::parse("{{.AppName}}")
        .unwrap()
        .render(&Context::default())
        .unwrap_err();
    assert!(empty.to_string().contains("empty"), "{empty}");
}

#[test]
fn git_branch_method_and_target_parse_as_upstream() {
    assert_eq!(
        GitBranch::parse("main").unwrap(),
        GitBranch {
            base: Some("main".into()),
            write: None
        }
    );
    let b = GitBranch::parse(":image-updater-{{.SHA256}}").unwrap();
    assert_eq!(b.base, None);
    assert_eq!(b.write.unwrap().as_str(), "image-updater-{{.SHA256}}");
    assert_eq!(
        Method::parse("git:secret:argocd/git-creds").unwrap(),
        Method::Git {
            creds: GitCreds::Secret {
                namespace: "argocd".into(),
                name: "git-creds".into()
            }
        }
    );
    assert_eq!(
        Method::parse("git:repocreds").unwrap(),
        Method::Git {
            creds: GitCreds::RepoCreds
        }
    );
    assert!(Method::parse("git:secret:nope").is_err());
    let cases = [
        (
            "kustomization",
            "config/overlays/foo",
            Some("config/overlays/foo"),
        ),
        (
            "kustomization:../../base",
            "config/overlays/foo",
            Some("config/base"),
        ),
        (
            "kustomization:/config/overlays/bar",
            "config/overlays/foo",
            Some("config/overlays/bar"),
        ),
        ("helmvalues", "charts/app", Some("charts/app/values.yaml")),
        (
            "helmvalues:../../values.yaml",
            "config/overlays/foo",
            Some("config/values.yaml"),
        ),
        (
            "helmvalues:/helm/config/test-values.yaml",
            "x",
            Some("helm/config/test-values.yaml"),
        ),
        ("helmvalues:../../../../etc", "a/b", None),
        ("overrides/app.yaml", "x", Some("overrides/app.yaml")),
    ];
    for (target, path, want) in cases {
        assert_eq!(
            Target::parse(target)
                .unwrap()
                .resolve(path, ".argocd-source-app.yaml")
                .as_deref(),
            want,
            "{target}"
        );
    }
    assert_eq!(
        Target::default()
            .resolve("charts/app", ".argocd-source-app.yaml")
            .as_deref(),
        Some("charts/app/.argocd-source-app.yaml")
    );
    assert_eq!(clean("./a/./b/../c"), Some("a/c".into()));
}

#[test]
fn a_deployment_argo_cd_manages_warns_naming_the_application() {
    let none = crate::Labels::new();
    let no_labels = crate::Labels::new();
    let annotations: crate::Labels = [(
        TRACKING_ID.to_owned(),
        "argocd_backend-prod:apps/Deployment:prod/backend".to_owned(),
    )]
    .into_iter()
    .collect();
    let w = Workload {
        group: "apps",
        kind: "Deployment",
        namespace: "prod",
        name: "backend",
        labels: &no_labels,
        annotations: &annotations,
    };
    let m = managed_by_argo(&w, |_| false).unwrap();
    assert_eq!(
        (
            m.application.as_str(),
            m.application_namespace.as_deref(),
            m.via,
            m.certain
        ),
        ("backend-prod", Some("argocd"), Tracking::Annotation, true)
    );
    let warning = m.warning(&w);
    assert!(
        warning.message.contains("\"argocd/backend-prod\"")
            && warning.message.contains("self-heal"),
        "{warning}"
    );

    // A tracking id copied from another resource is not Argo CD's.
    let copied = Workload { name: "other", ..w };
    assert!(managed_by_argo(&copied, |_| false).is_none());

    let labels: crate::Labels = [(
        "app.kubernetes.io/instance".to_owned(),
        "backend-preview".to_owned(),
    )]
    .into_iter()
    .collect();
    let by_label = Workload {
        labels: &labels,
        annotations: &none,
        ..w
    };
    let probable = managed_by_argo(&by_label, |_| false).unwrap();
    assert!(!probable.certain && probable.warning(&by_label).message.contains("probably"));
    assert!(
        managed_by_argo(&by_label, |a| a == "backend-preview")
            .unwrap()
            .certain
    );
    let plain = Workload {
        labels: &no_labels,
        annotations: &none,
        ..w
    };
    assert!(managed_by_argo(&plain, |_| true).is_none());
}

#[test]
fn a_change_names_the_image_as_upstream_does() {
    let d = crate::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
    let c = ImageChange::new(
        "ghcr.io/acme/api",
        "api",
        (Some("1.0"), None),
        (Some("1.1"), None),
    );
    assert_eq!(
        (c.name.as_str(), c.old_tag.as_str(), c.new_tag.as_str()),
        ("acme/api", "1.0", "1.1")
    );
    assert_eq!(
        ImageChange::new("nginx", "", (None, None), (Some("1"), None)).name,
        "nginx"
    );
    assert_eq!(
        ImageChange::new("library/nginx", "", (None, None), (Some("1"), None)).name,
        "library/nginx"
    );
    assert_eq!(
        ImageChange::new("localhost:5000/app", "", (None, None), (Some("1"), None)).name,
        "app"
    );
    assert_eq!(
        ImageChange::new("ghcr.io/a/b", "b", (Some("p"), None), (Some("p"), Some(&d))).new_tag,
        d.to_string()
    );
}
