//! The command line: argument definitions, logging set-up, dispatch, and exit codes.
//!
//! Exit codes (documented in the README):
//! - `0`: success (everything resolved, refreshed, current, or skipped below threshold);
//! - `1`: a failure (a reference did not resolve, an I/O error);
//! - `2`: a usage or configuration error (bad flags, unreadable config); for
//!   `plan --detailed-exitcode`, updates are pending (see `plan.rs`);
//! - `3`: a failure streak reached its threshold (`run --once`).
//!
//! A broken pipe on stdout (`freshet tags x | head`) counts as success. Everything
//! printed, errors and logs included, goes through [`output`]'s terminal sanitising.

mod apply;
mod controller;
mod kube_client;
mod operate;
mod output;
mod plan;
mod progress;
mod registry_args;
mod resolve;
mod run;
mod runbook;
mod status;
mod tags;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use registry_args::RegistryArgs;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code when something failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a failure streak reached its threshold.
pub const EXIT_THRESHOLD: u8 = 3;

/// Keep workloads and GitOps files on the newest image their policy allows.
#[derive(Debug, Parser)]
#[command(name = "freshet", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `debug` or `freshet_registry=trace`.
    /// Default: `info` for the controller (`run` without --once), else `warn`.
    #[arg(long, global = true, env = "FRESHET_LOG")]
    log: Option<String>,
    /// Threads that run freshet's work (1-64). Default: the CPUs available, at most
    /// 4: freshet mostly waits on the network, and each thread costs memory (its
    /// stack and an allocator arena).
    #[arg(
        long,
        global = true,
        env = "FRESHET_WORKER_THREADS",
        value_parser = clap::value_parser!(u16).range(1..=64)
    )]
    worker_threads: Option<u16>,
}

/// Worker threads when `--worker-threads` is not given: the CPUs available (which
/// the standard library reads from the cgroup quota too), at most this.
const DEFAULT_WORKER_THREADS_MAX: usize = 4;

/// The runtime's worker threads: `flag`, else the CPUs available up to
/// [`DEFAULT_WORKER_THREADS_MAX`].
fn worker_threads(flag: Option<u16>, available: Option<usize>) -> usize {
    match flag {
        Some(n) => usize::from(n.max(1)),
        None => available.unwrap_or(1).clamp(1, DEFAULT_WORKER_THREADS_MAX),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve image references to digests (and platforms) against their registries.
    Resolve(resolve::ResolveArgs),
    /// List every tag of an image's repository, across all pages.
    Tags(tags::TagsArgs),
    /// Show which image references in files (manifests, Helm values, kustomizations,
    /// compose, Dockerfiles, Terraform) their policies would update.
    Plan(plan::PlanArgs),
    /// Write those updates to the files; optionally commit and push them.
    Apply(apply::ApplyArgs),
    /// Refresh the enrolled workloads in the cluster (restart on new digests, move
    /// tags, set env vars) and keep an audit trail on each.
    Run(run::RunArgs),
    /// The worklist: every enrolled workload and image with its digest, the newest
    /// allowed target, the last refresh, the failure streak and the last error.
    Status(status::StatusArgs),
    /// Roll a workload back to a digest (or a Deployment revision), pin it, and hold
    /// the digest its pods run now.
    Rollback(runbook::RollbackArgs),
    /// Pin the digest the pods run and stop tracking the workload until `release`.
    Pin(runbook::PinArgs),
    /// Hold a digest: freshet will not roll it out.
    Hold(runbook::HoldArgs),
    /// Remove pins and holds, and put pinned containers back on their tag.
    Release(runbook::ReleaseArgs),
    /// Approve the update a workload waits on (keel.sh/approvals, freshet.io/approvals).
    Approve(runbook::ApproveArgs),
}

/// An error with the exit code it maps to. Commands return it; `main` prints it.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What went wrong, for stderr.
    pub error: anyhow::Error,
}

impl Failure {
    /// A usage or configuration error (exit 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: EXIT_USAGE,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self {
            code: EXIT_FAILURE,
            error,
        }
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match &cli.command {
        Command::Run(args) if args.is_controller() => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, cli.log.as_deref().unwrap_or(default_log));
    let available = std::thread::available_parallelism().ok().map(|n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(cli.worker_threads, available))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("freshet: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Resolve(args) => resolve::run(args).await,
            Command::Tags(args) => tags::run(args).await,
            Command::Plan(args) => plan::run(args).await,
            Command::Apply(args) => apply::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Rollback(args) => runbook::rollback(args).await,
            Command::Pin(args) => runbook::pin(args).await,
            Command::Hold(args) => runbook::hold(args).await,
            Command::Release(args) => runbook::release(args).await,
            Command::Approve(args) => runbook::approve(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) if is_broken_pipe(&f.error) => ExitCode::from(EXIT_OK),
        Err(f) => {
            output::eprint_line("freshet: error: ", &format!("{:#}", f.error));
            ExitCode::from(f.code)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| output::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn duration_flags_are_range_checked_at_parse_time() {
        let run = ["freshet", "run"];
        for bad in [
            &["--lease-duration", "1000000000y"][..],
            &["--lease-duration", "0s"],
            &["--lease-duration", "2h"],
            &["--interval", "0s"],
            &["--interval", "500ms"],
            &["--interval", "1000y"],
            &["--api-timeout", "0s"],
            &["--api-timeout", "1h"],
            &["--registry-timeout", "1000000000y"],
            &["--credential-helper-timeout", "11m"],
        ] {
            let err = Cli::try_parse_from(run.iter().chain(bad)).expect_err(&bad.join(" "));
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("out of range") || text.contains("not a duration"),
                "{bad:?}: {text}"
            );
        }
        for good in [
            &["--lease-duration", "15s"][..],
            &["--lease-duration", "1h"],
            &["--interval", "31days"],
            &["--api-timeout", "10m"],
        ] {
            Cli::try_parse_from(run.iter().chain(good)).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
    }

    #[test]
    fn worker_threads_follow_the_cpus_up_to_four_unless_the_flag_says() {
        assert_eq!(worker_threads(None, Some(2)), 2);
        assert_eq!(worker_threads(None, Some(64)), DEFAULT_WORKER_THREADS_MAX);
        assert_eq!(worker_threads(None, None), 1);
        assert_eq!(worker_threads(Some(16), Some(2)), 16);
        for bad in ["0", "65", "many"] {
            let err =
                Cli::try_parse_from(["freshet", "status", "--worker-threads", bad]).expect_err(bad);
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
        let cli = Cli::try_parse_from(["freshet", "--worker-threads", "8", "status"]).unwrap();
        assert_eq!(cli.worker_threads, Some(8));
    }
}
