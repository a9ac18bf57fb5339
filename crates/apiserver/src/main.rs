//! `freshet-apiserver`: the Kubernetes API test bed, by hand. `serve` runs it until
//! killed (the README demo uses it next to `freshet-testbed registry`); `measure`
//! fills one with Deployments and prints its peak RSS and CPU time.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run freshet's Kubernetes API test bed by hand.
#[derive(Debug, Parser)]
#[command(name = "freshet-apiserver", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Kubernetes API test bed until killed.
    Serve(freshet_apiserver::ServeArgs),
    /// Create many Deployments in a fresh test bed and print its peak RSS and CPU time.
    Measure(freshet_apiserver::measure::MeasureArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result: Result<(), Box<dyn std::error::Error>> = match Cli::parse().command {
        Command::Serve(args) => freshet_apiserver::serve(args).await.map_err(Into::into),
        Command::Measure(args) => freshet_apiserver::measure::run(args)
            .await
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
