//! `WWW-Authenticate` challenge parsing and the token endpoint's answer never panic.
#![no_main]

use freshet_registry::auth;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = auth::parse_challenge(header);
        let _ = auth::pull_scope(header);
    }
    let _ = auth::parse_token_response(data);
});
