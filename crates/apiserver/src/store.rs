//! The object store: every object as JSON, one global `resourceVersion`
//! counter, a bounded history of changes for watch resume, a broadcast of new
//! changes, and an index of dependents by owner uid.
//!
//! Objects are shared (`Arc`) between the store, its history and the changes it
//! broadcasts, so a change costs one copy of the object, not three; the broadcast
//! keeps no more changes than the history does.
//!
//! Owns object identity and concurrency semantics (uid, creation timestamp,
//! resource versions, generation, optimistic concurrency, garbage collection
//! by owner references). It must not know about HTTP, authentication or
//! kind-specific defaulting.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::resources::ResourceDef;
use crate::status::ApiError;
use crate::util::{now_rfc3339, random_suffix, random_uuid, str_at};

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted.
    Deleted,
}

impl ChangeKind {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resource version the change produced.
    pub rv: u64,
    /// Storage key of the resource.
    pub storage: &'static str,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for deletes: the last state, with the delete's version).
    pub object: Arc<Value>,
    /// The object before the change, for updates and deletes.
    pub prev: Option<Arc<Value>>,
}

/// How an update treats `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// The main resource: status changes are ignored when the resource has a status subresource.
    Main,
    /// The status subresource: only status changes are kept.
    Status,
    /// Internal writes by controllers: everything is kept.
    Internal,
}

/// How a delete treats dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete dependents too (Background and Foreground act alike here).
    #[default]
    Cascade,
    /// Leave dependents and drop their owner reference.
    Orphan,
}

/// Where an object lives: (storage key, namespace, name).
pub type Key = (&'static str, String, String);

#[derive(Debug)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    /// Owner uid -> the objects whose `ownerReferences` name it.
    dependents: HashMap<String, BTreeSet<Key>>,
    history: VecDeque<Arc<Change>>,
    /// Watches from a version below this one get 410 Gone.
    oldest: u64,
    history_limit: usize,
}

/// The shared object store.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
}

fn meta(obj: &Value) -> (&str, &str) {
    (
        str_at(obj, "metadata.namespace"),
        str_at(obj, "metadata.name"),
    )
}

fn rv_of(obj: &Value) -> Option<u64> {
    str_at(obj, "metadata.resourceVersion").parse().ok()
}

/// The uids an object's `ownerReferences` name.
fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| str_at(r, "uid"))
        .filter(|uid| !uid.is_empty())
}

/// The object without `metadata` and `status`, for generation tracking.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

impl Store {
    /// An empty store keeping at most `history_limit` changes for watch resume.
    pub fn new(history_limit: usize) -> Self {
        let history_limit = history_limit.max(1);
        // A receiver that falls further behind than the history reaches could not
        // resume from its version anyway; a longer ring would only hold memory.
        let (changes, _) = broadcast::channel(history_limit.clamp(1024, 1 << 20));
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                dependents: HashMap::new(),
                history: VecDeque::new(),
                oldest: 1,
                history_limit,
            }),
            changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resource version.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Drops all watch history: every older version now answers 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.oldest = inner.rv;
    }

    fn record(&self, inner: &mut Inner, change: Change) {
        let key = (
            change.storage,
            str_at(&change.object, "metadata.namespace").to_string(),
            str_at(&change.object, "metadata.name").to_string(),
        );
        if let Some(prev) = &change.prev {
            for uid in owner_uids(prev) {
                if let Some(set) = inner.dependents.get_mut(uid) {
                    set.remove(&key);
                    if set.is_empty() {
                        inner.dependents.remove(uid);
                    }
                }
            }
        }
        if change.kind != ChangeKind::Deleted {
            for uid in owner_uids(&change.object) {
                inner
                    .dependents
                    .entry(uid.to_string())
                    .or_default()
                    .insert(key.clone());
            }
        }
        let change = Arc::new(change);
        inner.history.push_back(change.clone());
        while inner.history.len() > inner.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.oldest = old.rv;
            }
        }
        let _ = self.changes.send(change);
    }

    /// One object.
    pub fn get(&self, storage: &'static str, ns: &str, name: &str) -> Option<Value> {
        self.get_shared(storage, ns, name).map(|v| (*v).clone())
    }

    /// One object, shared (no copy).
    pub fn get_shared(&self, storage: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(&(storage, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of a resource, in one namespace or all (`None`), with the list version.
    pub fn list(&self, storage: &'static str, ns: Option<&str>) -> (Vec<Value>, u64) {
        let (items, rv) = self.list_after(storage, ns, None);
        (items.iter().map(|v| (**v).clone()).collect(), rv)
    }

    /// The objects of a resource (shared, no copies) in `(namespace, name)` order,
    /// in one namespace or all (`None`), starting after `after` (a page's last
    /// `(namespace, name)`), with the list version.
    pub fn list_after(
        &self,
        storage: &'static str,
        ns: Option<&str>,
        after: Option<(&str, &str)>,
    ) -> (Vec<Arc<Value>>, u64) {
        use std::ops::Bound;
        let inner = self.lock();
        let start = match (after, ns) {
            (Some((n, m)), _) => Bound::Excluded((storage, n.to_string(), m.to_string())),
            (None, Some(n)) => Bound::Included((storage, n.to_string(), String::new())),
            (None, None) => Bound::Included((storage, String::new(), String::new())),
        };
        let items = inner
            .objects
            .range((start, Bound::Unbounded))
            .take_while(|((s, n, _), _)| *s == storage && ns.is_none_or(|want| want == n))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// The keys of every object of a resource.
    pub fn keys(&self, storage: &'static str) -> Vec<Key> {
        self.lock()
            .objects
            .range((storage, String::new(), String::new())..)
            .take_while(|((s, _, _), _)| *s == storage)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The objects of `storage` in `ns` whose `ownerReferences` name `owner_uid`,
    /// found through the owner index (no scan).
    pub fn owned(&self, storage: &'static str, ns: &str, owner_uid: &str) -> Vec<Value> {
        let inner = self.lock();
        let Some(keys) = inner.dependents.get(owner_uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|(s, n, _)| *s == storage && n == ns)
            .filter_map(|k| inner.objects.get(k))
            .map(|v| (**v).clone())
            .collect()
    }

    /// Creates an object; fills uid, creation time, version and generation.
    pub fn create(&self, def: &ResourceDef, ns: &str, obj: Value) -> Result<Value, ApiError> {
        self.create_opt(def, ns, obj, false)
    }

    /// [`Self::create`]; with `dry_run`, every check runs but nothing is stored.
    pub fn create_opt(
        &self,
        def: &ResourceDef,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let name = {
            let name = str_at(&obj, "metadata.name").to_string();
            if name.is_empty() {
                let prefix = str_at(&obj, "metadata.generateName").to_string();
                if prefix.is_empty() {
                    return Err(ApiError::invalid(
                        def,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
                loop {
                    let candidate = format!("{prefix}{}", random_suffix(5));
                    if !inner.objects.contains_key(&(
                        def.storage,
                        ns.to_string(),
                        candidate.clone(),
                    )) {
                        break candidate;
                    }
                }
            } else {
                name
            }
        };
        let key = (def.storage, ns.to_string(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(def, &name));
        }
        if def.namespaced
            && !inner
                .objects
                .contains_key(&("namespaces", String::new(), ns.to_string()))
        {
            return Err(ApiError::NotFound {
                resource: "namespaces".into(),
                group: String::new(),
                plural: "namespaces".into(),
                name: ns.into(),
            });
        }
        let rv = inner.rv + 1;
        let m = crate::util::ensure_obj(&mut obj, "metadata");
        m.insert("name".into(), json!(name));
        if def.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        if m.get("uid")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            m.insert("uid".into(), json!(random_uuid()));
        }
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.remove("deletionTimestamp");
        if def.generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        if dry_run {
            m.remove("resourceVersion");
            return Ok(obj);
        }
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        inner.rv = rv;
        let shared = Arc::new(obj);
        inner.objects.insert(key, shared.clone());
        self.record(
            &mut inner,
            Change {
                rv,
                storage: def.storage,
                kind: ChangeKind::Added,
                object: shared.clone(),
                prev: None,
            },
        );
        Ok(Arc::unwrap_or_clone(shared))
    }

    /// Replaces an object. A non-empty `metadata.resourceVersion` in `new`
    /// must match the stored one (409 otherwise). Returns the stored object;
    /// a no-op update keeps the version and sends no event.
    pub fn update(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        new: Value,
        mode: UpdateMode,
    ) -> Result<Value, ApiError> {
        self.update_opt(def, ns, name, new, mode, false)
    }

    /// [`Self::update`]; with `dry_run`, every check runs but nothing is stored.
    pub fn update_opt(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        new: Value,
        mode: UpdateMode,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        self.update_locked(&mut inner, def, ns, name, new, mode, dry_run)
    }

    #[allow(clippy::too_many_arguments)]
    fn update_locked(
        &self,
        inner: &mut Inner,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        mut new: Value,
        mode: UpdateMode,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = (def.storage, ns.to_string(), name.to_string());
        let old_shared = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))?;
        let old: &Value = &old_shared;
        if let Some(want) = rv_of(&new)
            && Some(want) != rv_of(old)
        {
            return Err(ApiError::conflict(def, name));
        }
        let new_name = str_at(&new, "metadata.name");
        if !new_name.is_empty() && new_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({new_name}) does not match the name on the URL ({name})"
            )));
        }
        match mode {
            UpdateMode::Status => {
                let status = new.get("status").cloned();
                new = old.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        new.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
            UpdateMode::Main if def.status => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            },
            _ => {}
        }
        // Immutable metadata.
        {
            let om = old["metadata"].clone();
            let m = crate::util::ensure_obj(&mut new, "metadata");
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "resourceVersion",
            ] {
                match om.get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
        }
        if new == *old {
            return Ok(old.clone());
        }
        if def.generation && spec_part(&new) != spec_part(old) {
            let g = crate::util::i64_at(old, "metadata.generation", 1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        if dry_run {
            return Ok(new);
        }
        inner.rv += 1;
        let rv = inner.rv;
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let shared = Arc::new(new);
        inner.objects.insert(key, shared.clone());
        self.record(
            inner,
            Change {
                rv,
                storage: def.storage,
                kind: ChangeKind::Modified,
                object: shared.clone(),
                prev: Some(old_shared),
            },
        );
        Ok(Arc::unwrap_or_clone(shared))
    }

    /// Reads, changes and writes one object under the store lock (for controllers).
    /// Returns `None` if the object does not exist.
    pub fn modify(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        mode: UpdateMode,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let mut inner = self.lock();
        let mut obj = Value::clone(inner.objects.get(&(
            def.storage,
            ns.to_string(),
            name.to_string(),
        ))?);
        f(&mut obj);
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        self.update_locked(&mut inner, def, ns, name, obj, mode, false)
            .ok()
    }

    /// Deletes an object and, unless orphaning, every object it owns (transitively).
    pub fn delete(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        propagation: Propagation,
    ) -> Result<Value, ApiError> {
        self.delete_opt(def, ns, name, propagation, false)
    }

    /// [`Self::delete`]; with `dry_run`, nothing is deleted.
    pub fn delete_opt(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        propagation: Propagation,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = (def.storage, ns.to_string(), name.to_string());
        let Some(current) = inner.objects.get(&key) else {
            return Err(ApiError::not_found(def, name));
        };
        if dry_run {
            return Ok(Value::clone(current));
        }
        let deleted = self.delete_locked(&mut inner, key, propagation);
        Ok(deleted)
    }

    fn delete_locked(&self, inner: &mut Inner, key: Key, propagation: Propagation) -> Value {
        let Some(prev) = inner.objects.remove(&key) else {
            return Value::Null;
        };
        inner.rv += 1;
        let rv = inner.rv;
        let mut obj = Value::clone(&prev);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let shared = Arc::new(obj);
        self.record(
            inner,
            Change {
                rv,
                storage: key.0,
                kind: ChangeKind::Deleted,
                object: shared.clone(),
                prev: Some(prev),
            },
        );
        let obj = Arc::unwrap_or_clone(shared);
        let uid = str_at(&obj, "metadata.uid").to_string();
        let dependents: Vec<Key> = inner
            .dependents
            .get(&uid)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        // Deleting a namespace deletes everything in it.
        let in_namespace: Vec<Key> = if key.0 == "namespaces" {
            inner
                .objects
                .keys()
                .filter(|(_, n, _)| *n == key.2)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        for dep in dependents {
            match propagation {
                Propagation::Cascade => {
                    self.delete_locked(inner, dep, propagation);
                }
                Propagation::Orphan => {
                    if let Some(mut v) = inner.objects.get(&dep).map(|v| Value::clone(v)) {
                        if let Some(refs) = v
                            .pointer_mut("/metadata/ownerReferences")
                            .and_then(Value::as_array_mut)
                        {
                            refs.retain(|r| str_at(r, "uid") != uid);
                        }
                        let def = ResourceDef::by_storage(dep.0);
                        let _ = self.update_locked(
                            inner,
                            def,
                            &dep.1,
                            &dep.2,
                            v,
                            UpdateMode::Internal,
                            false,
                        );
                    }
                }
            }
        }
        for k in in_namespace {
            self.delete_locked(inner, k, Propagation::Cascade);
        }
        obj
    }

    /// Starts a watch on `storage`. With `from = Some(rv)`, replays the changes
    /// after `rv` (410 Gone if they are no longer kept); with `None`, replays
    /// the current objects as `ADDED`. Returns the replay and a receiver for
    /// later changes.
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &self,
        storage: &'static str,
        from: Option<u64>,
    ) -> Result<(Vec<Arc<Change>>, u64, broadcast::Receiver<Arc<Change>>), ApiError> {
        let inner = self.lock();
        let rx = self.changes.subscribe();
        let replay = match from {
            Some(rv) => {
                if rv < inner.oldest {
                    return Err(ApiError::Expired {
                        requested: rv,
                        oldest: inner.oldest,
                    });
                }
                inner
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.storage == storage)
                    .cloned()
                    .collect()
            }
            None => inner
                .objects
                .iter()
                .filter(|((s, _, _), _)| *s == storage)
                .map(|(_, v)| {
                    Arc::new(Change {
                        rv: rv_of(v).unwrap_or(0),
                        storage,
                        kind: ChangeKind::Added,
                        object: v.clone(),
                        prev: None,
                    })
                })
                .collect(),
        };
        Ok((replay, inner.rv, rx))
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }
}

/// Namespace and name of a stored object.
pub fn ns_name(obj: &Value) -> (String, String) {
    let (n, m) = meta(obj);
    (n.to_string(), m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(plural: &str) -> &'static ResourceDef {
        RESOURCES_FIND(plural)
    }

    #[allow(non_snake_case)]
    fn RESOURCES_FIND(plural: &str) -> &'static ResourceDef {
        crate::resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural && (r.group == "apps" || r.group.is_empty()))
            .unwrap()
    }

    fn store_with_ns() -> Store {
        let s = Store::new(100);
        s.create(
            def("namespaces"),
            "",
            json!({"metadata": {"name": "default"}}),
        )
        .unwrap();
        s
    }

    #[test]
    fn stale_resource_version_conflicts() {
        let s = store_with_ns();
        let d = def("deployments");
        let created = s
            .create(
                d,
                "default",
                json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}}),
            )
            .unwrap();
        let mut v = created.clone();
        v["spec"]["replicas"] = json!(2);
        let updated = s.update(d, "default", "a", v, UpdateMode::Main).unwrap();
        assert_eq!(updated["metadata"]["generation"], 2);
        let mut stale = created;
        stale["spec"]["replicas"] = json!(3);
        let err = s
            .update(d, "default", "a", stale, UpdateMode::Main)
            .unwrap_err();
        assert_eq!(err.code(), 409);
    }

    #[test]
    fn generation_bumps_on_spec_changes_only() {
        let s = store_with_ns();
        let d = def("deployments");
        s.create(
            d,
            "default",
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}}),
        )
        .unwrap();
        let v = s
            .modify(d, "default", "a", UpdateMode::Main, |o| {
                o["metadata"]["labels"] = json!({"x": "y"})
            })
            .unwrap();
        assert_eq!(v["metadata"]["generation"], 1);
        let v = s
            .modify(d, "default", "a", UpdateMode::Status, |o| {
                o["status"] = json!({"replicas": 1})
            })
            .unwrap();
        assert_eq!(v["metadata"]["generation"], 1);
        assert_eq!(v["status"]["replicas"], 1);
    }

    #[test]
    fn expired_watch_is_gone() {
        let s = store_with_ns();
        let rv = s.current_rv();
        s.compact();
        s.create(
            def("configmaps"),
            "default",
            json!({"metadata": {"name": "c"}}),
        )
        .unwrap();
        assert!(s.watch("configmaps", Some(rv - 1)).is_err());
        let (replay, _, _) = s.watch("configmaps", Some(rv)).unwrap();
        assert_eq!(replay.len(), 1);
    }

    #[test]
    fn delete_cascades_to_owned_objects() {
        let s = store_with_ns();
        let d = s
            .create(
                def("deployments"),
                "default",
                json!({"metadata": {"name": "a"}}),
            )
            .unwrap();
        let uid = d["metadata"]["uid"].clone();
        s.create(def("replicasets"), "default",
            json!({"metadata": {"name": "a-1", "ownerReferences": [{"uid": uid, "kind": "Deployment", "name": "a"}]}}))
            .unwrap();
        s.delete(def("deployments"), "default", "a", Propagation::Cascade)
            .unwrap();
        assert!(s.get("replicasets.apps", "default", "a-1").is_none());
    }
}
