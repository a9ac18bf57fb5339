//! Errors as text for logs, reports and Events.
//!
//! Owns [`error_chain`]: an error and its sources joined with `: `, each source once,
//! with a kubeconfig `exec` plugin's output withheld ([`scrub_exec_output`]: kube's
//! error for a failing plugin carries the plugin's stdout and stderr, which may hold
//! its token). Every module of the shell keeps its own error enum; this only renders
//! them. Must not classify errors nor print anything secret: the errors themselves
//! never carry a secret's contents (see [`crate::secrets`]).

/// An error and its sources, joined with `: ` (a source whose text is already in the
/// message is not repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    scrub_exec_output(&out).into_owned()
}

/// What replaces a kubeconfig `exec` plugin's output in a message.
pub const EXEC_OUTPUT_WITHHELD: &str =
    "(the plugin's output is not shown: it may hold credentials; run the plugin by hand to see it)";

/// `text` with every `Output { status: …, stdout: …, stderr: … }` (how kube renders
/// a failing `exec` plugin's output) replaced by [`EXEC_OUTPUT_WITHHELD`]. An
/// unterminated one is cut to the end of the text. Borrows `text` when it holds
/// none (the common case: a whole report is not copied).
pub fn scrub_exec_output(text: &str) -> std::borrow::Cow<'_, str> {
    const START: &str = "Output { status: ";
    if !text.contains(START) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        out.push_str(&rest[..at]);
        out.push_str(EXEC_OUTPUT_WITHHELD);
        rest = &rest[at + debug_struct_len(&rest[at..])..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The byte length of the `Debug` struct at the start of `s` (up to its matching
/// `}`, skipping quoted strings), or all of `s` when it does not end.
fn debug_struct_len(s: &str) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in s.char_indices() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, '{' | '[' | '(') => depth += 1,
            (false, '}' | ']' | ')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            (false, _) => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn sources_are_joined_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer: inner");
        let same = std::io::Error::other("outer");
        assert_eq!(error_chain(&Outer(same)), "outer");
    }

    #[test]
    fn exec_plugin_output_with_its_token_is_withheld() {
        let out = std::process::Output {
            status: std::process::ExitStatus::default(),
            stdout: b"{\"token\": \"sentinel-tok-1\"} }".to_vec(),
            stderr: b"error: \"quoted\" } token=sentinel-tok-2 {".to_vec(),
        };
        let text = format!("auth error: auth exec command 'x' failed with status 1: {out:?}: tail");
        let scrubbed = scrub_exec_output(&text);
        assert!(!scrubbed.contains("sentinel"), "{scrubbed}");
        assert!(
            scrubbed
                .starts_with("auth error: auth exec command 'x' failed with status 1: (the plugin")
        );
        assert!(scrubbed.ends_with(": tail"), "{scrubbed}");
        let bytes = std::process::Output {
            status: std::process::ExitStatus::default(),
            stdout: vec![0xff, 0xfe],
            stderr: b"sentinel".to_vec(),
        };
        assert!(!scrub_exec_output(&format!("{bytes:?}")).contains("sentinel"));
        assert!(
            !scrub_exec_output("x Output { status: 1, stderr: \"sentinel").contains("sentinel")
        );
        assert_eq!(scrub_exec_output("no output here"), "no output here");
    }
}
