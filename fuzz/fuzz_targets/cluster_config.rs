//! `freshet_core::refresh::config`: the cluster config and label selectors never
//! panic.
#![no_main]

use freshet_core::refresh::config::{ClusterConfig, Selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let _ = ClusterConfig::parse(input);
    if let Some(first) = input.lines().next() {
        let _ = Selector::parse(first);
    }
});
