//! What the simulated kubelets remember between passes: the node image caches,
//! the pulls in flight, pull back-off and crash-loop clocks, pod IPs handed out,
//! which node each pod is bound to (the scheduler's load), and the log of
//! completed pulls.
//!
//! Owns this memory and forgetting a deleted pod. It must not read or write the
//! store.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::images::{ImagePullError, PulledImage};
use crate::util::str_at;

/// One image pull a simulated kubelet completed: what a node actually fetched.
///
/// Not visible through the API (a real node shows only `status.images`, which names
/// the index digest); tests read it with [`crate::TestCluster::pulls`] to check the
/// platform-specific manifest a node ended up running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRecord {
    /// The node's name.
    pub node: String,
    /// The pod's `image`, as written.
    pub image: String,
    /// What was pulled (the tag's digest and the node platform's manifest digest).
    pub pulled: PulledImage,
}

/// The shared, append-only log of completed pulls.
#[derive(Debug, Clone, Default)]
pub struct PullLog(std::sync::Arc<std::sync::Mutex<Vec<PullRecord>>>);

impl PullLog {
    pub(crate) fn push(&self, record: PullRecord) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }

    /// A copy of the log.
    pub fn snapshot(&self) -> Vec<PullRecord> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where the pull of one image for one pod stands.
pub(crate) enum Pull {
    /// The resolver is working on it.
    Running(tokio::task::JoinHandle<Result<PulledImage, ImagePullError>>),
    /// Finished; kept until the pod has all its images.
    Done(Result<PulledImage, ImagePullError>),
}

/// The kubelets' memory.
pub(crate) struct KubeletState {
    /// (node, image as written) -> what was pulled.
    pub(crate) image_cache: HashMap<(String, String), PulledImage>,
    /// Every completed pull, in order, for [`crate::TestCluster::pulls`].
    pub(crate) pull_log: PullLog,
    /// (pod uid, image as written) -> a pull in flight or its result.
    pub(crate) pulls: HashMap<(String, String), Pull>,
    /// Pod uid -> when to retry a failed pull, and the current backoff.
    pub(crate) pull_backoff: HashMap<String, (Instant, Duration)>,
    /// Pod uid -> when the crashing container last restarted.
    pub(crate) crash_clock: HashMap<String, Instant>,
    pub(crate) next_ip: u32,
    /// Pod uid -> the node it is bound to.
    pub(crate) pod_nodes: HashMap<String, String>,
}

impl std::fmt::Debug for KubeletState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletState")
            .field("cached_images", &self.image_cache.len())
            .field("pulls", &self.pulls.len())
            .field("pods", &self.pod_nodes.len())
            .finish_non_exhaustive()
    }
}

impl Default for KubeletState {
    fn default() -> Self {
        Self {
            image_cache: HashMap::new(),
            pull_log: PullLog::default(),
            pulls: HashMap::new(),
            pull_backoff: HashMap::new(),
            crash_clock: HashMap::new(),
            // Pod IPs start at .10 of the node's range.
            next_ip: 10,
            pod_nodes: HashMap::new(),
        }
    }
}

impl KubeletState {
    /// How many pods are bound to `node`.
    pub(crate) fn load(&self, node: &str) -> usize {
        self.pod_nodes.values().filter(|n| *n == node).count()
    }

    /// Follows a pod's change: remembers its node, or forgets it when deleted.
    pub(crate) fn track_pod(&mut self, pod: &Value, deleted: bool) {
        let uid = str_at(pod, "metadata.uid");
        if deleted {
            self.pod_nodes.remove(uid);
            self.pulls.retain(|(u, _), _| u != uid);
            self.pull_backoff.remove(uid);
            self.crash_clock.remove(uid);
            return;
        }
        let node = str_at(pod, "spec.nodeName");
        if !node.is_empty() {
            self.pod_nodes.insert(uid.to_string(), node.to_string());
        }
    }
}
