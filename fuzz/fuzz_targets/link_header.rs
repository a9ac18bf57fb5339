//! Tag-list `Link` header parsing: never panics, and a followed link stays on the
//! registry's origin.
#![no_main]

use freshet_registry::tags::fuzz_link;
use libfuzzer_sys::fuzz_target;

const CURRENT: &str = "https://registry.example:5000/v2/library/app/tags/list?n=100";

fuzz_target!(|header: &str| {
    if let Some(Ok(next)) = fuzz_link("registry.example:5000", CURRENT, header) {
        assert!(
            next.starts_with("https://registry.example:5000/"),
            "followed {next} off the registry's origin"
        );
    }
});
