//! Errors as text for logs, reports and Events.
//!
//! Owns [`error_chain`]: an error and its sources joined with `: `, each source once.
//! Every module of the shell keeps its own error enum; this only renders them. Must
//! not classify errors nor print anything secret: the errors themselves never carry
//! a secret's contents (see [`crate::secrets`]).

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
    out
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
}
