//! Credentials: the forms a registry accepts, holding their secrets as
//! [`Secret`]s that never reach a log, an error or `Debug`.
//!
//! Owns [`Credential`]. [`Secret`] is the project's one secret type,
//! `freshet_core::secret::Secret`, re-exported here so `freshet_registry::secret::Secret`
//! keeps working. Reading credentials from files and helpers is not done here.

pub use freshet_core::secret::Secret;

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

    #[test]
    fn the_registry_secret_is_the_core_secret() {
        let s: freshet_core::secret::Secret = Secret::new("x");
        assert_eq!(format!("{s:?}/{s}"), "***/***");
    }
}
