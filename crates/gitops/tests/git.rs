//! `Git` against real repositories: a bare repository over `file://` is the remote, and
//! a second, stale clone pushes first to force the fetch-rebase-retry path.

use freshet_gitops::{Git, GitError};
use freshet_testbed::git::{git, identify};
use std::path::{Path, PathBuf};

/// A bare remote with one commit on `main`, and the file URL to clone it from.
struct Remote {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    url: String,
}

impl Remote {
    fn new() -> Remote {
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
        std::fs::write(seed.join("app.yaml"), "image: nginx:1.0.0\n").unwrap();
        std::fs::write(seed.join("other.yaml"), "image: redis:7.0.0\n").unwrap();
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "--quiet", "-m", "seed"]);
        let url = format!("file://{}", bare.display());
        git(&seed, &["push", "--quiet", &url, "main"]);
        Remote {
            _dir: dir,
            bare,
            url,
        }
    }

    /// A fresh clone in its own temporary directory.
    fn clone(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["clone", "--quiet", &self.url, &work.display().to_string()],
        );
        identify(&work);
        (dir, work)
    }

    fn head(&self) -> String {
        git(&self.bare, &["rev-parse", "refs/heads/main"])
    }
}

fn edit(work: &Path, file: &str, text: &str) -> PathBuf {
    let path = work.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn commit_takes_only_the_written_files_and_push_fast_forwards() {
    let remote = Remote::new();
    let (_keep, work) = remote.clone();
    let app = edit(&work, "app.yaml", "image: nginx:1.1.0\n");
    // An unrelated staged change must stay staged and out of freshet's commit.
    edit(&work, "other.yaml", "image: redis:7.1.0\n");
    git(&work, &["add", "other.yaml"]);

    let repo = Git::new(&work);
    let commit = repo
        .commit(
            &[app],
            "freshet: update 1 image reference(s)\n\n- app.yaml:1 nginx:1.0.0 -> nginx:1.1.0\n",
        )
        .await
        .unwrap();
    assert_eq!(
        git(&work, &["show", "--name-only", "--format=", "HEAD"]),
        "app.yaml"
    );
    assert_eq!(
        git(&work, &["diff", "--cached", "--name-only"]),
        "other.yaml"
    );
    assert!(git(&work, &["log", "-1", "--format=%B"]).contains("nginx:1.0.0 -> nginx:1.1.0"));

    let outcome = repo.push("main").await.unwrap();
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.commit, commit);
    assert_eq!(remote.head(), commit);
}

#[tokio::test]
async fn a_stale_clone_fetches_rebases_and_retries_the_push() {
    let remote = Remote::new();
    let (_a, stale) = remote.clone();
    let (_b, other) = remote.clone();
    // Someone else pushes first, touching a different file.
    edit(&other, "other.yaml", "image: redis:7.2.0\n");
    git(&other, &["commit", "--quiet", "-am", "someone else"]);
    git(&other, &["push", "--quiet", "origin", "main"]);
    let theirs = remote.head();

    let app = edit(&stale, "app.yaml", "image: nginx:1.1.0\n");
    let repo = Git::new(&stale);
    let ours = repo.commit(&[app], "freshet: bump").await.unwrap();
    let outcome = repo.push("main").await.unwrap();

    assert_eq!(outcome.attempts, 2, "the first push must be rejected");
    assert_ne!(outcome.commit, ours, "the commit was rebased");
    assert_eq!(remote.head(), outcome.commit);
    assert_eq!(git(&remote.bare, &["rev-parse", "main~1"]), theirs);
    assert_eq!(
        git(&remote.bare, &["show", "main:other.yaml"]),
        "image: redis:7.2.0"
    );
    assert_eq!(
        git(&remote.bare, &["show", "main:app.yaml"]),
        "image: nginx:1.1.0"
    );
    assert_eq!(git(&stale, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn a_conflicting_remote_change_aborts_the_rebase_and_leaves_everything_consistent() {
    let remote = Remote::new();
    let (_a, stale) = remote.clone();
    let (_b, other) = remote.clone();
    edit(&other, "app.yaml", "image: nginx:2.0.0\n");
    git(
        &other,
        &[
            "commit",
            "--quiet",
            "-am",
            "someone else bumps the same line",
        ],
    );
    git(&other, &["push", "--quiet", "origin", "main"]);
    let theirs = remote.head();

    let app = edit(&stale, "app.yaml", "image: nginx:1.1.0\n");
    let repo = Git::new(&stale);
    let ours = repo.commit(&[app], "freshet: bump").await.unwrap();
    let err = repo.push("main").await.unwrap_err();

    match &err {
        GitError::RebaseConflict { commit, branch, .. } => {
            assert_eq!(commit, &ours);
            assert_eq!(branch, "main");
        }
        other => panic!("expected a rebase conflict, got {other:?}"),
    }
    assert!(err.to_string().contains("remote unchanged"), "{err}");
    // Remote untouched, no rebase in progress, local commit kept, tree and index clean.
    assert_eq!(remote.head(), theirs);
    assert!(!stale.join(".git/rebase-merge").exists());
    assert!(!stale.join(".git/rebase-apply").exists());
    assert_eq!(git(&stale, &["rev-parse", "HEAD"]), ours);
    assert_eq!(git(&stale, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn a_failed_commit_restores_the_index_and_keeps_the_written_file() {
    let remote = Remote::new();
    let (_keep, work) = remote.clone();
    let hook = work.join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\necho refusing >&2\nexit 1\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = git(&work, &["rev-parse", "HEAD"]);
    let app = edit(&work, "app.yaml", "image: nginx:1.1.0\n");

    let err = Git::new(&work)
        .commit(&[app], "freshet: bump")
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::Commit(_)), "{err:?}");
    assert!(err.to_string().contains("refusing"), "{err}");
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), before);
    assert_eq!(git(&work, &["diff", "--cached", "--name-only"]), "");
    assert_eq!(git(&work, &["diff", "--name-only"]), "app.yaml");
}

#[tokio::test]
async fn a_push_to_an_unreachable_remote_keeps_the_commit_and_says_so() {
    let remote = Remote::new();
    let (_keep, work) = remote.clone();
    let app = edit(&work, "app.yaml", "image: nginx:1.1.0\n");
    let repo = Git::new(&work);
    let ours = repo.commit(&[app], "freshet: bump").await.unwrap();
    git(
        &work,
        &[
            "remote",
            "set-url",
            "origin",
            "file:///nonexistent/remote.git",
        ],
    );

    let err = repo.push("main").await.unwrap_err();
    assert!(matches!(err, GitError::Failed { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), ours);
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn push_to_a_new_branch_creates_it_on_the_remote() {
    let remote = Remote::new();
    let (_keep, work) = remote.clone();
    let repo = Git::new(&work);
    repo.switch_branch("freshet/updates").await.unwrap();
    assert_eq!(repo.current_branch().await.unwrap(), "freshet/updates");
    let app = edit(&work, "app.yaml", "image: nginx:1.1.0\n");
    let ours = repo.commit(&[app], "freshet: bump").await.unwrap();
    repo.push("freshet/updates").await.unwrap();
    assert_eq!(
        git(&remote.bare, &["rev-parse", "refs/heads/freshet/updates"]),
        ours
    );
    assert_ne!(remote.head(), ours, "main is untouched");
}

#[tokio::test]
async fn discover_finds_the_top_of_the_working_tree() {
    let remote = Remote::new();
    let (_keep, work) = remote.clone();
    std::fs::create_dir_all(work.join("deploy/prod")).unwrap();
    let git = Git::discover(&work.join("deploy/prod")).await.unwrap();
    assert_eq!(
        std::fs::canonicalize(git.dir()).unwrap(),
        std::fs::canonicalize(&work).unwrap()
    );
    let outside = tempfile::tempdir().unwrap();
    assert!(Git::discover(outside.path()).await.is_err());
}
