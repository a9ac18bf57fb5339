//! Kubeconfig documents for the test bed: one cluster, one user (a bearer
//! token, or none over plain http), one context, written as JSON (which every
//! YAML reader, kubectl's included, accepts).
//!
//! Owns the kubeconfig's shape and writing it with owner-only permissions. It
//! must not start servers or mint tokens.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::auth::Token;

/// Writing a kubeconfig failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The file could not be written.
    #[error("writing the kubeconfig {path} failed")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A kubeconfig for `server` (an `https://` or `http://` URL), trusting
/// `ca_pem` if given, authenticating with `token` if given, with
/// `namespace` as the context's default namespace.
pub fn kubeconfig(
    server: &str,
    ca_pem: Option<&str>,
    user: &str,
    token: Option<&Token>,
    namespace: &str,
) -> Value {
    let mut cluster = json!({"server": server});
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca.as_bytes()));
    }
    let mut user_entry = json!({});
    if let Some(t) = token {
        user_entry["token"] = json!(t.expose());
    }
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "freshet-testbed", "cluster": cluster}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": "freshet-testbed", "context": {
            "cluster": "freshet-testbed", "user": user, "namespace": namespace}}],
        "current-context": "freshet-testbed",
        "preferences": {},
    })
}

/// Writes `config` to `path`, readable by its owner only (it holds a token).
pub fn write(path: &Path, config: &Value) -> Result<(), KubeconfigError> {
    let err = |source| KubeconfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    let text = serde_json::to_string_pretty(config).unwrap_or_default();
    f.write_all(text.as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_config_has_no_credentials() {
        let c = kubeconfig("http://127.0.0.1:1", None, "admin", None, "default");
        assert_eq!(c["users"][0]["user"], json!({}));
        assert!(
            c["clusters"][0]["cluster"]
                .get("certificate-authority-data")
                .is_none()
        );
        assert_eq!(c["contexts"][0]["context"]["namespace"], "default");
    }
}
