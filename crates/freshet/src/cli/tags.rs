//! `freshet tags`: every tag of a repository, across all pages.
//!
//! Text prints one tag per line; JSON prints an array of strings. Order is the
//! registry's; cosign signature tags are left out.

use clap::Args;
use freshet_core::Reference;

use super::output::{OutputFormat, print_json, print_text};
use super::{EXIT_OK, Failure, RegistryArgs};

/// Arguments of `freshet tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    /// The image whose repository to list (a tag, if given, is ignored).
    #[arg(value_name = "REF")]
    reference: String,
}

/// Runs `freshet tags`.
pub async fn run(args: TagsArgs) -> Result<u8, Failure> {
    let TagsArgs {
        registry,
        output,
        reference,
    } = args;
    let reference = Reference::parse(&reference).map_err(Failure::usage)?;
    let client = registry.client().map_err(Failure::usage)?;
    let tags = client
        .list_tags(&reference)
        .await
        .map_err(anyhow::Error::from)?;
    match output {
        OutputFormat::Json => print_json(&tags)?,
        OutputFormat::Text => {
            let mut text = tags
                .iter()
                .map(|t| super::output::field(t))
                .collect::<Vec<_>>()
                .join("\n");
            text.push('\n');
            print_text(&text)?;
        }
    }
    Ok(EXIT_OK)
}
