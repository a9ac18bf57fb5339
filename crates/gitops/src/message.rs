//! The commit message `apply --commit` writes.
//!
//! Owns expanding the message template: `{count}`, `{updates}` and `{files}` are
//! replaced in one left-to-right pass over the template, so text that came from a file
//! name or a reference (which may itself contain `{files}`) is never expanded again.
//! Values are escaped so a file name cannot add lines (or trailers such as
//! `Signed-off-by:`) to the message.
//!
//! Must not run git or read files.

use freshet_core::files::Update;

/// The commit message template `apply --commit` uses when none is given.
pub const DEFAULT_MESSAGE: &str = "freshet: update {count} image reference(s)\n\n{updates}\n";

/// The most bytes one substituted value (a file name, a reference) keeps.
const VALUE_MAX_BYTES: usize = 1024;

/// Renders a commit message: `{count}` is the number of updates, `{updates}` one line
/// per update (`- file:line old -> new`), `{files}` the changed files, comma-separated.
/// Any other `{…}` is kept as written. Substituted text is never expanded again.
pub fn render_message(template: &str, updates: &[Update]) -> String {
    let lines: Vec<String> = updates
        .iter()
        .map(|u| {
            format!(
                "- {}:{} {} -> {}",
                value(&u.file),
                u.line,
                value(&u.current),
                value(&u.new)
            )
        })
        .collect();
    let mut files: Vec<&str> = updates.iter().map(|u| u.file.as_str()).collect();
    files.dedup();
    let files: Vec<String> = files.into_iter().map(value).collect();
    let count = updates.len().to_string();
    let updates = lines.join("\n");
    let files = files.join(", ");
    expand(template, |name| match name {
        "count" => Some(count.as_str()),
        "updates" => Some(updates.as_str()),
        "files" => Some(files.as_str()),
        _ => None,
    })
}

/// One pass over `template`: each `{name}` that `lookup` knows is replaced by its value,
/// which is copied as is and never scanned again.
fn expand<'a>(template: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((close, lookup(&after[..close])?)))
        {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A value as it appears in the message: control characters escaped, bounded.
fn value(text: &str) -> String {
    freshet_core::runs::text::bounded(text, VALUE_MAX_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(file: &str) -> Update {
        Update {
            file: file.into(),
            line: 7,
            current: "nginx:1.25.3".into(),
            new: "nginx:1.25.5".into(),
            policy: "semver:patch".into(),
            reason: "r".into(),
            edits: vec![],
        }
    }

    #[test]
    fn messages_list_old_and_new_refs() {
        let u = update("deploy/app.yaml");
        assert_eq!(
            render_message(DEFAULT_MESSAGE, &[u.clone(), u]),
            "freshet: update 2 image reference(s)\n\n- deploy/app.yaml:7 nginx:1.25.3 -> nginx:1.25.5\n- deploy/app.yaml:7 nginx:1.25.3 -> nginx:1.25.5\n"
        );
        assert_eq!(render_message("bump {files}", &[]), "bump ");
    }

    #[test]
    fn a_file_named_like_a_placeholder_is_not_expanded_again() {
        let updates = [update("{files}.yaml"), update("{count}{updates}.yaml")];
        assert_eq!(
            render_message("{files} | {count}", &updates),
            "{files}.yaml, {count}{updates}.yaml | 2"
        );
        assert_eq!(
            render_message("{updates}", &updates[..1]),
            "- {files}.yaml:7 nginx:1.25.3 -> nginx:1.25.5"
        );
    }

    #[test]
    fn unknown_and_unbalanced_braces_are_kept() {
        assert_eq!(
            render_message("{nope} {count} { {count}} {", &[update("a")]),
            "{nope} 1 { 1} {"
        );
    }

    #[test]
    fn a_file_name_cannot_add_lines_or_trailers_to_the_message() {
        let message = render_message(
            "bump {files}\n\n{updates}\n",
            &[update("a.yaml\n\nSigned-off-by: mallory\u{1b}[2J")],
        );
        assert_eq!(message.lines().count(), 3, "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
        assert!(message.contains("a.yaml\\n\\nSigned-off-by: mallory\\u{1b}[2J"));
    }
}
