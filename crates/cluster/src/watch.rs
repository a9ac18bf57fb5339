//! Watched stores: the controller's in-memory copies of the objects a pass reads,
//! kept current by kube-runtime watchers, so a steady pass sends no LIST.
//!
//! Owns [`Watched`], a generic store of slim values fed by one or more watchers
//! (initial paged LIST, then WATCH, re-listing only when the watch cannot resume,
//! with kube-runtime's backoff), each event converted to a slim value at once so
//! the full object is never kept; and [`WorkloadStore`], the store of the four
//! workload kinds in scope. A pass reads a snapshot once every watcher has
//! completed its first list ([`Watched::synced`], bounded by [`SYNC_TIMEOUT`]).
//! What freshet itself writes is kept at once ([`WorkloadStore::wrote`]: the patch's
//! answer supersedes the copy it was made against), so a pass soon after a write
//! does not plan from the copy before it and meet a 409.
//!
//! Extension point: pods and nodes get their own `Watched<Key, SlimPod>` /
//! `Watched<String, SlimNode>` the same way: a slim wire type implementing
//! `kube::Resource` (see [`crate::workloads::SlimWorkload`]), a conversion
//! function, and [`Watched::watch`] per API scope. Must not decide anything nor
//! write to the cluster.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use freshet_core::refresh::WorkloadKind;
use futures::StreamExt as _;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::workloads::{self, KINDS, ReadWorkload, SlimWorkload, WorkloadError, kind_name};

/// How long a pass waits for the stores' first lists before it fails (and is
/// retried on the next tick).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

struct Shared<K, V> {
    /// One map per watcher (a re-list replaces its watcher's map whole).
    items: RwLock<Vec<BTreeMap<K, V>>>,
    /// Per watcher, why its last list or watch failed (cleared by a list that
    /// completes).
    errors: RwLock<Vec<Option<String>>>,
    /// Watchers that have neither completed a first list nor failed one yet.
    unsynced: signal::Sender<usize>,
}

/// A store of slim values by key, fed by watchers; clones share it. The watcher
/// tasks stop when the last clone drops.
pub struct Watched<K, V> {
    shared: Arc<Shared<K, V>>,
    tasks: Arc<Tasks>,
}

impl<K, V> Clone for Watched<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            tasks: self.tasks.clone(),
        }
    }
}

impl<K, V> Debug for Watched<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field(
                "watchers",
                &self.tasks.0.lock().map(|t| t.len()).unwrap_or(0),
            )
            .field("unsynced", &*self.shared.unsynced.borrow())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tasks(std::sync::Mutex<Vec<JoinHandle<()>>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        if let Ok(tasks) = self.0.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

impl<K, V> Default for Watched<K, V> {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                items: RwLock::new(Vec::new()),
                errors: RwLock::new(Vec::new()),
                unsynced: signal::channel(0).0,
            }),
            tasks: Arc::default(),
        }
    }
}

impl<K, V> Watched<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts a watcher of `api` whose objects `key` names and `convert` slims (a
    /// `None` from `convert` is logged by it and skipped). A failed list or watch
    /// is described by `describe` (the client error, when there is one), kept for
    /// [`Watched::errors`], and retried with backoff; a failure `describe` maps to
    /// `None` only means "nothing here" (a kind the cluster does not serve) and is
    /// not kept.
    pub fn watch<W>(
        &self,
        api: Api<W>,
        config: watcher::Config,
        key: impl Fn(&W) -> Option<K> + Send + 'static,
        convert: impl Fn(W) -> Option<V> + Send + 'static,
        describe: impl Fn(Option<kube::Error>) -> Option<String> + Send + 'static,
    ) where
        W: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        self.shared.unsynced.send_modify(|n| *n += 1);
        let shared = self.shared.clone();
        let slot = {
            let mut items = shared.items.write().expect("store lock");
            items.push(BTreeMap::new());
            shared.errors.write().expect("store lock").push(None);
            items.len() - 1
        };
        let task = tokio::spawn(async move {
            let mut events = watcher::watcher(api, config).default_backoff().boxed();
            let mut fresh: Option<BTreeMap<K, V>> = None;
            let mut synced = false;
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %crate::errors::error_chain(&e), "watch failed; retrying with backoff");
                        let message = describe(client_error(e));
                        shared.errors.write().expect("store lock")[slot] = message;
                        if !synced {
                            // Settled: a pass reports the failure instead of waiting.
                            synced = true;
                            shared.unsynced.send_modify(|n| *n = n.saturating_sub(1));
                        }
                        continue;
                    }
                };
                match event {
                    Event::Init => fresh = Some(BTreeMap::new()),
                    Event::InitApply(o) => {
                        if let (Some(k), Some(map)) = (key(&o), fresh.as_mut())
                            && let Some(v) = convert(o)
                        {
                            map.insert(k, v);
                        }
                    }
                    Event::InitDone => {
                        let map = fresh.take().unwrap_or_default();
                        shared.items.write().expect("store lock")[slot] = map;
                        shared.errors.write().expect("store lock")[slot] = None;
                        if !synced {
                            synced = true;
                            shared.unsynced.send_modify(|n| *n = n.saturating_sub(1));
                        }
                    }
                    Event::Apply(o) => {
                        if let Some(k) = key(&o) {
                            match convert(o) {
                                Some(v) => {
                                    shared.items.write().expect("store lock")[slot].insert(k, v);
                                }
                                None => {
                                    shared.items.write().expect("store lock")[slot].remove(&k);
                                }
                            }
                        }
                    }
                    Event::Delete(o) => {
                        if let Some(k) = key(&o) {
                            shared.items.write().expect("store lock")[slot].remove(&k);
                        }
                    }
                }
            }
        });
        self.tasks.0.lock().expect("tasks lock").push(task);
    }

    /// Replaces the value under `key`, in the watcher that holds it, with `new`
    /// when `current` says the held value is the one `new` supersedes (a write's
    /// response, while the watch has not delivered it yet). Returns whether it did.
    pub fn supersede(&self, key: &K, current: impl Fn(&V) -> bool, new: V) -> bool {
        let mut items = self.shared.items.write().expect("store lock");
        for map in items.iter_mut() {
            if let Some(held) = map.get_mut(key) {
                if current(held) {
                    *held = new;
                    return true;
                }
                return false;
            }
        }
        false
    }

    /// Per watcher whose last list or watch failed (and no list completed since),
    /// the description of the failure, in the order the watchers were started.
    pub fn errors(&self) -> Vec<(usize, String)> {
        let errors = self.shared.errors.read().expect("store lock");
        errors
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.clone()?)))
            .collect()
    }

    /// Waits until every watcher has completed its first list or failed one.
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.unsynced.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// A copy of every value, watcher by watcher, each in key order.
    pub fn values(&self) -> Vec<V> {
        let items = self.shared.items.read().expect("store lock");
        let mut out = Vec::with_capacity(items.iter().map(BTreeMap::len).sum());
        for map in items.iter() {
            out.extend(map.values().cloned());
        }
        out
    }

    /// The values `keep` accepts (only those are copied).
    pub fn values_where(&self, keep: impl Fn(&V) -> bool) -> Vec<V> {
        let items = self.shared.items.read().expect("store lock");
        items
            .iter()
            .flat_map(BTreeMap::values)
            .filter(|v| keep(v))
            .cloned()
            .collect()
    }

    /// How many values.
    pub fn len(&self) -> usize {
        let items = self.shared.items.read().expect("store lock");
        items.iter().map(BTreeMap::len).sum()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The client error inside a watcher error, when there is one.
fn client_error(e: watcher::Error) -> Option<kube::Error> {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => Some(e),
        watcher::Error::WatchError(status) => Some(kube::Error::Api(status)),
        _ => None,
    }
}

/// The key of a workload in the store.
pub type WorkloadKey = (WorkloadKind, String, String);

/// The workloads in scope, watched: one watcher per kind (and per namespace when
/// the scope names namespaces), values in their pure [`ReadWorkload`] form.
#[derive(Debug, Clone, Default)]
pub struct WorkloadStore {
    /// Shared with the passes that read it (a pass copies a workload only when it
    /// plans it, not the whole store).
    store: Watched<WorkloadKey, Arc<ReadWorkload>>,
}

impl WorkloadStore {
    /// Starts watching the four kinds in `namespaces` (`None`: all) matching
    /// `selector`.
    pub fn start(
        client: &kube::Client,
        namespaces: Option<&[String]>,
        selector: Option<&str>,
    ) -> Self {
        let this = Self::default();
        let mut config = watcher::Config::default().page_size(workloads::PAGE_SIZE);
        if let Some(s) = selector {
            config = config.labels(s);
        }
        for kind in KINDS {
            let scopes: Vec<Option<&str>> = match namespaces {
                None => vec![None],
                Some(ns) => ns.iter().map(|n| Some(n.as_str())).collect(),
            };
            for ns in scopes {
                this.store.watch(
                    workloads::slim_api(client, kind, ns),
                    config.clone(),
                    move |o: &SlimWorkload| {
                        Some((
                            kind,
                            o.metadata.namespace.clone()?,
                            o.metadata.name.clone()?,
                        ))
                    },
                    move |o| match workloads::from_slim(kind, o) {
                        Ok(w) => Some(Arc::new(w)),
                        Err(e) => {
                            tracing::warn!(error = %e, "workload not kept");
                            None
                        }
                    },
                    {
                        let where_ = ns.map(|n| format!(" in namespace {n}")).unwrap_or_default();
                        move |e| {
                            Some(match e {
                                Some(e) => format!(
                                    "watching {}s{where_} failed: {}",
                                    kind_name(kind),
                                    crate::errors::error_chain(&e)
                                ),
                                None => format!("watching {}s{where_} failed", kind_name(kind)),
                            })
                        }
                    },
                );
            }
        }
        this
    }

    /// Waits (at most [`SYNC_TIMEOUT`]) until every watcher has listed once; fails
    /// while a watcher's list fails (a pass must not plan from a partial store).
    pub async fn synced(&self) -> Result<(), WorkloadError> {
        tokio::time::timeout(SYNC_TIMEOUT, self.store.wait_synced())
            .await
            .map_err(|_| WorkloadError::Watch {
                detail: format!(
                    "the first lists did not complete within {}s",
                    SYNC_TIMEOUT.as_secs()
                ),
            })?;
        match self.store.errors().into_iter().next() {
            None => Ok(()),
            Some((_, detail)) => Err(WorkloadError::Watch { detail }),
        }
    }

    /// Keeps what freshet just wrote: `written` (the write's response) replaces
    /// the store's copy while that copy is still the version the write was made
    /// against (`precondition`, its `resourceVersion`), so the next pass plans
    /// from it even before the watch delivers it. A copy the watch already moved
    /// past is left alone (`resourceVersion`s are only compared for equality).
    pub fn wrote(&self, precondition: &str, written: ReadWorkload) {
        let w = &written.workload;
        let key = (w.kind, w.namespace.clone(), w.name.clone());
        self.store.supersede(
            &key,
            |held| held.workload.resource_version == precondition,
            Arc::new(written),
        );
    }

    /// Every workload in the store now (shared, not copied).
    pub fn snapshot(&self) -> Vec<Arc<ReadWorkload>> {
        self.store.values()
    }

    /// How many workloads.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_holding(entries: &[(u32, &str)]) -> Watched<u32, String> {
        let store = Watched::default();
        store.shared.items.write().expect("store lock").push(
            entries
                .iter()
                .map(|(k, v)| (*k, (*v).to_string()))
                .collect(),
        );
        store
    }

    #[test]
    fn a_write_supersedes_the_version_it_was_made_against() {
        let store = store_holding(&[(1, "rv-10")]);
        assert!(store.supersede(&1, |held| held == "rv-10", "rv-11".into()));
        assert_eq!(store.values(), ["rv-11"]);
    }

    #[test]
    fn a_write_never_replaces_what_the_watch_already_moved_past() {
        let store = store_holding(&[(1, "rv-12")]);
        assert!(!store.supersede(&1, |held| held == "rv-10", "rv-11".into()));
        assert_eq!(store.values(), ["rv-12"]);
    }

    #[test]
    fn a_write_to_a_key_the_store_does_not_hold_adds_nothing() {
        let store = store_holding(&[(1, "rv-10")]);
        assert!(!store.supersede(&2, |_| true, "rv-1".into()));
        assert_eq!(store.values(), ["rv-10"]);
    }
}
