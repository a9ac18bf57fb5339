//! `freshet status`: the worklist. Every enrolled workload and tracked image with
//! its current digest, the newest allowed target, the last refresh, the failure
//! streak and the last error (or a warning about an unusable pull secret). Reads
//! only; exit 0, or 1 when the cluster cannot be read, 2 on usage and config errors.
//! Must not work anything out: the rows (target, pending, next due) are decided in
//! `freshet_core::refresh::worklist`; this only lays them out.

use clap::Args;

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
                "FAILURES",
                "LAST ERROR",
            ]);
            let short = |d: &Option<String>| {
                d.as_deref()
                    .map(|d| d.chars().take(19).collect::<String>())
                    .unwrap_or_else(|| "-".into())
            };
            for r in &rows {
                let target = match (&r.target, r.pending) {
                    (Some(_), true) => format!("{} (pending)", short(&r.target)),
                    _ => short(&r.target),
                };
                t.add_row(vec![
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
                    r.failures.to_string(),
                    r.error
                        .clone()
                        .or_else(|| r.last_error.clone())
                        .or_else(|| r.warnings.first().map(|w| format!("warning: {w}")))
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            print_text(&format!("{t}\n"))?;
        }
    }
    Ok(EXIT_OK)
}
