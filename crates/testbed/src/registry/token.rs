//! A Docker token server (the `auth.token` realm) that the real registry trusts.
//!
//! Owns `GET /token?service=..&scope=repository:NAME:ACTIONS` (several `scope`
//! parameters allowed, optional `Authorization: Basic`), the ES256 JWT it signs
//! (header `x5c` = the DER of a self-signed certificate, which the registry gets as
//! its `rootcertbundle`), and a log of every request so tests and the benchmark can
//! count token fetches per scope. Configured users get what they may do (default
//! pull and push); anonymous callers get pull, or are refused when
//! [`AnonymousAccess::Deny`] is set; a wrong password or unknown user is 401.
//!
//! It must not know about any registry: it only issues tokens. It serves plain HTTP
//! on 127.0.0.1 and stops when its handle drops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::Serialize;

use super::{Credentials, TestbedError};

/// The default `service` (the JWT audience).
pub const DEFAULT_SERVICE: &str = "freshet-testbed-registry";
/// The default `issuer`.
pub const DEFAULT_ISSUER: &str = "freshet-testbed-token-server";

/// What an anonymous caller (no `Authorization`) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnonymousAccess {
    /// A token with `pull` on the requested repositories (like Docker Hub).
    #[default]
    Pull,
    /// 401: every caller must authenticate.
    Deny,
}

/// A user of the token server and the actions it may be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// Name and password.
    pub credentials: Credentials,
    /// Actions this user may get on any repository (e.g. `pull`, `push`, `delete`, `*`).
    pub actions: Vec<String>,
}

/// How the token server behaves. Chain the setters on [`TokenOptions::default`].
#[derive(Debug, Clone)]
pub struct TokenOptions {
    service: String,
    issuer: String,
    users: Vec<TokenUser>,
    anonymous: AnonymousAccess,
    expires_in: u64,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            service: DEFAULT_SERVICE.into(),
            issuer: DEFAULT_ISSUER.into(),
            users: Vec::new(),
            anonymous: AnonymousAccess::Pull,
            expires_in: 300,
        }
    }
}

impl TokenOptions {
    /// Defaults: anonymous pull, no users, tokens valid 300 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `service` (JWT audience) the registry expects.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// The `iss` claim the registry expects.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Adds a user that may pull and push.
    pub fn user(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.user_with_actions(username, password, &["pull", "push"])
    }

    /// Adds a user that may get only `actions` (e.g. `&["pull"]` for a read-only user).
    pub fn user_with_actions(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
        actions: &[&str],
    ) -> Self {
        self.users.push(TokenUser {
            credentials: Credentials::new(username, password),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        });
        self
    }

    /// What anonymous callers get (default [`AnonymousAccess::Pull`]).
    pub fn anonymous(mut self, anonymous: AnonymousAccess) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// The `expires_in` of issued tokens, in seconds (default 300). The JWT `exp`
    /// matches it.
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    pub(crate) fn first_user(&self) -> Option<Credentials> {
        self.users.first().map(|u| u.credentials.clone())
    }
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// `repository` (or another resource type).
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name.
    pub name: String,
    /// The granted actions.
    pub actions: Vec<String>,
}

/// One request the token server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The `service` query parameter.
    pub service: Option<String>,
    /// Every `scope` query parameter, as sent (`repository:team/api:pull`).
    pub scopes: Vec<String>,
    /// The authenticated user, `None` for anonymous (and for failed logins, see `status`).
    pub user: Option<String>,
    /// The user name a failed Basic login claimed.
    pub claimed_user: Option<String>,
    /// 200, or 401 for a bad login or a refused anonymous caller.
    pub status: u16,
    /// What the issued token grants (empty when refused).
    pub granted: Vec<Access>,
}

struct Signer {
    key: EcdsaKeyPair,
    cert_der_b64: String,
    cert_pem: String,
    rng: SystemRandom,
}

struct Shared {
    options: TokenOptions,
    signer: Signer,
    requests: Mutex<Vec<TokenRequest>>,
}

/// A running token server. Stops when dropped.
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("addr", &self.addr)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

fn new_signer() -> Result<Signer, TestbedError> {
    let crypto = |e: &dyn std::fmt::Display| TestbedError::Crypto(e.to_string());
    let key_pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| crypto(&e))?;
    let mut params = rcgen::CertificateParams::new(vec!["freshet-testbed-token".to_owned()])
        .map_err(|e| crypto(&e))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "freshet-testbed token signer");
    let cert = params.self_signed(&key_pair).map_err(|e| crypto(&e))?;
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &key_pair.serialize_der(),
        &rng,
    )
    .map_err(|e| crypto(&e))?;
    Ok(Signer {
        key,
        cert_der_b64: STANDARD.encode(cert.der()),
        cert_pem: cert.pem(),
        rng,
    })
}

impl TokenServer {
    /// Generates a signing key and certificate and serves on `127.0.0.1:<free port>`.
    pub async fn start(options: TokenOptions) -> Result<TokenServer, TestbedError> {
        let signer = new_signer()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| TestbedError::Bind {
                what: "the token server",
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| TestbedError::Bind {
            what: "the token server",
            source,
        })?;
        let shared = Arc::new(Shared {
            options,
            signer,
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/token", get(token_handler))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(TokenServer { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT/token`, the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The service (JWT audience).
    pub fn service(&self) -> &str {
        &self.shared.options.service
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.shared.options.issuer
    }

    /// The options.
    pub fn options(&self) -> &TokenOptions {
        &self.shared.options
    }

    /// The PEM of the self-signed signing certificate (the registry's `rootcertbundle`).
    pub fn root_cert_pem(&self) -> &str {
        &self.shared.signer.cert_pem
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.requests.lock().expect("token log lock").clone()
    }

    /// How many requests asked for exactly this scope (e.g. `repository:team/api:pull`).
    pub fn request_count(&self, scope: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.scopes.iter().any(|s| s == scope))
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.requests.lock().expect("token log lock").clear();
    }

    /// Issues a token directly, without HTTP (for tests that need one at hand).
    /// `user` must be a configured user name, or `None` for anonymous.
    pub fn issue(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let actions = allowed_actions(&self.shared.options, user);
        let granted = grant(scopes.iter().copied(), &actions);
        sign(&self.shared, user.unwrap_or(""), &granted).0
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Serialize)]
struct Header<'a> {
    typ: &'a str,
    alg: &'a str,
    x5c: [&'a str; 1],
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: &'a [Access],
}

#[derive(Serialize)]
struct Reply {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs a JWT; returns it and its issue time.
fn sign(shared: &Shared, sub: &str, access: &[Access]) -> (String, u64) {
    let signer = &shared.signer;
    let now = now_secs();
    let mut jti = [0u8; 16];
    let _ = signer.rng.fill(&mut jti);
    let header = Header {
        typ: "JWT",
        alg: "ES256",
        x5c: [&signer.cert_der_b64],
    };
    let claims = Claims {
        iss: &shared.options.issuer,
        sub,
        aud: &shared.options.service,
        exp: now + shared.options.expires_in,
        // Allow for clock skew between the token server and the registry.
        nbf: now.saturating_sub(10),
        iat: now,
        jti: hex::encode(jti),
        access,
    };
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("JWT header serialises")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("JWT claims serialise"))
    );
    let signature = signer
        .key
        .sign(&signer.rng, signing_input.as_bytes())
        .expect("ECDSA P-256 signing does not fail");
    (
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ),
        now,
    )
}

/// The actions `user` may get (`None` = anonymous).
fn allowed_actions(options: &TokenOptions, user: Option<&str>) -> Vec<String> {
    match user {
        None => vec!["pull".to_owned()],
        Some(name) => options
            .users
            .iter()
            .find(|u| u.credentials.username == name)
            .map(|u| u.actions.clone())
            .unwrap_or_default(),
    }
}

/// Parses `type:name:actions` scopes and grants the allowed subset of the actions.
fn grant<'a>(scopes: impl Iterator<Item = &'a str>, allowed: &[String]) -> Vec<Access> {
    let mut out = Vec::new();
    for scope in scopes {
        // The name may contain ':' only in odd cases; type is before the first
        // colon and actions after the last.
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let actions: Vec<String> = actions
            .split(',')
            .filter(|a| allowed.iter().any(|x| x == "*" || x == a))
            .map(str::to_owned)
            .collect();
        out.push(Access {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions,
        });
    }
    out
}

/// Decodes `Authorization: Basic ...` into (user, password).
fn basic_auth(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Some(encoded) = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    }) else {
        return Some(Err(()));
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(
        decoded
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            .ok_or(()),
    )
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"freshet-testbed-token\"",
        )],
        axum::Json(serde_json::json!({
            "errors": [{"code": "UNAUTHORIZED", "message": message}]
        })),
    )
        .into_response()
}

async fn token_handler(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut service = None;
    let mut scopes = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "service" => service = Some(v.into_owned()),
            "scope" => scopes.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned)),
            _ => {}
        }
    }
    let mut record = TokenRequest {
        service,
        scopes,
        user: None,
        claimed_user: None,
        status: 401,
        granted: Vec::new(),
    };
    let options = &shared.options;
    let user = match basic_auth(&headers) {
        None if options.anonymous == AnonymousAccess::Deny => {
            shared.requests.lock().expect("token log lock").push(record);
            return unauthorized("authentication required");
        }
        None => None,
        Some(Err(())) => {
            shared.requests.lock().expect("token log lock").push(record);
            return unauthorized("malformed Authorization header");
        }
        Some(Ok((name, password))) => {
            let known = options.users.iter().any(|u| {
                u.credentials.username == name && u.credentials.password.expose() == password
            });
            if !known {
                record.claimed_user = Some(name);
                shared.requests.lock().expect("token log lock").push(record);
                return unauthorized("invalid username or password");
            }
            Some(name)
        }
    };
    let allowed = allowed_actions(options, user.as_deref());
    let granted = grant(record.scopes.iter().map(String::as_str), &allowed);
    let (token, issued) = sign(&shared, user.as_deref().unwrap_or(""), &granted);
    record.user = user;
    record.status = 200;
    record.granted = granted;
    shared.requests.lock().expect("token log lock").push(record);
    axum::Json(Reply {
        access_token: token.clone(),
        token,
        expires_in: options.expires_in,
        issued_at: rfc3339(issued),
    })
    .into_response()
}

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-23T09:37:25Z`).
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_426_645, "2026-11-23T09:37:25Z"),
        ] {
            assert_eq!(rfc3339(secs), want);
        }
    }

    #[test]
    fn grants_the_allowed_subset_of_each_scope() {
        let pull = vec!["pull".to_owned()];
        let push = vec!["pull".to_owned(), "push".to_owned()];
        let got = grant(
            ["repository:team/api:pull,push", "repository:a/b:pull"].into_iter(),
            &pull,
        );
        assert_eq!(got[0].name, "team/api");
        assert_eq!(got[0].actions, vec!["pull"]);
        assert_eq!(got[1].actions, vec!["pull"]);
        let got = grant(["repository:x:push,pull"].into_iter(), &push);
        assert_eq!(got[0].actions, vec!["push", "pull"]);
        assert!(grant(["bogus"].into_iter(), &push).is_empty());
    }
}
