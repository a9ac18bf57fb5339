//! The distribution registry's YAML configuration, rendered from typed values.
//!
//! Owns the text of `config.yml` (listen address, filesystem storage with delete
//! enabled, access log on, and one of: no auth, htpasswd, token, or pull-through
//! proxy) and of the htpasswd file. It is pure apart from bcrypt hashing: it must
//! not write files or start processes (the launcher does that).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::Credentials;

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub(crate) enum AuthConfig {
    /// No authentication.
    None,
    /// `auth.htpasswd`.
    Htpasswd { realm: String, path: PathBuf },
    /// `auth.token`.
    Token {
        realm: String,
        service: String,
        issuer: String,
        rootcertbundle: PathBuf,
    },
}

/// `proxy:` section: the registry is a read-only pull-through cache.
#[derive(Debug, Clone)]
pub(crate) struct ProxyConfig {
    pub remote_url: String,
    pub credentials: Option<Credentials>,
}

/// Everything that goes into `config.yml`.
#[derive(Debug, Clone)]
pub(crate) struct RegistryConfig {
    pub addr: String,
    pub root_directory: PathBuf,
    pub log_level: String,
    pub auth: AuthConfig,
    pub proxy: Option<ProxyConfig>,
    /// `middleware.storage: redirect` with this base URL: blob GETs answer 307.
    pub blob_redirect: Option<String>,
}

/// A YAML double-quoted scalar (JSON strings are valid YAML double-quoted scalars).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl RegistryConfig {
    /// Renders `config.yml`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "version: 0.1\n\
             log:\n  level: {level}\n  formatter: text\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: freshet-testbed-not-a-secret\n  \
             headers:\n    X-Content-Type-Options: [nosniff]\n",
            level = q(&self.log_level),
            root = q(&self.root_directory.to_string_lossy()),
            addr = q(&self.addr),
        );
        match &self.auth {
            AuthConfig::None => {}
            AuthConfig::Htpasswd { realm, path } => {
                let _ = write!(
                    out,
                    "auth:\n  htpasswd:\n    realm: {}\n    path: {}\n",
                    q(realm),
                    q(&path.to_string_lossy())
                );
            }
            AuthConfig::Token {
                realm,
                service,
                issuer,
                rootcertbundle,
            } => {
                let _ = write!(
                    out,
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    q(realm),
                    q(service),
                    q(issuer),
                    q(&rootcertbundle.to_string_lossy())
                );
            }
        }
        if let Some(base) = &self.blob_redirect {
            let _ = write!(
                out,
                "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: {}\n",
                q(base)
            );
        }
        if let Some(proxy) = &self.proxy {
            let _ = write!(out, "proxy:\n  remoteurl: {}\n", q(&proxy.remote_url));
            if let Some(c) = &proxy.credentials {
                let _ = write!(
                    out,
                    "  username: {}\n  password: {}\n",
                    q(&c.username),
                    q(c.password.expose())
                );
            }
        }
        out
    }
}

/// Renders an htpasswd file with bcrypt (`$2y$`, cost 4) hashes, as `htpasswd -B` would.
pub(crate) fn htpasswd(users: &[Credentials]) -> Result<String, bcrypt::BcryptError> {
    let mut out = String::new();
    for user in users {
        let hash = bcrypt::hash_with_result(user.password.expose(), 4)?
            .format_for_version(bcrypt::Version::TwoY);
        let _ = writeln!(out, "{}:{}", user.username, hash);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(auth: AuthConfig, proxy: Option<ProxyConfig>) -> RegistryConfig {
        RegistryConfig {
            addr: "127.0.0.1:5000".into(),
            root_directory: "/tmp/x/data".into(),
            log_level: "info".into(),
            auth,
            proxy,
            blob_redirect: None,
        }
    }

    #[test]
    fn open_config_listens_on_loopback_with_delete_and_access_log() {
        let text = base(AuthConfig::None, None).render();
        assert!(text.contains("addr: \"127.0.0.1:5000\""), "{text}");
        assert!(text.contains("delete:\n    enabled: true"), "{text}");
        assert!(text.contains("accesslog:\n    disabled: false"), "{text}");
        assert!(!text.contains("auth:"), "{text}");
        assert!(!text.contains("proxy:"), "{text}");
    }

    #[test]
    fn auth_and_proxy_sections() {
        let token = base(
            AuthConfig::Token {
                realm: "http://127.0.0.1:1/token".into(),
                service: "svc".into(),
                issuer: "iss".into(),
                rootcertbundle: "/tmp/x/root.pem".into(),
            },
            None,
        )
        .render();
        assert!(token.contains("  token:\n    realm: \"http://127.0.0.1:1/token\"\n    service: \"svc\"\n    issuer: \"iss\"\n    rootcertbundle: \"/tmp/x/root.pem\"\n"), "{token}");
        let proxy = base(
            AuthConfig::None,
            Some(ProxyConfig {
                remote_url: "http://127.0.0.1:2".into(),
                credentials: Some(Credentials::new("u", "p\"w")),
            }),
        )
        .render();
        assert!(proxy.contains("proxy:\n  remoteurl: \"http://127.0.0.1:2\"\n  username: \"u\"\n  password: \"p\\\"w\"\n"), "{proxy}");
    }

    #[test]
    fn htpasswd_lines_verify_with_bcrypt() {
        let text = htpasswd(&[Credentials::new("alice", "wonderland")]).unwrap();
        let (user, hash) = text.trim_end().split_once(':').unwrap();
        assert_eq!(user, "alice");
        assert!(hash.starts_with("$2y$04$"), "{hash}");
        assert!(bcrypt::verify("wonderland", hash).unwrap());
    }
}
