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
    // The message is the one for output of the same lengths: it depends on the shape
    // of what the helper printed, never on the text.
    if let Err(e) = fuzz_interpret(code, stdout, stderr) {
        let blank = fuzz_interpret(code, &vec![b' '; stdout.len()], &vec![b' '; stderr.len()]);
        if let Err(b) = blank {
            assert_eq!(e.to_string(), b.to_string(), "helper output reached the message");
        }
    }
});
