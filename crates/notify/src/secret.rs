//! A minimal redacting holder for secrets. Stands in for `freshet_core::secret::Secret`
//! until that type exists in this tree: `Debug` and `Display` print `***`.
//!
//! Must not offer any way to format its contents.

use std::fmt;

/// A secret value: only [`Secret::expose`] reads it.
#[derive(Clone)]
pub(crate) struct Secret<T>(T);

impl<T> Secret<T> {
    pub(crate) fn new(value: T) -> Self {
        Secret(value)
    }

    pub(crate) fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
