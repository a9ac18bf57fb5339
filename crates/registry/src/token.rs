//! Bearer tokens: fetched from the realm a registry names, cached per scope.
//!
//! Owns [`TokenCache`] (one token per repository scope and registry, reused until
//! its `expires_in`; concurrent callers for one scope share one token request),
//! [`SharedTokens`] (the token caches and learned challenges of one credential
//! set, which successive clients of that set share, so that a controller's passes
//! ask for a token once per scope until it expires while their answers stay
//! un-memoised; a caller must never share one between credential sets), and
//! [`fetch`], which applies the realm trust rule of [`crate::auth`] before any
//! credential is sent, asks the realm (GET with Basic, or POST with an identity
//! token), and reads the capped answer. It must not decide which challenge applies
//! or retry a request with the token: that is the `host` module's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::auth::{self, Token};
use crate::body::{body_detail, read_capped};
use crate::endpoint::Endpoint;
use crate::error::RegistryError;
use crate::secret::{Credential, Secret};
use crate::stats::Kind;
use crate::transport::{Request, Transport};

/// The most bytes of a token answer freshet reads.
const TOKEN_BODY_CAP: usize = 1024 * 1024;

type TokenSlot = Arc<tokio::sync::Mutex<Option<(Secret, Instant)>>>;

/// The tokens of one registry, by scope.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, TokenSlot>>,
}

impl TokenCache {
    /// The cached token for `scope`, or a new one from `fetch` (one fetch at a time
    /// per scope; the others wait for it and share it).
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        scope: &str,
        fetch: F,
    ) -> Result<Secret, RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, RegistryError>>,
    {
        let slot = self
            .slots
            .lock()
            .expect("tokens lock")
            .entry(scope.to_owned())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some((token, until)) = slot.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let token = fetch().await?;
        // A lifetime too long to add to now saturates to "for this run".
        let until = Instant::now()
            .checked_add(token.lifetime)
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600));
        *slot = Some((token.token.clone(), until));
        Ok(token.token)
    }

    /// Drops the token of `scope` (after a 401 with it).
    pub(crate) fn forget(&self, scope: &str) {
        self.slots.lock().expect("tokens lock").remove(scope);
    }
}

/// What one registry's clients share across runs: its token cache and the auth
/// challenge learned from its ping (the challenge names the scheme and realm only,
/// never a credential).
#[derive(Default)]
pub(crate) struct SharedHost {
    pub(crate) tokens: TokenCache,
    pub(crate) challenge: Mutex<Option<auth::Challenge>>,
}

/// Token caches and learned challenges by registry, shared by the clients built
/// with [`crate::Client::with_shared_tokens`]. Cheap to clone; clones share. Give
/// each credential set its own: a token fetched with one set's credentials must
/// never be sent on behalf of another.
#[derive(Clone, Default)]
pub struct SharedTokens {
    hosts: Arc<Mutex<HashMap<String, Arc<SharedHost>>>>,
}

impl std::fmt::Debug for SharedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.hosts.lock().map(|h| h.len()).unwrap_or(0);
        f.debug_struct("SharedTokens")
            .field("registries", &n)
            .finish()
    }
}

impl SharedTokens {
    /// The shared state of `registry`, created on first use.
    pub(crate) fn host(&self, registry: &str) -> Arc<SharedHost> {
        self.hosts
            .lock()
            .expect("shared tokens lock")
            .entry(registry.to_owned())
            .or_default()
            .clone()
    }
}

/// Where and how to ask for one token.
pub(crate) struct TokenRequest<'a> {
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) realm: &'a Url,
    pub(crate) service: Option<&'a str>,
    pub(crate) scope: &'a str,
    pub(crate) repository: &'a str,
    pub(crate) credential: Option<&'a Credential>,
}

/// Asks the realm for a token, after checking that credentials may go there.
pub(crate) async fn fetch(
    transport: &Transport,
    t: &TokenRequest<'_>,
) -> Result<Token, RegistryError> {
    let registry = t.endpoint.registry.as_str();
    let realm = check_realm(transport, t)?;
    let realm_label = realm.host_str().unwrap_or(registry).to_owned();
    let basic = t
        .credential
        .and_then(Credential::basic_header)
        .map(Secret::new);
    let what = format!("token for {}", t.scope);
    let req = token_request(&realm, t, basic.as_ref(), &what);
    let resp = transport
        .send(&realm_label, None, &req)
        .await
        .map_err(|e| in_token_endpoint(registry, e))?;
    let timeout = transport.options().request_timeout;
    match resp.status() {
        s if s.is_success() => {
            let body =
                read_capped(registry, resp, TOKEN_BODY_CAP, "token response", timeout).await?;
            auth::parse_token_response(&body).map_err(|detail| RegistryError::Malformed {
                host: registry.to_owned(),
                detail: format!("token endpoint {realm_label}: {detail}"),
            })
        }
        StatusCode::UNAUTHORIZED => Err(RegistryError::unauthorized(
            registry,
            t.repository,
            body_detail(resp).await,
            t.credential.is_some(),
        )),
        StatusCode::FORBIDDEN => Err(RegistryError::Forbidden {
            host: registry.to_owned(),
            repository: t.repository.to_owned(),
            detail: body_detail(resp).await,
        }),
        other => Err(RegistryError::Malformed {
            host: registry.to_owned(),
            detail: format!(
                "token endpoint {realm_label} answered {other}{}",
                body_detail(resp).await
            ),
        }),
    }
}

/// Applies the trust rule and returns the realm without user info (credentials go
/// in one `Authorization` header, never in the URL as well).
fn check_realm(transport: &Transport, t: &TokenRequest<'_>) -> Result<Url, RegistryError> {
    let refused = |e: auth::AuthError| RegistryError::ForeignRealm {
        host: t.endpoint.registry.clone(),
        detail: e.to_string(),
    };
    if t.credential.is_some() {
        auth::check_realm_for_credentials(
            &t.endpoint.api_host,
            t.realm,
            t.endpoint.insecure(),
            &transport.options().trusted_realms,
        )
        .map_err(refused)?;
    } else {
        auth::check_realm_scheme(t.realm, t.endpoint.insecure()).map_err(refused)?;
    }
    let mut realm = t.realm.clone();
    let _ = realm.set_username("");
    let _ = realm.set_password(None);
    Ok(realm)
}

/// The token request: POST with a refresh token, else GET (with Basic when there
/// are credentials).
fn token_request<'a>(
    realm: &Url,
    t: &TokenRequest<'_>,
    basic: Option<&'a Secret>,
    what: &'a str,
) -> Request<'a> {
    let mut req = Request::new(Method::GET, realm.clone(), Kind::Token, what);
    req.insecure = t.endpoint.insecure();
    if let Some(Credential::IdentityToken(refresh)) = t.credential {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh.expose())
            .append_pair("client_id", "freshet")
            .append_pair("scope", t.scope);
        if let Some(s) = t.service {
            form.append_pair("service", s);
        }
        req.method = Method::POST;
        req.url.set_query(None);
        req.form = Some(form.finish());
        return req;
    }
    {
        let mut q = req.url.query_pairs_mut();
        if let Some(s) = t.service {
            q.append_pair("service", s);
        }
        q.append_pair("scope", t.scope);
    }
    req.authorization = basic;
    req
}

/// The token endpoint is part of reaching the registry: say so in network errors.
fn in_token_endpoint(registry: &str, e: RegistryError) -> RegistryError {
    match e {
        RegistryError::Connect {
            host: h,
            detail,
            source,
        } => RegistryError::Connect {
            host: format!("{registry} (token endpoint {h})"),
            detail,
            source,
        },
        RegistryError::Dns { host: h, source } => RegistryError::Dns {
            host: format!("{registry} (token endpoint {h})"),
            source,
        },
        RegistryError::Redirect { target, reason, .. } => RegistryError::ForeignRealm {
            host: registry.to_owned(),
            detail: format!(
                "token endpoint redirected to {target}; freshet does not follow it with credentials ({reason})"
            ),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn realm_user_info_is_dropped_so_only_one_authorization_is_sent() {
        let transport = Transport::new(crate::ClientOptions::default()).unwrap();
        let endpoint = Endpoint::new("127.0.0.1:5000", &BTreeSet::new());
        let realm = Url::parse("http://user:pw@127.0.0.1:5001/token").unwrap();
        let cred = Credential::basic("ci", "p");
        let t = TokenRequest {
            endpoint: &endpoint,
            realm: &realm,
            service: Some("reg"),
            scope: "repository:a:pull",
            repository: "a",
            credential: Some(&cred),
        };
        let checked = check_realm(&transport, &t).unwrap();
        assert_eq!(checked.username(), "");
        assert_eq!(checked.password(), None);
        let basic = Secret::new(cred.basic_header().unwrap());
        let req = token_request(&checked, &t, Some(&basic), "token");
        assert_eq!(
            req.url.as_str(),
            "http://127.0.0.1:5001/token?service=reg&scope=repository%3Aa%3Apull"
        );
        assert!(req.authorization.is_some());
    }

    #[tokio::test]
    async fn a_token_that_never_expires_is_cached_without_overflow() {
        let cache = TokenCache::default();
        let token = || async {
            Ok(Token {
                token: Secret::new("t"),
                lifetime: std::time::Duration::MAX,
            })
        };
        assert_eq!(cache.get_or_fetch("s", token).await.unwrap().expose(), "t");
        let again = cache
            .get_or_fetch("s", || async { panic!("cached token was not reused") })
            .await
            .unwrap();
        assert_eq!(again.expose(), "t");
    }
}
