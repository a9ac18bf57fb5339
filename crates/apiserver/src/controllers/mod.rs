//! Simulated controllers and kubelet: a level-triggered loop that, every tick,
//! reconciles Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and
//! Pods against the store.
//!
//! Owns the controller state kept in memory (per-node image caches, rollout
//! progress clocks, pull backoff). It writes only through the store, never
//! through HTTP, and must not bypass the store's versioning. Controllers have
//! no error type: a write that fails is logged and retried on the next tick,
//! as level-triggered controllers do.

pub mod cron;
pub mod deployment;
pub mod kubelet;
pub mod replicaset;
pub mod workloads;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::images::ImageResolver;
use crate::resources::ResourceDef;
use crate::store::{Store, UpdateMode};
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

/// Looks up a resource definition by group and plural (panics only on a typo in this crate).
pub(crate) fn def(group: &str, plural: &str) -> &'static ResourceDef {
    crate::resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .expect("resource is in the table")
}

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
    pub pulled: crate::images::PulledImage,
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

/// The controller manager and kubelet state.
pub struct Controllers {
    pub(crate) store: Arc<Store>,
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) resolver: Arc<dyn ImageResolver>,
    pub(crate) crash_images: Vec<String>,
    /// (node, image as written) -> what was pulled.
    pub(crate) image_cache: HashMap<(String, String), crate::images::PulledImage>,
    /// Every completed pull, in order, for [`crate::TestCluster::pulls`].
    pub(crate) pull_log: PullLog,
    /// (pod uid, image as written) -> a pull in flight or its result.
    pub(crate) pulls: HashMap<(String, String), kubelet::Pull>,
    /// Deployment uid -> (progress signature, when it last changed).
    pub(crate) progress: HashMap<String, (String, Instant)>,
    /// Pod uid -> when to retry a failed pull, and the current backoff.
    pub(crate) pull_backoff: HashMap<String, (Instant, Duration)>,
    /// Pod uid -> when the crashing container last restarted.
    pub(crate) crash_clock: HashMap<String, Instant>,
    pub(crate) next_ip: u32,
    /// (object uid, reason, message) -> the Event recording it, so repeats
    /// bump its `count` as the real event recorder does.
    events: std::sync::Mutex<HashMap<EventKey, (String, String)>>,
}

impl std::fmt::Debug for Controllers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controllers")
            .field("nodes", &self.nodes)
            .field("crash_images", &self.crash_images)
            .finish_non_exhaustive()
    }
}

impl Controllers {
    /// New controllers over `store`.
    pub fn new(
        store: Arc<Store>,
        nodes: Vec<NodeSpec>,
        resolver: Arc<dyn ImageResolver>,
        crash_images: Vec<String>,
    ) -> Self {
        Self {
            store,
            nodes,
            resolver,
            crash_images,
            image_cache: HashMap::new(),
            pull_log: PullLog::default(),
            pulls: HashMap::new(),
            progress: HashMap::new(),
            pull_backoff: HashMap::new(),
            crash_clock: HashMap::new(),
            next_ip: 10,
            events: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// One pass of every controller.
    pub async fn tick(&mut self) {
        self.ensure_default_service_accounts();
        self.fill_token_secrets();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        workloads::reconcile_cronjobs(self, now);
        deployment::reconcile_all(self);
        replicaset::reconcile_all(self);
        workloads::reconcile_statefulsets(self);
        workloads::reconcile_daemonsets(self);
        workloads::reconcile_jobs(self);
        kubelet::run(self);
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

    fn ensure_default_service_accounts(&mut self) {
        let sa = def("", "serviceaccounts");
        for ns in self.store.list("namespaces", None).0 {
            let name = str_at(&ns, "metadata.name");
            if self.store.get(sa.storage, name, "default").is_none() {
                let _ = self
                    .store
                    .create(sa, name, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}));
            }
        }
    }

    /// The token controller: fills `data.token` and `data.namespace` of
    /// ServiceAccount token Secrets.
    fn fill_token_secrets(&mut self) {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        for s in self.store.list("secrets", None).0 {
            if str_at(&s, "type") != "kubernetes.io/service-account-token"
                || s.pointer("/data/token").is_some()
            {
                continue;
            }
            let (ns, name) = crate::store::ns_name(&s);
            let token = random_hex(24);
            self.store
                .modify(def("", "secrets"), &ns, &name, UpdateMode::Internal, |o| {
                    let data = crate::util::ensure_obj(o, "data");
                    data.insert("token".into(), json!(b64(&token)));
                    data.insert("namespace".into(), json!(b64(&ns)));
                });
        }
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

/// Whether `owner_uid` is the controller of `obj`.
pub(crate) fn owned_by(obj: &Value, owner_uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| str_at(r, "uid") == owner_uid))
}

/// An owner reference to `owner` with `controller: true`.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether a pod's Ready condition is True.
pub(crate) fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| str_at(c, "type") == "Ready" && str_at(c, "status") == "True")
        })
}

/// Whether a pod has finished (Succeeded or Failed).
pub(crate) fn pod_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "status.phase"), "Succeeded" | "Failed")
}

/// Resolves an int-or-percent (`25%`, `1`) against `total`.
pub(crate) fn int_or_percent(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// Sets a condition in `status.conditions`, keeping timestamps when nothing changed.
/// Returns whether the condition changed.
pub(crate) fn set_condition(
    status: &mut Value,
    ctype: &str,
    cstatus: &str,
    reason: &str,
    message: &str,
    touch: bool,
) -> bool {
    let now = now_rfc3339();
    if !status.is_object() {
        *status = json!({});
    }
    let conds = status
        .as_object_mut()
        .expect("object")
        .entry("conditions")
        .or_insert(json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("array");
    if let Some(c) = list.iter_mut().find(|c| str_at(c, "type") == ctype) {
        let same = str_at(c, "status") == cstatus
            && str_at(c, "reason") == reason
            && str_at(c, "message") == message;
        if same && !touch {
            return false;
        }
        if str_at(c, "status") != cstatus {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!(cstatus);
        c["reason"] = json!(reason);
        c["message"] = json!(message);
        if c.get("lastUpdateTime").is_some() {
            c["lastUpdateTime"] = json!(now);
        }
        return !same;
    }
    list.push(json!({
        "type": ctype,
        "status": cstatus,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }));
    true
}
