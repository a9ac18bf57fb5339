//! Seed-shaped scenarios of issue 15, end to end with the built binary, the real
//! distribution registry and real git: a build pushes images tagged with git SHAs, and
//! `freshet apply --commit` moves a Pulumi stack config and a Terraform `var.image_tag`
//! default to the newest SHA by build time (`newest-build`), at a bounded registry cost.

use std::path::Path;
use std::process::{Command, Output};

use freshet_testbed::git::{git, identify};
use freshet_testbed::registry::builds::push_build;
use freshet_testbed::registry::push::{Platform, Pusher};
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use serde_json::Value;

fn freshet(cwd: &Path, docker_config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_freshet"))
        .current_dir(cwd)
        .args(args)
        .arg("--docker-config")
        .arg(docker_config)
        .env("GIT_AUTHOR_NAME", "freshet test")
        .env("GIT_AUTHOR_EMAIL", "test@freshet.invalid")
        .env("GIT_COMMITTER_NAME", "freshet test")
        .env("GIT_COMMITTER_EMAIL", "test@freshet.invalid")
        .env_remove("FRESHET_GIT_TOKEN")
        .output()
        .expect("freshet runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn sha40(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_moves_pulumi_config_and_terraform_image_tag_to_the_newest_build() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let host = registry.host();
    let pusher = Pusher::new(&registry).expect("pusher");
    let amd64 = Platform::linux_amd64();
    let arm64 = Platform::linux_arm64_v8();
    // team/app: short SHAs whose order says nothing about their age.
    let builds = [
        ("1a2b3c4d", "2026-01-01T00:00:00Z", vec![amd64.clone()]),
        ("0000aaaa", "2026-02-01T00:00:00Z", vec![amd64.clone()]),
        (
            "ffff0000",
            "2026-03-01T12:00:00+02:00",
            vec![amd64.clone(), arm64.clone()],
        ),
        // Newest, but not for linux/amd64: not a candidate.
        ("99999999", "2026-04-01T00:00:00Z", vec![arm64.clone()]),
        ("latest", "2026-05-01T00:00:00Z", vec![amd64.clone()]),
    ];
    for (tag, created, platforms) in &builds {
        push_build(&pusher, "team/app", tag, created, platforms)
            .await
            .expect("push build");
    }
    let adapter = [
        (sha40('a'), "2026-01-01T00:00:00Z"),
        (sha40('b'), "2026-05-01T00:00:00Z"),
        (sha40('c'), "2026-02-01T00:00:00Z"),
    ];
    for (tag, created) in &adapter {
        push_build(
            &pusher,
            "team/adapter",
            tag,
            created,
            std::slice::from_ref(&amd64),
        )
        .await
        .expect("push build");
    }

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let docker_config = tempfile::tempdir().unwrap();
    git(root, &["init", "--quiet", "-b", "main"]);
    identify(root);
    std::fs::write(
        root.join("freshet.yaml"),
        "rules:\n  - files: [\"Pulumi.*.yaml\"]\n    keys: [\"config.*Image\"]\n    policy: newest-build:^[0-9a-f]{40}$\n",
    )
    .unwrap();
    let pulumi = format!(
        "config:\n  aws:region: eu-west-1\n  proj:adapterImage: {host}/team/adapter:{}\n",
        sha40('a')
    );
    std::fs::write(root.join("Pulumi.prod.yaml"), &pulumi).unwrap();
    std::fs::create_dir_all(root.join("infra")).unwrap();
    let variables = format!(
        "variable \"image_tag\" {{\n  type    = string\n  default = \"1a2b3c4d\" # freshet: image={host}/team/app policy=newest-build:^[0-9a-f]{{8}}$\n}}\n\nvariable \"other_tag\" {{\n  default = \"0000aaaa\"\n}}\n"
    );
    std::fs::write(root.join("infra/variables.tf"), &variables).unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "--quiet", "-m", "seed"]);

    let out = freshet(
        root,
        docker_config.path(),
        &["plan", "-o", "json", "--detailed-exitcode"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["errors"], Value::Array(vec![]), "{report}");
    let updates: Vec<(String, String, String)> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["file"].as_str().unwrap().to_owned(),
                u["current"].as_str().unwrap().to_owned(),
                u["new"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        updates,
        [
            (
                "Pulumi.prod.yaml".to_owned(),
                format!("{host}/team/adapter:{}", sha40('a')),
                format!("{host}/team/adapter:{}", sha40('b')),
            ),
            (
                "infra/variables.tf".to_owned(),
                format!("{host}/team/app:1a2b3c4d"),
                format!("{host}/team/app:ffff0000"),
            ),
        ]
    );
    // Bounded cost: one tag list per repository, one manifest HEAD per admitted tag,
    // and one config blob per distinct image, never a config of an unadmitted tag.
    let cost = &report["cost"];
    // (The tag list of the local registry takes two pages per repository.)
    assert!(cost["tag_pages"].as_u64().unwrap() <= 4, "{cost}");
    assert_eq!(cost["manifest_heads"], 7, "{cost}");
    assert_eq!(cost["blob_gets"], 7, "{cost}");
    // 7 image manifests by digest, plus the index of the one multi-arch tag.
    assert_eq!(cost["manifest_gets"], 8, "{cost}");

    let out = freshet(
        root,
        docker_config.path(),
        &["apply", "--commit", "-o", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = json(&out);
    assert!(applied["commit"].is_string(), "{applied}");
    assert_eq!(
        std::fs::read_to_string(root.join("Pulumi.prod.yaml")).unwrap(),
        pulumi.replace(&sha40('a'), &sha40('b'))
    );
    assert_eq!(
        std::fs::read_to_string(root.join("infra/variables.tf")).unwrap(),
        variables.replace("\"1a2b3c4d\"", "\"ffff0000\"")
    );
    assert_eq!(git(root, &["status", "--porcelain"]), "");
    assert_eq!(git(root, &["rev-list", "--count", "HEAD"]).trim(), "2");

    // Nothing left to do.
    let out = freshet(root, docker_config.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The Python with helm-python-sdk that `scripts/setup` installs.
fn helm_python() -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("FRESHET_HELM_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(&std::env::var_os("HOME").expect("HOME"))
                .join(".cache/freshet/helm-venv")
        });
    let python = venv.join("bin/python");
    if python.exists() {
        return Some(python);
    }
    let has_python = Command::new("python3").arg("--version").output().is_ok();
    assert!(
        !has_python,
        "python3 is here but {} is not: run scripts/setup (it installs helm-python-sdk)",
        python.display()
    );
    eprintln!(
        "\n\n*** SKIPPED: no python3 on this machine, so real Helm (helm-python-sdk) cannot render the chart ***\n\n"
    );
    None
}

/// A chart whose helper switches `:`/`@` on a `sha256:` tag gets `tag: sha256:…` from
/// `digestForm=digest`, and real Helm renders `repo@sha256:…` from it.
#[tokio::test(flavor = "multi_thread")]
async fn a_chart_with_a_sha256_tag_helper_renders_repo_at_digest_with_real_helm() {
    let Some(python) = helm_python() else {
        return;
    };
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let host = registry.host();
    let pusher = Pusher::new(&registry).expect("pusher");
    let digest = push_build(
        &pusher,
        "team/app",
        "1.0.0",
        "2026-01-01T00:00:00Z",
        &[Platform::linux_amd64()],
    )
    .await
    .expect("push");

    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path();
    let docker_config = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/_helpers.tpl"),
        "{{- define \"app.image\" -}}\n{{- if hasPrefix \"sha256:\" .Values.image.tag -}}\n{{ .Values.image.repository }}@{{ .Values.image.tag }}\n{{- else -}}\n{{ .Values.image.repository }}:{{ .Values.image.tag }}\n{{- end -}}\n{{- end -}}\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {{ include \"app.image\" . | quote }}\n",
    )
    .unwrap();
    let values = format!(
        "image:\n  repository: {host}/team/app\n  tag: 1.0.0 # freshet: tag=1.0.0 policy=digest digestForm=digest\n"
    );
    std::fs::write(chart.join("values.yaml"), &values).unwrap();

    let out = freshet(chart, docker_config.path(), &["apply", "-o", "json", "."]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    // The templates are Helm's, not freshet's: skipped, not errors.
    assert_eq!(report["skipped"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(
        std::fs::read_to_string(chart.join("values.yaml")).unwrap(),
        values.replace("tag: 1.0.0 #", &format!("tag: {digest} #"))
    );
    let out = freshet(
        chart,
        docker_config.path(),
        &["plan", "--detailed-exitcode", "."],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let render = Command::new(python)
        .arg("-c")
        .arg("import sys, helm_python\nout = helm_python.Chart.load(sys.argv[1]).render({}, name='app', namespace='default')\nprint(''.join(out.values()))")
        .arg(chart)
        .output()
        .expect("python runs");
    assert!(
        render.status.success(),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
    let rendered = String::from_utf8_lossy(&render.stdout);
    assert!(
        rendered.contains(&format!("image: \"{host}/team/app@{digest}\"")),
        "{rendered}"
    );
}
