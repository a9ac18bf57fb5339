//! The webhook signature scheme and its reference verifier.
//!
//! A signed request carries `X-Freshet-Signature: t=<unix seconds>,v1=<hex>` where
//! `<hex>` is the lowercase HMAC-SHA256, keyed with the sink's secret, of the bytes
//! `"<t>.<body>"` (the same shape as Stripe's). A receiver recomputes it, compares
//! in constant time, and rejects a timestamp further than its tolerance from its own
//! clock, so a captured request cannot be replayed later.
//!
//! Must not read the clock: the time is an argument.

use std::time::Duration;

use ring::hmac;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Freshet-Signature";
/// The header that carries the timestamp alone (for receivers that log it).
pub const TIMESTAMP_HEADER: &str = "X-Freshet-Timestamp";
/// The longest header value [`verify`] accepts.
const MAX_HEADER: usize = 1024;

/// Why [`verify`] rejected a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<unix>,v1=<hex>`.
    #[error("malformed signature header: expected t=<unix seconds>,v1=<hex>")]
    Malformed,
    /// The timestamp is outside the tolerance (a replay, or a skewed clock).
    #[error("timestamp {timestamp} is {skew}s away from now, more than the {tolerance}s tolerance")]
    Stale {
        /// The request's timestamp.
        timestamp: u64,
        /// Seconds between it and now.
        skew: u64,
        /// The tolerance in seconds.
        tolerance: u64,
    },
    /// No `v1` signature matches the body and the key.
    #[error("signature does not match the body")]
    Mismatch,
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

fn signed_payload(timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(body.len() + 21);
    p.extend_from_slice(timestamp.to_string().as_bytes());
    p.push(b'.');
    p.extend_from_slice(body);
    p
}

/// The `X-Freshet-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let tag = hmac::sign(&key(secret), &signed_payload(timestamp, body));
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

/// Checks a request: `header` is the `X-Freshet-Signature` value, `body` the raw
/// bytes received, `now` the receiver's clock in Unix seconds. Several `v1=` entries
/// are allowed (key rotation): one matching is enough.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    if header.len() > MAX_HEADER {
        return Err(VerifyError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<u64>().map_err(|_| VerifyError::Malformed)?)
            }
            Some(("v1", s)) => signatures.push(hex::decode(s).map_err(|_| VerifyError::Malformed)?),
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let skew = now.abs_diff(timestamp);
    if skew > tolerance.as_secs() {
        return Err(VerifyError::Stale {
            timestamp,
            skew,
            tolerance: tolerance.as_secs(),
        });
    }
    let payload = signed_payload(timestamp, body);
    let k = key(secret);
    if signatures
        .iter()
        .any(|s| hmac::verify(&k, &payload, s).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_verifies_within_the_tolerance() {
        let h = sign(b"key", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify(b"key", &h, b"{\"a\":1}", 1_700_000_100, TOL), Ok(()));
        assert_eq!(verify(b"key", &h, b"{\"a\":1}", 1_699_999_900, TOL), Ok(()));
    }

    #[test]
    fn known_vector_matches_openssl() {
        // printf '1.{}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            sign(b"k", 1, b"{}"),
            "t=1,v1=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }

    #[test]
    fn a_replayed_old_timestamp_is_rejected() {
        let h = sign(b"key", 1_700_000_000, b"x");
        assert_eq!(
            verify(b"key", &h, b"x", 1_700_000_301, TOL),
            Err(VerifyError::Stale {
                timestamp: 1_700_000_000,
                skew: 301,
                tolerance: 300
            })
        );
    }

    #[test]
    fn a_changed_body_timestamp_or_key_is_rejected() {
        let h = sign(b"key", 100, b"x");
        assert_eq!(
            verify(b"key", &h, b"y", 100, TOL),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &h, b"x", 100, TOL),
            Err(VerifyError::Mismatch)
        );
        let moved = h.replace("t=100", "t=101");
        assert_eq!(
            verify(b"key", &moved, b"x", 100, TOL),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for h in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "garbage",
            &"a".repeat(2000),
        ] {
            assert_eq!(
                verify(b"k", h, b"", 1, TOL),
                Err(VerifyError::Malformed),
                "{h}"
            );
        }
    }

    #[test]
    fn a_second_signature_allows_key_rotation() {
        let new = sign(b"new", 5, b"b");
        let old = sign(b"old", 5, b"b");
        let both = format!("{new},{}", old.split_once(',').unwrap().1);
        assert_eq!(verify(b"old", &both, b"b", 5, TOL), Ok(()));
    }
}
