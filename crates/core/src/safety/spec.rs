//! The slice of a pod template the safety layer reads ([`Container`]) and the
//! changes it asks the shell to write ([`Restore`]).
//!
//! Owns only this vocabulary and the spelling rule for image strings freshet writes
//! (familiar `nginx:1` stays familiar, `docker.io/library/nginx:1` stays canonical),
//! so a rollback or an unpin does not show up as a spelling diff in GitOps tools.
//! Must not build patches for a particular API: the shell turns a [`Restore`] into
//! its strategic-merge patch (the same shape as `refresh::plan::Change::SetImage` and
//! `Change::SetEnv`, with `$patch: delete` for an env var that was unset before).

use std::collections::BTreeMap;

use crate::{Digest, Reference};

/// One container of a workload's pod template, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// The container name.
    pub name: String,
    /// An init container.
    pub init: bool,
    /// The image string as written.
    pub image: String,
    /// Literal env values (`None` for `valueFrom`).
    pub env: BTreeMap<String, Option<String>>,
}

/// One change to a workload's pod template that the shell writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// Set a container's image.
    Image {
        /// The container.
        container: String,
        /// An init container.
        init: bool,
        /// The image now (the precondition the shell may log).
        from: String,
        /// The image to write.
        to: String,
    },
    /// Set (or, with `to: None`, remove) a container's env var.
    Env {
        /// The container.
        container: String,
        /// An init container.
        init: bool,
        /// The variable.
        var: String,
        /// The value now.
        from: Option<String>,
        /// The value to write (`None`: remove the variable).
        to: Option<String>,
    },
}

impl Restore {
    /// The container the change applies to.
    pub fn container(&self) -> &str {
        match self {
            Restore::Image { container, .. } | Restore::Env { container, .. } => container,
        }
    }
}

/// `reference` written in the same spelling family as `written`: canonical when
/// `written` starts with `docker.io/` or `index.docker.io/`, familiar otherwise.
pub(crate) fn spelled_like(reference: &Reference, written: &str) -> String {
    if written.starts_with("docker.io/") || written.starts_with("index.docker.io/") {
        reference.canonical()
    } else {
        reference.familiar()
    }
}

/// The image string `written` pinned to `digest`, keeping its tag and spelling:
/// `ghcr.io/acme/api:latest` and `sha256:…` give `ghcr.io/acme/api:latest@sha256:…`.
pub(crate) fn pinned(written: &str, digest: &Digest) -> Option<String> {
    let r = Reference::parse(written).ok()?;
    Some(spelled_like(
        &r.without_digest().with_digest(digest.clone()),
        written,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_keep_the_tag_and_the_spelling() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let cases = [
            ("ghcr.io/acme/api:latest", "ghcr.io/acme/api:latest@sha256:"),
            ("nginx:1.27", "nginx:1.27@sha256:"),
            (
                "docker.io/library/nginx:1.27",
                "docker.io/library/nginx:1.27@sha256:",
            ),
            (
                "ghcr.io/acme/api:16@sha256:bbbb",
                "ghcr.io/acme/api:16@sha256:",
            ),
        ];
        for (written, want) in cases {
            let written = written.replace("sha256:bbbb", &format!("sha256:{}", "b".repeat(64)));
            let got = pinned(&written, &d).unwrap();
            assert_eq!(got, format!("{want}{}", "a".repeat(64)), "{written}");
        }
        assert_eq!(pinned("Not A Ref", &d), None);
    }
}
