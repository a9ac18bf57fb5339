//! Image pull secrets: which Kubernetes Secrets a workload's pulls use, reading each
//! of them once per run, and grouping workloads by the set of secrets they use.
//!
//! Owns the choice of a workload's pull secrets (its pod template's
//! `imagePullSecrets`; when it names none, those of the template's ServiceAccount, as
//! the kubelet does), reading each Secret at most once per run and each
//! ServiceAccount at most once per run ([`Reader`]), the normalisation of
//! `kubernetes.io/dockerconfigjson` and legacy `kubernetes.io/dockercfg` data into a
//! docker config document that holds **only** its `auths` map ([`docker_config`]: a
//! secret can never make freshet run a credential helper), the warnings for a secret
//! that is missing, forbidden or malformed ([`SecretError`]), and [`SecretSets`]: one
//! credential set per distinct list of secrets, so answers obtained with one set's
//! credentials are never used for a workload of another.
//!
//! Must not resolve images nor decide anything. Must never put a secret's contents in
//! a log line, an error or a report: only `namespace/name` and what to do.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use freshet_core::secret::Secret as Redacted;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use serde_json::{Value, json};

use crate::workloads::ReadWorkload;

/// The Secret type of a `.dockerconfigjson` pull secret.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The legacy Secret type of a `.dockercfg` pull secret.
pub const DOCKERCFG: &str = "kubernetes.io/dockercfg";

/// The credentials of one pull secret, ready for
/// `freshet_registry::CredentialStore::with_pull_secret`. `Debug` prints `***` for
/// the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PullSecret {
    /// `namespace/name`, for messages.
    pub name: String,
    /// A docker config document (`{"auths": {…}}`) and nothing else.
    pub json: Redacted,
}

/// Why a pull secret cannot be used. Each message names the secret as
/// `namespace/name` and the fix, and never its contents.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The Secret does not exist.
    #[error(
        "pull secret {namespace}/{name} does not exist: create it (kubectl create secret docker-registry {name} -n {namespace} …) or remove it from imagePullSecrets; resolving without it"
    )]
    Missing {
        /// The namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// freshet may not read the Secret.
    #[error(
        "freshet may not read pull secret {namespace}/{name}: grant its ServiceAccount get on that secret with a Role in namespace {namespace} (see deploy/pull-secrets); resolving without it"
    )]
    Forbidden {
        /// The namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// The API failed otherwise.
    #[error("reading pull secret {namespace}/{name} failed; resolving without it")]
    Read {
        /// The namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The Secret is not a pull secret, or its data is not a docker config.
    #[error(
        "pull secret {namespace}/{name} is unusable ({reason}): recreate it with kubectl create secret docker-registry; resolving without it"
    )]
    Malformed {
        /// The namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// What is wrong, never the contents.
        reason: String,
    },
}

/// Turns the data of a pull secret of type `secret_type` into a docker config
/// document holding only its `auths` map: `.dockerconfigjson` is `{"auths": …}`
/// already, legacy `.dockercfg` is the bare map and is wrapped. Anything else in the
/// document (`credsStore`, `credHelpers`) is dropped, as the kubelet ignores it. The
/// error says what is wrong without quoting the data.
pub fn docker_config(secret_type: &str, data: &[u8]) -> Result<Redacted, String> {
    let key = match secret_type {
        DOCKER_CONFIG_JSON => ".dockerconfigjson",
        DOCKERCFG => ".dockercfg",
        other => {
            return Err(format!(
                "type {other:?}; expected {DOCKER_CONFIG_JSON} or {DOCKERCFG}"
            ));
        }
    };
    let value: Value = serde_json::from_slice(data).map_err(|e| {
        format!(
            "{key} is not JSON: {:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let auths = if secret_type == DOCKERCFG {
        value
    } else {
        value.get("auths").cloned().unwrap_or(Value::Null)
    };
    if !auths.is_object() {
        return Err(match secret_type {
            DOCKERCFG => format!("{key} is not a JSON object of registries"),
            _ => format!("{key} has no \"auths\" object"),
        });
    }
    Ok(Redacted::new(
        serde_json::to_string(&json!({ "auths": auths })).expect("a JSON value serialises"),
    ))
}

/// A workload's usable pull secrets and the warnings about the others.
#[derive(Debug, Clone, Default)]
pub struct WorkloadSecrets {
    /// In the order the workload names them.
    pub secrets: Vec<PullSecret>,
    /// One per secret that could not be used (see [`SecretError`]).
    pub warnings: Vec<String>,
}

/// How long the controller keeps a ServiceAccount's `imagePullSecrets` and a pull
/// secret's document across passes ([`Remembered`]): a changed one is seen within
/// this time, and a steady pass reads neither.
pub const REMEMBER_FOR: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The most ServiceAccounts and Secrets remembered across passes (beyond it, all are
/// forgotten and read again).
const MAX_REMEMBERED: usize = 20_000;

/// Answers kept across the controller's passes for [`REMEMBER_FOR`]: per
/// ServiceAccount its pull-secret names, per Secret what it read as (refusals and
/// absences are not kept, so a fix is seen at once). Clones share them.
#[derive(Clone, Default)]
pub struct Remembered {
    accounts: Arc<Memory<Vec<String>>>,
    secrets: Arc<Memory<PullSecret>>,
}

/// Values by `(namespace, name)`, each with when it was read.
type Memory<V> = std::sync::Mutex<HashMap<(String, String), (std::time::Instant, V)>>;

impl fmt::Debug for Remembered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remembered").finish_non_exhaustive()
    }
}

/// A fresh entry of `map` for `key`, if any.
fn recall<V: Clone>(map: &Memory<V>, key: &(String, String)) -> Option<V> {
    let map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.get(key)
        .filter(|(at, _)| at.elapsed() < REMEMBER_FOR)
        .map(|(_, v)| v.clone())
}

/// Keeps `value` for `key` in `map`, bounded by [`MAX_REMEMBERED`].
fn keep<V>(map: &Memory<V>, key: (String, String), value: V) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_REMEMBERED && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, (std::time::Instant::now(), value));
}

/// Reads pull secrets and ServiceAccounts through the API, each at most once (one
/// reader per run), and across runs through [`Remembered`] when given one.
pub struct Reader {
    kube: kube::Client,
    secrets: HashMap<(String, String), Result<PullSecret, Arc<SecretError>>>,
    accounts: HashMap<(String, String), Vec<String>>,
    remembered: Option<Remembered>,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader with empty caches.
    pub fn new(kube: kube::Client) -> Self {
        Self {
            kube,
            secrets: HashMap::new(),
            accounts: HashMap::new(),
            remembered: None,
        }
    }

    /// The same reader consulting and filling `remembered` (the controller's).
    pub fn remembering(mut self, remembered: Option<Remembered>) -> Self {
        self.remembered = remembered;
        self
    }

    /// The pull secrets of `w`: its template's `imagePullSecrets`, else its
    /// ServiceAccount's.
    pub async fn for_workload(&mut self, w: &ReadWorkload) -> WorkloadSecrets {
        let namespace = &w.workload.namespace;
        let names = if w.pull_secrets.is_empty() {
            self.account_secrets(namespace, &w.service_account).await
        } else {
            w.pull_secrets.clone()
        };
        let mut out = WorkloadSecrets::default();
        let mut seen = Vec::new();
        for name in names {
            if seen.contains(&name) {
                continue;
            }
            match self.secret(namespace, &name).await {
                Ok(s) => out.secrets.push(s),
                Err(e) => out.warnings.push(e.to_string()),
            }
            seen.push(name);
        }
        out
    }

    /// Reads, `concurrency` at a time, the ServiceAccounts of `workloads` (those
    /// without `imagePullSecrets` of their own) not read yet, so that
    /// [`Reader::for_workload`] finds them without a request each in turn.
    pub async fn prefetch_accounts<'w>(
        &mut self,
        workloads: impl IntoIterator<Item = &'w ReadWorkload>,
        concurrency: usize,
    ) {
        let mut wanted: BTreeSet<AccountKey> = BTreeSet::new();
        for w in workloads {
            if !w.pull_secrets.is_empty() {
                continue;
            }
            let key = (w.workload.namespace.clone(), w.service_account.clone());
            if !wanted.contains(&key) && self.cached_account(&key).is_none() {
                wanted.insert(key);
            }
        }
        let kube = &self.kube;
        let read: Vec<(AccountKey, Option<Vec<String>>)> = futures::stream::iter(wanted)
            .map(|key| async move {
                let names = read_account(kube, &key.0, &key.1).await;
                (key, names)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for (key, names) in read {
            self.found_account(key, names);
        }
    }

    /// A ServiceAccount's pull-secret names already known (this run's, or
    /// remembered).
    fn cached_account(&mut self, key: &(String, String)) -> Option<Vec<String>> {
        if let Some(names) = self.accounts.get(key) {
            return Some(names.clone());
        }
        let names = self
            .remembered
            .as_ref()
            .and_then(|r| recall(&r.accounts, key))?;
        self.accounts.insert(key.clone(), names.clone());
        Some(names)
    }

    fn found_account(&mut self, key: (String, String), names: Option<Vec<String>>) -> Vec<String> {
        let names = match names {
            Some(names) => {
                if let Some(r) = &self.remembered {
                    keep(&r.accounts, key.clone(), names.clone());
                }
                names
            }
            None => Vec::new(),
        };
        self.accounts.insert(key, names.clone());
        names
    }

    async fn account_secrets(&mut self, namespace: &str, account: &str) -> Vec<String> {
        let key = (namespace.to_owned(), account.to_owned());
        if let Some(names) = self.cached_account(&key) {
            return names;
        }
        let names = read_account(&self.kube, namespace, account).await;
        self.found_account(key, names)
    }

    /// One pull secret, read once per reader (an Argo CD Application's
    /// `pullsecret:<namespace>/<name>`).
    pub async fn secret(
        &mut self,
        namespace: &str,
        name: &str,
    ) -> Result<PullSecret, Arc<SecretError>> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(hit) = self.secrets.get(&key) {
            return hit.clone();
        }
        if let Some(hit) = self
            .remembered
            .as_ref()
            .and_then(|r| recall(&r.secrets, &key))
        {
            self.secrets.insert(key, Ok(hit.clone()));
            return Ok(hit);
        }
        let result = read_secret(&self.kube, namespace, name)
            .await
            .map_err(Arc::new);
        if let (Ok(found), Some(r)) = (&result, &self.remembered) {
            keep(&r.secrets, key.clone(), found.clone());
        }
        if let Err(e) = &result {
            tracing::warn!(
                namespace, secret = name, error = %crate::errors::error_chain(e.as_ref()),
                "pull secret not used"
            );
        }
        self.secrets.insert(key, result.clone());
        result
    }
}

/// A ServiceAccount by namespace and name.
type AccountKey = (String, String);

/// A ServiceAccount's pull-secret names (`None` when it cannot be read: logged,
/// and the workload goes on without them).
async fn read_account(kube: &kube::Client, namespace: &str, account: &str) -> Option<Vec<String>> {
    let api: Api<ServiceAccount> = Api::namespaced(kube.clone(), namespace);
    match api.get(account).await {
        Ok(sa) => Some(
            sa.image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .filter(|n| !n.is_empty())
                .collect(),
        ),
        Err(e) => {
            tracing::debug!(
                namespace, service_account = account, error = %crate::errors::error_chain(&e),
                "cannot read the ServiceAccount for its imagePullSecrets; going on without them"
            );
            None
        }
    }
}

async fn read_secret(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<PullSecret, SecretError> {
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let ids = || (namespace.to_owned(), name.to_owned());
    let secret = api.get(name).await.map_err(|source| {
        let (namespace, name) = ids();
        match &source {
            kube::Error::Api(s) if s.code == 404 => SecretError::Missing { namespace, name },
            kube::Error::Api(s) if s.code == 403 => SecretError::Forbidden { namespace, name },
            _ => SecretError::Read {
                namespace,
                name,
                source,
            },
        }
    })?;
    let malformed = |reason: String| {
        let (namespace, name) = ids();
        SecretError::Malformed {
            namespace,
            name,
            reason,
        }
    };
    let secret_type = secret.type_.unwrap_or_default();
    let key = match secret_type.as_str() {
        DOCKER_CONFIG_JSON => ".dockerconfigjson",
        DOCKERCFG => ".dockercfg",
        _ => "",
    };
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        });
    let data = match data {
        Some(data) => data,
        None if key.is_empty() => Vec::new(),
        None => return Err(malformed(format!("no {key} in its data"))),
    };
    let json = docker_config(&secret_type, &data).map_err(malformed)?;
    Ok(PullSecret {
        name: format!("{namespace}/{name}"),
        json,
    })
}

/// The distinct sets of pull secrets of a run, by the secrets' names in order. A
/// workload with no usable secret is in the empty set (the plain credentials).
#[derive(Debug, Default)]
pub struct SecretSets {
    sets: Vec<Vec<PullSecret>>,
    index: HashMap<Vec<String>, usize>,
}

impl SecretSets {
    /// The index of the set `secrets` (added if new).
    pub fn insert(&mut self, secrets: Vec<PullSecret>) -> usize {
        let key: Vec<String> = secrets.iter().map(|s| s.name.clone()).collect();
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        self.sets.push(secrets);
        self.index.insert(key, self.sets.len() - 1);
        self.sets.len() - 1
    }

    /// How many distinct sets.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The sets, by index.
    pub fn iter(&self) -> impl Iterator<Item = &[PullSecret]> {
        self.sets.iter().map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "hunter2-never-printed";

    #[test]
    fn dockercfg_is_wrapped_in_auths_and_dockerconfigjson_keeps_only_auths() {
        let legacy = json!({"registry.example": {"auth": "dTpw", "email": "a@b"}});
        let wrapped = docker_config(DOCKERCFG, legacy.to_string().as_bytes()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(wrapped.expose()).unwrap(),
            json!({"auths": legacy})
        );
        let modern = json!({
            "auths": {"ghcr.io": {"username": "u", "password": "p"}},
            "credsStore": "evil",
            "credHelpers": {"ghcr.io": "evil"}
        });
        let kept = docker_config(DOCKER_CONFIG_JSON, modern.to_string().as_bytes()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(kept.expose()).unwrap(),
            json!({"auths": {"ghcr.io": {"username": "u", "password": "p"}}}),
            "a secret never names a credential helper for freshet to run"
        );
    }

    #[test]
    fn malformed_pull_secrets_say_why_without_quoting_the_data() {
        let cases: [(&str, String, &str); 5] = [
            (
                "Opaque",
                format!("{{\"p\": \"{PASSWORD}\"}}"),
                "type \"Opaque\"",
            ),
            (
                DOCKER_CONFIG_JSON,
                format!("{{\"auths\": {{\"h\": {{\"password\": \"{PASSWORD}"),
                "is not JSON",
            ),
            (
                DOCKER_CONFIG_JSON,
                format!("{{\"password\": \"{PASSWORD}\"}}"),
                "no \"auths\" object",
            ),
            (DOCKERCFG, format!("[\"{PASSWORD}\"]"), "not a JSON object"),
            (DOCKERCFG, format!("\"{PASSWORD}\""), "not a JSON object"),
        ];
        for (secret_type, data, want) in cases {
            let reason = docker_config(secret_type, data.as_bytes()).unwrap_err();
            assert!(reason.contains(want), "{secret_type}: {reason}");
            assert!(!reason.contains(PASSWORD), "{reason}");
            let error = SecretError::Malformed {
                namespace: "team".into(),
                name: "regcred".into(),
                reason,
            };
            let text = error.to_string();
            assert!(text.contains("team/regcred"), "{text}");
            assert!(!text.contains(PASSWORD), "{text}");
        }
    }

    #[test]
    fn pull_secret_debug_is_redacted() {
        let s = PullSecret {
            name: "team/regcred".into(),
            json: Redacted::new(format!(
                "{{\"auths\": {{\"h\": {{\"password\": \"{PASSWORD}\"}}}}}}"
            )),
        };
        let debug = format!("{s:?}");
        assert!(
            debug.contains("team/regcred") && !debug.contains(PASSWORD),
            "{debug}"
        );
    }

    fn secret(name: &str) -> PullSecret {
        PullSecret {
            name: name.into(),
            json: Redacted::new("{\"auths\":{}}"),
        }
    }

    #[test]
    fn workloads_group_by_their_list_of_secrets() {
        let mut sets = SecretSets::default();
        let plain = sets.insert(Vec::new());
        let a = sets.insert(vec![secret("a/regcred")]);
        let b = sets.insert(vec![secret("b/regcred")]);
        let a_and_mirror = sets.insert(vec![secret("a/regcred"), secret("a/mirror")]);
        assert_eq!(sets.insert(vec![secret("a/regcred")]), a);
        assert_eq!(sets.insert(Vec::new()), plain);
        assert_eq!(
            sets.insert(vec![secret("a/regcred"), secret("a/mirror")]),
            a_and_mirror
        );
        assert_eq!(sets.len(), 4);
        assert_ne!(
            a, b,
            "the same secret name in another namespace is another set"
        );
        let names: Vec<Vec<&str>> = sets
            .iter()
            .map(|s| s.iter().map(|p| p.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec![],
                vec!["a/regcred"],
                vec!["b/regcred"],
                vec!["a/regcred", "a/mirror"]
            ]
        );
    }
}
