//! One Application's update as values: its configuration (an `ImageUpdater` rule or
//! its annotations), the source written to, the images asked of the registry, and,
//! once the registry answered, the new images, the audit record and the failure
//! streaks.
//!
//! Owns the order in which the shell calls the core's decisions for an Application
//! (`freshet_core::argocd` for the configuration, source and current value,
//! `freshet_core::policy::decide` for the move, `freshet_core::refresh::audit` for
//! the record), so that `run` and `status` cannot disagree. Performs no I/O and
//! decides nothing itself: every choice is a core function's answer.

use std::collections::BTreeMap;

use freshet_core::Reference;
use freshet_core::argocd::crd::{AppMeta, ImageUpdater};
use freshet_core::argocd::patch::{current_tag, is_live, live_images};
use freshet_core::argocd::source::{SourceChoice, choose};
use freshet_core::argocd::{AppConfig, NewImage, from_annotations};
use freshet_core::policy::{Current, Decision, Facts, Policy, decide};
use freshet_core::refresh::audit::{Audit, Refreshed};
use freshet_core::refresh::enroll::{DEFAULT_THRESHOLD, THRESHOLD};
use freshet_core::refresh::plan::failure;
use freshet_core::refresh::{ImageFacts, Streak, Timestamp};

use super::list::App;

/// An Application's configuration, or why it has none.
#[derive(Debug)]
pub enum Configured {
    /// Neither an `ImageUpdater` rule nor an `image-list` annotation: not touched.
    Unmanaged,
    /// Its configuration is invalid; the message names the annotation or field and
    /// the fix.
    Invalid(String),
    /// Valid.
    Valid(Box<AppConfig>),
}

/// The configuration of `app`: the most specific rule of an `ImageUpdater` in its
/// namespace, else its annotations (which teams on Image Updater before v1.0 use).
pub fn configure(app: &App, updaters: &[ImageUpdater]) -> Configured {
    let meta = AppMeta {
        name: &app.name,
        namespace: &app.namespace,
        labels: &app.labels,
        annotations: &app.annotations,
    };
    for cr in updaters {
        if cr.select(&meta).is_some() {
            return match cr.resolve(&meta) {
                Ok(Some(c)) => Configured::Valid(Box::new(c)),
                Ok(None) => Configured::Unmanaged,
                Err(e) => Configured::Invalid(e.to_string()),
            };
        }
    }
    match from_annotations(&app.namespace, &app.annotations) {
        Ok(Some(c)) => Configured::Valid(Box::new(c)),
        Ok(None) => Configured::Unmanaged,
        Err(e) => Configured::Invalid(format!(
            "{e} (fix the annotation {}; nothing is written until then)",
            e.annotation()
        )),
    }
}

/// One image freshet follows for an Application.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// Its index in the configuration's images.
    pub index: usize,
    /// The reference asked about (`repo:<tag it is at, or follows>`).
    pub reference: Reference,
    /// The policy.
    pub policy: Policy,
}

/// An Application ready to be planned: its configuration, source and followed images.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The configuration.
    pub config: AppConfig,
    /// The source written to.
    pub source: SourceChoice,
    /// The images freshet follows.
    pub tracked: Vec<Tracked>,
    /// Failures in a row before an Event escalates (`freshet.io/failure-threshold`).
    pub threshold: u32,
    /// Warnings (the configuration's, and images not followed).
    pub warnings: Vec<String>,
}

/// Chooses the source and the images to ask about; `Err` names what to fix.
pub fn prepare(app: &App, config: AppConfig) -> Result<Prepared, String> {
    let source = choose(&app.value, &config.write_back).map_err(|e| e.to_string())?;
    let threshold = match app.annotations.get(THRESHOLD) {
        None => DEFAULT_THRESHOLD,
        Some(v) => v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            format!("annotation {THRESHOLD}: {v:?} is not a whole number of at least 1")
        })?,
    };
    let mut warnings: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    let live = live_images(&app.value);
    let mut tracked = Vec::new();
    for (index, image) in config.images.iter().enumerate() {
        let Some(policy) = image.policy.clone() else {
            continue;
        };
        if !is_live(image, &live) {
            warnings.push(format!(
                "{}: {} does not run in this Application (status.summary.images); not updated (set force-update to update it anyway)",
                image.label(),
                image.image.name
            ));
            continue;
        }
        let (tag, _) = current_tag(&app.value, &source, image);
        let tag = tag.unwrap_or_else(|| "latest".to_owned());
        match Reference::parse(&format!("{}:{tag}", image.image.name)) {
            Ok(reference) => tracked.push(Tracked {
                index,
                reference,
                policy,
            }),
            Err(e) => warnings.push(format!(
                "{}: {}:{tag} is not an image reference ({e}); not updated",
                image.label(),
                image.image.name
            )),
        }
    }
    Ok(Prepared {
        config,
        source,
        tracked,
        threshold,
        warnings,
    })
}

/// One image to write.
#[derive(Debug, Clone)]
pub struct Update {
    /// Its index in the configuration's images.
    pub index: usize,
    /// What it becomes.
    pub new: NewImage,
    /// The image (canonical), for reports.
    pub image: String,
    /// What it was (`tag@digest`, a tag, or empty).
    pub from: String,
    /// What it becomes, in the same shape.
    pub to: String,
}

/// What one pass does to one Application.
#[derive(Debug, Clone, Default)]
pub struct AppPlan {
    /// Images to write.
    pub updates: Vec<Update>,
    /// The audit record after the pass.
    pub audit: Audit,
    /// The audit annotations that change (`None`: remove).
    pub annotations: BTreeMap<String, Option<String>>,
    /// Failure streaks below the threshold.
    pub transient: Vec<Streak>,
    /// Failure streaks at or above it.
    pub escalations: Vec<Streak>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// Decides each followed image from the registry's `facts` at `now`.
pub fn plan(app: &App, prepared: &Prepared, facts: &ImageFacts, now: Timestamp) -> AppPlan {
    let old = Audit::read(&app.annotations);
    let mut new = old.clone();
    let mut out = AppPlan {
        warnings: prepared.warnings.clone(),
        ..AppPlan::default()
    };
    for t in &prepared.tracked {
        let image = &prepared.config.images[t.index];
        let key = t.reference.canonical();
        let (tag, digest) = current_tag(&app.value, &prepared.source, image);
        let tag = tag.unwrap_or_else(|| "latest".to_owned());
        let fact = facts.get(&key);
        let wants_tags = t.policy.needs(Some(&tag)).tag_list;
        if let Some(message) = failure(fact, &tag, wants_tags) {
            let count = old.failures_of(&key) + 1;
            new.failures.insert(key.clone(), count);
            let streak = Streak {
                image: key.clone(),
                count,
                message,
            };
            if count >= prepared.threshold {
                new.last_error = Some(format!(
                    "{key}: {count} failures in a row: {}",
                    streak.message
                ));
                out.escalations.push(streak);
            } else {
                out.transient.push(streak);
            }
            continue;
        }
        new.failures.remove(&key);
        let fact = fact.cloned().unwrap_or_default();
        let filtered = Facts {
            tags: fact
                .tags
                .map(|r| r.map(|tags| image.filter_tags(&tags, Some(&tag)))),
            digests: fact.digests,
        };
        let current = Current {
            tag: Some(&tag),
            digest: digest.as_ref(),
        };
        match decide(current, &t.policy, &filtered) {
            Decision::Update { to, digest: d, .. } => {
                let shown = |tag: &str, d: Option<&freshet_core::Digest>| match d {
                    Some(d) => format!("{tag}@{d}"),
                    None => tag.to_owned(),
                };
                if let Some(d) = &d {
                    new.refreshed.insert(
                        key.clone(),
                        Refreshed {
                            digest: d.to_string(),
                            at: now.to_string(),
                            platforms: Default::default(),
                            note: None,
                        },
                    );
                }
                out.updates.push(Update {
                    index: t.index,
                    image: key.clone(),
                    from: shown(&tag, digest.as_ref()),
                    to: shown(&to, d.as_ref()),
                    new: NewImage {
                        name: image.image.name.clone(),
                        tag: Some(to),
                        digest: d,
                    },
                });
            }
            Decision::Keep {
                warning: Some(w), ..
            } => out.warnings.push(format!("{}: {w}", image.label())),
            Decision::Keep { .. } => {}
        }
    }
    if out.escalations.is_empty() && new.failures.is_empty() {
        new.last_error = None;
    }
    out.annotations = old.diff(&new);
    out.audit = new;
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn app(annotations: &[(&str, &str)]) -> App {
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let value = json!({
            "metadata": {"name": "backend-preview", "namespace": "argocd", "resourceVersion": "3",
                         "annotations": annotations},
            "spec": {"source": {"repoURL": "https://git.example/d.git", "path": "chart", "helm": {}}},
            "status": {"sourceType": "Helm", "summary": {"images": ["ghcr.io/acme/backend:sha-1"]}}
        });
        App {
            name: "backend-preview".into(),
            namespace: "argocd".into(),
            uid: None,
            labels: freshet_core::Labels::new(),
            annotations: annotations.into_iter().collect(),
            value,
        }
    }

    const LIST: &str = "argocd-image-updater.argoproj.io/image-list";
    const STRATEGY: &str = "argocd-image-updater.argoproj.io/backend.update-strategy";

    fn prepared(a: &App) -> Prepared {
        let Configured::Valid(config) = configure(a, &[]) else {
            panic!("valid")
        };
        prepare(a, *config).unwrap()
    }

    #[test]
    fn a_registry_failure_counts_a_streak_and_escalates_at_the_threshold() {
        let now = Timestamp::parse("2026-11-28T12:00:00Z").unwrap();
        let a = app(&[
            (LIST, "backend=ghcr.io/acme/backend:preview"),
            (STRATEGY, "digest"),
            (THRESHOLD, "2"),
        ]);
        let p = prepared(&a);
        assert_eq!(p.tracked.len(), 1);
        let first = plan(&a, &p, &ImageFacts::new(), now);
        assert!(first.updates.is_empty());
        assert_eq!(first.transient.len(), 1);
        assert!(first.escalations.is_empty());
        let counted: Vec<(&str, &str)> = vec![
            (LIST, "backend=ghcr.io/acme/backend:preview"),
            (STRATEGY, "digest"),
            (THRESHOLD, "2"),
            (
                "freshet.io/refresh-consecutive-failures",
                r#"{"ghcr.io/acme/backend:preview":1}"#,
            ),
        ];
        let a = app(&counted);
        let second = plan(&a, &prepared(&a), &ImageFacts::new(), now);
        assert_eq!(second.escalations.len(), 1);
        assert_eq!(second.escalations[0].count, 2);
        assert!(
            second.annotations["freshet.io/refresh-last-error"]
                .as_deref()
                .unwrap()
                .contains("2 failures in a row")
        );
    }

    #[test]
    fn unannotated_applications_are_unmanaged_and_bad_ones_name_the_annotation() {
        assert!(matches!(configure(&app(&[]), &[]), Configured::Unmanaged));
        let bad = app(&[
            (LIST, "backend=ghcr.io/acme/backend:preview"),
            (STRATEGY, "newest"),
        ]);
        let Configured::Invalid(message) = configure(&bad, &[]) else {
            panic!("invalid")
        };
        assert!(message.contains(STRATEGY), "{message}");
        let bad = app(&[
            (LIST, "backend=ghcr.io/acme/backend:preview"),
            (STRATEGY, "digest"),
            (THRESHOLD, "0"),
        ]);
        let Configured::Valid(config) = configure(&bad, &[]) else {
            panic!("valid")
        };
        assert!(prepare(&bad, *config).unwrap_err().contains(THRESHOLD));
    }
}
