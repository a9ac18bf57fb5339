//! `freshet_core::reference`: parsing never panics, and a parsed reference's
//! canonical form parses again to the same reference.
#![no_main]

use freshet_core::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let Ok(r) = Reference::parse(input) else {
        return;
    };
    let canonical = r.canonical();
    let again = Reference::parse(&canonical).expect("a canonical reference parses");
    assert_eq!(again.canonical(), canonical, "canonical form is stable");
    let _ = (
        r.familiar(),
        r.name(),
        r.tag_or_latest(),
        r.without_digest(),
    );
    let _ = Reference::parse(&r.familiar()).expect("a familiar reference parses");
    if let Some(tag) = r.tag() {
        let _ = r.with_tag(tag).expect("a reference's own tag is valid");
    }
});
