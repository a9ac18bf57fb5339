//! freshet: keep Kubernetes workloads and GitOps files on the newest image their policy
//! allows. This crate is the binary's wiring: the command line ([`cli`]) and its output.
#![forbid(unsafe_code)]

pub mod cli;
pub mod server;
