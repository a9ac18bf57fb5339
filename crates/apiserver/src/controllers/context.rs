//! What every simulated controller works with: the store, the nodes, the image
//! resolver and crash list, the per-controller memory (the kubelet's pulls and
//! caches, the deployment controller's progress clocks), the work queue, and the
//! Event recorder.
//!
//! Owns this shared context and recording Events (a repeat bumps the `count` of
//! the Event recording it, as the real recorder does). It must not reconcile
//! anything itself, and it writes only through the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::kubelet::state::KubeletState;
use super::objects::def;
use super::queue::WorkQueue;
use crate::images::ImageResolver;
use crate::store::{Change, Store, UpdateMode};
use crate::util::{now_rfc3339, random_hex, str_at};

/// (object uid, reason, message): what makes two events the same event.
type EventKey = (String, String, String);

/// One simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name (`node-1`).
    pub name: String,
    /// `kubernetes.io/os` (`linux`).
    pub os: String,
    /// `kubernetes.io/arch` (`amd64`, `arm64`).
    pub arch: String,
    /// Platform variant (`v8`), passed to the image resolver.
    pub variant: Option<String>,
}

impl NodeSpec {
    /// A Linux node of the given architecture.
    pub fn linux(name: &str, arch: &str) -> Self {
        Self {
            name: name.into(),
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }
}

/// The controller manager and kubelet state.
pub struct Controllers {
    pub(crate) store: Arc<Store>,
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) resolver: Arc<dyn ImageResolver>,
    pub(crate) crash_images: Vec<String>,
    /// Images whose pulls fail (`ErrImagePull`), matched like the crash list.
    pub(crate) pull_fail_images: Vec<String>,
    /// The kubelet's pulls, caches and clocks.
    pub(crate) kubelet: KubeletState,
    /// Deployment uid -> (progress signature, when it last changed).
    pub(crate) progress: HashMap<String, (String, Instant)>,
    /// The objects to reconcile next, and when.
    pub(crate) queue: WorkQueue,
    /// Every change to the store, as it happens: what fills the queue.
    pub(crate) changes: broadcast::Receiver<Arc<Change>>,
    /// (object uid, reason, message) -> the Event recording it, so repeats
    /// bump its `count` as the real event recorder does.
    events: std::sync::Mutex<HashMap<EventKey, (String, String)>>,
}

impl std::fmt::Debug for Controllers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controllers")
            .field("nodes", &self.nodes)
            .field("crash_images", &self.crash_images)
            .field("pull_fail_images", &self.pull_fail_images)
            .finish_non_exhaustive()
    }
}

impl Controllers {
    /// New controllers over `store`; every object already stored is queued.
    pub fn new(
        store: Arc<Store>,
        nodes: Vec<NodeSpec>,
        resolver: Arc<dyn ImageResolver>,
        crash_images: Vec<String>,
    ) -> Self {
        let changes = store.subscribe();
        let mut c = Self {
            store,
            nodes,
            resolver,
            crash_images,
            pull_fail_images: Vec::new(),
            kubelet: KubeletState::default(),
            progress: HashMap::new(),
            queue: WorkQueue::default(),
            changes,
            events: std::sync::Mutex::new(HashMap::new()),
        };
        c.queue_everything();
        c
    }

    /// Makes every pull of the images on `list` fail (references as written,
    /// normalized, or digests, bare or as `repo@digest`).
    pub fn with_pull_failures(mut self, list: Vec<String>) -> Self {
        self.pull_fail_images = list;
        self
    }

    /// Queues every object the controllers look at (at start, and after missing
    /// changes).
    pub(crate) fn queue_everything(&mut self) {
        for storage in super::queue::WATCHED {
            for key in self.store.keys(storage) {
                self.queue.add(key);
            }
        }
    }

    /// The log of completed image pulls, shared with [`crate::TestCluster::pulls`].
    pub fn pull_log(&self) -> super::kubelet::state::PullLog {
        self.kubelet.pull_log.clone()
    }

    /// Records a core/v1 Event about `obj`.
    pub(crate) fn event(
        &self,
        obj: &Value,
        kind: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ns = match str_at(obj, "metadata.namespace") {
            "" => "default",
            ns => ns,
        };
        let now = now_rfc3339();
        let key = (
            str_at(obj, "metadata.uid").to_string(),
            reason.to_string(),
            message.to_string(),
        );
        let mut index = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((ens, ename)) = index.get(&key) {
            let bumped =
                self.store
                    .modify(def("", "events"), ens, ename, UpdateMode::Internal, |e| {
                        let count = crate::util::i64_at(e, "count", 1) + 1;
                        e["count"] = json!(count);
                        e["lastTimestamp"] = json!(now);
                    });
            if bumped.is_some() {
                return;
            }
        }
        let name = format!("{}.{}", str_at(obj, "metadata.name"), random_hex(8));
        index.insert(key, (ns.to_string(), name.clone()));
        let ev = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"]["namespace"],
                "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": "",
            "eventTime": null,
        });
        if let Err(e) = self.store.create(def("", "events"), ns, ev) {
            tracing::debug!(error = %e, "recording an event failed");
        }
    }
}
