//! The controller loop, driven by changes: every tick it turns the store's new
//! changes into dirty objects (an object and the owners it names), adds the
//! timers that are due, and reconciles only those objects, controller by
//! controller in the order a controller manager's work would cascade
//! (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, then the kubelet).
//! CronJobs, which wait on the clock, are looked at every tick.
//!
//! Owns the loop and the mapping from a change to the keys it makes dirty. It
//! must not reconcile anything itself. A controller whose write fails is not
//! retried until its object changes again, as a level-triggered controller
//! would on its next event; if the loop misses changes (it fell too far behind
//! the store's broadcast), it queues every object once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::accounts::{ensure_default_service_account, fill_token_secret};
use super::context::Controllers;
use super::{deployment, kubelet, replicaset, workloads};
use crate::resources::ResourceDef;
use crate::store::{Change, ChangeKind, Key};
use crate::util::str_at;

impl Controllers {
    /// One pass: the changes since the last pass, then the dirty objects.
    pub async fn tick(&mut self) {
        self.absorb_changes();
        self.queue.promote_due(Instant::now());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        workloads::reconcile_cronjobs(self, now);
        for (_, ns) in self.queue.take("namespaces") {
            ensure_default_service_account(self, &ns);
        }
        for (ns, name) in self.queue.take("secrets") {
            fill_token_secret(self, &ns, &name);
        }
        self.each("deployments.apps", deployment::reconcile);
        self.each("replicasets.apps", replicaset::reconcile);
        self.each("statefulsets.apps", workloads::reconcile_statefulset);
        self.each("daemonsets.apps", workloads::reconcile_daemonset);
        self.each("jobs.batch", workloads::reconcile_job);
        self.each("pods", kubelet::reconcile_pod);
    }

    /// Reconciles the dirty objects of one resource that still exist, after
    /// taking in the changes the previous controllers made.
    fn each(&mut self, storage: &'static str, reconcile: fn(&mut Controllers, &Value)) {
        self.absorb_changes();
        for (ns, name) in self.queue.take(storage) {
            if let Some(obj) = self.store.get(storage, &ns, &name) {
                reconcile(self, &obj);
            }
        }
    }

    /// Turns every change received since the last call into dirty keys.
    fn absorb_changes(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(change) => self.absorb(&change),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "controllers missed changes: queueing everything");
                    self.queue_everything();
                }
                Err(_) => return,
            }
        }
    }

    fn absorb(&mut self, change: &Arc<Change>) {
        let object: &Value = &change.object;
        let key = |storage: &'static str| -> Key {
            (
                storage,
                str_at(object, "metadata.namespace").to_string(),
                str_at(object, "metadata.name").to_string(),
            )
        };
        match change.storage {
            "namespaces" => self.queue.add(("namespaces", String::new(), key("").2)),
            "serviceaccounts" if change.kind == ChangeKind::Deleted => {
                let ns = str_at(object, "metadata.namespace").to_string();
                self.queue.add(("namespaces", String::new(), ns));
            }
            s @ ("secrets" | "deployments.apps" | "replicasets.apps" | "statefulsets.apps"
            | "daemonsets.apps" | "jobs.batch" | "pods") => self.queue.add(key(s)),
            _ => {}
        }
        if change.storage == "pods" {
            self.kubelet
                .track_pod(object, change.kind == ChangeKind::Deleted);
        }
        if change.kind == ChangeKind::Deleted && change.storage == "deployments.apps" {
            self.progress.remove(str_at(object, "metadata.uid"));
        }
        // An object's owners reconcile when it changes (a pod's ReplicaSet, a
        // ReplicaSet's Deployment, a Job's CronJob is looked at every tick anyway).
        let ns = str_at(object, "metadata.namespace");
        let owners = [Some(object), change.prev.as_deref()];
        for owner in owners
            .into_iter()
            .flatten()
            .filter_map(|o| o.pointer("/metadata/ownerReferences"))
            .filter_map(Value::as_array)
            .flatten()
        {
            let storage = ResourceDef::by_kind(str_at(owner, "apiVersion"), str_at(owner, "kind"))
                .map(|d| d.storage);
            if let Some(
                storage @ ("deployments.apps" | "replicasets.apps" | "statefulsets.apps"
                | "daemonsets.apps" | "jobs.batch"),
            ) = storage
            {
                self.queue
                    .add((storage, ns.to_string(), str_at(owner, "name").to_string()));
            }
        }
    }

    /// Runs until `shutdown` flips, one pass per `tick`.
    pub async fn run(mut self, tick: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = interval.tick() => self.tick().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::controllers::context::NodeSpec;
    use crate::images::FakeResolver;
    use crate::resources::ResourceDef;
    use crate::store::Store;

    /// A store with namespace `default` holding Deployment `web` (`replicas`
    /// replicas of `registry.test/web:1`), and controllers over it on one amd64 node.
    fn web_deployment(replicas: u64) -> (Arc<Store>, Controllers) {
        let store = Arc::new(Store::new(1000));
        let ns = ResourceDef::find("", "v1", "namespaces").unwrap();
        store
            .create(ns, "", json!({"metadata": {"name": "default"}}))
            .unwrap();
        let deploy = ResourceDef::find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.test/web:1"}]}}}});
        crate::admission::admit(deploy, &mut d, true).unwrap();
        store.create(deploy, "default", d).unwrap();
        let c = Controllers::new(
            store.clone(),
            vec![NodeSpec::linux("n1", "amd64")],
            Arc::new(FakeResolver::default()),
            Vec::new(),
        );
        (store, c)
    }

    fn running_pods(store: &Store) -> usize {
        store
            .list("pods", Some("default"))
            .0
            .iter()
            .filter(|p| str_at(p, "status.phase") == "Running")
            .count()
    }

    /// Guards the change-driven loop: once every object has settled, a tick
    /// reconciles nothing and writes nothing (no re-listing, no busy loop).
    #[tokio::test]
    async fn settled_objects_make_ticks_write_nothing() {
        let (store, mut c) = web_deployment(2);
        for _ in 0..200 {
            c.tick().await;
            // Lets the pulls, which run in tasks of their own, finish.
            tokio::task::yield_now().await;
            if running_pods(&store) == 2 && c.queue.len().0 == 0 {
                break;
            }
        }
        assert_eq!(running_pods(&store), 2);
        // One more pass takes in the last changes; after it nothing moves.
        c.tick().await;
        let rv = store.current_rv();
        for _ in 0..20 {
            c.tick().await;
            tokio::task::yield_now().await;
        }
        assert_eq!(store.current_rv(), rv, "settled objects were written again");
        // Timers may still wait (a finished rollout's old progress deadline),
        // but nothing is dirty.
        assert_eq!(c.queue.len().0, 0);
    }

    /// Guards the pull-fail list: a pull of a listed image fails like a registry
    /// error, so the pod's container waits in `ErrImagePull`/`ImagePullBackOff`
    /// with no imageID, and the image is not cached on the node.
    #[tokio::test]
    async fn an_image_on_the_pull_fail_list_waits_in_err_image_pull() {
        let (store, c) = web_deployment(1);
        let mut c = c.with_pull_failures(vec!["registry.test/web:1".into()]);
        let waiting = |store: &Store| -> Option<String> {
            store.list("pods", Some("default")).0.iter().find_map(|p| {
                let s = p.pointer("/status/containerStatuses/0")?;
                assert_eq!(str_at(s, "imageID"), "", "{s}");
                s.pointer("/state/waiting/reason")?
                    .as_str()
                    .map(str::to_owned)
            })
        };
        let mut seen = None;
        for _ in 0..200 {
            c.tick().await;
            tokio::task::yield_now().await;
            seen = waiting(&store).filter(|r| r == "ErrImagePull" || r == "ImagePullBackOff");
            if seen.is_some() {
                break;
            }
        }
        assert!(seen.is_some(), "the pod never waited on its pull");
        assert_eq!(running_pods(&store), 0);
        assert!(
            c.kubelet.image_cache.is_empty(),
            "a failed pull is not cached"
        );
    }
}
