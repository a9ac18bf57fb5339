//! The demo registry: a real distribution registry on loopback, filled with the
//! standard fixtures, kept running until the process is told to stop.
//!
//! Owns what `freshet-testbed registry` does for the README demo and for trying
//! freshet by hand: start, seed, write a small JSON "ready file" with the registry's
//! address and example references (so scripts need not parse logs), then wait for
//! Ctrl-C or SIGTERM and stop the registry.

use std::path::PathBuf;

use serde::Serialize;

use crate::registry::fixtures::{self, StandardFixtures};
use crate::registry::push::Pusher;
use crate::registry::token::TokenOptions;
use crate::registry::{RegistryOptions, RegistryServer, TestbedError};

/// Which registry configuration the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoMode {
    /// No authentication.
    Open,
    /// htpasswd basic auth (user `demo`, password `demo-password`).
    Basic,
    /// Token auth with anonymous pull (like Docker Hub).
    Token,
}

/// Arguments of `freshet-testbed registry`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Registry configuration.
    #[arg(long, value_enum, default_value = "open")]
    pub mode: DemoMode,
    /// Write `{"host", "references"}` here once the images are pushed.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Skip the 2,600-tag repository (faster start).
    #[arg(long)]
    pub small: bool,
}

/// What the ready file holds.
#[derive(Debug, Serialize)]
pub struct Ready {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Example references, one per fixture shape.
    pub references: Vec<String>,
}

/// Runs the demo registry until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> Result<(), TestbedError> {
    let options = match args.mode {
        DemoMode::Open => RegistryOptions::open(),
        DemoMode::Basic => RegistryOptions::basic().user("demo", "demo-password"),
        DemoMode::Token => {
            RegistryOptions::token(TokenOptions::new().user("demo", "demo-password"))
        }
    };
    let mut registry = RegistryServer::start(options).await?;
    let pusher = Pusher::new(&registry)?;
    let fx = if args.small {
        StandardFixtures {
            alpine: fixtures::seed_alpine(&pusher).await?,
            api: fixtures::seed_api(&pusher).await?,
            multi: fixtures::seed_multi(&pusher).await?,
            amd64only: fixtures::seed_amd64only(&pusher).await?,
            many: fixtures::RepoFixture {
                repo: fixtures::MANY.into(),
                tags: Default::default(),
            },
        }
    } else {
        fixtures::seed_standard(&pusher).await?
    };
    let host = registry.host();
    let mut references: Vec<String> = [
        "library/alpine:3.19.1",
        "library/alpine:latest",
        "team/multi:latest",
    ]
    .iter()
    .chain(["team/api:1.0.0", "team/api:stable", "team/amd64only:latest"].iter())
    .map(|r| format!("{host}/{r}"))
    .collect();
    if !fx.many.tags.is_empty() {
        references.push(format!("{host}/team/many:12.19.9"));
    }
    let ready = Ready {
        host: host.clone(),
        references,
    };
    let json = serde_json::to_string_pretty(&ready).expect("ready file serialises");
    eprintln!(
        "freshet-testbed: registry {host} ({:?}) is ready",
        args.mode
    );
    println!("{json}");
    if let Some(path) = &args.ready_file {
        // Written whole, then renamed, so a script polling for it never reads half.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &json)
            .map_err(|e| TestbedError::io("writing the ready file", &tmp, e))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| TestbedError::io("writing the ready file", path, e))?;
    }
    wait_for_stop().await;
    registry.stop().await;
    Ok(())
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
