//! Crash safety of the cluster refresh (issue 16, proof item 3): the built binary,
//! as a one-shot pass (`run --once`) and as a controller (`run` without leader
//! election), is killed with SIGKILL at seeded random points while it refreshes a
//! dozen workloads on the API test bed, over many trials. After each kill no
//! workload is half-patched: each refresh is one object write, so a workload's
//! audit record (`freshet.io/refreshed`) and its pod template's
//! `kubectl.kubernetes.io/restartedAt` always agree. A re-run then converges: every
//! workload records the new digest, and they still agree.
//!
//! Trials per mode: `FRESHET_CRASH_TRIALS` (default 50), seed `FRESHET_CRASH_SEED`.
//! The figures are printed (`--no-capture`) and recorded in `docs/reliability.md`.
//! The random delay before each kill is the fault being injected, not a wait for a
//! condition; everything after the kill waits on conditions with deadlines.

#[allow(dead_code)] // `deploy` is for the other binaries
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::admin;
use freshet_apiserver::{ClusterOptions, TestCluster};
use freshet_testbed::registry::fixtures::{self, RepoFixture};
use freshet_testbed::registry::push::Pusher;
use freshet_testbed::registry::{RegistryOptions, RegistryServer};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const WORKLOADS: usize = 12;
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

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

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Once,
    Controller,
}

struct Bed {
    _registry: RegistryServer,
    pusher: Pusher,
    fx: RepoFixture,
    image: String,
    baseline: String,
    _cluster: TestCluster,
    kubeconfig: String,
    deploys: Api<Deployment>,
}

async fn bed() -> Bed {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = RegistryServer::start(RegistryOptions::open())
        .await
        .unwrap();
    let pusher = Pusher::new(&registry).unwrap();
    let fx = fixtures::seed_api(&pusher).await.unwrap();
    let image = format!("{}/team/api:stable", registry.host());
    let cluster = TestCluster::start(ClusterOptions::default()).await.unwrap();
    let client = admin(&cluster).await;
    let deploys: Api<Deployment> = Api::namespaced(client, "default");
    for i in 0..WORKLOADS {
        let name = format!("w{i:02}");
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"freshet.io/policy": "digest"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"}, "containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}}}
        }))
        .unwrap();
        deploys.create(&PostParams::default(), &d).await.unwrap();
    }
    let baseline = fx.digest("stable").to_owned();
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_owned();
    Bed {
        _registry: registry,
        pusher,
        fx,
        image,
        baseline,
        _cluster: cluster,
        kubeconfig,
        deploys,
    }
}

fn command(bed: &Bed, mode: Mode) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_freshet"));
    c.args(["run", "--kubeconfig", bed.kubeconfig.as_str()])
        .env_remove("FRESHET_LOG")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_NAME")
        .env_remove("FRESHET_SELF")
        .env("HOME", "/nonexistent-home")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match mode {
        Mode::Once => c.arg("--once"),
        Mode::Controller => c.args([
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
            // Short, so that a pass that found a rollout in progress (killed
            // mid-rollout) is followed by one that starts the next.
            "--interval",
            "1s",
        ]),
    };
    c
}

/// Per workload: (its recorded digest, whether record and restart agree).
async fn state(bed: &Bed) -> Vec<(String, bool)> {
    let canonical = &bed.image;
    let mut out = Vec::new();
    for d in bed.deploys.list(&ListParams::default()).await.unwrap() {
        let ann = d.metadata.annotations.clone().unwrap_or_default();
        let rec: Value = ann
            .get("freshet.io/refreshed")
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or(Value::Null);
        let digest = rec[canonical]["digest"].as_str().unwrap_or("").to_owned();
        let at = rec[canonical]["at"].as_str().unwrap_or("");
        let restarted = d
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(RESTARTED_AT).cloned());
        let agree = match &restarted {
            Some(r) => r == at,
            None => digest == bed.baseline || digest.is_empty(),
        };
        out.push((digest, agree));
    }
    out
}

/// Runs to completion: `--once` passes until every workload records `digest` (a
/// pass does not start a rollout while the one before it is still in progress, so
/// a kill mid-rollout can take a second pass), or a controller until then (then
/// stopped).
async fn converge(bed: &Bed, mode: Mode, digest: &str) {
    if mode == Mode::Once {
        freshet_testbed::wait::wait_for("run --once to converge", || async {
            let mut child = command(bed, mode).spawn().unwrap();
            let status = tokio::time::timeout(freshet_testbed::wait::DEADLINE, child.wait())
                .await
                .expect("run --once hung")
                .unwrap();
            assert!(status.success(), "the re-run failed: {status}");
            state(bed)
                .await
                .iter()
                .all(|(d, _)| d == digest)
                .then_some(())
        })
        .await;
        return;
    }
    let mut child = command(bed, mode).spawn().unwrap();
    freshet_testbed::wait::wait_for("the controller to converge", || async {
        state(bed)
            .await
            .iter()
            .all(|(d, _)| d == digest)
            .then_some(())
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
}

#[derive(Debug, Default)]
struct Figures {
    trials: usize,
    half_patched: usize,
    not_converged: usize,
    killed_before_any_write: usize,
    killed_midway: usize,
    killed_after_all_writes: usize,
    window_ms: u128,
}

async fn trials(bed: &mut Bed, mode: Mode, n: usize, seed: u64) -> Figures {
    let mut rng = Rng(seed);
    let mut figures = Figures {
        trials: n,
        ..Figures::default()
    };
    // Calibrate: an undisturbed refresh of every workload, the longest of three.
    let mut longest = Duration::ZERO;
    for g in 0..3 {
        fixtures::move_tag(
            &bed.pusher,
            &mut bed.fx,
            "stable",
            &format!("{mode:?}-cal{g}"),
        )
        .await
        .unwrap();
        let started = Instant::now();
        converge(bed, mode, bed.fx.digest("stable")).await;
        longest = longest.max(started.elapsed());
    }
    let window = longest.mul_f64(1.5);
    figures.window_ms = window.as_millis();
    for t in 0..n {
        fixtures::move_tag(&bed.pusher, &mut bed.fx, "stable", &format!("{mode:?}-{t}"))
            .await
            .unwrap();
        let new = bed.fx.digest("stable").to_owned();
        let mut child = command(bed, mode).spawn().unwrap();
        let delay = Duration::from_micros(rng.next() % (window.as_micros() as u64).max(1));
        let _ = tokio::time::timeout(delay, child.wait()).await;
        let _ = child.start_kill(); // SIGKILL
        let _ = child.wait().await;
        let after = state(bed).await;
        figures.half_patched += after.iter().filter(|(_, ok)| !ok).count();
        match after.iter().filter(|(d, _)| *d == new).count() {
            0 => figures.killed_before_any_write += 1,
            k if k == after.len() => figures.killed_after_all_writes += 1,
            _ => figures.killed_midway += 1,
        }
        converge(bed, mode, &new).await;
        let again = state(bed).await;
        figures.half_patched += again.iter().filter(|(_, ok)| !ok).count();
        figures.not_converged += again.iter().filter(|(d, _)| *d != new).count();
    }
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_pass_never_half_patches_and_a_rerun_converges() {
    let n = env_number("FRESHET_CRASH_TRIALS", 50) as usize;
    let seed = env_number("FRESHET_CRASH_SEED", 0x16_c4a5);
    let mut bed = bed().await;
    converge(&bed, Mode::Once, &bed.baseline.clone()).await;
    let mut report = String::new();
    for mode in [Mode::Once, Mode::Controller] {
        let f = trials(&mut bed, mode, n, seed).await;
        report.push_str(&format!("{mode:?}: {f:?}\n"));
        println!("{mode:?} (seed {seed:#x}): {f:?}");
        assert_eq!(f.trials, n);
        assert_eq!(f.half_patched, 0, "{mode:?}: {f:?}");
        assert_eq!(f.not_converged, 0, "{mode:?}: {f:?}");
    }
    if let Ok(path) = std::env::var("FRESHET_CRASH_REPORT") {
        std::fs::write(path, report).unwrap();
    }
}
