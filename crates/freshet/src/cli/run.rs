//! `freshet run`: one refresh pass over every enrolled workload in the cluster
//! (`--once`), or the controller mode (see [`super::controller`]).
//!
//! Owns the command's flags, their resolution into [`PassOptions`] (validation
//! first, then the kube client, then finding freshet's own workload), the text and
//! JSON reports and the exit code:
//! - `0`: everything refreshed, was current, or failed below its threshold;
//! - `3`: a failure streak reached its threshold (takes precedence over `1`);
//! - `2`: a usage or configuration error (bad flags, unreadable kubeconfig);
//! - `1`: any other error (the cluster unreachable, a patch refused, invalid
//!   annotations on a workload).
//!
//! Must not decide nor write anything itself: the pass is
//! [`freshet_cluster::Refresher`]'s, and the controller's edge is
//! [`super::controller`] (which never imports this module back).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use freshet_cluster::{
    ChangeReport, Outcome, PassOptions, PassReport, Refresher, Status, WorkloadId,
};
use freshet_core::refresh::Streak;
use freshet_core::refresh::config::ClusterConfig;

use super::controller::{ControllerArgs, parse_duration};
use super::output::{OutputFormat, print_json, print_text, table};
use super::{EXIT_FAILURE, EXIT_OK, EXIT_THRESHOLD, Failure, RegistryArgs};

/// The flags that say which cluster and which workloads (shared by `run` and `status`).
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The cluster config: enrollment rules, the namespace allowlist, the failure
    /// threshold (see the README). Annotations on a workload override its rules.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The kubeconfig to use. Default: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Only these namespaces (repeatable; default: the config's allowlist, else all).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    namespaces: Vec<String>,
    /// Only workloads matching this label selector (`app=web,tier!=db`).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    selector: Option<String>,
    /// freshet's own workload, never touched (NAMESPACE/NAME). Default: found from
    /// POD_NAMESPACE and POD_NAME by walking the pod's owners.
    #[arg(long = "self", value_name = "NAMESPACE/NAME", env = "FRESHET_SELF")]
    self_workload: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl ClusterArgs {
    /// Validates every flag, then connects: usage and config errors exit 2.
    /// `interval`: how often passes run, for schedules (`None`: all workloads due).
    pub async fn refresher(
        self,
        dry_run: bool,
        interval: Option<Duration>,
    ) -> Result<Refresher, Failure> {
        let defaults = PassOptions::default();
        self.refresher_with(
            dry_run,
            interval,
            defaults.max_writes,
            defaults.write_timeout,
        )
        .await
    }

    /// [`Self::refresher`] with `max_writes` workloads written at once, each write
    /// within `write_timeout`.
    pub async fn refresher_with(
        self,
        dry_run: bool,
        interval: Option<Duration>,
        max_writes: usize,
        write_timeout: Duration,
    ) -> Result<Refresher, Failure> {
        let ClusterArgs {
            config,
            kubeconfig,
            namespaces,
            selector,
            self_workload,
            registry,
        } = self;
        // Validate everything before the first system call.
        let mut skip = BTreeSet::new();
        if let Some(s) = &self_workload {
            skip.insert(parse_id(s).map_err(Failure::usage)?);
        }
        let config = match &config {
            Some(path) => Arc::new(read_config(path).map_err(Failure::usage)?),
            None => Arc::default(),
        };
        registry.client().map_err(Failure::usage)?;
        let counter = freshet_cluster::ApiCounter::default();
        let kube = kube_client(kubeconfig.as_deref(), &counter)
            .await
            .map_err(Failure::usage)?;
        if self_workload.is_none()
            && let (Ok(ns), Ok(pod)) = (std::env::var("POD_NAMESPACE"), std::env::var("POD_NAME"))
        {
            match freshet_cluster::own::discover(&kube, &ns, &pod).await {
                Ok(id) => {
                    tracing::info!(namespace = %id.namespace, name = %id.name, "freshet's own workload");
                    skip.insert(id);
                }
                Err(e) => tracing::warn!(
                    error = %freshet_cluster::error_chain(&e),
                    "cannot find freshet's own workload; set --self NAMESPACE/NAME"
                ),
            }
        }
        let options = PassOptions {
            dry_run,
            skip,
            namespaces: (!namespaces.is_empty()).then_some(namespaces),
            selector,
            config,
            interval,
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| "freshet".into()),
            max_writes,
            write_timeout,
            ..PassOptions::default()
        };
        let factory: freshet_cluster::RegistryFactory = Arc::new(move |pull_secrets, tokens| {
            registry
                .client_with_pull_secrets(
                    pull_secrets
                        .iter()
                        .map(|s| (s.name.as_str(), s.json.as_slice())),
                    tokens.clone(),
                )
                .map_err(Into::into)
        });
        Ok(Refresher::new(kube, factory, options).with_api_counter(counter))
    }
}

/// Arguments of `freshet run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do one pass and exit (for a CronJob). Without it, freshet runs as a controller:
    /// a pass every --interval while it holds the leader lease, metrics on
    /// --metrics-addr, until SIGTERM.
    #[arg(long)]
    once: bool,
    /// How often passes run: the controller's period, or with --once the CronJob's
    /// schedule. A workload with a schedule (freshet.io/schedule, keel.sh/pollSchedule,
    /// a rule's schedule) is due when it fired within the last interval. Default: 15m
    /// with --once (deploy/overlays/cronjob runs every 15 minutes), 1m otherwise.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    interval: Option<Duration>,
    /// Every enrolled workload is due, whatever its schedule (a manual run).
    #[arg(long)]
    ignore_schedules: bool,
    /// Plan only: print (or, as a controller, log) what would change and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Output format of the --once report.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    /// Workloads written (patch and Events) at once at most, 1 to 256.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=freshet_cluster::pass::MAX_WRITES_LIMIT as i64))]
    max_writes: u16,
    /// The longest one patch or Event may take before it is abandoned (the
    /// workload is then read again and retried).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    write_timeout: Duration,
    #[command(flatten)]
    controller: ControllerArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Runs `freshet run`.
pub async fn run(args: RunArgs) -> Result<u8, Failure> {
    let RunArgs {
        once,
        interval,
        ignore_schedules,
        dry_run,
        output,
        max_writes,
        write_timeout,
        controller,
        cluster,
    } = args;
    let interval = interval.unwrap_or(if once {
        Duration::from_secs(15 * 60)
    } else {
        Duration::from_secs(60)
    });
    let window = (!ignore_schedules).then_some(interval);
    let refresher = cluster
        .refresher_with(dry_run, window, usize::from(max_writes), write_timeout)
        .await?;
    if !once {
        // The controller keeps watched stores of the workloads: no LIST per pass.
        return super::controller::run(refresher.watching(), interval, controller).await;
    }
    let report = refresher.run_once().await.map_err(anyhow::Error::from)?;
    match output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&text_report(&report))?,
    }
    Ok(match report.outcome() {
        Outcome::Ok => EXIT_OK,
        Outcome::Escalated => EXIT_THRESHOLD,
        Outcome::Failed => EXIT_FAILURE,
    })
}

impl RunArgs {
    /// Whether this is the controller mode (no `--once`).
    pub fn is_controller(&self) -> bool {
        !self.once
    }
}

fn read_config(path: &std::path::Path) -> anyhow::Result<ClusterConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    ClusterConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn parse_id(s: &str) -> anyhow::Result<WorkloadId> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(WorkloadId {
                namespace: ns.into(),
                name: name.into(),
            })
        }
        _ => anyhow::bail!("--self {s:?}: expected NAMESPACE/NAME, e.g. freshet/freshet"),
    }
}

async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
    counter: &freshet_cluster::ApiCounter,
) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig found (pass --kubeconfig, set KUBECONFIG, or run in a pod)")?,
    };
    freshet_cluster::api_count::counted_client(config, counter)
        .context("building the Kubernetes client")
}

fn text_report(report: &PassReport) -> String {
    let mut t = table(&["WORKLOAD", "STATUS", "DETAIL"]);
    for w in &report.workloads {
        let id = format!("{}/{}/{}", w.kind.to_lowercase(), w.namespace, w.name);
        let status = status_name(w.status, report.dry_run);
        let mut details: Vec<String> = Vec::new();
        details.extend(w.changes.iter().map(change_line));
        details.extend(
            w.baselines
                .iter()
                .map(|b| format!("baseline recorded for {b}")),
        );
        details.extend(
            w.transient
                .iter()
                .map(|f| failure_line(f, "transient, skipped")),
        );
        details.extend(
            w.escalations
                .iter()
                .map(|f| failure_line(f, "threshold reached")),
        );
        details.extend(w.warnings.iter().map(|x| format!("warning: {x}")));
        details.extend(w.error.iter().map(|e| format!("error: {e}")));
        if w.status == Status::NotDue {
            details.push(match &w.next_due {
                Some(next) => format!("schedule fires next at {next}"),
                None => "its schedule never fires again".into(),
            });
        }
        if details.is_empty() {
            details.push(String::new());
        }
        for (i, d) in details.into_iter().enumerate() {
            let (a, b) = if i == 0 {
                (id.as_str(), status)
            } else {
                ("", "")
            };
            t.add_row(vec![a, b, &d]);
        }
    }
    let writes = if report.dry_run {
        "dry run: nothing written".to_owned()
    } else {
        format!("{} workloads written", report.writes())
    };
    format!(
        "{t}\n{} enrolled workloads, {} unique images, {writes}\n",
        report.workloads.len(),
        report.images
    )
}

fn status_name(status: Status, dry_run: bool) -> &'static str {
    match (status, dry_run) {
        (Status::Refreshed, true) => "would refresh",
        (Status::Refreshed, false) => "refreshed",
        (Status::Recorded, _) => "recorded",
        (Status::Current, _) => "current",
        (Status::Skipped, _) => "skipped (self)",
        (Status::NotDue, _) => "not due",
        (Status::Escalated, _) => "FAILING",
        (Status::Failed, _) => "error",
    }
}

fn change_line(c: &ChangeReport) -> String {
    match &c.var {
        Some(var) => format!(
            "set-env {}/{var}: {} -> {} ({})",
            c.containers.join(","),
            if c.from.is_empty() {
                "(unset)"
            } else {
                &c.from
            },
            c.to,
            c.image
        ),
        None => format!(
            "{} {}: {} -> {} ({})",
            c.action,
            c.containers.join(","),
            c.from,
            c.to,
            c.image
        ),
    }
}

fn failure_line(f: &Streak, what: &str) -> String {
    format!(
        "{}: {} failures in a row ({what}): {}",
        f.image, f.count, f.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_workload_is_namespace_slash_name() {
        assert_eq!(
            parse_id("freshet/freshet").unwrap(),
            WorkloadId {
                namespace: "freshet".into(),
                name: "freshet".into()
            }
        );
        for bad in ["freshet", "/x", "x/", "a/b/c"] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
