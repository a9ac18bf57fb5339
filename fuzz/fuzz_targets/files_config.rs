//! `freshet_core::files::Config` (`freshet.yaml`) never panics; `# freshet:` markers
//! are covered by `file_edits`, which scans them.
#![no_main]

use freshet_core::files::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(config) = Config::parse(input) {
        let _ = config.rule_for("deploy/app.yaml", "ghcr.io/acme/app:1.2.3");
    }
});
