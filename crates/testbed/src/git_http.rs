//! A Git server over plain HTTP on 127.0.0.1 that demands basic auth: the real
//! `git http-backend` (smart HTTP, clone and push) run as a CGI program behind a
//! check of one user name and password, for tests of Git credentials.
//!
//! Owns serving the bare repositories under one directory, refusing every request
//! without the right credentials with `401` and `WWW-Authenticate: Basic`, and
//! recording each request's method, path, user and status ([`GitHttpServer::requests`])
//! so a test can prove the credentials were sent and accepted. It stops when dropped.
//! It must not judge what the client pushed: the tests inspect the repository.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;

use crate::registry::Credentials;

/// The largest request body served (a push of a test repository is far smaller).
const BODY_MAX_BYTES: usize = 64 << 20;

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The user of accepted credentials (`None`: none, or wrong ones).
    pub user: Option<String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    user: Credentials,
    log: Mutex<Vec<GitRequest>>,
}

/// The running server.
#[derive(Debug)]
pub struct GitHttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl GitHttpServer {
    /// Serves the bare repositories under `root` (as `http://127.0.0.1:<port>/<path
    /// under root>`) to `user` only; pushes are allowed.
    pub async fn start(root: &Path, user: Credentials) -> std::io::Result<GitHttpServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            root: root.to_owned(),
            user,
            log: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GitHttpServer { addr, shared, task })
    }

    /// The URL of the repository at `path` under the root (`team/deploy.git`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<GitRequest> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The user of `headers`' basic credentials when they are `user`'s.
fn authorized(headers: &HeaderMap, user: &Credentials) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    (name == user.username && password == user.password.expose()).then(|| name.to_owned())
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let user = authorized(&parts.headers, &shared.user);
    let response = match &user {
        None => {
            let mut r = (StatusCode::UNAUTHORIZED, "authentication required").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"git\""),
            );
            r
        }
        Some(user) => match axum::body::to_bytes(body, BODY_MAX_BYTES).await {
            Ok(bytes) => cgi(&shared.root, user, &parts, &bytes).await,
            Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
        },
    };
    if let Ok(mut log) = shared.log.lock() {
        log.push(GitRequest {
            method: parts.method.to_string(),
            path,
            user,
            status: response.status().as_u16(),
        });
    }
    response
}

/// Runs `git http-backend` for one request and turns its CGI output into a response.
async fn cgi(root: &Path, user: &str, parts: &axum::http::request::Parts, body: &[u8]) -> Response {
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("CONTENT_TYPE", header_text(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header_text(header::CONTENT_ENCODING),
        )
        .env(
            "GIT_PROTOCOL",
            header_text(header::HeaderName::from_static("git-protocol")),
        )
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let failed = |what: &str| (StatusCode::INTERNAL_SERVER_ERROR, what.to_owned()).into_response();
    let Ok(mut child) = command.spawn() else {
        return failed("git http-backend did not start");
    };
    if let Some(mut stdin) = child.stdin.take() {
        if stdin.write_all(body).await.is_err() {
            return failed("writing to git http-backend failed");
        }
        drop(stdin);
    }
    let Ok(out) = child.wait_with_output().await else {
        return failed("git http-backend failed");
    };
    let stdout = out.stdout;
    let Some(split) = stdout.windows(4).position(|w| w == b"\r\n\r\n") else {
        return failed("git http-backend wrote no headers");
    };
    let head = String::from_utf8_lossy(&stdout[..split]).into_owned();
    let mut response = Response::new(Body::from(stdout[split + 4..].to_vec()));
    for line in head.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse().ok());
            *response.status_mut() = code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(n), Ok(v)) = (
            header::HeaderName::try_from(name.trim()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
