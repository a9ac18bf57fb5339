//! Making text from git (and from the remote, which git relays) safe to show.
//!
//! Owns the rules for what freshet repeats of git's output, of remote URLs and of the
//! arguments it ran git with: user information in URLs (`https://user:pass@host`) and
//! token-like query parameters (`?access_token=…`) are replaced by `***`, `Authorization`
//! headers are cut, the caller's known secrets are removed verbatim, then control
//! characters are escaped and the result is bounded in length
//! ([`freshet_core::runs::text::bounded`]).
//!
//! Must not decide anything, and must not return text that still holds a secret it
//! was told about.

/// The most bytes of git's output an error message keeps, once scrubbed and escaped.
pub const RELAYED_MAX_BYTES: usize = 2048;

/// Query parameter names (compared case-insensitively, as substrings) whose values are
/// treated as secrets.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "signature",
    "sig",
    "key",
    "auth",
    "credential",
    "session",
];

/// Removes credentials from `text`: URL user information, token-like query parameter
/// values, everything after `Authorization:` on its line, and every occurrence of each
/// of `secrets` (empty ones are ignored).
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = scrub_urls(text);
    out = scrub_authorization(&out);
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "***");
    }
    out
}

/// [`scrub`], then control characters escaped and the length bounded: the only form in
/// which outside text reaches an error message, a log or a terminal.
pub fn relay(text: &str, secrets: &[&str], max_bytes: usize) -> String {
    freshet_core::runs::text::bounded(&scrub(text, secrets), max_bytes)
}

/// Characters that end a URL in running text.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '<' | '>' | '`')
}

/// Replaces `user[:password]@` after every `scheme://` by `***@`, and the values of
/// secret-looking query parameters by `***`. The authority ends at the first `/`, `?`
/// or `#`, as git parses it; an `@` anywhere before that is user information.
fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(ends_url).unwrap_or(rest.len());
        let (url, after) = rest.split_at(end);
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        out.push_str(&scrub_query(path));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The path, query and fragment of a URL with secret-looking parameter values hidden.
fn scrub_query(path: &str) -> String {
    let Some(q) = path.find('?') else {
        return path.to_owned();
    };
    let (head, query) = path.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(h) => query.split_at(h),
        None => (query, ""),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}{fragment}", pairs.join("&"))
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

/// Cuts the value of every `Authorization:` header (any case) to `***`.
fn scrub_authorization(text: &str) -> String {
    const NEEDLE: &str = "authorization:";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(i) = lower[from..].find(NEEDLE) {
        let value_start = from + i + NEEDLE.len();
        out.push_str(&text[from..value_start]);
        out.push_str(" ***");
        from = text[value_start..]
            .find(['\n', '\r'])
            .map_or(text.len(), |e| value_start + e);
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_every_credential_shape() {
        let table = [
            (
                "fatal: unable to access 'https://user:tok3n@example.com/o/r.git/': 403",
                "fatal: unable to access 'https://***@example.com/o/r.git/': 403",
            ),
            ("https://example.com/x", "https://example.com/x"),
            ("no url", "no url"),
            // A password holding `@` and `:`.
            ("http://u:p@ss:w@host:8080/r", "http://***@host:8080/r"),
            // A user only.
            ("ssh://git@host/r", "ssh://***@host/r"),
            // `@` in the path is not user information.
            ("https://host/@scope/pkg", "https://host/@scope/pkg"),
            (
                "https://host/r.git?access_token=abc123&ref=main#x",
                "https://host/r.git?access_token=***&ref=main#x",
            ),
            (
                "https://h/a?X-Amz-Signature=ff&X-Amz-Credential=id&n=1",
                "https://h/a?X-Amz-Signature=***&X-Amz-Credential=***&n=1",
            ),
            (
                "> Authorization: Basic eC1hY2Nlc3M=\n< 401",
                "> Authorization: ***\n< 401",
            ),
            (
                "To http://a:b@h/r\n! [rejected]",
                "To http://***@h/r\n! [rejected]",
            ),
        ];
        for (input, want) in table {
            assert_eq!(scrub(input, &[]), want, "{input}");
        }
    }

    #[test]
    fn scrub_removes_known_secrets_verbatim() {
        assert_eq!(
            scrub(
                "remote: your token s3cret-value is wrong",
                &["s3cret-value", ""]
            ),
            "remote: your token *** is wrong"
        );
    }

    #[test]
    fn relay_escapes_controls_and_bounds_length() {
        let hostile = format!(
            "remote: \u{1b}[2J\u{7}fake line\ncommitted abc, pushed http://u:pw@h/{}",
            "x".repeat(10_000)
        );
        let shown = relay(&hostile, &[], RELAYED_MAX_BYTES);
        assert!(shown.len() <= RELAYED_MAX_BYTES, "{}", shown.len());
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert!(
            shown.contains("\\u{1b}[2J\\u{7}fake line\\ncommitted"),
            "{shown}"
        );
        assert!(!shown.contains("pw@"), "{shown}");
    }
}
