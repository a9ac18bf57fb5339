//! Registry authentication: challenges, the realm trust policy, and token responses.
//!
//! Owns the parsing of `WWW-Authenticate` (RFC 7235, several challenges in one
//! header), the rule that decides whether credentials may go to a token realm, and the
//! decoding of token responses with their lifetime. It is pure: the requests are sent
//! by the `token` and `host` modules.
//!
//! **Credentials never go to a realm on another host** than the registry's own (ports
//! aside), or its known pair (`registry-1.docker.io` with `auth.docker.io`), unless
//! the user trusts that pair explicitly. A realm must be https unless it is on
//! loopback or the registry is configured insecure. This closes the credential-leak
//! class of containerd CVE-2020-15157.

use std::time::Duration;

use url::Url;

use crate::endpoint::{hostname, is_loopback};
use crate::secret::Secret;

/// Known registry/realm host pairs that may receive the registry's credentials.
const KNOWN_REALMS: &[(&str, &str)] = &[
    ("registry-1.docker.io", "auth.docker.io"),
    ("docker.io", "auth.docker.io"),
    ("index.docker.io", "auth.docker.io"),
];

/// What a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No authentication needed.
    None,
    /// HTTP Basic on every request.
    Basic,
    /// The Docker token flow.
    Bearer {
        /// Where tokens are issued.
        realm: Url,
        /// The `service` parameter to send.
        service: Option<String>,
    },
}

/// Why a challenge or realm was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The header could not be parsed or names no scheme freshet speaks.
    #[error("unusable WWW-Authenticate header {header:?}: {reason}")]
    BadChallenge { header: String, reason: String },
    /// The realm is on a host that may not receive credentials.
    #[error(
        "token realm {realm} is on {realm_host}, not on the registry's host {registry_host}: freshet will not send credentials there; if this pairing is intended, trust it explicitly"
    )]
    ForeignRealm {
        realm: String,
        realm_host: String,
        registry_host: String,
    },
    /// The realm would be contacted over plain http.
    #[error(
        "token realm {realm} uses plain http: refusing to send credentials unencrypted; use https, or mark the registry insecure if it is on a trusted network"
    )]
    InsecureRealm { realm: String },
}

/// Parses a `WWW-Authenticate` value, preferring Bearer over Basic.
pub fn parse_challenge(header: &str) -> Result<Challenge, AuthError> {
    let bad = |reason: String| AuthError::BadChallenge {
        header: header.to_owned(),
        reason,
    };
    let challenges = http_auth::parse_challenges(header).map_err(|e| bad(e.to_string()))?;
    let param = |c: &http_auth::ChallengeRef<'_>, name: &str| {
        c.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_unescaped())
    };
    if let Some(bearer) = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    {
        let realm =
            param(bearer, "realm").ok_or_else(|| bad("Bearer challenge without realm".into()))?;
        let realm = Url::parse(&realm).map_err(|e| bad(format!("realm {realm:?}: {e}")))?;
        if !matches!(realm.scheme(), "http" | "https") {
            return Err(bad(format!("realm {realm} is not http(s)")));
        }
        return Ok(Challenge::Bearer {
            realm,
            service: param(bearer, "service"),
        });
    }
    if challenges
        .iter()
        .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
    {
        return Ok(Challenge::Basic);
    }
    Err(bad("no Basic or Bearer challenge".into()))
}

/// Decides whether credentials for `registry_host` may be sent to `realm`.
/// `trusted` lists extra (registry host, realm host) pairs the user allowed.
pub fn check_realm_for_credentials(
    registry_host: &str,
    realm: &Url,
    registry_insecure: bool,
    trusted: &[(String, String)],
) -> Result<(), AuthError> {
    let realm_host = realm
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let reg = hostname(registry_host);
    let same = realm_host.eq_ignore_ascii_case(reg);
    let known = KNOWN_REALMS
        .iter()
        .any(|(r, a)| r.eq_ignore_ascii_case(reg) && a.eq_ignore_ascii_case(realm_host));
    let configured = trusted.iter().any(|(r, a)| {
        hostname(r).eq_ignore_ascii_case(reg) && hostname(a).eq_ignore_ascii_case(realm_host)
    });
    if !(same || known || configured) {
        return Err(AuthError::ForeignRealm {
            realm: strip_query(realm),
            realm_host: realm_host.to_owned(),
            registry_host: registry_host.to_owned(),
        });
    }
    check_realm_scheme(realm, registry_insecure)
}

/// A realm must be https unless it is on loopback or the registry is insecure.
pub fn check_realm_scheme(realm: &Url, registry_insecure: bool) -> Result<(), AuthError> {
    let realm_host = realm.host_str().unwrap_or_default();
    if realm.scheme() == "http" && !registry_insecure && !is_loopback(realm_host) {
        return Err(AuthError::InsecureRealm {
            realm: strip_query(realm),
        });
    }
    Ok(())
}

/// A realm as shown in messages: no query, no user info.
fn strip_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// A token as issued, with how long to trust it.
#[derive(Debug, Clone)]
pub struct Token {
    /// The bearer token.
    pub token: Secret,
    /// How long from receipt it may be used (the server's `expires_in`, at least 60 s
    /// as the token spec says, less a safety margin).
    pub lifetime: Duration,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    /// Any JSON: a value that is not a whole number of seconds falls back to the
    /// default instead of failing the token.
    expires_in: Option<serde_json::Value>,
}

/// The token spec's default and minimum lifetime.
const DEFAULT_TOKEN_SECS: u64 = 60;

/// `expires_in` as seconds: a non-negative integer (huge ones saturate), else the
/// 60 s default (`-1`, `"300"`, `1.5`, `null`).
fn expires_in_secs(v: Option<&serde_json::Value>) -> u64 {
    v.and_then(serde_json::Value::as_u64)
        .unwrap_or(DEFAULT_TOKEN_SECS)
        .max(DEFAULT_TOKEN_SECS)
}

/// Decodes a token endpoint's JSON answer.
pub fn parse_token_response(body: &[u8]) -> Result<Token, String> {
    let r: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("token response is not JSON: {e}"))?;
    let token = r
        .token
        .filter(|t| !t.is_empty())
        .or(r.access_token.filter(|t| !t.is_empty()))
        .ok_or("token response has neither token nor access_token")?;
    let secs = expires_in_secs(r.expires_in.as_ref());
    // Renew a little early: 10% of the lifetime, at most 30 s.
    let margin = (secs / 10).clamp(1, 30);
    Ok(Token {
        token: Secret::new(token),
        lifetime: Duration::from_secs(secs - margin),
    })
}

/// The pull scope of a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_expires_in_falls_back_to_the_default_instead_of_failing_the_token() {
        for body in [
            r#"{"token":"a","expires_in":-1}"#,
            r#"{"token":"a","expires_in":"300"}"#,
            r#"{"token":"a","expires_in":1.5}"#,
            r#"{"token":"a","expires_in":null}"#,
            r#"{"token":"a","expires_in":{"x":1}}"#,
        ] {
            let t = parse_token_response(body.as_bytes()).expect(body);
            assert_eq!(t.lifetime, Duration::from_secs(54), "{body}");
        }
    }

    #[test]
    fn challenges_table() {
        let bearer = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        )
        .unwrap();
        assert_eq!(
            bearer,
            Challenge::Bearer {
                realm: Url::parse("https://auth.docker.io/token").unwrap(),
                service: Some("registry.docker.io".into())
            }
        );
        // Several challenges in one header: Bearer wins.
        let multi =
            parse_challenge(r#"Basic realm="x", Bearer realm="https://r.example/t""#).unwrap();
        assert!(matches!(multi, Challenge::Bearer { service: None, .. }));
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic
        );
        for bad in [
            "",
            "Negotiate",
            "Bearer service=\"x\"",
            "Bearer realm=\"ftp://x/t\"",
            "Bearer realm=\"::\"",
        ] {
            assert!(parse_challenge(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn realm_trust_table() {
        let u = |s: &str| Url::parse(s).unwrap();
        let trusted = vec![(
            "corp.example:5000".to_owned(),
            "sso.corp.example".to_owned(),
        )];
        let cases: &[(&str, &str, bool, bool)] = &[
            // registry host, realm, registry insecure, allowed
            (
                "registry-1.docker.io",
                "https://auth.docker.io/token",
                false,
                true,
            ),
            ("ghcr.io", "https://ghcr.io/token", false, true),
            ("127.0.0.1:5000", "http://127.0.0.1:5001/token", false, true),
            ("quay.io", "https://quay.io/v2/auth", false, true),
            ("ghcr.io", "https://evil.example/token", false, false),
            (
                "registry-1.docker.io",
                "https://auth.docker.io.evil.example/token",
                false,
                false,
            ),
            ("ghcr.io", "http://ghcr.io/token", false, false),
            ("lan.example", "http://lan.example/token", true, true),
            (
                "corp.example:5000",
                "https://sso.corp.example/t",
                false,
                true,
            ),
            (
                "127.0.0.1:5000",
                "http://127.0.0.2:5001/token",
                false,
                false,
            ),
        ];
        for (registry, realm, insecure, allowed) in cases {
            let got = check_realm_for_credentials(registry, &u(realm), *insecure, &trusted);
            assert_eq!(got.is_ok(), *allowed, "{registry} -> {realm}: {got:?}");
        }
        let err = check_realm_for_credentials(
            "ghcr.io",
            &u("https://evil.example/token?account=x"),
            false,
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("evil.example") && !err.to_string().contains("account=x"),
            "{err}"
        );
        let err = check_realm_for_credentials(
            "ghcr.io",
            &u("https://realm-user:realm-pass@evil.example/token"),
            false,
            &[],
        )
        .unwrap_err();
        assert!(!err.to_string().contains("realm-pass"), "{err}");
    }

    #[test]
    fn token_responses() {
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.token.expose(), "abc");
        assert_eq!(t.lifetime, Duration::from_secs(270));
        let t = parse_token_response(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(
            (t.token.expose(), t.lifetime),
            ("xyz", Duration::from_secs(54))
        );
        // Below the spec's 60 s minimum is raised to 60.
        assert_eq!(
            parse_token_response(br#"{"token":"a","expires_in":5}"#)
                .unwrap()
                .lifetime,
            Duration::from_secs(54)
        );
        assert!(parse_token_response(br#"{"token":""}"#).is_err());
        // A token that never expires (by its own account) saturates instead of panicking.
        let forever =
            parse_token_response(br#"{"token":"a","expires_in":18446744073709551615}"#).unwrap();
        assert_eq!(forever.lifetime, Duration::from_secs(u64::MAX - 30));
        assert!(parse_token_response(b"<html>").is_err());
    }
}
