//! Table and golden tests for the Argo CD layer, over real-world annotation sets and
//! Applications taken from Image Updater's documentation (v1.3.0 and v0.16.0).

mod annotations;
mod crd;
mod flow;
mod gitfile;
mod patch;
mod props;
mod writeback;

/// Annotations (or labels) from pairs.
pub(super) fn map<M: FromIterator<(String, String)>>(pairs: &[(&str, &str)]) -> M {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An Image Updater annotation key.
pub(super) fn iu(rest: &str) -> String {
    format!("{}{rest}", super::PREFIX)
}

/// A digest made of one repeated hex digit.
pub(super) fn digest(c: char) -> crate::Digest {
    crate::Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}
