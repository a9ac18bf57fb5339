//! `freshet plan` and `freshet apply` as a user runs them: the built binary, a real
//! distribution registry seeded with the testbed fixtures, and real git repositories
//! with a bare repository as the push remote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use freshet_testbed::git::{git, identify};
use freshet_testbed::registry::fixtures::{self, RepoFixture};
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use serde_json::Value;

struct Bed {
    registry: RegistryServer,
    pusher: Pusher,
    api: RepoFixture,
    /// An empty docker config directory, so no user credentials are read.
    docker_config: tempfile::TempDir,
}

impl Bed {
    async fn start() -> Bed {
        let registry = RegistryServer::start(RegistryOptions::open())
            .await
            .expect("registry starts");
        let pusher = Pusher::new(&registry).expect("pusher");
        let api = fixtures::seed_api(&pusher).await.expect("seed team/api");
        Bed {
            registry,
            pusher,
            api,
            docker_config: tempfile::tempdir().unwrap(),
        }
    }

    fn api(&self, tag: &str) -> String {
        format!("{}/team/api:{tag}", self.registry.host())
    }

    /// Runs the binary in `cwd`.
    fn freshet(&self, cwd: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_freshet"));
        command.current_dir(cwd).args(args);
        if matches!(args.first(), Some(&"plan") | Some(&"apply")) {
            command
                .arg("--docker-config")
                .arg(self.docker_config.path());
        }
        command
            .env("GIT_AUTHOR_NAME", "freshet test")
            .env("GIT_AUTHOR_EMAIL", "test@freshet.invalid")
            .env("GIT_COMMITTER_NAME", "freshet test")
            .env("GIT_COMMITTER_EMAIL", "test@freshet.invalid")
            .env_remove("FRESHET_GIT_TOKEN")
            .output()
            .expect("freshet runs")
    }
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

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

/// The fixture repository: every format, each with a marker.
fn files(bed: &Bed, root: &Path) {
    let host = bed.registry.host();
    write(
        root,
        "deploy/app.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: \"{}\" # freshet: policy=semver:minor\n",
            bed.api("1.0.0")
        ),
    );
    write(
        root,
        "chart/values.yaml",
        &format!(
            "image:\n  repository: {host}/team/api # freshet: policy=semver:patch pin=tag+digest\n  tag: 1.0.0-alpine\n  pullPolicy: IfNotPresent\n"
        ),
    );
    write(
        root,
        "infra/main.tf",
        &format!(
            "resource \"kubernetes_pod\" \"api\" {{\r\n  spec {{\r\n    container {{\r\n      image = \"{}\" // freshet: policy=semver:patch\r\n    }}\r\n  }}\r\n}}\r\n",
            bed.api("1.0.0")
        ),
    );
    write(
        root,
        "build/Dockerfile",
        &format!(
            "# freshet: policy=semver:major\nFROM --platform=linux/amd64 {} AS base\n",
            bed.api("2.0.0")
        ),
    );
    write(
        root,
        "compose.yaml",
        &format!(
            "services:\n  api:\n    image: {} # freshet: policy=digest pin=tag+digest\n",
            bed.api("stable")
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_prints_the_json_contract_and_detailed_exit_codes() {
    let bed = Bed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    files(&bed, root);

    let out = bed.freshet(
        root,
        &["plan", "--output", "json", "--detailed-exitcode", "."],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(keys(&report), ["cost", "errors", "skipped", "updates"]);
    assert!(report["cost"]["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], Value::Array(vec![]));
    let updates = report["updates"].as_array().unwrap();
    for u in updates {
        assert_eq!(
            keys(u),
            ["current", "file", "line", "new", "policy", "reason"]
        );
    }
    let summary: Vec<(String, u64, String, String)> = updates
        .iter()
        .map(|u| {
            (
                u["file"].as_str().unwrap().to_owned(),
                u["line"].as_u64().unwrap(),
                u["current"].as_str().unwrap().to_owned(),
                u["new"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let host = bed.registry.host();
    assert_eq!(
        summary,
        [
            (
                "chart/values.yaml".to_owned(),
                3,
                format!("{host}/team/api:1.0.0-alpine"),
                format!(
                    "{host}/team/api:1.0.1-alpine@{}",
                    bed.api.digest("1.0.1-alpine")
                ),
            ),
            (
                "compose.yaml".to_owned(),
                3,
                bed.api("stable"),
                format!("{}@{}", bed.api("stable"), bed.api.digest("stable")),
            ),
            (
                "deploy/app.yaml".to_owned(),
                8,
                bed.api("1.0.0"),
                bed.api("1.1.0")
            ),
            (
                "infra/main.tf".to_owned(),
                4,
                bed.api("1.0.0"),
                bed.api("1.0.1")
            ),
        ]
    );
    assert_eq!(updates[2]["policy"], "semver:minor");
    assert!(!updates[2]["reason"].as_str().unwrap().is_empty());

    // Plain exit codes: 0 with updates pending.
    let out = bed.freshet(root, &["plan", "--output", "json", "."]);
    assert_eq!(out.status.code(), Some(0));

    // A broken file is an error (exit 1 wins over pending updates), and the rest is
    // still planned.
    write(root, "broken.yaml", "a: 1\nimage: [oops\n");
    let out = bed.freshet(root, &["plan", "-o", "json", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["updates"].as_array().unwrap().len(), 4);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(keys(&errors[0]), ["file", "line", "message"]);
    assert_eq!(errors[0]["file"], "broken.yaml");
    assert!(errors[0]["line"].as_u64().unwrap() >= 2, "{errors:?}");
    let out = bed.freshet(root, &["plan", "."]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 update(s) pending, 1 error(s)"), "{text}");
    assert!(text.contains("deploy/app.yaml:8"), "{text}");
    std::fs::remove_file(root.join("broken.yaml")).unwrap();

    // Applying writes byte-minimal edits; planning again finds nothing (exit 0).
    let out = bed.freshet(root, &["apply", "."]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(root, "infra/main.tf"),
        format!(
            "resource \"kubernetes_pod\" \"api\" {{\r\n  spec {{\r\n    container {{\r\n      image = \"{}\" // freshet: policy=semver:patch\r\n    }}\r\n  }}\r\n}}\r\n",
            bed.api("1.0.1")
        )
    );
    assert_eq!(
        read(root, "chart/values.yaml"),
        format!(
            "image:\n  repository: {host}/team/api # freshet: policy=semver:patch pin=tag+digest\n  tag: 1.0.1-alpine\n  digest: {}\n  pullPolicy: IfNotPresent\n",
            bed.api.digest("1.0.1-alpine")
        )
    );
    let out = bed.freshet(root, &["plan", "-o", "json", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_tag_repins_the_digest() {
    let mut bed = Bed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "app.yaml",
        &format!(
            "image: {}@{} # freshet: policy=semver:patch pin=tag+digest\n",
            bed.api("1.0.1"),
            bed.api.digest("1.0.1")
        ),
    );
    let out = bed.freshet(root, &["plan", "-o", "json", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let moved = fixtures::move_tag(&bed.pusher, &mut bed.api, "1.0.1", "2")
        .await
        .unwrap();
    let out = bed.freshet(root, &["plan", "-o", "json", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    assert_eq!(
        report["updates"][0]["new"],
        format!("{}@{}", bed.api("1.0.1"), moved.digest)
    );
    assert!(
        report["updates"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("moved"),
        "{report}"
    );
}

/// Regression (issue 15): with every lookup failing, `plan --detailed-exitcode` said
/// `"errors": []`, "0 error(s)" and exited 0 ("nothing pending"), so a CI gate read
/// "up to date" forever. A failed lookup is an error with its class, file, line and
/// reference; the summary counts it; the exit code is 1; `apply` still writes what it
/// could and exits 1.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_is_an_error_not_nothing_pending() {
    let bed = Bed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "app.yaml",
        &format!(
            "a:\n  image: 127.0.0.1:9/team/api:1.0.0 # freshet: policy=semver:minor\nb:\n  image: {} # freshet: policy=semver:minor\n",
            bed.api("1.0.0")
        ),
    );
    let args = ["--detailed-exitcode", "--max-attempts", "1"];
    let out = bed.freshet(root, &[&["plan", "-o", "json"][..], &args[..]].concat());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0]["file"], "app.yaml");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["class"], "connect");
    assert_eq!(errors[0]["reference"], "127.0.0.1:9/team/api:1.0.0");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("listing tags"),
        "{report}"
    );
    assert_eq!(report["updates"].as_array().unwrap().len(), 1, "{report}");

    let out = bed.freshet(root, &[&["plan"][..], &args[..]].concat());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 update(s) pending, 1 error(s) (1 failed registry lookup(s))"),
        "{text}"
    );
    assert!(text.contains("error: app.yaml:2: [connect] "), "{text}");

    // apply writes what it could, and still fails.
    let out = bed.freshet(root, &["apply", "--max-attempts", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let after = read(root, "app.yaml");
    assert!(after.contains("127.0.0.1:9/team/api:1.0.0"), "{after}");
    assert!(after.contains(&bed.api("1.1.0")), "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_requires_commit() {
    let bed = Bed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = bed.freshet(dir.path(), &["apply", "--push", "."]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--commit"));
}

// --- git ---------------------------------------------------------------------------

/// A bare remote seeded with the fixture files, and two clones of it.
struct Repos {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
    other: PathBuf,
}

fn repos(bed: &Bed) -> Repos {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("remote.git");
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(
        dir.path(),
        &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
    );
    git(&seed, &["init", "--quiet", "-b", "main"]);
    identify(&seed);
    files(bed, &seed);
    write(&seed, "README.md", "fixture\n");
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "--quiet", "-m", "seed"]);
    let url = format!("file://{}", bare.display());
    git(&seed, &["push", "--quiet", &url, "main"]);
    let clone = |name: &str| {
        let path = dir.path().join(name);
        git(dir.path(), &["clone", "--quiet", &url, name]);
        identify(&path);
        path
    };
    let work = clone("work");
    let other = clone("other");
    Repos {
        _dir: dir,
        bare,
        work,
        other,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_commits_once_and_pushes_through_a_concurrent_push() {
    let bed = Bed::start().await;
    let r = repos(&bed);
    // Someone else pushes while our clone is stale: our first push is rejected.
    write(&r.other, "README.md", "someone else\n");
    git(&r.other, &["commit", "--quiet", "-am", "someone else"]);
    git(&r.other, &["push", "--quiet", "origin", "main"]);
    let theirs = git(&r.bare, &["rev-parse", "main"]);

    let out = bed.freshet(
        &r.work,
        &[
            "apply",
            "--commit",
            "--push",
            "--message",
            r"chore: bump {count} image(s)\n\n{updates}\n",
            "-o",
            "json",
            ".",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report = json(&out);
    assert_eq!(report["pushed"], true);
    assert_eq!(report["written"].as_array().unwrap().len(), 4, "{report}");
    let head = git(&r.bare, &["rev-parse", "main"]);
    assert_eq!(report["commit"], head);
    assert_eq!(git(&r.bare, &["rev-parse", "main~1"]), theirs);
    let message = git(&r.bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.starts_with("chore: bump 4 image(s)\n\n- "),
        "{message}"
    );
    assert_eq!(message.lines().count(), 6, "{message}");
    assert!(
        message.contains(&format!(
            "- deploy/app.yaml:8 {} -> {}",
            bed.api("1.0.0"),
            bed.api("1.1.0")
        )),
        "{message}"
    );
    assert_eq!(
        git(&r.bare, &["show", "--name-only", "--format=", "main"])
            .lines()
            .count(),
        4
    );
    assert_eq!(git(&r.work, &["status", "--porcelain"]), "");
    assert!(git(&r.bare, &["show", "main:deploy/app.yaml"]).contains(&bed.api("1.1.0")));

    // Nothing left to do: no new commit, exit 0.
    let out = bed.freshet(&r.work, &["apply", "--commit", "--push", "."]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git(&r.bare, &["rev-parse", "main"]), head);
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_to_a_branch_leaves_main_alone() {
    let bed = Bed::start().await;
    let r = repos(&bed);
    let main = git(&r.bare, &["rev-parse", "main"]);
    let out = bed.freshet(
        &r.work,
        &[
            "apply",
            "--commit",
            "--push",
            "--branch",
            "freshet/bump",
            "deploy",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git(&r.bare, &["rev-parse", "main"]), main);
    let pushed = git(&r.bare, &["rev-parse", "freshet/bump"]);
    assert_eq!(git(&r.bare, &["rev-parse", "freshet/bump~1"]), main);
    assert_eq!(
        git(&r.bare, &["show", "--name-only", "--format=", &pushed]),
        "deploy/app.yaml"
    );
    assert_eq!(
        git(&r.work, &["symbolic-ref", "--short", "HEAD"]),
        "freshet/bump"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_refuses_files_with_uncommitted_changes_and_a_conflict_leaves_the_remote_alone() {
    let bed = Bed::start().await;
    let r = repos(&bed);
    let before = git(&r.work, &["rev-parse", "HEAD"]);
    // A local edit in a file freshet would change: that file is refused, the rest go on.
    let app = read(&r.work, "deploy/app.yaml");
    write(&r.work, "deploy/app.yaml", &format!("{app}# local edit\n"));
    let out = bed.freshet(&r.work, &["apply", "--commit", "-o", "json", "."]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0]["file"], "deploy/app.yaml");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("uncommitted")
    );
    assert_eq!(
        read(&r.work, "deploy/app.yaml"),
        format!("{app}# local edit\n")
    );
    assert_eq!(
        git(
            &r.work,
            &["rev-list", "--count", &format!("{before}..HEAD")]
        ),
        "1"
    );
    assert!(
        !git(&r.work, &["show", "--name-only", "--format=", "HEAD"]).contains("deploy/app.yaml")
    );
    git(&r.work, &["checkout", "--", "deploy/app.yaml"]);

    // A conflicting concurrent change to the same line: the rebase is aborted, the
    // remote keeps their commit, ours stays local, and the run fails saying so.
    let theirs_text = read(&r.other, "deploy/app.yaml").replace("1.0.0", "2.0.0");
    write(&r.other, "deploy/app.yaml", &theirs_text);
    git(&r.other, &["commit", "--quiet", "-am", "someone else"]);
    git(&r.other, &["push", "--quiet", "origin", "main"]);
    let theirs = git(&r.bare, &["rev-parse", "main"]);
    let out = bed.freshet(
        &r.work,
        &["apply", "--commit", "--push", "-o", "json", "deploy"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let message = report["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("rebase"), "{message}");
    assert!(message.contains("remote unchanged"), "{message}");
    assert_eq!(report["pushed"], false);
    assert_eq!(git(&r.bare, &["rev-parse", "main"]), theirs);
    assert_eq!(git(&r.work, &["status", "--porcelain"]), "");
    assert!(!r.work.join(".git/rebase-merge").exists());
}
