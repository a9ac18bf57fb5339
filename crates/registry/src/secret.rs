//! Secrets and credentials: values that must never reach a log, an error or `Debug`.
//!
//! Owns the [`Secret`] newtype (prints `***`) and the [`Credential`] forms a registry
//! accepts. Reading credentials from files lives in [`crate::credentials`].

use std::fmt;

/// A secret string. `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Credential {
    /// A user name and password (or access token used as a password).
    Basic {
        /// The user name (not secret).
        username: String,
        /// The password or personal access token.
        password: Secret,
    },
    /// A Docker identity token (an OAuth2 refresh token), exchanged at the realm.
    IdentityToken(Secret),
}

impl Credential {
    /// A basic credential.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// The `Authorization: Basic …` header value, for credentials that have one.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            // `encode_credentials` returns the whole value, scheme included.
            Self::Basic { username, password } => Some(http_auth::basic::encode_credentials(
                username,
                password.expose(),
            )),
            Self::IdentityToken(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credential::basic("alice", "hunter2");
        let shown = format!("{c:?} {}", Secret::new("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("alice"));
        assert_eq!(c.basic_header().unwrap(), "Basic YWxpY2U6aHVudGVyMg==");
        assert!(!format!("{:?}", Credential::IdentityToken(Secret::new("tok"))).contains("tok"));
    }
}
