//! Bounding and escaping text that comes from outside (kubelet messages, image IDs,
//! label values) before it is stored in a value meant for an annotation, an Event or
//! a terminal.
//!
//! Owns one rule: control characters and bidirectional overrides are escaped as
//! `\n`, `\t`, `\u{…}`, and the result is capped in bytes on a character boundary,
//! with a marker saying how much was cut. It must not interpret the text.

/// The most bytes an outside message keeps once escaped (Events cap `message` at
/// 1 KiB in practice; this leaves room for freshet's own words around it).
pub const MESSAGE_MAX_BYTES: usize = 512;

/// The most bytes an outside identifier (an unrecognised `imageID`, a label value)
/// keeps once escaped.
pub const TOKEN_MAX_BYTES: usize = 160;

/// `text` with control and bidi-override characters escaped, cut to at most
/// `max_bytes` bytes (the cut marker included) on a character boundary.
///
/// The result never contains a control character and is never longer than
/// `max_bytes` (for `max_bytes >= 16`); text that needs no escaping and fits is
/// returned unchanged.
pub fn bounded(text: &str, max_bytes: usize) -> String {
    const CUT: &str = "…(cut)";
    let escape_backslash = needs_escape(text);
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut cut_at = None;
    for c in text.chars() {
        let chunk = escaped(c, escape_backslash);
        if cut_at.is_none() && out.len() + chunk.len() > max_bytes.saturating_sub(CUT.len()) {
            cut_at = Some(out.len());
        }
        if out.len() + chunk.len() > max_bytes {
            let end = cut_at.unwrap_or(out.len());
            out.truncate(end);
            out.push_str(CUT);
            return out;
        }
        out.push_str(&chunk);
    }
    out
}

/// One character as it is stored: itself, or its escape.
fn escaped(c: char, escape_backslash: bool) -> std::borrow::Cow<'static, str> {
    match c {
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        '\\' if escape_backslash => "\\\\".into(),
        c if c.is_control() || is_bidi_control(c) => format!("\\u{{{:x}}}", c as u32).into(),
        c => String::from(c).into(),
    }
}

/// A backslash is escaped only when the text also has something else escaped, so
/// that plain Windows paths and regexes read as written.
fn needs_escape(text: &str) -> bool {
    text.chars().any(|c| c.is_control() || is_bidi_control(c))
}

/// Characters that reorder displayed text (Trojan Source, CVE-2021-42574).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_controls_and_caps_length() {
        let table = [
            ("plain", 64, "plain"),
            ("a\nb", 64, "a\\nb"),
            ("a\u{1b}[31mred", 64, "a\\u{1b}[31mred"),
            ("x\u{202e}y", 64, "x\\u{202e}y"),
            ("C:\\path", 64, "C:\\path"),
            ("C:\\p\n", 64, "C:\\\\p\\n"),
            (
                "0123456789abcdefghijklmnopqrstuvwxyz",
                20,
                "0123456789ab…(cut)",
            ),
            ("ééééééééééééééééé", 20, "éééééé…(cut)"),
        ];
        for (input, max, want) in table {
            assert_eq!(bounded(input, max), want, "{input:?}");
        }
    }

    #[test]
    fn a_cut_never_leaves_half_an_escape() {
        let out = bounded(&"\u{1}".repeat(50), 24);
        assert!(out.ends_with("…(cut)"), "{out}");
        let body = out.trim_end_matches("…(cut)");
        assert!(body.is_empty() || body.ends_with('}'), "{out}");
    }

    proptest! {
        #[test]
        fn bounded_output_has_no_controls_and_fits(input in "\\PC*|[\\x00-\\x1f\u{202e}a-z\\\\]{0,400}", max in 16usize..600) {
            let out = bounded(&input, max);
            prop_assert!(out.len() <= max, "{} > {}", out.len(), max);
            prop_assert!(!out.chars().any(|c| c.is_control() || is_bidi_control(c)));
            if input.len() <= max && !needs_escape(&input) {
                prop_assert_eq!(out, input);
            }
        }
    }
}
