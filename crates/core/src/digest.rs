//! Content digests (`sha256:<hex>`), as the OCI image spec defines them.
//!
//! Owns parsing and validation only. Hashing bytes is the registry shell's job (it
//! holds the raw bytes); this module never touches I/O.

use std::fmt;
use std::str::FromStr;

/// A validated content digest such as `sha256:6c3c…`.
///
/// Only the algorithms the OCI image spec registers are accepted (`sha256` with 64
/// lowercase hex characters, `sha512` with 128), so two equal digests are always equal
/// strings.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// There is no `algorithm:` prefix.
    #[error("invalid digest {0:?}: expected ALGORITHM:HEX, for example sha256:<64 hex characters>")]
    MissingAlgorithm(String),
    /// The algorithm is not one the OCI image spec registers.
    #[error("invalid digest {input:?}: unsupported algorithm {algorithm:?} (use sha256 or sha512)")]
    UnsupportedAlgorithm { input: String, algorithm: String },
    /// The encoded part has the wrong length or characters.
    #[error(
        "invalid digest {input:?}: {algorithm} needs exactly {expected} lowercase hex characters"
    )]
    BadHex {
        input: String,
        algorithm: String,
        expected: usize,
    },
}

impl Digest {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        let Some((algorithm, hex)) = input.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(input.to_owned()));
        };
        let expected = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => {
                return Err(DigestError::UnsupportedAlgorithm {
                    input: input.to_owned(),
                    algorithm: algorithm.to_owned(),
                });
            }
        };
        if hex.len() != expected || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::BadHex {
                input: input.to_owned(),
                algorithm: algorithm.to_owned(),
                expected,
            });
        }
        Ok(Self(input.to_owned()))
    }

    /// Builds a sha256 digest from its 64 lowercase hex characters.
    pub fn from_sha256_hex(hex: &str) -> Result<Self, DigestError> {
        Self::parse(&format!("sha256:{hex}"))
    }

    /// The algorithm, for example `sha256`.
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    /// The hex part after the colon.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }

    /// The digest as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for humans: `sha256:` and the first 12 hex characters.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm(), &self.hex()[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    #[test]
    fn parses_valid_digests() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.hex(), HEX);
        assert_eq!(d.short(), "sha256:6c3c624b58db");
        assert_eq!(Digest::from_sha256_hex(HEX).unwrap(), d);
        assert!(Digest::parse(&format!("sha512:{HEX}{HEX}")).is_ok());
    }

    #[test]
    fn rejects_malformed_digests() {
        let cases = [
            ("nocolon", "expected ALGORITHM:HEX"),
            ("md5:abc", "unsupported algorithm \"md5\""),
            ("sha256:abc", "exactly 64 lowercase hex"),
            (&format!("sha256:{}", HEX.to_uppercase()), "exactly 64"),
            (&format!("sha256:{HEX}0"), "exactly 64"),
        ];
        for (input, want) in cases {
            let err = Digest::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let json = format!("\"sha256:{HEX}\"");
        let d: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), json);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
