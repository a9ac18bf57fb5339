//! The resolve benchmark: `freshet resolve` against its peers, side by side, in one run.
//!
//! Owns `freshet-testbed bench-resolve`. It starts a real registry, pushes `unique`
//! single-arch images spread over `repos` repositories, and resolves `unique`
//! references plus `duplicates` repeats of them with:
//! - `freshet resolve` (the release binary, a fresh process per round);
//! - the floor: one `curl --parallel` process sending one keep-alive `HEAD` per unique
//!   reference (no dedup needed, no auth, no parsing: the least work possible);
//! - `skopeo inspect`, sequentially, over a sample, extrapolated per reference.
//!
//! Rounds alternate freshet and curl and report medians, so background noise hits
//! both alike. It prints the registry's own access-log counts for freshet's run, and
//! on a token-auth registry the token requests per repository scope. Nothing here
//! asserts a time: it prints figures for people to read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::push::{ImageSpec, Pusher};
use crate::registry::token::TokenOptions;
use crate::registry::{RegistryOptions, RegistryServer, TestbedError};

/// Arguments of `freshet-testbed bench-resolve`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The freshet binary (default: `freshet` next to this binary).
    #[arg(long, value_name = "PATH")]
    pub freshet: Option<PathBuf>,
    /// Unique references.
    #[arg(long, default_value_t = 1000)]
    pub unique: usize,
    /// Extra inputs that repeat unique references.
    #[arg(long, default_value_t = 4000)]
    pub duplicates: usize,
    /// Repositories the unique references are spread over.
    #[arg(long, default_value_t = 50)]
    pub repos: usize,
    /// Rounds of freshet and curl (medians are reported).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// References resolved with skopeo (sequentially; extrapolated).
    #[arg(long, default_value_t = 100)]
    pub skopeo_sample: usize,
}

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The test registry failed.
    #[error(transparent)]
    Testbed(#[from] TestbedError),
    /// A peer or freshet could not run.
    #[error("cannot run {program}: {source}; install it (./scripts/setup) or pass its path")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A tool ran but did not do the job, so its time would mean nothing.
    #[error("{program} did not resolve everything: {detail}")]
    Incomplete {
        /// The program.
        program: String,
        /// What was wrong.
        detail: String,
    },
}

struct Fixture {
    registry: RegistryServer,
    unique: Vec<String>,
    inputs: Vec<String>,
}

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let freshet = args.freshet.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("freshet")))
            .unwrap_or_else(|| PathBuf::from("freshet"))
    });
    let work =
        tempfile::tempdir().map_err(|e| TestbedError::io("creating a work dir", "/tmp", e))?;

    eprintln!(
        "bench: pushing {} images over {} repositories (open registry)",
        args.unique, args.repos
    );
    let open = fixture(RegistryOptions::open(), &args).await?;

    // Warm the registry's caches once so the first measured tool is not penalised.
    curl_heads(&open.registry, &open.unique, work.path())?;

    let mut freshet_times = Vec::new();
    let mut curl_times = Vec::new();
    let mut counts = None;
    for round in 0..args.rounds {
        open.registry.clear_access_log();
        freshet_times.push(freshet_resolve(&freshet, &open.inputs, open.unique.len())?);
        if round == 0 {
            counts = Some(log_counts(&open.registry));
        }
        curl_times.push(curl_heads(&open.registry, &open.unique, work.path())?);
    }
    let sample: Vec<String> = open
        .unique
        .iter()
        .take(args.skopeo_sample)
        .cloned()
        .collect();
    let skopeo_time = skopeo_inspect(&sample)?;
    let skopeo_per_ref = skopeo_time.as_secs_f64() / sample.len().max(1) as f64;
    drop(open);

    eprintln!("bench: same set on a token-auth registry");
    let token = fixture(
        RegistryOptions::token(TokenOptions::new().user("bench", "bench-pw")),
        &args,
    )
    .await?;
    let token_server = token
        .registry
        .token_server()
        .expect("token mode has a token server");
    token_server.clear_requests();
    token.registry.clear_access_log();
    let token_time = freshet_resolve(&freshet, &token.inputs, token.unique.len())?;
    let mut per_scope: BTreeMap<String, usize> = BTreeMap::new();
    for request in token_server.requests() {
        for scope in request.scopes {
            *per_scope.entry(scope).or_default() += 1;
        }
    }
    let token_counts = log_counts(&token.registry);

    let freshet_median = median(&mut freshet_times);
    let curl_median = median(&mut curl_times);
    let skopeo_unique = skopeo_per_ref * args.unique as f64;
    let skopeo_inputs = skopeo_per_ref * (args.unique + args.duplicates) as f64;
    let counts = counts.expect("at least one round");
    println!(
        "freshet resolve benchmark: {} unique references + {} duplicates, {} repositories, {} rounds (medians)",
        args.unique, args.duplicates, args.repos, args.rounds
    );
    println!(
        "  freshet resolve (open registry)      {:>9.3} s   (rounds: {})",
        freshet_median,
        fmt_times(&freshet_times)
    );
    println!(
        "  curl --parallel HEAD floor (unique) {:>9.3} s   (rounds: {})",
        curl_median,
        fmt_times(&curl_times)
    );
    println!(
        "  skopeo inspect, sequential          {:>9.3} s per reference ({} sampled)",
        skopeo_per_ref,
        sample.len()
    );
    println!(
        "    extrapolated to {} unique refs    {:>9.3} s",
        args.unique, skopeo_unique
    );
    println!(
        "    extrapolated to all {} inputs    {:>9.3} s",
        args.unique + args.duplicates,
        skopeo_inputs
    );
    println!(
        "  ratio freshet / curl floor          {:>9.2}x   (target <= 1.5x)",
        freshet_median / curl_median
    );
    println!(
        "  speed-up vs skopeo (unique refs)    {:>9.1}x   (target >= 50x)",
        skopeo_unique / freshet_median
    );
    println!(
        "  speed-up vs skopeo (all inputs)     {:>9.1}x",
        skopeo_inputs / freshet_median
    );
    println!(
        "  registry access log, one freshet run: {} manifest HEAD, {} manifest GET, {} other (target: {} manifest requests)",
        counts.heads, counts.gets, counts.other, args.unique
    );
    println!(
        "  token-auth registry: freshet {:.3} s; {} manifest HEAD, {} manifest GET; {} token requests for {} repository scopes (max {} per scope; target 1)",
        token_time,
        token_counts.heads,
        token_counts.gets,
        per_scope.values().sum::<usize>(),
        per_scope.len(),
        per_scope.values().max().copied().unwrap_or(0)
    );
    Ok(())
}

async fn fixture(options: RegistryOptions, args: &BenchArgs) -> Result<Fixture, BenchError> {
    let registry = RegistryServer::start(options).await?;
    let pusher = Pusher::new(&registry)?.concurrency(16);
    let host = registry.host();
    let per_repo = args.unique.div_ceil(args.repos.max(1));
    let mut unique = Vec::with_capacity(args.unique);
    for r in 0..args.repos {
        let left = args.unique - unique.len();
        if left == 0 {
            break;
        }
        let repo = format!("bench/app-{r:03}");
        let tags: Vec<String> = (0..per_repo.min(left))
            .map(|i| format!("1.{}.{i}", r % 7))
            .collect();
        pusher
            .push_tag_many(
                &repo,
                tags.iter().cloned(),
                &ImageSpec::docker_v2(repo.clone()),
            )
            .await?;
        unique.extend(tags.iter().map(|t| format!("{host}/{repo}:{t}")));
    }
    // Duplicates repeat unique references in a scattered but reproducible order.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut inputs = unique.clone();
    inputs.extend((0..args.duplicates).map(|_| unique[rng.usize(..unique.len())].clone()));
    rng.shuffle(&mut inputs);
    Ok(Fixture {
        registry,
        unique,
        inputs,
    })
}

fn freshet_resolve(freshet: &Path, inputs: &[String], unique: usize) -> Result<f64, BenchError> {
    let started = Instant::now();
    let out = Command::new(freshet)
        .args(["resolve", "--output", "json"])
        .args(inputs)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BenchError::Spawn {
            program: freshet.display().to_string(),
            source,
        })?;
    let elapsed = started.elapsed().as_secs_f64();
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).map_err(|e| BenchError::Incomplete {
            program: "freshet".into(),
            detail: format!("output is not JSON: {e}"),
        })?;
    let failed = items.iter().filter(|i| !i["error"].is_null()).count();
    if !out.status.success() || items.len() != inputs.len() || failed > 0 {
        return Err(BenchError::Incomplete {
            program: "freshet".into(),
            detail: format!(
                "exit {:?}, {} answers for {} inputs ({unique} unique), {failed} failed",
                out.status.code(),
                items.len(),
                inputs.len()
            ),
        });
    }
    Ok(elapsed)
}

fn curl_heads(
    registry: &RegistryServer,
    unique: &[String],
    work: &Path,
) -> Result<f64, BenchError> {
    let host = registry.host();
    let mut config = String::new();
    for r in unique {
        let rest = r.strip_prefix(&format!("{host}/")).unwrap_or(r);
        let (repo, tag) = rest.rsplit_once(':').unwrap_or((rest, "latest"));
        config.push_str(&format!(
            "url = \"http://{host}/v2/{repo}/manifests/{tag}\"\noutput = \"/dev/null\"\n"
        ));
    }
    let path = work.join("curl.cfg");
    std::fs::write(&path, config)
        .map_err(|e| TestbedError::io("writing the curl config", &path, e))?;
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--head",
            "--parallel",
            "--parallel-max",
            "32",
            "--write-out",
            "%{http_code}\\n",
            "--header",
        ])
        .arg(format!("Accept: {}", freshet_core::manifest::ACCEPT))
        .arg("--config")
        .arg(&path)
        .output()
        .map_err(|source| BenchError::Spawn {
            program: "curl".into(),
            source,
        })?;
    let elapsed = started.elapsed().as_secs_f64();
    let ok = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim() == "200")
        .count();
    if ok != unique.len() {
        return Err(BenchError::Incomplete {
            program: "curl".into(),
            detail: format!("{ok} of {} HEADs answered 200", unique.len()),
        });
    }
    Ok(elapsed)
}

fn skopeo_inspect(sample: &[String]) -> Result<Duration, BenchError> {
    let started = Instant::now();
    for r in sample {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{r}"))
            .output()
            .map_err(|source| BenchError::Spawn {
                program: "skopeo".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(BenchError::Incomplete {
                program: "skopeo".into(),
                detail: format!("{r}: {}", String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
    }
    Ok(started.elapsed())
}

struct Counts {
    heads: usize,
    gets: usize,
    other: usize,
}

fn log_counts(registry: &RegistryServer) -> Counts {
    let log = registry.access_log();
    let manifests = |e: &&crate::registry::AccessLogEntry| e.path.contains("/manifests/");
    Counts {
        heads: log
            .iter()
            .filter(manifests)
            .filter(|e| e.method == "HEAD")
            .count(),
        gets: log
            .iter()
            .filter(manifests)
            .filter(|e| e.method == "GET")
            .count(),
        other: log
            .iter()
            .filter(|e| !e.path.contains("/manifests/"))
            .count(),
    }
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn fmt_times(times: &[f64]) -> String {
    times
        .iter()
        .map(|t| format!("{t:.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}
