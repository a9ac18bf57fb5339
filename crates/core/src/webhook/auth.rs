//! Webhook authentication: GitHub's HMAC signature and shared tokens, in constant time.
//!
//! Owns the [`Secret`] newtype (its `Debug` and `Display` print `***`), the check of
//! `X-Hub-Signature-256` against the raw body, and the comparison of a presented token
//! (bearer, Harbor auth header or URL path segment) with the configured one. It must not
//! read secrets from anywhere (the shell does) and must never put a secret or a
//! presented credential into an error.

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The header GitHub signs deliveries with.
pub const HUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// A webhook secret or token: the project's one redacting [`Secret`] type.
pub use crate::secret::Secret;

/// Why a delivery is not authenticated. No variant carries what was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature or token was presented (HTTP 401).
    #[error("the delivery carries no credential; configure the sender with the source's secret")]
    Missing,
    /// A signature header that is not `sha256=<64 hex digits>` (HTTP 403).
    #[error("the signature header is not of the form sha256=<64 hex digits>")]
    Malformed,
    /// The signature or token does not match the configured secret (HTTP 403).
    #[error("the signature or token does not match the source's secret")]
    Mismatch,
}

impl AuthError {
    /// The HTTP status to answer: 401 when nothing was presented, 403 otherwise.
    pub fn status(self) -> u16 {
        match self {
            Self::Missing => 401,
            Self::Malformed | Self::Mismatch => 403,
        }
    }

    /// A stable metric label.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Missing => "unauthenticated",
            Self::Malformed | Self::Mismatch => "bad_credential",
        }
    }
}

/// Checks GitHub's `X-Hub-Signature-256` header value against the raw body.
/// The comparison of the MACs is constant-time (`hmac`'s `verify_slice`).
pub fn verify_hub_signature(
    secret: &Secret,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), AuthError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    let header = header.ok_or(AuthError::Missing)?;
    let hex_sig = header.strip_prefix("sha256=").ok_or(AuthError::Malformed)?;
    if hex_sig.len() != 64 {
        return Err(AuthError::Malformed);
    }
    let sig = hex::decode(hex_sig).map_err(|_| AuthError::Malformed)?;
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| AuthError::Mismatch)
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`, for tests and the
/// webhook benchmark.
pub fn hub_signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &Secret) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// Compares a presented token with the secret in constant time. Both are hashed first,
/// so neither the content nor the length of the secret leaks through timing.
pub fn verify_token(secret: &Secret, presented: Option<&str>) -> Result<(), AuthError> {
    let presented = presented
        .filter(|p| !p.is_empty())
        .ok_or(AuthError::Missing)?;
    let want = Sha256::digest(secret.expose().as_bytes());
    let got = Sha256::digest(presented.as_bytes());
    if bool::from(want.ct_eq(&got)) {
        Ok(())
    } else {
        Err(AuthError::Mismatch)
    }
}

/// The token in an `Authorization` header: the part after `Bearer ` (scheme matched
/// case-insensitively), or the whole value when `allow_raw` (Harbor sends its "Auth
/// Header" setting verbatim, with or without a scheme).
pub fn authorization_token(header: Option<&str>, allow_raw: bool) -> Option<&str> {
    let value = header?.trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Some(rest.trim()),
        _ if allow_raw => Some(value),
        _ => None,
    }
}
