//! Keel annotations freshet does not honour, as a warning value.
//!
//! Owns the list of every key Keel reads or writes and what freshet does with each,
//! so a workload migrated from Keel never loses a setting silently: [`unsupported`]
//! returns a [`KeelWarning`] naming each key freshet ignores, why, and what to use
//! instead. Must not decide enrollment (that is `refresh::enroll`) nor emit the
//! warning: the shell shows it in `plan`/`status` and as a Warning Event.
//!
//! The set comes from Keel's source, `types/types.go` in keel-hq/keel (commit
//! 6ac9dc5cf, 2026-08-21: `KeelPolicyLabel` … `KeelReleaseNotesURL`), and its README
//! annotation table. Keel reads these keys from labels as well as annotations, so
//! both are checked. Any other `keel.sh/` key is reported as unknown (a typo, or a
//! key from a Keel version newer than that list).

/// What freshet does with a Keel key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// freshet honours it with Keel's meaning.
    Supported,
    /// Keel's own bookkeeping (it writes the key); harmless, nothing to warn about.
    Bookkeeping,
    /// freshet ignores it; the text says why and what to use instead.
    Unsupported(&'static str),
}

/// Every key Keel knows, with freshet's support. To support one more, change its
/// entry to [`Support::Supported`] where the shell starts to honour it.
pub const KEEL_KEYS: &[(&str, Support)] = &[
    ("keel.sh/policy", Support::Supported),
    ("keel.sh/trigger", Support::Supported),
    ("keel.sh/pollSchedule", Support::Supported),
    ("keel.sh/matchTag", Support::Supported),
    ("keel.sh/matchPreRelease", Support::Supported),
    ("keel.sh/approvals", Support::Supported),
    ("keel.sh/approvalDeadline", Support::Supported),
    ("keel.sh/digest", Support::Bookkeeping),
    ("keel.sh/update-time", Support::Bookkeeping),
    (
        "keel.sh/match-tag",
        Support::Unsupported("Keel's legacy spelling; rename it to keel.sh/matchTag"),
    ),
    ("keel.sh/monitorContainers", Support::Supported),
    ("keel.sh/initContainers", Support::Supported),
    (
        "keel.sh/notify",
        Support::Unsupported(
            "freshet sends no chat notifications; it emits Kubernetes Events and metrics to alert on",
        ),
    ),
    (
        "keel.sh/releaseNotes",
        Support::Unsupported(
            "freshet sends no notifications to attach release notes to; its Events name the image and digest",
        ),
    ),
    (
        "keel.sh/imagePullSecret",
        Support::Unsupported(
            "freshet uses the pod's imagePullSecrets and service account; add the secret there",
        ),
    ),
    (
        "keel.sh/imageVolumes",
        Support::Unsupported("freshet does not update image volumes (spec.volumes[].image)"),
    ),
];

/// What freshet says about a key outside [`KEEL_KEYS`].
pub const UNKNOWN: &str = "not a key Keel defines (a typo?); freshet ignores it";

/// One ignored Keel key on a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The key.
    pub key: String,
    /// Found as a label (else as an annotation).
    pub label: bool,
    /// Why freshet ignores it and what to use instead.
    pub why: &'static str,
}

/// The Keel keys on a workload that freshet ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeelWarning {
    /// Each ignored key, sorted by key.
    pub ignored: Vec<Ignored>,
}

impl std::fmt::Display for KeelWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keel settings freshet does not support: ")?;
        for (i, k) in self.ignored.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let kind = if k.label { "label" } else { "annotation" };
            write!(f, "{kind} {} ({})", k.key.escape_debug(), k.why)?;
        }
        Ok(())
    }
}

/// The warning for a workload's annotations and labels, `None` when every Keel key
/// on it is honoured.
pub fn unsupported(annotations: &crate::Labels, labels: &crate::Labels) -> Option<KeelWarning> {
    let mut ignored = Vec::new();
    let keys = annotations
        .keys()
        .map(|k| (k, false))
        .chain(labels.keys().map(|k| (k, true)));
    for (key, label) in keys {
        if !key.starts_with("keel.sh/") {
            continue;
        }
        {
            let why = match KEEL_KEYS.iter().find(|(k, _)| k == key) {
                Some((_, Support::Supported | Support::Bookkeeping)) => continue,
                Some((_, Support::Unsupported(why))) => *why,
                None => UNKNOWN,
            };
            ignored.push(Ignored {
                key: key.chars().take(253).collect(),
                label,
                why,
            });
        }
    }
    ignored.sort_by(|a, b| (&a.key, a.label).cmp(&(&b.key, b.label)));
    (!ignored.is_empty()).then_some(KeelWarning { ignored })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<M: FromIterator<(String, String)>>(keys: &[&str]) -> M {
        keys.iter()
            .map(|k| ((*k).to_owned(), "x".to_owned()))
            .collect()
    }

    #[test]
    fn honoured_and_bookkeeping_keys_do_not_warn() {
        let all_supported: Vec<&str> = KEEL_KEYS
            .iter()
            .filter(|(_, s)| !matches!(s, Support::Unsupported(_)))
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            unsupported(&map(&all_supported), &map(&all_supported)),
            None
        );
        assert_eq!(
            unsupported(&map(&["app", "freshet.io/policy"]), &crate::Labels::new()),
            None
        );
    }

    #[test]
    fn every_ignored_key_is_listed_with_why_and_the_fix() {
        let w = unsupported(
            &map(&["keel.sh/notify", "keel.sh/policy", "keel.sh/polSchedule"]),
            &map(&["keel.sh/imagePullSecret", "keel.sh/approvals"]),
        )
        .unwrap();
        let keys: Vec<(&str, bool)> = w
            .ignored
            .iter()
            .map(|i| (i.key.as_str(), i.label))
            .collect();
        assert_eq!(
            keys,
            [
                ("keel.sh/imagePullSecret", true),
                ("keel.sh/notify", false),
                ("keel.sh/polSchedule", false)
            ]
        );
        let text = w.to_string();
        assert!(
            text.contains("label keel.sh/imagePullSecret (") && text.contains("imagePullSecrets"),
            "{text}"
        );
        assert!(
            text.contains("annotation keel.sh/notify (") && text.contains("Events"),
            "{text}"
        );
        assert!(
            text.contains("keel.sh/polSchedule (not a key Keel defines"),
            "{text}"
        );
    }

    #[test]
    fn the_list_covers_keels_types_go() {
        // Every key in keel-hq/keel types/types.go (commit 6ac9dc5cf).
        for key in [
            "keel.sh/policy",
            "keel.sh/imagePullSecret",
            "keel.sh/trigger",
            "keel.sh/match-tag",
            "keel.sh/matchTag",
            "keel.sh/matchPreRelease",
            "keel.sh/pollSchedule",
            "keel.sh/initContainers",
            "keel.sh/imageVolumes",
            "keel.sh/monitorContainers",
            "keel.sh/digest",
            "keel.sh/notify",
            "keel.sh/approvals",
            "keel.sh/update-time",
            "keel.sh/approvalDeadline",
            "keel.sh/releaseNotes",
        ] {
            assert!(KEEL_KEYS.iter().any(|(k, _)| *k == key), "{key}");
        }
        // Keys are never reported twice, and printing escapes odd characters.
        let w = unsupported(&map(&["keel.sh/\u{1b}[31m"]), &crate::Labels::new()).unwrap();
        assert!(!w.to_string().contains('\u{1b}'), "{w}");
    }
}
