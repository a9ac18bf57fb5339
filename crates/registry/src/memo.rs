//! Run-scoped memoisation: each unique question is asked once per client.
//!
//! Owns [`Memo`], a map from a key to the shared answer of one async computation.
//! Errors are memoised too: a run asks a failing reference once, like a succeeding
//! one. It knows nothing about HTTP or registries.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::error::RegistryError;

/// The shared answer of one memoised computation.
type MemoCell<V> = Arc<OnceCell<Result<V, RegistryError>>>;

/// A memo of one async computation per key, for the lifetime of a client.
pub(crate) struct Memo<K, V> {
    cells: Mutex<HashMap<K, MemoCell<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for `key`: computed by `f` for the first caller, shared by all.
    pub(crate) async fn get_or_run<F, Fut>(&self, key: &K, f: F) -> Result<V, RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, RegistryError>>,
    {
        let cell = {
            let mut cells = self.cells.lock().expect("memo lock");
            cells.entry(key.clone()).or_default().clone()
        };
        cell.get_or_init(f).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn each_key_is_computed_once_errors_included() {
        let memo: Memo<&str, u32> = Memo::new();
        let runs = AtomicUsize::new(0);
        for _ in 0..3 {
            let got = memo
                .get_or_run(&"a", || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(7)
                })
                .await;
            assert_eq!(got.unwrap(), 7);
            let err = memo
                .get_or_run(&"b", || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Err(RegistryError::Malformed {
                        host: "h".into(),
                        detail: "x".into(),
                    })
                })
                .await;
            assert!(err.is_err());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
