//! `freshet_core::refresh::from_annotations`: enrollment from a workload's
//! annotations never panics. Input: `key=value` lines.
#![no_main]

use freshet_core::refresh::from_annotations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let annotations: freshet_core::Labels = input
        .lines()
        .take(32)
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = from_annotations(&annotations);
});
