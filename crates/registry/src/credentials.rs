//! Where credentials come from: docker `config.json` (`auths`, `credHelpers`,
//! `credsStore` through the helper protocol), Kubernetes `.dockerconfigjson` pull
//! secrets, and credentials given directly.
//!
//! Owns the lookup of a [`Credential`] for a registry host, trying the key spellings
//! Docker writes (`https://index.docker.io/v1/` for Docker Hub, `host`,
//! `https://host`, …), in docker's order: `credHelpers`, then `auths`, then
//! `credsStore`. Files are read once, when the store is built; credential helpers
//! run on first use per host through [`crate::helper`] (with a timeout), and their
//! answers are cached for the run. It never sends anything anywhere, and no helper
//! output reaches its errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docker_credential::{CredentialRetrievalError, DockerCredential};

use crate::helper::{Answer, HelperError, HelperRunner};
use crate::secret::{Credential, Secret};

/// Why a credential source could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    /// The docker config file could not be read.
    #[error(
        "cannot read docker config {path}: {source}; fix the file or pass another directory with --docker-config"
    )]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A pull secret is not a `.dockerconfigjson` document.
    #[error("pull secret {name} is not a valid .dockerconfigjson: {reason}")]
    BadPullSecret { name: String, reason: String },
    /// A credential helper failed, is missing, or did not answer in time.
    #[error(
        "credential helper for {host} failed: {source}; run `{program} get` by hand to see why"
    )]
    Helper {
        host: String,
        program: String,
        #[source]
        source: HelperError,
    },
    /// A credential helper is not installed.
    #[error(
        "credential helper {helper} for {host} is missing: it is named in the docker config but not installed on PATH; install it or remove it from the config"
    )]
    HelperMissing { host: String, helper: String },
    /// A credential helper did not answer in time and was stopped.
    #[error(
        "credential helper {helper} for {host} did not answer within {after:?} and was stopped; only images on {host} are affected"
    )]
    HelperTimeout {
        host: String,
        helper: String,
        after: Duration,
    },
    /// An entry could not be decoded.
    #[error("credentials for {host} in {source_name} could not be decoded: {reason}")]
    Decode {
        host: String,
        source_name: String,
        reason: String,
    },
}

#[derive(Debug, Clone)]
enum Source {
    /// A docker-style config document: `config.json` or a `.dockerconfigjson`.
    Config { name: String, json: Arc<[u8]> },
    Static {
        host: String,
        credential: Credential,
    },
}

/// A chain of credential sources, first match wins.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    sources: Vec<Source>,
    helpers: HelperRunner,
    cache: Arc<Mutex<HashMap<String, Option<Credential>>>>,
}

impl CredentialStore {
    /// An empty store: every registry is accessed anonymously.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Adds the `config.json` in a docker config directory. A missing file is not an
    /// error (there are simply no credentials); an unreadable or invalid one is.
    pub fn with_docker_config_dir(mut self, dir: &Path) -> Result<Self, CredentialsError> {
        let path = dir.join("config.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| {
                    CredentialsError::ConfigUnreadable {
                        path: path.clone(),
                        source: Arc::new(e),
                    }
                })?;
                self.sources.push(Source::Config {
                    name: path.display().to_string(),
                    json: bytes.into(),
                });
                Ok(self)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self),
            Err(e) => Err(CredentialsError::ConfigUnreadable {
                path,
                source: Arc::new(e),
            }),
        }
    }

    /// Adds a Kubernetes pull secret's `.dockerconfigjson` (or legacy `.dockercfg`)
    /// content. `name` (e.g. `namespace/secret`) is used in messages only.
    pub fn with_pull_secret(mut self, name: &str, json: &[u8]) -> Result<Self, CredentialsError> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| CredentialsError::BadPullSecret {
                name: name.to_owned(),
                reason: e.to_string(),
            })?;
        // Legacy .dockercfg is the `auths` map itself.
        let json: Arc<[u8]> = if value.get("auths").is_some() {
            json.into()
        } else if value.is_object() {
            serde_json::to_vec(&serde_json::json!({ "auths": value }))
                .unwrap_or_default()
                .into()
        } else {
            return Err(CredentialsError::BadPullSecret {
                name: name.to_owned(),
                reason: "expected a JSON object with an \"auths\" map".into(),
            });
        };
        self.sources.push(Source::Config {
            name: format!("pull secret {name}"),
            json,
        });
        Ok(self)
    }

    /// Adds credentials for one registry host.
    pub fn with_credential(mut self, host: &str, credential: Credential) -> Self {
        self.sources.push(Source::Static {
            host: host.to_owned(),
            credential,
        });
        self
    }

    /// How long a credential helper may take before it is stopped (default 30 s).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helpers.timeout = timeout;
        self
    }

    /// Looks for `docker-credential-*` helpers in these directories instead of `PATH`.
    pub fn with_helper_search_path(mut self, dirs: Vec<PathBuf>) -> Self {
        self.helpers.search_path = Some(dirs);
        self
    }

    /// The credential for `registry` (as written in a reference: `docker.io`,
    /// `ghcr.io`, `127.0.0.1:5000`), or `None` for anonymous access.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credential>, CredentialsError> {
        if let Some(hit) = self.cache.lock().expect("credential cache").get(registry) {
            return Ok(hit.clone());
        }
        let found = self.lookup_uncached(registry).await?;
        self.cache
            .lock()
            .expect("credential cache")
            .insert(registry.to_owned(), found.clone());
        Ok(found)
    }

    async fn lookup_uncached(
        &self,
        registry: &str,
    ) -> Result<Option<Credential>, CredentialsError> {
        let keys = candidate_keys(registry);
        for source in &self.sources {
            let found = match source {
                Source::Static { host, credential } => {
                    keys.iter().any(|k| k == host).then(|| credential.clone())
                }
                Source::Config { name, json } => {
                    self.lookup_in_config(registry, &keys, name, json).await?
                }
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// A docker config's answer for the first key that has one, in docker's order:
    /// `credHelpers`, then `auths`, then `credsStore`.
    async fn lookup_in_config(
        &self,
        registry: &str,
        keys: &[String],
        name: &str,
        json: &[u8],
    ) -> Result<Option<Credential>, CredentialsError> {
        let helpers = ConfigHelpers::parse(json);
        for key in keys {
            if let Some(helper) = helpers.cred_helpers.get(key).filter(|h| !h.is_empty()) {
                if let Some(c) = self.run_helper(registry, helper, key).await? {
                    return Ok(Some(c));
                }
                continue;
            }
            if let Some(c) = static_entry(registry, name, &helpers.without_helpers, key)? {
                return Ok(Some(c));
            }
        }
        if let Some(store) = helpers.creds_store.as_deref().filter(|h| !h.is_empty()) {
            for key in keys {
                if let Some(c) = self.run_helper(registry, store, key).await? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    async fn run_helper(
        &self,
        registry: &str,
        helper: &str,
        key: &str,
    ) -> Result<Option<Credential>, CredentialsError> {
        match self.helpers.get(helper, key).await {
            Ok(Answer::Found(c)) => Ok(Some(c)),
            Ok(Answer::NotFound) => Ok(None),
            Err(HelperError::Missing { program }) => Err(CredentialsError::HelperMissing {
                host: registry.to_owned(),
                helper: program,
            }),
            Err(HelperError::Timeout { program, after }) => Err(CredentialsError::HelperTimeout {
                host: registry.to_owned(),
                helper: program,
                after,
            }),
            Err(source) => Err(CredentialsError::Helper {
                host: registry.to_owned(),
                program: format!("docker-credential-{helper}"),
                source,
            }),
        }
    }
}

/// The helper settings of a docker config, and the config without them (for the
/// static `auths` lookup).
struct ConfigHelpers {
    cred_helpers: HashMap<String, String>,
    creds_store: Option<String>,
    without_helpers: Vec<u8>,
}

impl ConfigHelpers {
    fn parse(json: &[u8]) -> Self {
        let mut value: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
        let mut take = |k: &str| value.as_object_mut().and_then(|o| o.remove(k));
        let cred_helpers = take("credHelpers")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let creds_store = take("credsStore").and_then(|v| v.as_str().map(str::to_owned));
        let without_helpers = serde_json::to_vec(&value).unwrap_or_default();
        Self {
            cred_helpers,
            creds_store,
            without_helpers,
        }
    }
}

/// An `auths` entry (auth, identity token, or user and password) for `key`.
fn static_entry(
    registry: &str,
    name: &str,
    json: &[u8],
    key: &str,
) -> Result<Option<Credential>, CredentialsError> {
    match docker_credential::get_credential_from_reader(json, key) {
        Ok(DockerCredential::UsernamePassword(u, p)) => Ok(Some(Credential::Basic {
            username: u,
            password: Secret::new(p),
        })),
        Ok(DockerCredential::IdentityToken(t)) => {
            Ok(Some(Credential::IdentityToken(Secret::new(t))))
        }
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(None),
        Err(e) => Err(CredentialsError::Decode {
            host: registry.to_owned(),
            source_name: name.to_owned(),
            reason: describe(&e),
        }),
    }
}

/// A docker_credential error in words that cannot carry a secret (helper output is
/// never quoted; helpers are not run through docker_credential anyway).
fn describe(e: &CredentialRetrievalError) -> String {
    match e {
        CredentialRetrievalError::HelperFailure { helper, .. } => format!("{helper} failed"),
        other => other.to_string(),
    }
}

/// The keys Docker may have written for a registry, most specific first.
fn candidate_keys(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        return [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "https://docker.io",
            "registry-1.docker.io",
            "https://registry-1.docker.io",
        ]
        .map(String::from)
        .to_vec();
    }
    vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ]
}

/// Fuzzing entry point, not an API: the static credential a docker config holds for
/// `registry` (keys handed to a `credHelpers` helper are skipped; no helper is run).
#[doc(hidden)]
pub fn fuzz_docker_config(
    registry: &str,
    json: &[u8],
) -> Result<Option<Credential>, CredentialsError> {
    let helpers = ConfigHelpers::parse(json);
    for key in candidate_keys(registry) {
        if !helpers.cred_helpers.contains_key(&key)
            && let Some(c) = static_entry(registry, "fuzz", &helpers.without_helpers, &key)?
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn auth(user: &str, pass: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    }

    #[tokio::test]
    async fn docker_hub_uses_the_legacy_key_and_others_their_host() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": auth("hub", "p1")},
            "ghcr.io": {"auth": auth("gh", "p2")},
            "https://quay.io": {"auth": auth("q", "p3")},
            "127.0.0.1:5000": {"identitytoken": "refresh-me"},
        }});
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let store = CredentialStore::anonymous()
            .with_docker_config_dir(dir.path())
            .unwrap();
        let user = |c: Option<Credential>| match c {
            Some(Credential::Basic { username, .. }) => username,
            other => format!("{other:?}"),
        };
        assert_eq!(user(store.lookup("docker.io").await.unwrap()), "hub");
        assert_eq!(user(store.lookup("ghcr.io").await.unwrap()), "gh");
        assert_eq!(user(store.lookup("quay.io").await.unwrap()), "q");
        assert!(matches!(
            store.lookup("127.0.0.1:5000").await.unwrap(),
            Some(Credential::IdentityToken(_))
        ));
        assert_eq!(store.lookup("gcr.io").await.unwrap(), None);
    }

    #[tokio::test]
    async fn pull_secrets_in_both_formats() {
        let modern = serde_json::json!({"auths": {"ghcr.io": {"username": "u", "password": "p"}}});
        let legacy = serde_json::json!({"quay.io": {"auth": auth("lq", "pq")}});
        let store = CredentialStore::anonymous()
            .with_pull_secret("ns/modern", modern.to_string().as_bytes())
            .unwrap()
            .with_pull_secret("ns/legacy", legacy.to_string().as_bytes())
            .unwrap();
        assert_eq!(
            store.lookup("ghcr.io").await.unwrap(),
            Some(Credential::basic("u", "p"))
        );
        assert_eq!(
            store.lookup("quay.io").await.unwrap(),
            Some(Credential::basic("lq", "pq"))
        );
        let err = CredentialStore::anonymous()
            .with_pull_secret("ns/bad", b"[1]")
            .unwrap_err();
        assert!(err.to_string().contains("pull secret ns/bad"), "{err}");
    }

    #[test]
    fn invalid_config_is_reported_with_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = CredentialStore::anonymous()
            .with_docker_config_dir(dir.path())
            .unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        // A missing file is fine.
        let empty = tempfile::tempdir().unwrap();
        assert!(
            CredentialStore::anonymous()
                .with_docker_config_dir(empty.path())
                .is_ok()
        );
    }
}
