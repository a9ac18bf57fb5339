//! A credential helper's output: interpreting it never panics, and a failure's
//! message never quotes what the helper printed.
#![no_main]

use freshet_registry::helper::fuzz_interpret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&code, rest)) = data.split_first() else {
        return;
    };
    let mid = rest.len() / 2;
    let (stdout, stderr) = rest.split_at(mid);
    if let Err(e) = fuzz_interpret(code, stdout, stderr) {
        let message = e.to_string();
        for printed in [stdout, stderr] {
            if printed.len() >= 8 {
                let printed = String::from_utf8_lossy(printed);
                assert!(
                    !message.contains(printed.as_ref()),
                    "helper output quoted in {message:?}"
                );
            }
        }
    }
});
