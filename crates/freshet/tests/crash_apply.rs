//! Crash safety of `freshet apply --commit` (issue 16, proof item 3): the built binary
//! is killed with SIGKILL at seeded random points of a run, over many trials. After each
//! kill every file is byte for byte either its old or its new text, git's index is
//! clean (no lock left, nothing staged), and a re-run brings every file to its new text
//! with a clean index. The figures are printed (run with `--no-capture`) and recorded in
//! `docs/reliability.md`.
//!
//! The random delay before each kill is the fault being injected, not a wait for a
//! condition; everything after the kill waits on conditions with deadlines.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use freshet_testbed::git::{git, identify};
use freshet_testbed::registry::fixtures;
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};

/// Trials, files per repository, and the seed of the kill points.
const TRIALS: usize = 60;
const FILES: usize = 24;
const SEED: u64 = 0x16_5eed;

/// splitmix64: a seeded source of kill points, so a failing trial can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

struct Trial {
    _dir: tempfile::TempDir,
    work: PathBuf,
    old: Vec<String>,
    new: Vec<String>,
}

fn name(i: usize) -> String {
    format!("deploy/app-{i:02}.yaml")
}

fn trial(host: &str) -> Trial {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("deploy")).unwrap();
    git(&work, &["init", "--quiet", "-b", "main"]);
    identify(&work);
    let mut old = Vec::new();
    let mut new = Vec::new();
    for i in 0..FILES {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: \"{host}/team/api:1.0.0\" # freshet: policy=semver:minor\n"
        );
        std::fs::write(work.join(name(i)), &text).unwrap();
        new.push(text.replace(":1.0.0\"", ":1.1.0\""));
        old.push(text);
    }
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "seed"]);
    Trial {
        _dir: dir,
        work,
        old,
        new,
    }
}

fn freshet(work: &Path, docker_config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_freshet"));
    command
        .current_dir(work)
        .args(["apply", "--commit", "-o", "json", "--docker-config"])
        .arg(docker_config)
        .arg(".")
        .env("GIT_AUTHOR_NAME", "freshet test")
        .env("GIT_AUTHOR_EMAIL", "test@freshet.invalid")
        .env("GIT_COMMITTER_NAME", "freshet test")
        .env("GIT_COMMITTER_EMAIL", "test@freshet.invalid")
        .env_remove("FRESHET_GIT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    command
}

/// Waits until no process of the group `pgid` is left (git children of a killed freshet
/// finish on their own).
fn wait_for_group(pgid: i32) {
    use nix::sys::signal::killpg;
    use nix::unistd::Pid;
    let deadline = Instant::now() + Duration::from_secs(60);
    while killpg(Pid::from_raw(pgid), None).is_ok() {
        assert!(
            Instant::now() < deadline,
            "processes of group {pgid} linger"
        );
        std::thread::yield_now();
    }
}

/// How many files hold their new text; panics when one is neither old nor new.
fn files_new(t: &Trial, when: &str) -> usize {
    (0..FILES)
        .filter(|&i| {
            let now = std::fs::read_to_string(t.work.join(name(i))).unwrap();
            assert!(
                now == t.old[i] || now == t.new[i],
                "{when}: {} is neither old nor new:\n{now}",
                name(i)
            );
            now == t.new[i]
        })
        .count()
}

/// Asserts the index is clean: no lock left behind, nothing staged.
fn assert_index_clean(work: &Path, when: &str) {
    assert!(
        !work.join(".git/index.lock").exists(),
        "{when}: index.lock left"
    );
    let staged = Command::new("git")
        .arg("-C")
        .arg(work)
        .args(["diff", "--cached", "--quiet"])
        .status()
        .unwrap();
    assert!(staged.success(), "{when}: changes left staged");
}

fn temp_leftovers(work: &Path) -> usize {
    std::fs::read_dir(work.join("deploy"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".freshet-")
        })
        .count()
}

#[derive(Debug, Default)]
struct Figures {
    all_old: usize,
    partly_written: usize,
    written_not_committed: usize,
    committed: usize,
    temp_files_left: usize,
    temp_files_left_after_rerun: usize,
    rerun_left_uncommitted: usize,
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_commit_killed_at_random_points_leaves_every_file_old_or_new_and_a_clean_index() {
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .expect("registry starts");
    let pusher = Pusher::new(&registry).expect("pusher");
    fixtures::seed_api(&pusher).await.expect("seed team/api");
    let host = registry.host();
    let docker_config = tempfile::tempdir().unwrap();
    let config = docker_config.path().to_owned();

    let figures = tokio::task::spawn_blocking(move || {
        // The longest of three undisturbed runs sets the span the kill points are drawn
        // from (over 1.5 times it, so the commit and the end of the run are hit too).
        let mut span = Duration::ZERO;
        for _ in 0..3 {
            let t = trial(&host);
            let started = Instant::now();
            let status = freshet(&t.work, &config).status().unwrap();
            span = span.max(started.elapsed());
            assert!(status.success());
            assert_eq!(files_new(&t, "calibration"), FILES);
        }

        let mut rng = Rng(SEED);
        let mut figures = Figures::default();
        let span_us = span.as_micros() as u64 + 1;
        for n in 0..TRIALS {
            let t = trial(&host);
            let before = git(&t.work, &["rev-parse", "HEAD"]);
            let delay = Duration::from_micros(rng.next() % (span_us + span_us / 2));
            let mut child = freshet(&t.work, &config).spawn().unwrap();
            let pgid = child.id() as i32;
            std::thread::sleep(delay);
            let _ = child.kill();
            let _ = child.wait();
            wait_for_group(pgid);

            let when = format!("trial {n} (killed after {delay:?})");
            let new = files_new(&t, &when);
            assert_index_clean(&t.work, &when);
            let committed = git(&t.work, &["rev-parse", "HEAD"]) != before;
            if committed {
                assert_eq!(new, FILES, "{when}: a commit with files still old");
                figures.committed += 1;
            } else if new == FILES {
                figures.written_not_committed += 1;
            } else if new > 0 {
                figures.partly_written += 1;
            } else {
                figures.all_old += 1;
            }
            figures.temp_files_left += temp_leftovers(&t.work);

            // A re-run converges: every file new, index clean.
            let status = freshet(&t.work, &config).status().unwrap();
            let when = format!("{when}, re-run");
            assert_eq!(files_new(&t, &when), FILES, "{when}: {status}");
            assert_index_clean(&t.work, &when);
            let dirty = git(&t.work, &["status", "--porcelain", "--untracked-files=no"]);
            if !dirty.is_empty() {
                figures.rerun_left_uncommitted += 1;
            }
            figures.temp_files_left_after_rerun += temp_leftovers(&t.work);
        }
        println!("span of an undisturbed run: {span:?}; {TRIALS} trials, seed {SEED:#x}");
        figures
    })
    .await
    .unwrap();
    println!("{figures:#?}");
    assert_eq!(
        figures.all_old
            + figures.partly_written
            + figures.written_not_committed
            + figures.committed,
        TRIALS
    );
    // The apply journal makes the re-run commit what the killed run wrote.
    assert_eq!(
        figures.rerun_left_uncommitted, 0,
        "a re-run left files written but uncommitted: {figures:#?}"
    );
}
