//! freshet's OCI registry client.
#![forbid(unsafe_code)]
