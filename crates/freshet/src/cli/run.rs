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
//!   annotations on a workload, a rollout freshet started failed).
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

use freshet_cluster::metrics::Metrics;

use super::controller::{ControllerArgs, duration_in};
use super::operate;
use super::output::{OutputFormat, print_json, print_text, table};
use super::progress::Progress;
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
    /// The namespace Argo CD runs in: an Application elsewhere gets the git
    /// write-back file `.argocd-source-<namespace>_<app>.yaml`, as Argo CD Image
    /// Updater names it. `git` write-back takes its token from FRESHET_GIT_TOKEN (else
    /// git's credential helpers).
    #[arg(long, value_name = "NS", default_value = "argocd")]
    argocd_namespace: String,
    /// Do not read Argo CD Applications and ImageUpdaters.
    #[arg(long)]
    no_argocd: bool,
    /// How long one Kubernetes API call may wait for its answer (1s to 10m). A call
    /// that times out fails what needed it: the pass for a listing, the workload
    /// for its patch.
    #[arg(long, value_name = "DURATION", value_parser = duration_in(1, 600), default_value = "30s")]
    api_timeout: Duration,
    /// How long a rollout freshet starts may take before it counts as failed and is
    /// rolled back (10s to 24h). Default: the Deployment's progressDeadlineSeconds,
    /// else 10m.
    #[arg(long, value_name = "DURATION", value_parser = duration_in(10, 24 * 3600))]
    health_timeout: Option<Duration>,
    /// freshet's own namespace, where the pacing budget's state (ConfigMap
    /// freshet-pacing) is kept. Default: $POD_NAMESPACE, else `freshet`.
    #[arg(long, value_name = "NS")]
    state_namespace: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

impl ClusterArgs {
    /// Validates every flag, then connects: usage and config errors exit 2.
    /// `interval`: how often passes run, for schedules (`None`: all workloads due).
    /// `metrics`: where passes and registry clients count (`None`: nowhere).
    pub async fn refresher(
        self,
        dry_run: bool,
        interval: Option<Duration>,
        metrics: Option<&Metrics>,
    ) -> Result<Refresher, Failure> {
        let defaults = PassOptions::default();
        self.refresher_with(
            dry_run,
            interval,
            metrics,
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
        metrics: Option<&Metrics>,
        max_writes: usize,
        write_timeout: Duration,
    ) -> Result<Refresher, Failure> {
        let ClusterArgs {
            config,
            kubeconfig,
            namespaces,
            selector,
            self_workload,
            argocd_namespace,
            no_argocd,
            api_timeout,
            health_timeout,
            state_namespace,
            mut registry,
        } = self;
        registry.recorder = metrics.map(Metrics::registry_recorder);
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
        let kube =
            super::kube_client::connect_counted(kubeconfig.as_deref(), api_timeout, &counter)
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
            argocd: freshet_cluster::argocd::ArgoOptions {
                enabled: !no_argocd,
                git_token: std::env::var(super::apply::TOKEN_ENV)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .map(freshet_gitops::GitToken::new),
                controller_namespace: Some(argocd_namespace),
                ..Default::default()
            },
            health_timeout,
            follow_rollouts: true,
            state_namespace: state_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "freshet".into()),
            api_writes: metrics.map(Metrics::api_writes).unwrap_or_default(),
            max_writes,
            write_timeout,
            ..PassOptions::default()
        };
        let factory: freshet_cluster::RegistryFactory = Arc::new(move |pull_secrets, tokens| {
            registry
                .client_with_pull_secrets(
                    pull_secrets
                        .iter()
                        .map(|s| (s.name.as_str(), s.json.expose().as_bytes())),
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
    /// 1s to 31 days.
    #[arg(long, value_name = "DURATION", value_parser = duration_in(1, 31 * 24 * 3600))]
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
    /// With --once: follow the rollouts this run starts until each is healthy or
    /// rolled back (bounded by --health-timeout). Without it, the next run judges
    /// them from their freshet.io/rollout record.
    #[arg(long, requires = "once")]
    wait: bool,
    /// With --once: write the pass's metrics to FILE for node-exporter's textfile
    /// collector (Prometheus text format, replaced atomically).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// Workloads written (patch and Events) at once at most, 1 to 256.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=freshet_cluster::pass::MAX_WRITES_LIMIT as i64))]
    max_writes: u16,
    /// The longest one patch or Event may take before it is abandoned (the
    /// workload is then read again and retried), 1s to 10m.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration_in(1, 600))]
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
        wait,
        metrics_file,
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
    if metrics_file.is_some() && !once {
        return Err(Failure::usage(anyhow::anyhow!(
            "--metrics-file is for --once; the controller serves /metrics on --metrics-addr"
        )));
    }
    let mut metrics = Metrics::new();
    let refresher = cluster
        .refresher_with(
            dry_run,
            window,
            Some(&metrics),
            usize::from(max_writes),
            write_timeout,
        )
        .await?;
    let (refresher, notifier) = operate::notifications(refresher, &mut metrics)?;
    if !once {
        // The controller keeps watched stores of the workloads: no LIST per pass.
        return super::controller::run(refresher.watching(), interval, controller, metrics).await;
    }
    let progress = Progress::spinner(Progress::wanted(output), "listing workloads");
    let started = std::time::Instant::now();
    let refresher = refresher.with_observer(progress.observer());
    let report = refresher.run_once().await;
    progress.finish();
    let mut report = report.map_err(anyhow::Error::from)?;
    if wait && !dry_run {
        refresher.wait_for_rollouts(&mut report).await;
    }
    operate::observe_once(&metrics, &report, started.elapsed());
    operate::finish_once(notifier, &metrics, metrics_file.as_deref()).await;
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
        if w.status == Status::Queued
            && let Some(due) = &w.next_due
        {
            details.push(format!("due at {due}"));
        }
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
            t.add_row(super::output::row([a, b, &d]));
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
        (Status::Following, _) => "rolling out",
        (Status::RolledBack, _) => "ROLLED BACK",
        (Status::RolloutFailed, _) => "ROLLOUT FAILED",
        (Status::Queued, _) => "queued",
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

    /// Bad input: `--health-timeout` is range-checked, with the fix in the error.
    #[test]
    fn health_timeout_is_range_checked() {
        let parse = duration_in(10, 24 * 3600);
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        for bad in ["5s", "25h", "soon"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("range") || e.contains("e.g."), "{bad}: {e}");
        }
    }

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
