//! Foreign text made safe to quote: registry error bodies, tag names, helper output.
//!
//! Owns [`quote`], which escapes control characters (escape sequences, BEL, newlines)
//! and bounds the length, so text a registry chose cannot rewrite a terminal, forge a
//! log line or flood a message. It must not decide what is secret; callers quote only
//! text that may be shown at all.

/// `text` with every control character escaped (`\u{1b}`, `\n`, …), trimmed, and cut
/// to at most `max_chars` characters (an ellipsis marks a cut).
pub(crate) fn quote(text: &str, max_chars: usize) -> String {
    let text = without_credentials(text);
    let mut out = String::new();
    for (shown, c) in text.trim().chars().enumerate() {
        if shown >= max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` with the credential after every `Basic ` or `Bearer ` (any case) replaced
/// by `***`: a registry or token realm that echoes the `Authorization` header it got
/// must not have it quoted back into a message.
fn without_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let hit = ["basic ", "bearer "]
            .iter()
            .filter_map(|k| lower.find(k).map(|i| (i, k.len())))
            .min();
        let Some((at, len)) = hit else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + len]);
        let after = &rest[at + len..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';'))
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &after[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_authorization_headers_are_not_quoted() {
        let q = quote(
            "denied Basic Y2k6c2VjcmV0 and bearer eyJhbGc.x.y; BASIC",
            200,
        );
        assert_eq!(q, "denied Basic *** and bearer ***; BASIC");
    }

    #[test]
    fn control_characters_are_escaped_and_length_bounded() {
        let table = [
            ("plain", 10, "plain"),
            ("  spaced \n", 10, "spaced"),
            ("a\x1b[2Jb", 20, "a\\u{1b}[2Jb"),
            ("bell\x07", 20, "bell\\u{7}"),
            ("line1\nFAKE line", 40, "line1\\nFAKE line"),
            ("abcdef", 3, "abc…"),
            ("über", 10, "über"),
        ];
        for (input, max, want) in table {
            assert_eq!(quote(input, max), want, "{input:?}");
        }
        assert!(!quote("\x1b\x07\r\n\t", 50).chars().any(char::is_control));
    }
}
