//! Docker config (`config.json`, pull secrets) parsing never panics. Input: a
//! registry host on the first line, the JSON after.
#![no_main]

use freshet_registry::CredentialStore;
use freshet_registry::credentials::fuzz_docker_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (host, json) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"ghcr.io"[..], data),
    };
    let host = String::from_utf8_lossy(host);
    let _ = fuzz_docker_config(&host, json);
    let _ = fuzz_docker_config("docker.io", json);
    let _ = CredentialStore::anonymous().with_pull_secret("ns/secret", json);
});
