//! `freshet-testbed`: freshet's registry test support, by hand. `registry` runs the
//! real distribution registry filled with the example images (the README demo uses
//! it next to `freshet-apiserver serve`); `bench-resolve` runs the resolve benchmark
//! against curl and skopeo.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run freshet's test bed by hand.
#[derive(Debug, Parser)]
#[command(name = "freshet-testbed", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a real registry on 127.0.0.1 with the example images until stopped.
    Registry(freshet_testbed::demo::DemoArgs),
    /// Benchmark `freshet resolve` against a curl HEAD floor and skopeo.
    BenchResolve(freshet_testbed::bench::BenchArgs),
    /// Benchmark `freshet run` at thousands of workloads against a seed-style script.
    BenchScale(freshet_testbed::bench_scale::ScaleArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Registry(args) => freshet_testbed::demo::run(args)
            .await
            .map_err(anyhow::Error::from),
        Command::BenchResolve(args) => freshet_testbed::bench::run(args)
            .await
            .map_err(anyhow::Error::from),
        Command::BenchScale(args) => freshet_testbed::bench_scale::run(args)
            .await
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
