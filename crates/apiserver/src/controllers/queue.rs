//! The work queue: which objects the controllers must reconcile, keyed by
//! object, and when. Changes to the store add the objects they touch (and their
//! owners); a controller that waits on time (a pull in flight, a back-off, a
//! progress deadline) adds its object again after a delay.
//!
//! Owns the set of dirty keys and the timers, in the store's `(namespace, name)`
//! order so objects created together are handled in the order a full list would
//! give. It must not know what a controller does with a key.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::store::Key;

/// The resources whose objects the controllers reconcile, by storage key.
pub(crate) const WATCHED: [&str; 8] = [
    "namespaces",
    "secrets",
    "deployments.apps",
    "replicasets.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
    "pods",
];

/// Dirty objects and timers.
#[derive(Debug, Default)]
pub(crate) struct WorkQueue {
    dirty: BTreeMap<&'static str, BTreeSet<(String, String)>>,
    /// (when, sequence) -> key; the sequence keeps equal instants apart.
    delayed: BTreeMap<(Instant, u64), Key>,
    sequence: u64,
}

impl WorkQueue {
    /// Marks an object dirty.
    pub(crate) fn add(&mut self, (storage, ns, name): Key) {
        self.dirty.entry(storage).or_default().insert((ns, name));
    }

    /// Marks an object dirty once `after` has passed.
    pub(crate) fn add_after(&mut self, key: Key, after: Duration) {
        self.sequence += 1;
        self.delayed
            .insert((Instant::now() + after, self.sequence), key);
    }

    /// Moves every timer that is due by `now` to the dirty set.
    pub(crate) fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.add(key);
        }
    }

    /// Takes the dirty objects of one resource, in `(namespace, name)` order.
    pub(crate) fn take(&mut self, storage: &'static str) -> Vec<(String, String)> {
        self.dirty
            .remove(storage)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default()
    }

    /// How many objects are dirty and how many timers wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (
            self.dirty.values().map(BTreeSet::len).sum(),
            self.delayed.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(storage: &'static str, ns: &str, name: &str) -> Key {
        (storage, ns.to_string(), name.to_string())
    }

    #[test]
    fn dirty_keys_come_out_once_in_store_order() {
        let mut q = WorkQueue::default();
        q.add(key("pods", "b", "x"));
        q.add(key("pods", "a", "y"));
        q.add(key("pods", "b", "x"));
        q.add(key("secrets", "a", "s"));
        assert_eq!(
            q.take("pods"),
            [("a".into(), "y".into()), ("b".into(), "x".into())]
        );
        assert!(q.take("pods").is_empty());
        assert_eq!(q.take("secrets").len(), 1);
    }

    #[test]
    fn delayed_keys_wait_for_their_time() {
        let mut q = WorkQueue::default();
        q.add_after(key("pods", "a", "late"), Duration::from_secs(3600));
        q.add_after(key("pods", "a", "now"), Duration::ZERO);
        q.promote_due(Instant::now());
        assert_eq!(q.take("pods"), [("a".into(), "now".into())]);
        assert_eq!(q.len(), (0, 1));
        q.promote_due(Instant::now() + Duration::from_secs(3601));
        assert_eq!(q.take("pods"), [("a".into(), "late".into())]);
    }
}
