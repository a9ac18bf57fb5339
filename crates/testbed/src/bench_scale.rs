//! The scale benchmark: `freshet run` over thousands of enrolled Deployments on the
//! API test bed and a real registry, next to the way the seed scripts do the job.
//!
//! Owns `freshet-testbed bench-scale`. Per size it starts `freshet-apiserver serve`
//! (plain http, fake images), creates `size` Deployments (no replicas) over
//! `namespaces` namespaces, each enrolled with `freshet.io/policy: digest` on one of
//! `images` unique images pushed to a token-auth distribution registry, and prints:
//! - the floor: listing every Deployment page by page, and one HEAD per unique
//!   image in parallel (tokens fetched beforehand), each timed in the same run;
//! - `freshet run --once`: the first run (baselines: one patch per workload), a
//!   steady run (nothing changed), and a run after `moved` images were pushed
//!   again, with wall time, peak RSS, registry requests and API requests from the
//!   run's own JSON report;
//! - `freshet run` as a controller: its second (steady) pass, from its log;
//! - a seed-style shell script (kubectl + curl per workload) over a sample,
//!   extrapolated per workload.
//!
//! Nothing here asserts: it prints figures for people to read.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::registry::push::{ImageSpec, Pusher};
use crate::registry::token::TokenOptions;
use crate::registry::{RegistryOptions, RegistryServer, TestbedError};

/// Arguments of `freshet-testbed bench-scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Enrolled Deployments, one run per size (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,3000,10000",
        env = "FRESHET_BENCH_SIZES"
    )]
    pub sizes: Vec<usize>,
    /// Unique images (spread over `images / 10` repositories).
    #[arg(long, default_value_t = 1000)]
    pub images: usize,
    /// Namespaces the Deployments are spread over.
    #[arg(long, default_value_t = 100)]
    pub namespaces: usize,
    /// Images pushed again before the "moved" run.
    #[arg(long, default_value_t = 100)]
    pub moved: usize,
    /// Workloads the seed-style script handles (its time is extrapolated).
    #[arg(long, default_value_t = 50)]
    pub seed_sample: usize,
    /// The directory holding the release `freshet` and `freshet-apiserver`
    /// (default: this binary's).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The test registry failed.
    #[error(transparent)]
    Testbed(#[from] TestbedError),
    /// A step failed.
    #[error("{0}")]
    Step(String),
}

fn step(what: impl std::fmt::Display) -> impl FnOnce(String) -> ScaleError {
    move |detail| ScaleError::Step(format!("{what}: {detail}"))
}

/// One measured run of a tool.
#[derive(Debug, Default, Clone)]
struct Measure {
    wall: f64,
    rss_mib: f64,
    registry: BTreeMap<&'static str, u64>,
    api: BTreeMap<&'static str, u64>,
    writes: u64,
}

/// Runs the benchmark and prints its report.
pub async fn run(args: ScaleArgs) -> Result<(), ScaleError> {
    let bin = args.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default()
    });
    eprintln!(
        "bench-scale: pushing {} images (token-auth registry)",
        args.images
    );
    let registry = RegistryServer::start(RegistryOptions::token(
        TokenOptions::new().user("bench", "bench-pw"),
    ))
    .await?;
    let pusher = Pusher::new(&registry)?.concurrency(16);
    let images = push_images(&pusher, &registry, args.images, 0).await?;
    println!(
        "freshet scale benchmark ({}; binaries from {}; token-auth distribution registry on loopback; freshet-apiserver test bed)",
        std::env::consts::ARCH,
        bin.display()
    );
    for &size in &args.sizes {
        eprintln!("bench-scale: {size} Deployments");
        let table = one_size(&args, &bin, &registry, &pusher, &images, size).await?;
        println!("{table}");
    }
    Ok(())
}

/// Pushes `n` single-arch images over `n / 10` repositories; `generation` changes
/// their content (and so their digests).
async fn push_images(
    pusher: &Pusher,
    registry: &RegistryServer,
    n: usize,
    generation: usize,
) -> Result<Vec<String>, ScaleError> {
    let host = registry.host();
    let repos = n.div_ceil(10).max(1);
    let mut out = Vec::with_capacity(n);
    for r in 0..repos {
        let repo = format!("scale/app-{r:03}");
        let tags: Vec<String> = (0..10.min(n - out.len()))
            .map(|i| format!("v{i}"))
            .collect();
        let spec = ImageSpec::docker_v2(format!("{repo}-{generation}"));
        pusher
            .push_tag_many(&repo, tags.iter().cloned(), &spec)
            .await?;
        out.extend(tags.iter().map(|t| format!("{host}/{repo}:{t}")));
    }
    Ok(out)
}

async fn one_size(
    args: &ScaleArgs,
    bin: &Path,
    registry: &RegistryServer,
    pusher: &Pusher,
    images: &[String],
    size: usize,
) -> Result<String, ScaleError> {
    let work = tempfile::tempdir().map_err(|e| TestbedError::io("a work dir", "/tmp", e))?;
    let kubeconfig = work.path().join("kubeconfig");
    let mut server = ApiServer::start(bin, &kubeconfig)?;
    let http = reqwest::Client::new();
    create_workloads(&http, &server.url, images, size, args.namespaces).await?;

    let list_time = list_floor(&http, &server.url).await?;
    let head_time = head_floor(registry, images).await?;

    let freshet = bin.join("freshet");
    let first = freshet_once(&freshet, &kubeconfig, registry)?;
    let steady = freshet_once(&freshet, &kubeconfig, registry)?;
    let controller = freshet_controller(&freshet, &kubeconfig, work.path())?;
    // Move `moved` images: push those tags again with new content.
    let moved: Vec<String> = images.iter().take(args.moved).cloned().collect();
    repush(pusher, registry, &moved).await?;
    let after_move = freshet_once(&freshet, &kubeconfig, registry)?;
    let expected_moved = (0..size).filter(|i| i % images.len() < moved.len()).count();
    let seed = seed_script(&kubeconfig, registry, work.path(), args.seed_sample, size)?;
    server.stop();

    let mut t = String::new();
    let row = |name: &str, m: &Measure| {
        format!(
            "| {name} | {:.2} | {:.1} | {} | {} | {} | {} | {} |\n",
            m.wall,
            m.rss_mib,
            m.registry.get("HEAD").copied().unwrap_or(0),
            m.registry.get("GET manifest").copied().unwrap_or(0),
            m.registry.get("token").copied().unwrap_or(0),
            m.api.get("LIST").copied().unwrap_or(0),
            m.writes,
        )
    };
    t.push_str(&format!(
        "\n{size} enrolled Deployments, {} unique images, {} namespaces\n\n",
        images.len(),
        args.namespaces
    ));
    t.push_str(
        "| run | wall s | peak RSS MiB | HEAD | manifest GET | tokens | API LIST | API writes |\n",
    );
    t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    t.push_str(&row("freshet one-shot, first run (baselines)", &first));
    t.push_str(&row("freshet one-shot, steady", &steady));
    t.push_str(&row("freshet controller, steady pass", &controller));
    t.push_str(&row(
        &format!("freshet one-shot, {} images moved", moved.len()),
        &after_move,
    ));
    t.push_str(&row(
        &format!(
            "seed script (kubectl + curl per workload), steady, extrapolated from {}",
            seed.1
        ),
        &seed.0,
    ));
    t.push_str(&format!(
        "\nfloor: list every Deployment {list_time:.2} s + one parallel HEAD per image {head_time:.2} s = {:.2} s; steady one-shot / floor = {:.2}\n",
        list_time + head_time,
        steady.wall / (list_time + head_time)
    ));
    t.push_str(&format!(
        "moved run: {} workloads patched (expected {expected_moved}), {} API PATCH requests, most in flight {}\n",
        after_move.writes,
        after_move.api.get("PATCH").copied().unwrap_or(0),
        after_move.api.get("PATCH in flight").copied().unwrap_or(0),
    ));
    t.push_str(&format!(
        "controller steady pass: {} API GETs (ServiceAccounts), {} pings\n",
        controller.api.get("GET").copied().unwrap_or(0),
        controller.registry.get("ping").copied().unwrap_or(0),
    ));
    Ok(t)
}

struct ApiServer {
    child: Child,
    url: String,
}

impl ApiServer {
    fn start(bin: &Path, kubeconfig: &Path) -> Result<Self, ScaleError> {
        let mut child = Command::new(bin.join("freshet-apiserver"))
            .args([
                "serve",
                "--plain-http",
                "--fake-images",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--write-kubeconfig")
            .arg(kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ScaleError::Step(format!("starting freshet-apiserver: {e}")))?;
        let stdout = child.stdout.take().expect("piped");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| ScaleError::Step(format!("reading freshet-apiserver: {e}")))?;
        // Keep draining: a closed pipe would kill the server on its next line.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| ScaleError::Step(format!("freshet-apiserver said {line:?}")))?
            .to_owned();
        Ok(Self { child, url })
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Result<(), ScaleError> {
    let resp = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| ScaleError::Step(format!("POST {url}: {e}")))?;
    if !resp.status().is_success() && resp.status().as_u16() != 409 {
        return Err(ScaleError::Step(format!("POST {url}: {}", resp.status())));
    }
    Ok(())
}

async fn create_workloads(
    http: &reqwest::Client,
    base: &str,
    images: &[String],
    size: usize,
    namespaces: usize,
) -> Result<(), ScaleError> {
    for n in 0..namespaces {
        post(
            http,
            format!("{base}/api/v1/namespaces"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n:03}")}}),
        )
        .await?;
    }
    let results: Vec<Result<(), ScaleError>> = futures::stream::iter(0..size)
        .map(|i| {
            let ns = format!("ns-{:03}", i % namespaces);
            let name = format!("app-{i:05}");
            let image = images[i % images.len()].clone();
            let body = json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns,
                             "annotations": {"freshet.io/policy": "digest"},
                             "labels": {"app": name}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"},
                                               "containers": [{"name": "app", "image": image,
                                                               "imagePullPolicy": "Always"}]}}}
            });
            post(
                http,
                format!("{base}/apis/apps/v1/namespaces/{ns}/deployments"),
                body,
            )
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Lists every Deployment page by page (500 per page), as freshet does.
async fn list_floor(http: &reqwest::Client, base: &str) -> Result<f64, ScaleError> {
    let started = Instant::now();
    let mut token = String::new();
    loop {
        let url = format!("{base}/apis/apps/v1/deployments?limit=500&continue={token}");
        let page: Value = http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ScaleError::Step(format!("GET {url}: {e}")))?
            .json()
            .await
            .map_err(|e| ScaleError::Step(format!("GET {url}: {e}")))?;
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => token = c.to_owned(),
            _ => break,
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// One HEAD per image, 32 in flight, with tokens fetched beforehand (untimed).
async fn head_floor(registry: &RegistryServer, images: &[String]) -> Result<f64, ScaleError> {
    let tokens = registry.token_server().expect("token mode");
    let http = reqwest::Client::new();
    let host = registry.host();
    let mut by_repo: BTreeMap<String, String> = BTreeMap::new();
    for image in images {
        let (repo, _) = split(&host, image);
        if by_repo.contains_key(&repo) {
            continue;
        }
        let url = format!(
            "{}?service={}&scope=repository:{repo}:pull",
            tokens.realm(),
            tokens.service()
        );
        let answer: Value = http
            .get(&url)
            .send()
            .await
            .map_err(|e| ScaleError::Step(format!("token: {e}")))?
            .json()
            .await
            .map_err(|e| ScaleError::Step(format!("token: {e}")))?;
        let token = answer["token"].as_str().unwrap_or_default().to_owned();
        by_repo.insert(repo, token);
    }
    let started = Instant::now();
    let ok: Vec<bool> = futures::stream::iter(images)
        .map(|image| {
            let (repo, tag) = split(&host, image);
            let token = by_repo[&repo].clone();
            let http = http.clone();
            let url = format!("http://{host}/v2/{repo}/manifests/{tag}");
            async move {
                http.head(&url)
                    .bearer_auth(token)
                    .header("Accept", freshet_core::manifest::ACCEPT)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    if ok.iter().any(|b| !b) {
        return Err(ScaleError::Step("the HEAD floor got errors".into()));
    }
    Ok(elapsed)
}

fn split(host: &str, image: &str) -> (String, String) {
    let rest = image.strip_prefix(&format!("{host}/")).unwrap_or(image);
    let (repo, tag) = rest.rsplit_once(':').unwrap_or((rest, "latest"));
    (repo.to_owned(), tag.to_owned())
}

async fn repush(
    pusher: &Pusher,
    registry: &RegistryServer,
    images: &[String],
) -> Result<(), ScaleError> {
    let host = registry.host();
    let mut by_repo: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for image in images {
        let (repo, tag) = split(&host, image);
        by_repo.entry(repo).or_default().push(tag);
    }
    let generation = fastrand::u64(..);
    for (repo, tags) in by_repo {
        let spec = ImageSpec::docker_v2(format!("{repo}-moved-{generation}"));
        pusher.push_tag_many(&repo, tags, &spec).await?;
    }
    Ok(())
}

/// `/usr/bin/time -f '%e %M'` around a command: (wall seconds, peak RSS MiB, stdout).
fn timed(cmd: Command) -> Result<(f64, f64, Vec<u8>), ScaleError> {
    let program = cmd.get_program().to_owned();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "TIME %e %M"])
        .arg(program)
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    let out = wrapped
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ScaleError::Step(format!("running /usr/bin/time: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("TIME "))
        .ok_or_else(|| ScaleError::Step(format!("no time output: {stderr}")))?;
    let mut parts = line.split_whitespace().skip(1);
    let wall: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let kib: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    Ok((wall, kib / 1024.0, out.stdout))
}

fn freshet_once(
    freshet: &Path,
    kubeconfig: &Path,
    registry: &RegistryServer,
) -> Result<Measure, ScaleError> {
    let mut cmd = Command::new(freshet);
    cmd.args([
        "run",
        "--once",
        "--ignore-schedules",
        "--output",
        "json",
        "--kubeconfig",
    ])
    .arg(kubeconfig)
    .env("FRESHET_LOG", "warn");
    registry.clear_access_log();
    let (wall, rss, stdout) = timed(cmd)?;
    let report: Value = serde_json::from_slice(&stdout)
        .map_err(|e| e.to_string())
        .map_err(step("freshet's JSON report"))?;
    let mut m = Measure {
        wall,
        rss_mib: rss,
        ..Measure::default()
    };
    let r = &report["requests"]["registry"];
    let a = &report["requests"]["api"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    m.registry.insert("HEAD", n(&r["manifest_heads"]));
    m.registry.insert("GET manifest", n(&r["manifest_gets"]));
    m.registry.insert("token", n(&r["token_requests"]));
    m.registry.insert("ping", n(&r["pings"]));
    m.api.insert("LIST", n(&a["lists"]));
    m.api.insert("GET", n(&a["gets"]));
    m.api.insert("PATCH", n(&a["patches"]));
    m.api
        .insert("PATCH in flight", n(&a["max_patches_in_flight"]));
    m.writes = report["workloads"]
        .as_array()
        .map(|w| w.iter().filter(|w| w["written"] == true).count() as u64)
        .unwrap_or(0);
    Ok(m)
}

/// Runs the controller until its second pass is done; that pass's figures, with
/// the process's peak RSS then.
fn freshet_controller(
    freshet: &Path,
    kubeconfig: &Path,
    work: &Path,
) -> Result<Measure, ScaleError> {
    let log = work.join("controller.log");
    let file = std::fs::File::create(&log).map_err(|e| ScaleError::Step(e.to_string()))?;
    let started = Instant::now();
    let mut child = Command::new(freshet)
        .args([
            "--log-format",
            "json",
            "run",
            "--ignore-schedules",
            "--interval",
            "5s",
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .env("FRESHET_LOG", "info")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| ScaleError::Step(format!("starting the controller: {e}")))?;
    let deadline = started + Duration::from_secs(600);
    let passes = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let passes: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "pass done")
            .collect();
        if passes.len() >= 2 || Instant::now() > deadline {
            break passes;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let rss = peak_rss_mib(child.id());
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let pass = passes.get(1).ok_or_else(|| {
        ScaleError::Step(format!(
            "the controller did not finish two passes; see {}",
            log.display()
        ))
    })?;
    let n = |k: &str| pass[k].as_u64().unwrap_or(0);
    let mut m = Measure {
        wall: pass_seconds(&passes),
        rss_mib: rss,
        writes: n("writes"),
        ..Measure::default()
    };
    m.registry.insert("HEAD", n("manifest_heads"));
    m.registry.insert("GET manifest", n("manifest_gets"));
    m.registry.insert("token", n("token_requests"));
    m.registry.insert("ping", n("pings"));
    m.api.insert("LIST", n("api_lists"));
    m.api.insert("GET", n("api_gets"));
    m.api.insert("PATCH", n("api_patches"));
    Ok(m)
}

/// The second pass's duration: from its start line to its "pass done" line.
fn pass_seconds(passes: &[Value]) -> f64 {
    passes
        .get(1)
        .and_then(|p| p["elapsed_ms"].as_f64())
        .map(|ms| ms / 1000.0)
        .unwrap_or(f64::NAN)
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

const SEED_SCRIPT: &str = r#"#!/usr/bin/env bash
# The job done the seed way: list with kubectl, then per workload read it with
# kubectl, ask the registry with curl (a token, then a HEAD), and patch with kubectl
# when the digest moved.
set -euo pipefail
: "${SAMPLE:?}" "${HOST:?}" "${REALM:?}" "${SERVICE:?}"
kubectl get deployments -A -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.spec.template.spec.containers[0].image}{"\n"}{end}' > "$WORK/list"
head -n "$SAMPLE" "$WORK/list" | while read -r ns name image; do
  current=$(kubectl get deployment -n "$ns" "$name" -o jsonpath='{.metadata.annotations.seed/digest}')
  rest=${image#"$HOST"/}; repo=${rest%:*}; tag=${rest##*:}
  token=$(curl -s "$REALM?service=$SERVICE&scope=repository:$repo:pull" | sed -E 's/.*"token":"([^"]+)".*/\1/')
  digest=$(curl -sI -H "Authorization: Bearer $token" -H "Accept: application/vnd.docker.distribution.manifest.v2+json" "http://$HOST/v2/$repo/manifests/$tag" | awk 'tolower($1)=="docker-content-digest:" {print $2}' | tr -d '\r')
  if [[ "$digest" != "$current" ]]; then
    kubectl patch deployment -n "$ns" "$name" --type merge -p "{\"metadata\":{\"annotations\":{\"seed/digest\":\"$digest\"}}}" > /dev/null
    echo PATCHED
  fi
done
"#;

/// The seed-style script over `sample` workloads, run twice (the first run
/// records its digests); the steady second run, with its per-workload loop
/// extrapolated to `size` workloads.
fn seed_script(
    kubeconfig: &Path,
    registry: &RegistryServer,
    work: &Path,
    sample: usize,
    size: usize,
) -> Result<(Measure, usize), ScaleError> {
    let script = work.join("seed.sh");
    std::fs::write(&script, SEED_SCRIPT).map_err(|e| ScaleError::Step(e.to_string()))?;
    let tokens = registry.token_server().expect("token mode");
    let run = |n: usize| -> Result<(f64, f64, usize), ScaleError> {
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .env("KUBECONFIG", kubeconfig)
            .env("SAMPLE", n.to_string())
            .env("HOST", registry.host())
            .env("REALM", tokens.realm())
            .env("SERVICE", tokens.service())
            .env("WORK", work);
        let (wall, rss, out) = timed(cmd)?;
        let patched = String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| *l == "PATCHED")
            .count();
        Ok((wall, rss, patched))
    };
    run(sample)?;
    let (list_only, _, _) = run(0)?;
    registry.clear_access_log();
    let (wall, rss, patched) = run(sample)?;
    let per_workload = (wall - list_only).max(0.0) / sample.max(1) as f64;
    let heads = registry.request_count("HEAD", "/v2/") as u64;
    let gets = registry.request_count("GET", "/v2/") as u64;
    let n = sample.max(1) as u64;
    let scale = |v: u64| v * size as u64 / n;
    let mut m = Measure {
        wall: list_only + per_workload * size as f64,
        rss_mib: rss,
        writes: scale(patched as u64),
        ..Measure::default()
    };
    m.registry.insert("HEAD", scale(heads));
    m.registry.insert("GET manifest", scale(gets));
    m.registry.insert("token", size as u64);
    m.api.insert("LIST", 1);
    Ok((m, sample))
}
