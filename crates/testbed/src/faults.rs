//! A small misbehaving HTTP/1.1 server for the faults the real registry cannot produce.
//!
//! Owns the raw socket side of fault injection: 429 storms with `Retry-After`, 5xx
//! bursts, slow answers, bodies cut short of their `Content-Length`, oversized
//! bodies, missing or wrong `Docker-Content-Digest` headers, foreign token realms and
//! odd pagination. Tests give it a handler (`Fn(&SeenRequest) -> Reply`) that decides
//! each answer, usually with a counter for "fail N times, then succeed". It records
//! every request, headers included, so a test can prove what a client sent (for
//! example that no credentials reached a foreign realm).
//!
//! It is written on raw tokio sockets instead of axum because some faults (a body
//! shorter than its declared length, a connection closed mid-body) are impossible
//! to produce through a well-behaved HTTP stack. It listens on a loopback address
//! and a free port, and stops when the [`FaultServer`] drops.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Errors starting a [`FaultServer`].
#[derive(Debug, thiserror::Error)]
pub enum FaultServerError {
    /// The listening socket could not be bound.
    #[error("fault server: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// Path and query, as sent (`/v2/a/tags/list?n=100`).
    pub target: String,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A query parameter's value.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body (not sent for `HEAD`, but its length is declared).
    pub body: Vec<u8>,
    /// Declare this `Content-Length` instead of the body's length.
    pub declared_length: Option<usize>,
    /// Send only this many body bytes, then close the connection.
    pub cut_after: Option<usize>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    /// An empty answer with this status.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            declared_length: None,
            cut_after: None,
            delay: None,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply::status(status)
            .header("Content-Type", "application/json")
            .body(value.to_string().into_bytes())
    }

    /// A manifest answer with the right `Content-Type` and `Docker-Content-Digest`.
    pub fn manifest(bytes: &[u8], media_type: &str) -> Self {
        Reply::status(200)
            .header("Content-Type", media_type)
            .header("Docker-Content-Digest", &sha256_digest(bytes))
            .body(bytes.to_vec())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes every header of this name.
    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Declares `declared` bytes but sends only `sent` of them, then closes.
    pub fn truncated(mut self, declared: usize, sent: usize) -> Self {
        self.declared_length = Some(declared);
        self.cut_after = Some(sent);
        self
    }

    /// Declares a `Content-Length` without sending that much (for size checks that
    /// must refuse before reading).
    pub fn declare_length(mut self, declared: usize) -> Self {
        self.declared_length = Some(declared);
        self.cut_after = Some(self.body.len());
        self
    }

    /// Waits before answering.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A running fault server. Stops when dropped.
pub struct FaultServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: JoinHandle<()>,
}

impl FaultServer {
    /// Starts on `127.0.0.1` and a free port.
    pub async fn start(
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> Result<FaultServer, FaultServerError> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), handler).await
    }

    /// Starts on another loopback address (e.g. `127.0.0.2`, a "foreign host").
    pub async fn start_on(
        ip: IpAddr,
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> Result<FaultServer, FaultServerError> {
        let asked = SocketAddr::new(ip, 0);
        let listener = TcpListener::bind(asked)
            .await
            .map_err(|source| FaultServerError::Bind {
                addr: asked,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FaultServerError::Bind {
                addr: asked,
                source,
            })?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, handler.clone(), log.clone()));
            }
        });
        Ok(FaultServer { addr, seen, task })
    }

    /// `host:port`, as a registry name in a reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("fault server log").clone()
    }

    /// How many requests had this method and a path starting with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path().starts_with(prefix))
            .count()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        seen.lock().expect("fault server log").push(request.clone());
        let reply = handler(&request);
        if let Some(delay) = reply.delay {
            tokio::time::sleep(delay).await;
        }
        let close = reply.cut_after.is_some();
        let length = reply.declared_length.unwrap_or(reply.body.len());
        let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {length}\r\n"));
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if request.method != "HEAD" {
            let sent = reply
                .cut_after
                .unwrap_or(reply.body.len())
                .min(reply.body.len());
            out.extend_from_slice(&reply.body[..sent]);
        }
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Reads one request head (bodies are skipped by `Content-Length`).
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<SeenRequest> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let mut first = lines.next()?.split(' ');
            let method = first.next()?.to_owned();
            let target = first.next()?.to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let body_len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < body_len {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..body_len);
            return Some(SeenRequest {
                method,
                target,
                headers,
            });
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
