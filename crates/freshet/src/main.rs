//! The `freshet` binary: parse, run, map the outcome to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // freshet's TLS is rustls with the ring provider only.
    let _ = rustls::crypto::ring::default_provider().install_default();
    freshet::cli::main()
}
