//! The pacing state in the cluster: a ConfigMap freshet owns in its own namespace
//! (`freshet-pacing`, key `state`), so the budget survives one-shot runs and leader
//! changes.
//!
//! Owns reading and writing that object. Every write carries the
//! `resourceVersion` it read (a create fails if another run created it first), so
//! two runs or replicas never spend one slot: the loser gets
//! [`BudgetError::Conflict`] and decides again on the fresh state. Must not decide
//! who rolls: that is `freshet_core::safety::pacing::pace`, called by
//! [`super::gate`].

use std::collections::BTreeMap;

use freshet_core::safety::PacingState;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

/// The ConfigMap's name.
pub const NAME: &str = "freshet-pacing";
/// Its data key.
pub const KEY: &str = "state";

/// Why the pacing state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// Another run wrote the state since it was read: read it and decide again.
    #[error("the pacing state {namespace}/{NAME} changed since it was read")]
    Conflict {
        /// The namespace.
        namespace: String,
    },
    /// The API refused or failed the read or write.
    #[error("reading or writing the pacing state {namespace}/{NAME} failed")]
    Api {
        /// The namespace.
        namespace: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The stored state does not parse.
    #[error(transparent)]
    State(#[from] freshet_core::safety::pacing::PacingError),
}

impl BudgetError {
    /// Whether reading again and deciding again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// The state as read: its value and the `resourceVersion` (`None`: no object yet).
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The state.
    pub state: PacingState,
    /// The object's `resourceVersion`.
    pub resource_version: Option<String>,
}

/// Reads and writes the pacing ConfigMap in one namespace.
#[derive(Clone)]
pub struct BudgetStore {
    api: Api<ConfigMap>,
    namespace: String,
}

impl std::fmt::Debug for BudgetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl BudgetStore {
    /// The store in `namespace` (freshet's own).
    pub fn new(kube: &kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(kube.clone(), namespace),
            namespace: namespace.to_owned(),
        }
    }

    fn api_error(&self, source: kube::Error) -> BudgetError {
        match source {
            kube::Error::Api(s) if s.code == 409 => BudgetError::Conflict {
                namespace: self.namespace.clone(),
            },
            source => BudgetError::Api {
                namespace: self.namespace.clone(),
                source,
            },
        }
    }

    /// Reads the state (empty when the object does not exist yet).
    pub async fn read(&self) -> Result<Stored, BudgetError> {
        match self.api.get_opt(NAME).await {
            Ok(None) => Ok(Stored::default()),
            Ok(Some(cm)) => {
                let text = cm
                    .data
                    .as_ref()
                    .and_then(|d| d.get(KEY))
                    .map_or("", String::as_str);
                Ok(Stored {
                    state: PacingState::parse(text)?,
                    resource_version: cm.metadata.resource_version,
                })
            }
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Writes `state` if the object is still at `read`'s `resourceVersion` (or
    /// still absent).
    pub async fn write(&self, read: &Stored, state: &PacingState) -> Result<(), BudgetError> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(NAME.into()),
                namespace: Some(self.namespace.clone()),
                resource_version: read.resource_version.clone(),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "freshet".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(KEY.to_owned(), state.render())])),
            ..ConfigMap::default()
        };
        let params = PostParams {
            field_manager: Some(crate::writer::FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let result = match &read.resource_version {
            None => self.api.create(&params, &cm).await,
            Some(_) => self.api.replace(NAME, &params, &cm).await,
        };
        result.map(|_| ()).map_err(|e| self.api_error(e))
    }
}
