//! Parsing the registry's own access log.
//!
//! distribution 2.8 writes one Apache combined-log-format line per request to its
//! **stdout**, after the handler finished and before the response is flushed:
//!
//! ```text
//! 127.0.0.1 - - [23/Nov/2026:09:37:25 +0000] "GET /v2/foo/tags/list HTTP/1.1" 404 111 "" "curl/7.88.1"
//! ```
//!
//! This module owns turning such lines into [`AccessLogEntry`] values. It is pure: it
//! must not read files or talk to the registry (the launcher does that).

/// One request as the registry logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// The request method (`GET`, `HEAD`, `PUT`, ...).
    pub method: String,
    /// The request path without the query string, e.g. `/v2/team/api/manifests/1.0.0`.
    pub path: String,
    /// The query string without `?`, if any (e.g. `digest=sha256:...`).
    pub query: Option<String>,
    /// The response status.
    pub status: u16,
    /// The `User-Agent` the client sent (empty when none).
    pub user_agent: String,
}

impl AccessLogEntry {
    /// Whether this entry has the given method and its path starts with `path_prefix`.
    pub fn matches(&self, method: &str, path_prefix: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && self.path.starts_with(path_prefix)
    }
}

/// Parses one combined-log-format line; `None` for anything else (start-up noise).
pub fn parse_line(line: &str) -> Option<AccessLogEntry> {
    // host ident user [date] "request" status size "referer" "user-agent"
    let date_end = line.find("] \"")?;
    let rest = &line[date_end + 3..];
    let request_end = rest.find('"')?;
    let request = &rest[..request_end];
    let mut parts = request.split(' ');
    let method = parts.next()?.to_owned();
    let uri = parts.next()?;
    let _protocol = parts.next()?;
    let after = rest[request_end + 1..].trim_start();
    let mut fields = after.splitn(3, ' ');
    let status = fields.next()?.parse().ok()?;
    let _size = fields.next()?;
    let quoted = fields.next().unwrap_or("");
    let user_agent = quoted
        .rsplit_once(" \"")
        .map(|(_, ua)| ua.trim_end().trim_end_matches('"').to_owned())
        .unwrap_or_default();
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (uri.to_owned(), None),
    };
    Some(AccessLogEntry {
        method,
        path,
        query,
        status,
        user_agent,
    })
}

/// Parses every access-log line of `text`, skipping other lines.
pub fn parse(text: &str) -> Vec<AccessLogEntry> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (method, path, query, status, user agent) a log line parses to.
    type Parsed<'a> = (&'a str, &'a str, Option<&'a str>, u16, &'a str);

    #[test]
    fn parses_combined_log_lines_and_skips_noise() {
        let cases: &[(&str, Option<Parsed<'_>>)] = &[
            (
                r#"127.0.0.1 - - [23/Nov/2026:09:37:25 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1""#,
                Some(("GET", "/v2/", None, 200, "curl/7.88.1")),
            ),
            (
                r#"127.0.0.1 - - [23/Nov/2026:09:37:25 +0000] "PUT /v2/a/b/blobs/uploads/9f?_state=x&digest=sha256%3Aab HTTP/1.1" 201 0 "" "freshet-testbed""#,
                Some((
                    "PUT",
                    "/v2/a/b/blobs/uploads/9f",
                    Some("_state=x&digest=sha256%3Aab"),
                    201,
                    "freshet-testbed",
                )),
            ),
            (
                r#"127.0.0.1 - - [23/Nov/2026:09:37:25 +0000] "HEAD /v2/x/manifests/1 HTTP/1.1" 404 0 "" """#,
                Some(("HEAD", "/v2/x/manifests/1", None, 404, "")),
            ),
            (r#"time="2026" level=info msg="listening""#, None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = parse_line(line);
            let want = want.map(|(m, p, q, s, ua)| AccessLogEntry {
                method: m.into(),
                path: p.into(),
                query: q.map(Into::into),
                status: s,
                user_agent: ua.into(),
            });
            assert_eq!(got, want, "line {line:?}");
        }
    }
}
