//! Output helpers shared by commands: the `--output` flag, JSON printing, tables,
//! and the terminal sanitising every printed byte goes through.
//!
//! Nothing freshet prints may act on a terminal: text from outside (tags, registry
//! and API server errors, helper and plugin output, file names) can hold escape
//! sequences, BEL, carriage returns, newlines that forge a line, C1 controls and
//! bidi overrides. [`field`] escapes all of them in one value (a table cell, a
//! message); [`print_text`] escapes all but the layout's own newlines and tabs;
//! [`print_json`] escapes what JSON leaves raw (C1, bidi, line separators); the log
//! writer ([`LogWriter`]) escapes every newline but an event's last. A kubeconfig
//! `exec` plugin's output is withheld everywhere
//! ([`freshet_cluster::scrub_exec_output`]). Must not decide what is printed.

use std::borrow::Cow;
use std::io::Write as _;

/// `--output text|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A readable table.
    #[default]
    Text,
    /// Machine-readable JSON.
    Json,
}

/// Whether a terminal could act on `c`: C0 and C1 controls, DEL, bidi embeddings,
/// overrides and isolates, and the Unicode line and paragraph separators.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

fn escape(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let scrubbed = freshet_cluster::scrub_exec_output(text);
    if scrubbed == text && !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(scrubbed.len());
    for c in scrubbed.chars() {
        if is_unsafe(c) && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One value made safe for a terminal: every control character (newlines too)
/// escaped, `exec` plugin output withheld.
pub fn field(text: &str) -> Cow<'_, str> {
    escape(text, |_| false)
}

/// A table row with every cell through [`field`].
pub fn row<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> Vec<String> {
    cells
        .into_iter()
        .map(|c| field(c.as_ref()).into_owned())
        .collect()
}

/// A whole text made safe for a terminal: like [`field`], but the layout's own
/// newlines and tabs stay.
pub fn text(text: &str) -> Cow<'_, str> {
    escape(text, |c| c == '\n' || c == '\t')
}

/// Writes pretty JSON and a newline to stdout. serde escapes C0 controls; C1
/// controls, bidi characters and line separators (only ever inside strings) are
/// written as `\uXXXX` too.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    // One copy of the document at most (a 10,000-workload report is megabytes):
    // safe runs are written as they are, each unsafe character as its escape.
    let json = serde_json::to_string_pretty(value)?;
    let json = freshet_cluster::scrub_exec_output(&json);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut safe_from = 0;
    for (i, c) in json.char_indices() {
        if is_unsafe(c) && c != '\n' {
            out.write_all(json[safe_from..i].as_bytes())?;
            write!(out, "\\u{:04x}", u32::from(c))?;
            safe_from = i + c.len_utf8();
        }
    }
    out.write_all(json[safe_from..].as_bytes())?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Writes text to stdout, through [`text`].
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let text = self::text(text);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// A borderless table in the style of kubectl.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().map(comfy_table::Cell::new));
    t
}

/// Prints a line on stderr, through [`field`] (one message, one line).
pub fn eprint_line(prefix: &str, message: &str) {
    eprintln!("{prefix}{}", field(message));
}

/// The log writer: stderr, with every newline but an event's last escaped (a
/// message cannot forge a log line), control characters escaped as `\uXXXX` (so a
/// JSON line stays JSON) and `exec` plugin output withheld. tracing-subscriber writes one event per `write`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let raw = String::from_utf8_lossy(buf);
        let (body, end) = match raw.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (raw.as_ref(), ""),
        };
        let body = freshet_cluster::scrub_exec_output(body);
        let mut safe = String::with_capacity(body.len());
        for c in body.chars() {
            if is_unsafe(c) {
                // `\uXXXX` is valid inside a JSON log line's strings, where JSON
                // leaves C1 and bidi characters raw.
                safe.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else {
                safe.push(c);
            }
        }
        let mut err = std::io::stderr().lock();
        err.write_all(safe.as_bytes())?;
        err.write_all(end.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sanitising_escapes_what_a_terminal_acts_on() {
        let table = [
            ("v1.2\n9.9.9", "v1.2\\n9.9.9", "v1.2\n9.9.9"),
            ("a\x1b[2Jb", "a\\u{1b}[2Jb", "a\\u{1b}[2Jb"),
            ("bell\x07", "bell\\u{7}", "bell\\u{7}"),
            ("cr\rover", "cr\\rover", "cr\\rover"),
            ("c1\u{9b}31m", "c1\\u{9b}31m", "c1\\u{9b}31m"),
            ("bidi\u{202e}txt", "bidi\\u{202e}txt", "bidi\\u{202e}txt"),
            ("tab\tx", "tab\\tx", "tab\tx"),
            ("über ok", "über ok", "über ok"),
        ];
        for (raw, as_field, as_text) in table {
            assert_eq!(field(raw), as_field, "{raw:?}");
            assert_eq!(text(raw), as_text, "{raw:?}");
        }
        assert!(matches!(field("plain"), Cow::Borrowed(_)));
        assert_eq!(row(["a\nb", "c"]), vec!["a\\nb".to_owned(), "c".to_owned()]);
    }

    #[test]
    fn terminal_sanitising_withholds_exec_plugin_output() {
        let out = std::process::Output {
            status: std::process::ExitStatus::default(),
            stdout: Vec::new(),
            stderr: b"token sentinel-xyz".to_vec(),
        };
        let msg = format!("auth exec command 'get-token' failed with status 1: {out:?}");
        assert!(!field(&msg).contains("sentinel"));
        assert!(!text(&msg).contains("sentinel"));
    }
}
