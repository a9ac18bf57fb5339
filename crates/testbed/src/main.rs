//! `freshet-testbed`: freshet's test bed, by hand. `registry` runs the real
//! distribution registry filled with the example images (the README demo uses it);
//! `bench-resolve` runs the resolve benchmark against curl and skopeo.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "freshet-testbed", version, about)]
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Registry(args) => freshet_testbed::demo::run(args).await.map_err(Into::into),
        Command::BenchResolve(args) => freshet_testbed::bench::run(args).await.map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("freshet-testbed: {e}");
            ExitCode::FAILURE
        }
    }
}
