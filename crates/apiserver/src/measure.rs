//! `freshet-apiserver measure`: the test bed at scale, measured by hand (dev only).
//!
//! Owns one measurement run. It starts `freshet-apiserver serve --plain-http
//! --fake-images` as a child process, creates `--deployments` Deployments spread
//! over `--namespaces` namespaces through the HTTP API (`--running` of them with one
//! replica, the others with none), waits until every running one has its pod
//! running, pages through every Deployment once (`limit`/`continue`), lets the
//! server idle, and prints the server's peak RSS and CPU time per phase, read from
//! `/proc/<pid>`. It must not assert anything: it prints figures for people to
//! read, and it is never run as a test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Arguments of `freshet-apiserver measure`.
#[derive(Debug, Clone, clap::Args)]
pub struct MeasureArgs {
    /// Deployments to create.
    #[arg(long, default_value_t = 1000)]
    pub deployments: usize,
    /// How many of them have one replica (the others have none).
    #[arg(long, default_value_t = 100)]
    pub running: usize,
    /// Namespaces the Deployments are spread over.
    #[arg(long, default_value_t = 100)]
    pub namespaces: usize,
    /// Requests in flight while creating.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds the server idles at the end (its CPU time then is printed).
    #[arg(long, default_value_t = 10)]
    pub idle_seconds: u64,
    /// The server binary (default: this binary).
    #[arg(long, value_name = "PATH")]
    pub server: Option<PathBuf>,
}

/// The measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The arguments make no sense.
    #[error("invalid arguments: {0}")]
    Args(&'static str),
    /// The server process could not start or said nothing usable.
    #[error("starting the server {program} failed: {detail}")]
    Start {
        /// The program.
        program: String,
        /// What went wrong.
        detail: String,
    },
    /// An HTTP request failed.
    #[error("{what} failed")]
    Http {
        /// The request.
        what: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{what} answered {status}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
    },
    /// Reading the server's figures from `/proc` failed.
    #[error("reading /proc/{pid}/{file} failed")]
    Proc {
        /// The server's process id.
        pid: u32,
        /// The file.
        file: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The pods did not all run in time.
    #[error("only {running} of {want} pods were running after {waited:?}")]
    NotSettled {
        /// Pods running.
        running: usize,
        /// Pods wanted.
        want: usize,
        /// How long the run waited.
        waited: Duration,
    },
}

/// The longest the run waits for the pods.
const SETTLE_DEADLINE: Duration = Duration::from_secs(600);

/// The kernel's clock ticks per second for `/proc/<pid>/stat` (100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// One reading of the server process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// User plus system CPU time so far.
    cpu: Duration,
    /// Resident set size now, in KiB.
    rss_kib: u64,
    /// Peak resident set size so far (`VmHWM`), in KiB.
    peak_kib: u64,
}

fn sample(pid: u32) -> Result<Sample, MeasureError> {
    let read = |file: &'static str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .map_err(|source| MeasureError::Proc { pid, file, source })
    };
    let stat = read("stat")?;
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let cpu = Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / CLOCK_TICKS);
    let status = read("status")?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        cpu,
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
    })
}

struct Server {
    child: tokio::process::Child,
    pid: u32,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_server(args: &MeasureArgs) -> Result<Server, MeasureError> {
    let program = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| MeasureError::Start {
            program: "freshet-apiserver".into(),
            detail: e.to_string(),
        })?,
    };
    let failed = |detail: String| MeasureError::Start {
        program: program.display().to_string(),
        detail,
    };
    let dir = tempfile::tempdir().map_err(|e| failed(e.to_string()))?;
    let mut child = tokio::process::Command::new(&program)
        .args([
            "serve",
            "--plain-http",
            "--fake-images",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--write-kubeconfig")
        .arg(dir.path().join("kubeconfig"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let pid = child
        .id()
        .ok_or_else(|| failed("it exited at once".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| failed("no address within 60 s".into()))?
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| failed("it exited before serving".into()))?;
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| failed(format!("unexpected first line {first:?}")))?
        .to_string();
    // Keep reading, so the server's later lines never meet a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server {
        child,
        pid,
        url,
        _dir: dir,
    })
}

async fn send(
    request: reqwest::RequestBuilder,
    what: impl Into<String>,
) -> Result<Value, MeasureError> {
    let what = what.into();
    let response = request.send().await.map_err(|source| MeasureError::Http {
        what: what.clone(),
        source,
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(MeasureError::Status {
            what,
            status: status.as_u16(),
        });
    }
    response
        .json()
        .await
        .map_err(|source| MeasureError::Http { what, source })
}

fn deployment(name: &str, replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name},
            "annotations": {"freshet.io/policy": "digest"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "imagePullPolicy": "IfNotPresent"}]},
            },
        },
    })
}

async fn create_all(
    client: &reqwest::Client,
    url: &str,
    args: &MeasureArgs,
) -> Result<(), MeasureError> {
    for n in 0..args.namespaces {
        let body = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": format!("ns-{n:03}")}});
        send(
            client.post(format!("{url}/api/v1/namespaces")).json(&body),
            "creating a namespace",
        )
        .await?;
    }
    // Every `stride`-th Deployment runs a pod, so running ones spread over namespaces.
    let stride = (args.deployments / args.running.max(1)).max(1);
    let requests = (0..args.deployments).map(|i| {
        let ns = format!("ns-{:03}", i % args.namespaces);
        let name = format!("app-{i:05}");
        let running = i % stride == 0 && i / stride < args.running;
        let image = format!("registry.invalid/team/app-{:03}:1.0.{}", i % 1000, i % 7);
        let body = deployment(&name, u32::from(running), &image);
        let request = client
            .post(format!("{url}/apis/apps/v1/namespaces/{ns}/deployments"))
            .json(&body);
        send(request, format!("creating deployment {ns}/{name}"))
    });
    let mut stream = futures::stream::iter(requests).buffer_unordered(args.concurrency.max(1));
    while let Some(result) = stream.next().await {
        result?;
    }
    Ok(())
}

/// Pages through `path` with `limit`; returns the items seen and the pages read.
async fn page_through(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    limit: usize,
) -> Result<(usize, usize), MeasureError> {
    let mut token = String::new();
    let (mut items, mut pages) = (0, 0);
    loop {
        // Continue tokens are URL-safe base64: they need no escaping.
        let mut page_url = format!("{url}{path}?limit={limit}");
        if !token.is_empty() {
            page_url.push_str(&format!("&continue={token}"));
        }
        let page = send(client.get(page_url), format!("listing {path}")).await?;
        pages += 1;
        items += page["items"].as_array().map_or(0, Vec::len);
        match page.pointer("/metadata/continue").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => return Ok((items, pages)),
        }
    }
}

async fn wait_running(
    client: &reqwest::Client,
    url: &str,
    want: usize,
) -> Result<(), MeasureError> {
    let started = Instant::now();
    loop {
        let running = send(
            client.get(format!(
                "{url}/api/v1/pods?fieldSelector=status.phase%3DRunning"
            )),
            "listing running pods",
        )
        .await?["items"]
            .as_array()
            .map_or(0, Vec::len);
        if running >= want {
            return Ok(());
        }
        if started.elapsed() > SETTLE_DEADLINE {
            return Err(MeasureError::NotSettled {
                running,
                want,
                waited: started.elapsed(),
            });
        }
        // Paces the polls of a measurement run (not a test).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the measurement and prints its figures.
pub async fn run(args: MeasureArgs) -> Result<(), MeasureError> {
    if args.namespaces == 0 || args.running > args.deployments {
        return Err(MeasureError::Args(
            "need at least one namespace and no more running than deployments",
        ));
    }
    let mut server = start_server(&args).await?;
    let client = reqwest::Client::new();
    let url = server.url.clone();
    let pid = server.pid;
    let at_start = sample(pid)?;

    let started = Instant::now();
    create_all(&client, &url, &args).await?;
    let created_in = started.elapsed();
    let after_create = sample(pid)?;
    wait_running(&client, &url, args.running).await?;
    let settled_in = started.elapsed();
    let settled = sample(pid)?;

    let listed = Instant::now();
    let (items, pages) = page_through(&client, &url, "/apis/apps/v1/deployments", 500).await?;
    let listed_in = listed.elapsed();
    let after_list = sample(pid)?;

    // Idle: what the controllers cost when nothing changes.
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle = sample(pid)?;
    let _ = server.child.kill().await;

    let idle_cpu = idle.cpu.saturating_sub(after_list.cpu);
    println!(
        "freshet-apiserver measure: {} Deployments ({} with a running pod) in {} namespaces",
        args.deployments, args.running, args.namespaces
    );
    println!("  phase                          wall s   server CPU s   RSS MiB   peak RSS MiB");
    let row = |name: &str, wall: Option<Duration>, s: &Sample, cpu: Duration| {
        let wall = wall.map_or("-".to_string(), |w| format!("{:.1}", w.as_secs_f64()));
        println!(
            "  {name:<29} {wall:>7} {:>14.2} {:>9.1} {:>14.1}",
            cpu.as_secs_f64(),
            mib(s.rss_kib),
            mib(s.peak_kib)
        );
    };
    row("started", None, &at_start, at_start.cpu);
    row(
        "created (HTTP POSTs)",
        Some(created_in),
        &after_create,
        after_create.cpu.saturating_sub(at_start.cpu),
    );
    row(
        "pods running",
        Some(settled_in),
        &settled,
        settled.cpu.saturating_sub(at_start.cpu),
    );
    row(
        &format!("paged list ({items} in {pages})"),
        Some(listed_in),
        &after_list,
        after_list.cpu.saturating_sub(settled.cpu),
    );
    row(
        &format!("idle {} s", args.idle_seconds),
        Some(Duration::from_secs(args.idle_seconds)),
        &idle,
        idle_cpu,
    );
    println!(
        "  peak RSS {:.1} MiB; total server CPU {:.2} s; idle CPU {:.1}% of one core",
        mib(idle.peak_kib),
        idle.cpu.as_secs_f64(),
        100.0 * idle_cpu.as_secs_f64() / args.idle_seconds.max(1) as f64
    );
    Ok(())
}
