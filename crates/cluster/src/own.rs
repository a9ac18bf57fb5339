//! Finding freshet's own workload, so a run never restarts the thing running it.
//!
//! Owns the walk from the pod (`POD_NAMESPACE`, `POD_NAME`, passed in by the caller)
//! up its controller owners: Pod → ReplicaSet → Deployment, Pod → Job → CronJob,
//! Pod → StatefulSet or DaemonSet. Needs `get` on pods, replicasets and jobs in
//! freshet's own namespace; when that is refused the caller falls back to the
//! configured name. Must not read the environment itself.

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};

use crate::gather::WorkloadId;

/// Why the owner walk failed.
#[derive(Debug, thiserror::Error)]
pub enum OwnError {
    /// Reading an object on the way failed.
    #[error("reading {kind} {namespace}/{name} failed")]
    Get {
        /// The kind.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// The top controller owner of pod `namespace/pod`, or the pod itself when it has
/// no controller among the known kinds.
pub async fn discover(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
) -> Result<WorkloadId, OwnError> {
    let mut kind = ("", "v1", "Pod");
    let mut name = pod.to_owned();
    loop {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(kind.0, kind.1, kind.2));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        let object = api.get(&name).await.map_err(|source| OwnError::Get {
            kind: kind.2.to_owned(),
            namespace: namespace.to_owned(),
            name: name.clone(),
            source,
        })?;
        let owner = object
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true));
        let next = owner.and_then(|o| {
            let k = match (o.api_version.as_str(), o.kind.as_str()) {
                ("apps/v1", "ReplicaSet") => ("apps", "v1", "ReplicaSet"),
                ("apps/v1", "Deployment") => ("apps", "v1", "Deployment"),
                ("apps/v1", "StatefulSet") => ("apps", "v1", "StatefulSet"),
                ("apps/v1", "DaemonSet") => ("apps", "v1", "DaemonSet"),
                ("batch/v1", "Job") => ("batch", "v1", "Job"),
                ("batch/v1", "CronJob") => ("batch", "v1", "CronJob"),
                _ => return None,
            };
            Some((k, o.name))
        });
        match next {
            Some((k, n)) => {
                kind = k;
                name = n;
            }
            None => {
                return Ok(WorkloadId {
                    namespace: namespace.to_owned(),
                    name,
                });
            }
        }
    }
}
