//! `freshet resolve`: references to digests and platforms.
//!
//! JSON output is an array with one object per input, in input order:
//! `reference` (as given), `canonical`, `digest` (the tag's own digest), `platforms`
//! (`[{os, architecture, variant, digest}]`, empty for single-arch), `platform_digest`
//! (only with `--platform`) and `error` (`null` or `{class, message}`). Exit 0 when all
//! resolved, 1 when any failed.

use std::io::IsTerminal as _;

use clap::Args;
use freshet_core::{Platform, Reference};
use freshet_registry::{RegistryError, Resolved, Want};
use serde_json::{Value, json};

use super::output::{OutputFormat, print_json, print_text, table};
use super::{EXIT_FAILURE, EXIT_OK, Failure, RegistryArgs};

/// One input as given, with its parsed reference and answer.
type Outcome = (String, Result<(Reference, Resolved), RegistryError>);

/// Arguments of `freshet resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Also resolve the digest of this platform (OS/ARCH[/VARIANT], e.g. linux/arm64).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform)]
    platform: Option<Platform>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    /// Image references, e.g. nginx:1.27 ghcr.io/org/app:v1.
    #[arg(value_name = "REF", required = true)]
    references: Vec<String>,
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s).map_err(|e| e.to_string())
}

/// Runs `freshet resolve`.
pub async fn run(args: ResolveArgs) -> Result<u8, Failure> {
    let ResolveArgs {
        platform,
        registry,
        output,
        references,
    } = args;
    let client = registry.client().map_err(Failure::usage)?;
    let want = Want {
        platforms: true,
        platform: platform.clone(),
    };
    let parsed: Vec<Result<Reference, RegistryError>> = references
        .iter()
        .map(|r| Reference::parse(r).map_err(RegistryError::from))
        .collect();
    let valid: Vec<(Reference, Want)> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|r| (r.clone(), want.clone())))
        .collect();

    let progress = (valid.len() > 50 && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(valid.len() as u64);
        bar.set_message("resolving");
        bar
    });
    let mut answers = match &progress {
        Some(bar) => {
            let answers = resolve_with_progress(&client, &valid, bar).await;
            bar.finish_and_clear();
            answers
        }
        None => client.resolve_all(&valid).await,
    }
    .into_iter();

    let results: Vec<Outcome> = references
        .iter()
        .zip(parsed)
        .map(|(input, p)| {
            let r = match p {
                Ok(reference) => answers
                    .next()
                    .expect("one answer per valid reference")
                    .map(|res| (reference, res)),
                Err(e) => Err(e),
            };
            (input.clone(), r)
        })
        .collect();
    // Docker Hub style limits are worth knowing before they bite: say what is left.
    for (host, rl) in client.rate_limits() {
        let of = rl.limit.map(|l| format!(" of {l}")).unwrap_or_default();
        let window = rl
            .window_secs
            .map(|w| format!(" per {w} s window"))
            .unwrap_or_default();
        super::output::eprint_line(
            "note: ",
            &format!(
                "{host}: {} pulls left{of}{window} (HEAD requests do not count)",
                rl.remaining
            ),
        );
    }
    let failed = results.iter().any(|(_, r)| r.is_err());
    match output {
        OutputFormat::Json => {
            let items: Vec<Value> = results
                .iter()
                .map(|(input, r)| json_item(input, r, platform.is_some()))
                .collect();
            print_json(&items)?;
        }
        OutputFormat::Text => print_text(&text_table(&results, platform.as_ref()))?,
    }
    Ok(if failed { EXIT_FAILURE } else { EXIT_OK })
}

/// Resolves like `Client::resolve_all` (same dedup, same order), ticking a progress
/// bar per answer.
async fn resolve_with_progress(
    client: &freshet_registry::Client,
    valid: &[(Reference, Want)],
    bar: &indicatif::ProgressBar,
) -> Vec<Result<Resolved, RegistryError>> {
    use futures::stream::{self, StreamExt};
    stream::iter(valid)
        .map(|(r, w)| async move {
            let res = client.resolve(r, w).await;
            bar.inc(1);
            res
        })
        .buffered(256)
        .collect()
        .await
}

fn json_item(
    input: &str,
    r: &Result<(Reference, Resolved), RegistryError>,
    with_platform: bool,
) -> Value {
    let mut item = match r {
        Ok((reference, res)) => json!({
            "reference": input,
            "canonical": reference.canonical(),
            "digest": res.digest.as_str(),
            "platforms": res.platforms.iter().map(|p| json!({
                "os": p.platform.os,
                "architecture": p.platform.architecture,
                "variant": p.platform.variant,
                "digest": p.digest.as_str(),
            })).collect::<Vec<_>>(),
            "error": Value::Null,
        }),
        Err(e) => json!({
            "reference": input,
            "canonical": Reference::parse(input).ok().map(|r| r.canonical()),
            "digest": Value::Null,
            "platforms": [],
            "error": {"class": e.class().label(), "message": e.to_string()},
        }),
    };
    if with_platform {
        item["platform_digest"] = match r {
            Ok((_, res)) => res
                .platform_digest
                .as_ref()
                .map(|d| Value::from(d.as_str()))
                .unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
    }
    item
}

fn text_table(results: &[Outcome], platform: Option<&Platform>) -> String {
    let mut header = vec!["REFERENCE", "DIGEST", "PLATFORMS"];
    let platform_header = platform.map(|p| format!("{p} DIGEST"));
    if let Some(h) = &platform_header {
        header.push(h);
    }
    header.push("ERROR");
    let mut t = table(&header);
    for (input, r) in results {
        let mut row = vec![input.clone()];
        match r {
            Ok((_, res)) => {
                row.push(res.digest.to_string());
                row.push(if res.platforms.is_empty() {
                    "-".to_owned()
                } else {
                    res.platforms
                        .iter()
                        .map(|p| p.platform.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                });
                if platform.is_some() {
                    row.push(
                        res.platform_digest
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                    );
                }
                row.push(String::new());
            }
            Err(e) => {
                row.extend(["-".to_owned(), "-".to_owned()]);
                if platform.is_some() {
                    row.push("-".to_owned());
                }
                row.push(format!("{}: {e}", e.class()));
            }
        }
        t.add_row(super::output::row(row));
    }
    t.to_string()
}
