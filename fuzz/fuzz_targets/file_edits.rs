//! `freshet_core::files`: scanning and editing YAML, kustomization, Dockerfile and
//! HCL. Invariants: nothing panics, and when an edit applies, the output parses
//! again (scans) and differs from the input only inside the reference regions the
//! scan reported. Input: one selector byte (format, pin form, tag), then the text.
#![no_main]

use freshet_core::Digest;
use freshet_core::files::{self, PinForm, Target};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 4] = [
    "deploy/app.yaml",
    "kustomization.yaml",
    "Dockerfile",
    "infra/main.tf",
];
const TAGS: [&str; 4] = ["1.2.3", "v2.0.0-rc.1", "latest", "9"];
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let path = PATHS[usize::from(selector & 3)];
    let pin = match (selector >> 2) & 3 {
        0 | 3 => PinForm::Tag,
        1 => PinForm::TagDigest,
        _ => PinForm::Digest,
    };
    let target = Target {
        tag: TAGS[usize::from((selector >> 4) & 3)].to_owned(),
        digest: Some(DIGEST.parse::<Digest>().expect("valid digest")),
    };
    let Ok(found) = files::scan(path, text) else {
        return;
    };
    // Edit every reference (the first 16), as an update of all of them would.
    let mut edits = Vec::new();
    for f in found.iter().take(16) {
        match files::edits_for(text, f, &target, pin) {
            Ok(e) => edits.extend(e),
            Err(_) => return,
        }
    }
    let Ok(out) = files::apply_edits(path, text, &edits) else {
        return;
    };
    files::scan(path, &out).expect("the edited file parses");

    // Every edit lies inside (or at the edge of) a reported reference region ...
    for e in &edits {
        assert!(
            found
                .iter()
                .any(|f| f.region.start <= e.span.start && e.span.end <= f.region.end),
            "edit {:?} outside every reference region {:?}",
            e.span,
            found.iter().map(|f| f.region.clone()).collect::<Vec<_>>()
        );
    }
    // ... and outside the edits the output is the input, byte for byte.
    let mut sorted: Vec<_> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let (mut at, mut off) = (0, 0);
    for e in sorted {
        let kept = &text[at..e.span.start];
        assert_eq!(
            &out[off..off + kept.len()],
            kept,
            "text outside the edits changed"
        );
        off += kept.len();
        assert_eq!(&out[off..off + e.new.len()], e.new);
        off += e.new.len();
        at = e.span.end;
    }
    assert_eq!(&out[off..], &text[at..], "text after the last edit changed");
});
