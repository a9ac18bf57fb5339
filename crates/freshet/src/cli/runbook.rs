//! The runbook commands: `freshet rollback`, `pin`, `hold`, `release`, `approve`.
//!
//! Owns their flags, their validation before any system call (the target's
//! `KIND/NAMESPACE/NAME`, the digest, the voter), the text and JSON output, and the
//! exit codes: `0` done (or nothing to do); `2` bad input or a command that does not
//! fit the workload (an unknown container, a digest the registry does not have, no
//! pending approval, an invalid freshet annotation); `1` anything else (the workload
//! not found, the cluster or registry unreachable, a conflict with a concurrent
//! writer). Must not decide nor write: [`freshet_cluster::commands::Commander`] does.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use freshet_cluster::commands::{Command, CommandError, CommandReport, Commander, RollbackTo};
use freshet_core::Digest;
use freshet_core::safety::command::Target;

use super::output::{OutputFormat, print_json, print_text};
use super::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Failure, RegistryArgs};

/// Flags every runbook command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The workload: KIND/NAMESPACE/NAME (deployment, statefulset, daemonset,
    /// cronjob; or deploy, sts, ds, cj).
    #[arg(value_name = "KIND/NAMESPACE/NAME")]
    target: String,
    /// Read and decide, print what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    /// The kubeconfig to use. Default: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// How long one Kubernetes API call may wait for its answer (1s to 10m).
    #[arg(long, value_name = "DURATION", value_parser = super::controller::duration_in(1, 600), default_value = "30s")]
    api_timeout: std::time::Duration,
}

/// `freshet rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    common: Common,
    /// Only this container (default: the containers running the workload's one image).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
    /// The digest to go back to (sha256:…); the registry must have it.
    #[arg(
        long,
        value_name = "DIGEST",
        required_unless_present = "to_revision",
        conflicts_with = "to_revision"
    )]
    to: Option<String>,
    /// The Deployment revision to go back to (kubectl rollout history): the digest it
    /// names, or that its pods ran.
    #[arg(long, value_name = "N")]
    to_revision: Option<u64>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `freshet pin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    #[command(flatten)]
    common: Common,
    /// Only this container (default: the containers running the workload's one image).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
}

/// `freshet hold`.
#[derive(Debug, Args)]
pub struct HoldArgs {
    #[command(flatten)]
    common: Common,
    /// The digest freshet must not roll out (sha256:…).
    #[arg(value_name = "DIGEST")]
    digest: String,
    /// Only this container's image (default: the workload's one image).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
}

/// `freshet release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    common: Common,
    /// Only this container's image (default: every pin and hold).
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
}

/// `freshet approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    common: Common,
    /// Who approves (each name counts once).
    #[arg(long, value_name = "NAME", env = "USER")]
    by: Option<String>,
}

/// Runs `freshet rollback`.
pub async fn rollback(args: RollbackArgs) -> Result<u8, Failure> {
    let RollbackArgs {
        common,
        container,
        to,
        to_revision,
        registry,
    } = args;
    let to = match (to, to_revision) {
        (Some(d), _) => RollbackTo::Digest(parse_digest("--to", &d)?),
        (None, Some(n)) => RollbackTo::Revision(n),
        (None, None) => {
            return Err(Failure::usage(anyhow::anyhow!(
                "pass --to DIGEST or --to-revision N"
            )));
        }
    };
    registry.client().map_err(Failure::usage)?;
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
    run(common, Command::Rollback { container, to }, Some(factory)).await
}

/// Runs `freshet pin`.
pub async fn pin(args: PinArgs) -> Result<u8, Failure> {
    let PinArgs { common, container } = args;
    run(common, Command::Pin { container }, None).await
}

/// Runs `freshet hold`.
pub async fn hold(args: HoldArgs) -> Result<u8, Failure> {
    let HoldArgs {
        common,
        digest,
        container,
    } = args;
    let digest = parse_digest("DIGEST", &digest)?;
    run(common, Command::Hold { container, digest }, None).await
}

/// Runs `freshet release`.
pub async fn release(args: ReleaseArgs) -> Result<u8, Failure> {
    let ReleaseArgs { common, container } = args;
    run(common, Command::Release { container }, None).await
}

/// Runs `freshet approve`.
pub async fn approve(args: ApproveArgs) -> Result<u8, Failure> {
    let ApproveArgs { common, by } = args;
    let by = by
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "pass --by NAME (or set USER): who approves"
            ))
        })?;
    run(common, Command::Approve { by }, None).await
}

fn parse_digest(flag: &str, value: &str) -> Result<Digest, Failure> {
    Digest::parse(value.trim()).map_err(|e| {
        Failure::usage(anyhow::anyhow!(
            "{flag} {:?}: {e}; write sha256:<64 hex digits> (freshet resolve prints it)",
            value.chars().take(100).collect::<String>()
        ))
    })
}

async fn run(
    common: Common,
    command: Command,
    registry: Option<freshet_cluster::RegistryFactory>,
) -> Result<u8, Failure> {
    let Common {
        target,
        dry_run,
        output,
        kubeconfig,
        api_timeout,
    } = common;
    let target = Target::parse(&target).map_err(Failure::usage)?;
    let kube = super::kube_client::connect(kubeconfig.as_deref(), api_timeout)
        .await
        .map_err(Failure::usage)?;
    let registry = registry.unwrap_or_else(|| {
        Arc::new(
            |_: &[freshet_cluster::PullSecret],
             _: &freshet_registry::SharedTokens|
             -> Result<freshet_registry::Client, freshet_cluster::BoxError> {
                Err("this command asks no registry".into())
            },
        )
    });
    let instance = std::env::var("POD_NAME").unwrap_or_else(|_| "freshet-cli".into());
    let commander = Commander::new(kube, registry, &instance);
    let report = commander
        .run(&target, command, dry_run)
        .await
        .map_err(failure)?;
    match output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&text(&report))?,
    }
    Ok(EXIT_OK)
}

fn failure(e: CommandError) -> Failure {
    let code = match e {
        CommandError::Refused(_)
        | CommandError::UnknownDigest { .. }
        | CommandError::Revision { .. }
        | CommandError::NoApproval(_)
        | CommandError::Settings(_) => EXIT_USAGE,
        _ => EXIT_FAILURE,
    };
    Failure {
        code,
        error: anyhow::Error::from(e),
    }
}

/// `s` with control characters escaped, for the terminal.
fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn text(r: &CommandReport) -> String {
    let id = format!("{}/{}/{}", r.kind.to_lowercase(), r.namespace, r.name);
    let state = match (r.dry_run, r.written) {
        (true, _) => "dry run: nothing written",
        (false, true) => "written",
        (false, false) => "nothing to change",
    };
    let mut out = format!("{} {}: {state}\n", r.command, clean(&id));
    for c in &r.changes {
        out.push_str(&format!(
            "  {}: {} -> {}\n",
            clean(&c.container),
            clean(&c.from),
            clean(&c.to)
        ));
    }
    for (k, v) in &r.annotations {
        let what = if v.is_some() { "set" } else { "removed" };
        out.push_str(&format!("  annotation {}: {what}\n", clean(k)));
    }
    out.push_str(&format!("  {}\n", clean(&r.note)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_output_escapes_what_came_from_outside() {
        let r = CommandReport {
            command: "approve",
            kind: "Deployment",
            namespace: "shop".into(),
            name: "api".into(),
            dry_run: false,
            written: true,
            changes: Vec::new(),
            annotations: [("freshet.io/approval".to_owned(), Some("{}".to_owned()))].into(),
            note: "approved by a\u{1b}[31mb".into(),
        };
        let t = text(&r);
        assert!(
            t.starts_with("approve deployment/shop/api: written\n"),
            "{t}"
        );
        assert!(t.contains("annotation freshet.io/approval: set"), "{t}");
        assert!(!t.contains('\u{1b}'), "{t}");
    }
}
