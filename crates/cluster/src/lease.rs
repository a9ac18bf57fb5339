//! Leadership: whether this replica may run passes, as it changes.
//!
//! Owns the leader election on a `coordination.k8s.io` Lease (through
//! `kube-lease-manager`): creating the manager, watching who leads, and releasing
//! the lease on a clean stop so another replica takes over at once. Without leader
//! election ([`Leadership::always`]) this replica leads for as long as it runs.
//! Must not run passes nor decide anything about workloads: the controller asks
//! [`Leadership::receiver`] whether it leads.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lease could not be created or read (RBAC, a missing namespace).
    #[error(
        "cannot use lease {namespace}/{name} for leader election; check that the namespace exists and that freshet may get, create and patch leases there (deploy/overlays/controller grants it)"
    )]
    Unusable {
        /// The lease's namespace.
        namespace: String,
        /// The lease's name.
        name: String,
        /// The lease manager's error.
        #[source]
        source: LeaseManagerError,
    },
}

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a lease lasts unless renewed.
    pub duration: Duration,
    /// How long before expiry the holder renews it.
    pub grace: Duration,
}

type LeaseTask = JoinHandle<Result<LeaseManager, LeaseManagerError>>;

/// Whether this replica leads, and the task that keeps (and finally releases) the
/// lease.
#[derive(Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: Option<LeaseTask>,
    /// Without election: the sender kept alive, so the channel never closes (a
    /// closed channel means the election task ended).
    _always: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// This replica always leads (no election: run one replica only).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            leading: rx,
            task: None,
            _always: Some(tx),
        }
    }

    /// Leadership that follows `leading` (a test's switch, or another elector).
    pub fn following(leading: watch::Receiver<bool>) -> Self {
        Self {
            leading,
            task: None,
            _always: None,
        }
    }

    /// Starts the election on the lease `options` names.
    pub async fn elect(kube: kube::Client, options: &LeaseOptions) -> Result<Self, LeaseError> {
        let manager = LeaseManagerBuilder::new(kube, &options.name)
            .with_namespace(&options.namespace)
            .with_identity(&options.identity)
            .with_duration(options.duration.as_secs().max(2))
            .with_grace(options.grace.as_secs().max(1))
            .with_field_manager(format!("freshet-lease-{}", options.identity))
            .build()
            .await
            .map_err(|source| LeaseError::Unusable {
                namespace: options.namespace.clone(),
                name: options.name.clone(),
                source,
            })?;
        tracing::info!(
            lease = %format!("{}/{}", options.namespace, options.name),
            identity = %options.identity, "waiting for the leader lease"
        );
        let (leading, task) = manager.watch().await;
        Ok(Self {
            leading,
            task: Some(task),
            _always: None,
        })
    }

    /// Whether this replica leads, as it changes (an error from `changed()` means
    /// the election ended).
    pub fn receiver(&mut self) -> &mut watch::Receiver<bool> {
        &mut self.leading
    }

    /// Gives up the lease (closing the channel makes the election task release it)
    /// and waits for the task to end.
    pub async fn release(self) {
        let Self { leading, task, .. } = self;
        drop(leading);
        if let Some(task) = task {
            match task.await {
                Ok(Ok(_)) => tracing::info!("released the leader lease"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "releasing the leader lease failed; it expires on its own")
                }
                Err(e) => tracing::warn!(error = %e, "the leader election task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: without leader election the channel's sender was dropped at
    /// once, so the controller saw "the election task ended" and stopped.
    #[tokio::test(start_paused = true)]
    async fn always_leads_and_never_ends() {
        let mut l = Leadership::always();
        assert!(*l.receiver().borrow_and_update());
        let ended = tokio::time::timeout(Duration::from_secs(3600), l.receiver().changed()).await;
        assert!(ended.is_err(), "no change, no end: {ended:?}");
        l.release().await;
    }
}
