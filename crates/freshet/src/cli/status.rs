//! `freshet status`: the worklist. Every enrolled workload and tracked image with
//! its current digest, the newest allowed target, the last refresh, the failure
//! streak and the last error (or a warning about an unusable pull secret). Reads
//! only; exit 0, or 1 when the cluster cannot be read, 2 on usage and config errors.
//! Must not work anything out: the rows (target, pending, next due) are decided in
//! `freshet_core::refresh::worklist`; this only lays them out.

use clap::Args;
use freshet_cluster::status::ImageStatus;
use freshet_core::runs::Freshness;

use super::output::{OutputFormat, print_json, print_text, table};
use super::run::ClusterArgs;
use super::{EXIT_OK, Failure};

/// Arguments of `freshet status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Runs `freshet status`.
pub async fn run(args: StatusArgs) -> Result<u8, Failure> {
    let StatusArgs { output, cluster } = args;
    let refresher = cluster.refresher(true, None, None).await?;
    let rows = refresher.status().await.map_err(anyhow::Error::from)?;
    match output {
        OutputFormat::Json => print_json(&rows)?,
        OutputFormat::Text => {
            let mut t = table(&[
                "WORKLOAD",
                "CONTAINERS",
                "IMAGE",
                "POLICY",
                "DIGEST",
                "TARGET",
                "LAST REFRESH",
                "RUNNING",
                "FAILURES",
                "LAST ERROR",
            ]);
            let short = |d: &Option<String>| {
                d.as_deref()
                    .map(|d| d.chars().take(19).collect::<String>())
                    .unwrap_or_else(|| "-".into())
            };
            for r in &rows {
                let target = match (&r.target, r.pending, &r.queued_until, &r.queued) {
                    (Some(_), true, Some(due), Some(_)) => {
                        format!("{} (queued until {due})", short(&r.target))
                    }
                    (Some(_), true, None, Some(_)) => format!("{} (queued)", short(&r.target)),
                    (Some(_), true, ..) => format!("{} (pending)", short(&r.target)),
                    _ => short(&r.target),
                };
                t.add_row(super::output::row([
                    format!("{}/{}/{}", r.kind.to_lowercase(), r.namespace, r.name),
                    r.containers.join(","),
                    r.image.clone(),
                    match (&r.schedule, &r.next_due) {
                        (Some(s), Some(next)) => format!("{} ({s}; next {next})", r.policy),
                        (Some(s), None) => format!("{} ({s})", r.policy),
                        _ => r.policy.clone(),
                    },
                    short(&r.digest),
                    target,
                    r.last_refresh.clone().unwrap_or_else(|| "-".into()),
                    running(r),
                    r.failures.to_string(),
                    r.error
                        .clone()
                        .or_else(|| r.last_error.clone())
                        .or_else(|| r.warnings.first().map(|w| format!("warning: {w}")))
                        .unwrap_or_else(|| "-".into()),
                ]));
            }
            print_text(&format!("{t}\n"))?;
        }
    }
    Ok(EXIT_OK)
}

/// What the pods run, in one cell: each digest with its platforms and pod count,
/// the stuck pulls, and the pods older than the tag. The text comes from the core's
/// report, whose outside strings are escaped and bounded.
fn running(r: &ImageStatus) -> String {
    let mut parts = Vec::new();
    for c in &r.runs {
        for d in &c.running {
            let platforms = if d.platforms.is_empty() {
                "platform unknown".to_owned()
            } else {
                d.platforms.join(",")
            };
            parts.push(format!(
                "{} on {platforms} ({} pod{})",
                d.digest.short(),
                d.pods,
                if d.pods == 1 { "" } else { "s" }
            ));
        }
        if c.running_more > 0 {
            parts.push(format!("{} more digests", c.running_more));
        }
        if let Some(s) = c.stuck.containers.first() {
            let n = c.stuck.containers.len() + c.stuck.more;
            parts.push(format!("{n} stuck: {} ({})", s.reason, s.cause));
        }
        if let Some(Freshness::Stale { pods, .. }) = &c.freshness {
            parts.push(format!("stale: {pods}"));
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use freshet_core::Digest;
    use freshet_core::runs::{Names, RunningDigest, RunsReport, StuckPods};

    use super::*;

    fn row(runs: Vec<RunsReport>) -> ImageStatus {
        ImageStatus {
            kind: "Deployment",
            namespace: "team".into(),
            name: "web".into(),
            containers: vec!["app".into()],
            image: "r.example/app:latest".into(),
            policy: "digest".into(),
            digest: None,
            last_refresh: None,
            target: None,
            pending: false,
            failures: 0,
            last_error: None,
            error: None,
            warnings: vec![],
            schedule: None,
            next_due: None,
            runs,
            queued: None,
            queued_until: None,
        }
    }

    #[test]
    fn the_running_cell_names_each_digest_its_platforms_and_pods() {
        assert_eq!(running(&row(vec![])), "-");
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let report = RunsReport {
            container: "app".into(),
            image: "r.example/app:latest".into(),
            running: vec![RunningDigest {
                digest: d,
                pods: 2,
                platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
                platform_unknown_pods: 0,
                nodes: Names::default(),
            }],
            running_more: 0,
            unknown: vec![],
            unknown_more: 0,
            other_image: Names::default(),
            stuck: StuckPods::default(),
            freshness: None,
            truncated: None,
        };
        assert_eq!(
            running(&row(vec![report])),
            "sha256:abababababab on linux/amd64,linux/arm64 (2 pods)"
        );
    }
}
