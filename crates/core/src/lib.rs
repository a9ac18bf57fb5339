//! freshet's pure core.
//!
//! Owns the vocabulary every other crate speaks: image references and their Docker
//! normalisation ([`reference`]), content digests ([`digest`]), platforms
//! ([`platform`]), manifest media types and the parsing of manifest bodies
//! ([`manifest`]), tag ordering and update policies ([`policy`]), the redacted
//! [`secret::Secret`] every crate keeps credentials in ([`secret`]), and the finding and
//! byte-minimal editing of image references in files ([`files`]).
//!
//! Nothing here performs I/O: no tokio, no network, no Kubernetes, no git. Decisions
//! are values computed from facts that the imperative shells gather. Cargo enforces
//! this: the crate does not depend on any of them.
#![forbid(unsafe_code)]

pub mod argocd;
pub mod digest;
pub mod files;
pub mod manifest;
pub mod notify;
pub mod platform;
pub mod policy;
pub mod reference;
pub mod refresh;
pub mod runs;
pub mod safety;
pub mod secret;
pub mod webhook;

pub use digest::Digest;

/// Labels (and the other small string maps kept per workload: annotations, a
/// `nodeSelector`), as a map sorted by key in one vector: a workload has a
/// handful, and thousands of workloads are kept at once ([`std::collections::BTreeMap`] allocates a 544-byte
/// node for a single entry).
pub type Labels = litemap::LiteMap<String, String>;

/// [`Labels`] from `pairs`, in one allocation of exactly their number (collecting
/// grows the vector by doubling).
pub fn labels_of(pairs: impl ExactSizeIterator<Item = (String, String)>) -> Labels {
    let mut labels = Labels::with_capacity(pairs.len());
    for (k, v) in pairs {
        labels.insert(k, v);
    }
    labels
}
pub use platform::Platform;
pub use reference::Reference;

/// The line, column (1-based; 0 when unknown) and first message line of a YAML
/// error, for config errors that point at the spot to fix.
pub(crate) fn yaml_error(e: &serde_saphyr::Error) -> (usize, usize, String) {
    let (line, column) = e
        .location()
        .map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
    let message = e.to_string().lines().next().unwrap_or("").to_owned();
    (line, column, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_sorts_by_key_and_the_last_value_of_a_key_wins() {
        let pairs = [("b", "2"), ("a", "1"), ("b", "3")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let labels = labels_of(pairs.into_iter());
        let got: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, [("a", "1"), ("b", "3")]);
        assert_eq!(labels.get("b").map(String::as_str), Some("3"));
    }
}
