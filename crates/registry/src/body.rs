//! Reading response bodies, always with a cap.
//!
//! Owns [`read_capped`] (a body up to a limit, else `too_large` naming the host; a
//! connection that drops mid-body is `Truncated`) and [`body_detail`] (a short,
//! escaped excerpt of an error body for a message, reading at most
//! [`ERROR_BODY_CAP`] bytes). Nothing here reads a body whole without a bound, and
//! nothing here decides what a status means.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::Response;

use crate::classify::{Failure, classify};
use crate::error::RegistryError;
use crate::text::quote;

/// The most bytes of an error body freshet reads (the rest is left unread).
pub(crate) const ERROR_BODY_CAP: usize = 64 * 1024;

/// The most characters of foreign text quoted into one message.
const DETAIL_CHARS: usize = 200;

/// Reads a body up to `limit` bytes; larger is [`RegistryError::TooLarge`].
/// `timeout` is the request timeout that applies, for the message if it expires.
pub(crate) async fn read_capped(
    host: &str,
    mut resp: Response,
    limit: usize,
    what: &str,
    timeout: Duration,
) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        host: host.to_owned(),
        what: what.to_owned(),
        limit,
        unit: "bytes",
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| body_error(host, e, timeout))?
    {
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// An error while reading a body: a dropped connection is a cut-off body here.
fn body_error(host: &str, e: reqwest::Error, timeout: Duration) -> RegistryError {
    let failure = match classify(&e) {
        Failure::Connect(_) => Failure::Truncated,
        other => other,
    };
    failure.into_error(host, Arc::new(e), timeout)
}

/// Reads at most `limit` bytes of a body and stops (no error when there is more).
async fn read_prefix(mut resp: Response, limit: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    buf.freeze()
}

/// A short, single-line, escaped excerpt of an error body (`: MANIFEST_UNKNOWN …`),
/// or nothing. Reads at most [`ERROR_BODY_CAP`] bytes.
pub(crate) async fn body_detail(resp: Response) -> String {
    detail_of(&read_prefix(resp, ERROR_BODY_CAP).await)
}

/// The detail text of an error body already read.
pub(crate) fn detail_of(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .take(5)
            .map(|i| {
                format!(
                    "{} {}",
                    i.code.as_deref().unwrap_or(""),
                    i.message.as_deref().unwrap_or("")
                )
            })
            .collect();
        let joined = quote(&parts.join("; "), DETAIL_CHARS);
        if !joined.is_empty() {
            return format!(" ({joined})");
        }
    }
    let text = quote(&String::from_utf8_lossy(body), DETAIL_CHARS);
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

/// The exact answer a Go https server (the distribution registry) writes when it is
/// spoken to in plain http. A protocol constant, compared whole.
const GO_HTTP_TO_HTTPS: &str = "Client sent an HTTP request to an HTTPS server.";

/// True when a `400` body is Go's fixed answer to plain http on an https port.
pub(crate) fn is_plain_http_to_https(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).trim() == GO_HTTP_TO_HTTPS
}

/// Reads an error body's prefix, for callers that inspect it before quoting it.
pub(crate) async fn error_body(resp: Response) -> Bytes {
    read_prefix(resp, ERROR_BODY_CAP).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_escaped_and_bounded() {
        let json = br#"{"errors":[{"code":"DENIED","message":"no\u001b[2J\u0007 way\nFAKE"}]}"#;
        let d = detail_of(json);
        assert_eq!(d, " (DENIED no\\u{1b}[2J\\u{7} way\\nFAKE)");
        assert!(!d.chars().any(char::is_control));
        assert_eq!(detail_of(b"  "), "");
        assert_eq!(detail_of(b"plain\r\ntext"), " (plain\\r\\ntext)");
        let long = vec![b'a'; 10_000];
        assert!(detail_of(&long).chars().count() < DETAIL_CHARS + 5);
    }

    #[test]
    fn plain_http_to_https_is_recognised_only_by_the_exact_answer() {
        assert!(is_plain_http_to_https(
            b"Client sent an HTTP request to an HTTPS server.\n"
        ));
        assert!(!is_plain_http_to_https(
            b"this is not an https server, sorry"
        ));
    }
}
