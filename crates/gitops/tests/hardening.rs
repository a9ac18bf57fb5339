//! Issue 16 on the git and file-write side, against real files and real git: symbolic
//! links never lead a write out of the repository, remote URLs and tokens never reach a
//! message, `--remote` values never reach git as options, and a hanging remote is cut
//! off by the timeout.

use std::io::Write as _;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use freshet_gitops::{
    Git, GitError, GitToken, RemoteError, WriteError, write_atomic, write_within,
};
use freshet_testbed::git::{git, identify};

/// A git repository with one committed file, beside a directory outside it.
struct Repo {
    _dir: tempfile::TempDir,
    work: PathBuf,
    outside: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(work.join("base")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        git(&work, &["init", "--quiet", "-b", "main"]);
        identify(&work);
        std::fs::write(work.join("base/app.yaml"), "image: nginx:1.0.0\n").unwrap();
        std::fs::write(outside.join("secret.yaml"), "image: outside:1.0.0\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", "seed"]);
        Repo {
            _dir: dir,
            work,
            outside,
        }
    }

    fn link(&self, name: &str, target: impl AsRef<Path>) -> PathBuf {
        let path = self.work.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, &path).unwrap();
        path
    }
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_symlink()
}

#[test]
fn a_committed_link_out_of_the_repository_is_refused_and_stays_a_link() {
    let repo = Repo::new();
    let link = repo.link("deploy/app.yaml", repo.outside.join("secret.yaml"));
    git(&repo.work, &["add", "deploy/app.yaml"]);
    git(&repo.work, &["commit", "--quiet", "-m", "link"]);

    // Both the explicit-root and the inferred-root entry points refuse it.
    let err = write_within(&repo.work, &link, b"image: outside:2.0.0\n").unwrap_err();
    assert!(matches!(err, WriteError::LinkOutside { .. }), "{err:?}");
    assert!(err.to_string().contains("outside the repository"), "{err}");
    let err = write_atomic(&link, b"image: outside:2.0.0\n").unwrap_err();
    assert!(matches!(err, WriteError::LinkOutside { .. }), "{err:?}");

    assert!(is_link(&link), "the link must stay a link");
    assert_eq!(
        std::fs::read_to_string(repo.outside.join("secret.yaml")).unwrap(),
        "image: outside:1.0.0\n"
    );
    assert_eq!(git(&repo.work, &["status", "--porcelain"]), "");
}

#[test]
fn a_link_inside_the_repository_is_edited_at_its_target_and_stays_a_link() {
    let repo = Repo::new();
    let link = repo.link("deploy/app.yaml", "../base/app.yaml");
    let written = write_within(&repo.work, &link, b"image: nginx:1.1.0\n").unwrap();
    assert_eq!(
        written,
        std::fs::canonicalize(repo.work.join("base/app.yaml")).unwrap()
    );
    assert!(is_link(&link));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../base/app.yaml")
    );
    assert_eq!(
        std::fs::read_to_string(repo.work.join("base/app.yaml")).unwrap(),
        "image: nginx:1.1.0\n"
    );
    // The inferred root (the directory holding .git) gives the same answer.
    write_atomic(&link, b"image: nginx:1.2.0\n").unwrap();
    assert!(is_link(&link));
    assert_eq!(
        std::fs::read_to_string(repo.work.join("base/app.yaml")).unwrap(),
        "image: nginx:1.2.0\n"
    );
}

#[test]
fn a_dangling_link_is_refused_and_nothing_is_created() {
    let repo = Repo::new();
    let link = repo.link("deploy/app.yaml", "../base/missing.yaml");
    let err = write_within(&repo.work, &link, b"x").unwrap_err();
    assert!(matches!(err, WriteError::DanglingLink { .. }), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(is_link(&link));
    assert!(!repo.work.join("base/missing.yaml").exists());
}

#[test]
fn a_link_to_a_directory_outside_is_refused_for_the_link_and_for_files_under_it() {
    let repo = Repo::new();
    let dir_link = repo.link("deploy", &repo.outside);
    // The link itself names a directory outside.
    let err = write_within(&repo.work, &dir_link, b"x").unwrap_err();
    assert!(matches!(err, WriteError::LinkOutside { .. }), "{err:?}");
    // A file reached through it: its directory is outside the repository.
    let through = repo.work.join("deploy/secret.yaml");
    let err = write_within(&repo.work, &through, b"image: outside:2.0.0\n").unwrap_err();
    assert!(
        matches!(err, WriteError::DirectoryOutside { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let err = write_atomic(&through, b"image: outside:2.0.0\n").unwrap_err();
    assert!(
        matches!(err, WriteError::DirectoryOutside { .. }),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.outside.join("secret.yaml")).unwrap(),
        "image: outside:1.0.0\n"
    );
    // A link to a directory inside is not a file either.
    let inside = repo.link("base-link", "base");
    let err = write_within(&repo.work, &inside, b"x").unwrap_err();
    assert!(matches!(err, WriteError::NotAFile { .. }), "{err:?}");
}

#[test]
fn an_atomic_write_keeps_the_file_mode_and_leaves_no_temporary_file() {
    let repo = Repo::new();
    for mode in [0o755, 0o640, 0o600] {
        let path = repo.work.join("base/app.yaml");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        write_within(&repo.work, &path, b"image: nginx:1.1.0\n").unwrap();
        let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(got, mode, "{mode:o}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(repo.work.join("base"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".freshet-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A bare remote with one commit, cloned; returns (keep, bare, work).
fn remote_and_clone() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("remote.git");
    let work = dir.path().join("work");
    git(
        dir.path(),
        &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
    );
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "--quiet", "-b", "main"]);
    identify(&work);
    std::fs::write(work.join("app.yaml"), "image: nginx:1.0.0\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "seed"]);
    let url = format!("file://{}", bare.display());
    git(&work, &["remote", "add", "origin", &url]);
    git(&work, &["push", "--quiet", "origin", "main"]);
    (dir, bare, work)
}

async fn commit_a_change(work: &Path) -> Git {
    let app = work.join("app.yaml");
    std::fs::write(&app, "image: nginx:1.1.0\n").unwrap();
    let repo = Git::new(work);
    repo.commit(&[app], "freshet: bump").await.unwrap();
    repo
}

#[tokio::test]
async fn a_remote_starting_with_a_dash_never_reaches_git_as_an_option() {
    let (_keep, bare, work) = remote_and_clone();
    let before = git(&bare, &["rev-parse", "main"]);
    let marker = work.join("pwned");
    let script = work.join("evil.sh");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = commit_a_change(&work).await;

    for remote in [
        format!("--receive-pack={}", script.display()),
        format!("--exec={}", script.display()),
        "-o".to_owned(),
    ] {
        let err = repo.clone().remote(&remote).push("main").await.unwrap_err();
        assert!(
            matches!(err, GitError::Refused(RemoteError::OptionLikeRemote(_))),
            "{remote}: {err:?}"
        );
    }
    for branch in ["--force", "-d", "a..b"] {
        let err = repo.push(branch).await.unwrap_err();
        assert!(
            matches!(err, GitError::Refused(RemoteError::InvalidBranch(_))),
            "{branch}: {err:?}"
        );
        let err = repo.switch_branch(branch).await.unwrap_err();
        assert!(matches!(err, GitError::Refused(_)), "{branch}: {err:?}");
    }
    assert!(!marker.exists(), "a --remote value ran a program");
    assert_eq!(git(&bare, &["rev-parse", "main"]), before);
}

#[tokio::test]
async fn a_file_named_like_a_glob_commits_only_itself() {
    let (_keep, _bare, work) = remote_and_clone();
    std::fs::write(work.join("other.yaml"), "image: redis:7.0.0\n").unwrap();
    std::fs::write(work.join("*.yaml"), "image: a:1\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "more"]);
    std::fs::write(work.join("*.yaml"), "image: a:2\n").unwrap();
    std::fs::write(work.join("other.yaml"), "image: redis:7.1.0\n").unwrap();
    Git::new(&work)
        .commit(&[work.join("*.yaml")], "freshet: bump")
        .await
        .unwrap();
    assert_eq!(
        git(&work, &["show", "--name-only", "--format=", "HEAD"]),
        "*.yaml"
    );
    assert_eq!(git(&work, &["diff", "--name-only"]), "other.yaml");
}

/// A TCP server on 127.0.0.1 that accepts connections and never answers; it stops with
/// the test's runtime.
async fn silent_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    port
}

/// A TCP server on 127.0.0.1 that answers every request with `401` and a body holding
/// escape sequences.
async fn refusing_server() -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = stream.read(&mut buf).await;
                let body = "\u{1b}[2Jdenied";
                let answer = format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// The wait a test allows for something that must finish: far beyond any timeout set,
/// so only a hang trips it.
const BOUND: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_hanging_remote_is_killed_at_the_timeout_and_the_message_says_which() {
    let (_keep, _bare, work) = remote_and_clone();
    let port = silent_server().await;
    let repo = commit_a_change(&work)
        .await
        .remote(format!("http://127.0.0.1:{port}/r.git"))
        .timeout(Duration::from_secs(2));
    let err = tokio::time::timeout(BOUND, repo.push("main"))
        .await
        .expect("push must not hang")
        .unwrap_err();
    match &err {
        GitError::TimedOut { command, timeout } => {
            assert_eq!(*timeout, Duration::from_secs(2));
            assert!(command.starts_with("push"), "{command}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_transient());
    assert!(err.to_string().contains("within 2s"), "{err}");
    // The commit is kept locally.
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn a_push_failure_never_shows_the_remote_password_or_raw_controls() {
    let (_keep, _bare, work) = remote_and_clone();
    let port = refusing_server().await;
    let url = format!("http://alice:s3cret-pw@127.0.0.1:{port}/r.git?access_token=t0ken-value");
    let repo = commit_a_change(&work).await.remote(&url);
    let err = tokio::time::timeout(BOUND, repo.push("main"))
        .await
        .expect("push must not hang")
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, GitError::Failed { .. }), "{shown}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(!shown.contains("t0ken-value"), "{shown}");
    assert!(!shown.contains('\u{1b}'), "{shown}");
    // A configured remote holding the password in its URL is scrubbed the same way.
    git(&work, &["remote", "set-url", "origin", &url]);
    let err = Git::new(&work).push("main").await.unwrap_err().to_string();
    assert!(!err.contains("s3cret-pw"), "{err}");
    assert!(!err.contains("t0ken-value"), "{err}");
}

#[tokio::test]
async fn a_token_is_refused_for_plain_http_but_allowed_to_loopback() {
    let (_keep, _bare, work) = remote_and_clone();
    let token = GitToken::new("s3cret-token");
    let repo = commit_a_change(&work).await.token(&token);
    // A configured remote and a URL given directly, both plain http to a real host.
    git(
        &work,
        &["remote", "add", "plain", "http://git.example.invalid/r.git"],
    );
    for remote in ["plain", "http://u:pw@git.example.invalid/r.git"] {
        let err = repo.clone().remote(remote).push("main").await.unwrap_err();
        assert!(
            matches!(err, GitError::Refused(RemoteError::TokenOverPlainHttp(_))),
            "{remote}: {err:?}"
        );
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    // A push URL rewritten to plain http by insteadOf is caught too.
    git(
        &work,
        &[
            "config",
            "url.http://git.example.invalid/.pushInsteadOf",
            "https://git.example.invalid/",
        ],
    );
    git(
        &work,
        &[
            "remote",
            "add",
            "rewritten",
            "https://git.example.invalid/r.git",
        ],
    );
    let err = repo
        .clone()
        .remote("rewritten")
        .check_push("main")
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::Refused(_)), "{err:?}");
    // Loopback over http is allowed (with a warning); https and file are fine.
    let port = refusing_server().await;
    for remote in [
        format!("http://127.0.0.1:{port}/r.git"),
        "origin".to_owned(),
    ] {
        repo.clone()
            .remote(&remote)
            .check_push("main")
            .await
            .unwrap();
    }
    // Without a token, plain http is not refused.
    Git::new(&work)
        .remote("plain")
        .check_push("main")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_flood_of_remote_output_is_bounded_escaped_and_keeps_gits_own_diagnosis() {
    let (_keep, bare, work) = remote_and_clone();
    let hook = bare.join("hooks/pre-receive");
    let mut script = std::fs::File::create(&hook).unwrap();
    writeln!(
        script,
        "#!/bin/sh\ni=0\nwhile [ $i -lt 20000 ]; do printf 'junk \\033[2J\\007 line %s http://u:pw@h/r\\n' $i; i=$((i+1)); done >&2\nexit 1"
    )
    .unwrap();
    drop(script);
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = commit_a_change(&work).await;
    let err = tokio::time::timeout(BOUND, repo.push("main"))
        .await
        .expect("push must not hang")
        .unwrap_err();
    let GitError::Failed { output, .. } = &err else {
        panic!("expected a failure, got {err:?}");
    };
    assert!(output.len() <= 2048, "{}", output.len());
    assert!(!output.chars().any(char::is_control), "{output}");
    assert!(!output.contains("pw@"), "{output}");
    // git's own diagnosis and its per-ref status come before the remote's lines.
    let before_remote = &output[..output.find("remote:").unwrap_or(output.len())];
    assert!(
        before_remote.contains("error: failed to push some refs"),
        "{output}"
    );
    assert!(
        before_remote.contains("pre-receive hook declined"),
        "{output}"
    );
}

#[test]
fn a_temporary_file_left_by_a_killed_writer_is_swept_and_a_live_ones_is_kept() {
    let repo = Repo::new();
    let base = repo.work.join("base");
    // No process has pid 4294967295; this test process is alive.
    let dead = base.join(".freshet-4294967295-abc123.tmp");
    let live = base.join(format!(".freshet-{}-abc123.tmp", std::process::id()));
    let unrelated = base.join(".freshet-notes.tmp");
    for path in [&dead, &live, &unrelated] {
        std::fs::write(path, "partial").unwrap();
    }
    write_within(&repo.work, &base.join("app.yaml"), b"image: nginx:1.1.0\n").unwrap();
    assert!(!dead.exists(), "a dead writer's temporary file is swept");
    assert!(live.exists(), "a live writer's temporary file is kept");
    assert!(unrelated.exists(), "a file not named by freshet is kept");
}

#[tokio::test]
async fn an_apply_killed_before_its_commit_is_committed_by_the_next_run() {
    let repo = Repo::new();
    let work = &repo.work;
    for f in ["a", "b", "c", "d"] {
        std::fs::write(
            work.join(format!("base/{f}.yaml")),
            format!("image: {f}:1\n"),
        )
        .unwrap();
    }
    git(work, &["add", "."]);
    git(work, &["commit", "--quiet", "-m", "files"]);
    let head = git(work, &["rev-parse", "HEAD"]);
    let planned: Vec<(PathBuf, Vec<u8>)> = ["a", "b", "c", "d"]
        .iter()
        .map(|f| {
            (
                work.join(format!("base/{f}.yaml")),
                format!("image: {f}:2\n").into_bytes(),
            )
        })
        .collect();
    let git_ = Git::new(work);
    git_.journal_begin(&planned, "freshet: update 4 image reference(s)")
        .await
        .unwrap();
    // The run wrote a and b, then was killed; c was never written; d was edited by hand.
    std::fs::write(work.join("base/a.yaml"), "image: a:2\n").unwrap();
    std::fs::write(work.join("base/b.yaml"), "image: b:2\n").unwrap();
    std::fs::write(work.join("base/d.yaml"), "image: d:9\n").unwrap();

    let commit = git_.journal_recover().await.unwrap().expect("a commit");
    assert_eq!(git(work, &["rev-parse", "HEAD~1"]), head);
    assert_eq!(git(work, &["rev-parse", "HEAD"]), commit);
    assert_eq!(
        git(work, &["show", "--name-only", "--format=", "HEAD"]),
        "base/a.yaml\nbase/b.yaml"
    );
    assert!(git(work, &["log", "-1", "--format=%B"]).starts_with("freshet: update 4"));
    assert_eq!(git(work, &["status", "--porcelain"]), "M base/d.yaml");
    // The record is gone: a second recovery does nothing.
    assert_eq!(git_.journal_recover().await.unwrap(), None);
    // After a completed run (end called), nothing is recovered either.
    git_.journal_begin(&planned, "m").await.unwrap();
    git_.journal_end().await.unwrap();
    assert_eq!(git_.journal_recover().await.unwrap(), None);
}

#[tokio::test]
async fn a_user_and_password_push_to_a_server_that_demands_them_and_never_show() {
    let (keep, bare, work) = remote_and_clone();
    let server = freshet_testbed::git_http::GitHttpServer::start(
        keep.path(),
        freshet_testbed::registry::Credentials::new("git-bot", "s3cret-git-pw"),
    )
    .await
    .unwrap();
    let url = server.url("remote.git");
    let repo = commit_a_change(&work).await.remote(url.as_str());
    // A wrong password: refused by the server, and neither password is shown.
    let wrong = GitToken::basic_auth("git-bot", "wr0ng-password");
    let err = repo.clone().token(&wrong).push("main").await.unwrap_err();
    let shown = format!("{err} {err:?} {wrong:?} {wrong}");
    assert!(!shown.contains("wr0ng-password"), "{shown}");
    assert!(!shown.contains("s3cret-git-pw"), "{shown}");
    // The right ones: pushed, as that user.
    let right = GitToken::basic_auth("git-bot", "s3cret-git-pw");
    let pushed = repo.token(&right).push("main").await.unwrap();
    assert_eq!(git(&bare, &["rev-parse", "main"]), pushed.commit);
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path.ends_with("/git-receive-pack") && r.user.as_deref() == Some("git-bot")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.status == 401 && r.user.is_none()),
        "{requests:?}"
    );
}
