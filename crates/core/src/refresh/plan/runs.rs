//! The planner's use of what runs (issue 11): a digest watch's restart decided by
//! [`crate::runs::decide`] (platform guard, catch-up on first sight, per-platform
//! change detection), and stuck pods reported on every enrolled workload.
//!
//! Owns the mapping from [`RunsAction`] to the plan: a block is a failure streak
//! of class `platform` with a Warning Event `ImagePlatformMissing`; a catch-up or a
//! change is the planner's usual refresh; a record keeps the per-platform digests
//! (and, when the index moved for other platforms only, why nothing restarted) in
//! `freshet.io/refreshed`; stuck pods are a streak with a Warning Event
//! `ImagePullFailing`. Must not read anything: the shell passes [`RunsFacts`].

use std::collections::BTreeMap;

use super::{Container, Planner};
use crate::runs::{
    self, Freshness, NodeIndex, NothingReason, OwnedPods, RecordReason, RestartReason, RunsAction,
    RunsDecision, Target, Tracked, WorkloadPlatforms,
};
use crate::{Digest, Reference};

/// What runs for one workload, as the shell read it.
#[derive(Debug, Clone)]
pub struct RunsFacts<'a> {
    /// Its pods (see [`crate::runs::pods_of`]).
    pub owned: OwnedPods<'a>,
    /// The platforms it runs and may run on.
    pub platforms: WorkloadPlatforms,
    /// The nodes.
    pub nodes: &'a NodeIndex<'a>,
    /// What each tracked image's tag names now, by canonical name, where the shell
    /// resolved it in full. An image missing here whose tag names the recorded
    /// digest is answered from the record; otherwise the planner acts as without
    /// runs facts.
    pub targets: &'a BTreeMap<String, Target>,
    /// Reading what runs failed (for example a 403): the messages name the RBAC.
    pub warnings: Vec<String>,
}

/// A Warning Event the plan asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEvent {
    /// The reason (`ImagePlatformMissing`, `ImagePullFailing`).
    pub reason: &'static str,
    /// The note (escaped and bounded by [`crate::runs`]).
    pub note: String,
}

impl Planner<'_> {
    /// Plans a digest watch's restart from what runs. Returns false when there are
    /// no runs facts for the image (the caller plans as before).
    pub(super) fn restart_with_runs(
        &mut self,
        reference: &Reference,
        digest: &Digest,
        containers: &[&Container],
    ) -> bool {
        let Some(runs) = self.runs else {
            return false;
        };
        let image = reference.canonical();
        let record = self.old.record(&image).cloned();
        let previous = record.as_ref().and_then(|r| {
            Some(Target::recorded(
                Digest::parse(&r.digest).ok()?,
                &r.platforms,
            ))
        });
        let target = match (runs.targets.get(&image), &previous) {
            (Some(t), _) if t.digest() == digest => t.clone(),
            (_, Some(p)) if p.digest() == digest => p.clone(),
            _ => return false,
        };
        let decisions: Vec<RunsDecision> = containers
            .iter()
            .map(|c| {
                let tracked = Tracked {
                    container: &c.name,
                    image: &c.image,
                    target: &target,
                    previous: previous.as_ref(),
                    catch_up: self.enrollment.catch_up,
                };
                runs::decide(&tracked, &runs.owned, &runs.platforms, runs.nodes)
            })
            .collect();
        let Some(first) = decisions.first() else {
            return false;
        };
        let record_platforms = first.record.clone();
        match strongest(&decisions) {
            RunsAction::Block { missing } => {
                let note = missing.message();
                self.streak(image, format!("{}: {note}", runs::guard::FAILURE_CLASS));
                self.out.events.push(PlanEvent {
                    reason: runs::guard::EVENT_REASON,
                    note,
                });
            }
            RunsAction::Restart { why } => {
                let from = match why {
                    RestartReason::CatchUp { .. } => stale_digest(&decisions),
                    RestartReason::Changed { .. } => None,
                }
                .or_else(|| previous.as_ref().map(|p| p.digest().clone()))
                .unwrap_or_else(|| digest.clone());
                self.refresh_to(reference, digest, from, containers);
                self.amend(&image, digest, record_platforms, None);
            }
            RunsAction::Record { why } => {
                let note = match why {
                    RecordReason::Baseline { .. } => {
                        self.out.baselines.push(image.clone());
                        None
                    }
                    RecordReason::Unchanged { why } => Some(why.to_string()),
                };
                self.record(image.clone(), digest);
                self.amend(&image, digest, record_platforms, note);
            }
            RunsAction::Nothing { why } => {
                if let NothingReason::StillStale { pods } = why {
                    self.out.warnings.push(format!(
                        "{image}: pods {pods} still run an older image than {digest}, which freshet already refreshed to; not restarting again"
                    ));
                }
            }
        }
        true
    }

    /// Adds the per-platform digests and the note to the record of `image`, when
    /// the plan recorded `digest` for it.
    fn amend(
        &mut self,
        image: &str,
        digest: &Digest,
        platforms: BTreeMap<String, Option<Digest>>,
        note: Option<String>,
    ) {
        if let Some(r) = self.new.refreshed.get_mut(image)
            && r.digest == digest.as_str()
        {
            r.platforms = platforms;
            r.note = note;
        }
    }

    /// Reports the enrolled containers whose pods cannot pull, whoever caused it:
    /// a failure streak on their image (once per image and run) and a Warning Event.
    pub(super) fn stuck(&mut self) {
        let Some(runs) = self.runs else {
            return;
        };
        for message in &runs.warnings {
            let w = format!("reading what runs: {message}");
            if !self.out.warnings.contains(&w) {
                self.out.warnings.push(w);
            }
        }
        let stuck = runs::stuck_pods(&runs.owned.pods, runs.nodes, None);
        let Some(note) = stuck.message() else {
            return;
        };
        let mut counted = Vec::new();
        let mut enrolled = false;
        for s in &stuck.containers {
            let Some(c) = self
                .workload
                .containers
                .iter()
                .find(|c| c.name == s.container && self.enrollment.covers(&c.name))
            else {
                continue;
            };
            enrolled = true;
            let Ok(r) = Reference::parse(&c.image) else {
                continue;
            };
            let image = r.without_digest().canonical();
            let failed_already = self
                .out
                .transient
                .iter()
                .chain(&self.out.escalations)
                .any(|f| f.image == image);
            if failed_already || counted.contains(&image) {
                continue;
            }
            let class = s.failure_class();
            self.streak(image.clone(), format!("{class}: {note}"));
            counted.push(image);
        }
        if enrolled {
            self.out.events.push(PlanEvent {
                reason: runs::stuck::EVENT_REASON,
                note,
            });
        }
    }
}

/// The action of the container that asks the most: block, then restart, then
/// record, then nothing.
fn strongest(decisions: &[RunsDecision]) -> &RunsAction {
    let rank = |a: &RunsAction| match a {
        RunsAction::Block { .. } => 0,
        RunsAction::Restart { .. } => 1,
        RunsAction::Record { .. } => 2,
        RunsAction::Nothing { .. } => 3,
    };
    decisions
        .iter()
        .map(|d| &d.action)
        .min_by_key(|a| rank(a))
        .expect("at least one decision")
}

/// The first digest stale pods run, for the restart's "from".
fn stale_digest(decisions: &[RunsDecision]) -> Option<Digest> {
    decisions.iter().find_map(|d| match &d.freshness {
        Freshness::Stale { runs, .. } => runs.first().cloned(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{Change, ImageFacts, plan_with_runs};
    use super::*;
    use crate::policy::Facts;
    use crate::refresh::audit::{FAILURES, REFRESHED};
    use crate::refresh::enroll::{CATCH_UP, POLICY, from_annotations};
    use crate::refresh::{Timestamp, Workload, WorkloadKind};
    use crate::runs::target::fixtures::{d, image, index};
    use crate::runs::{
        Intermediate, Node, NodeIndex, NodePlatformRules, OwnerRef, Pod, PodContainer, Scheduling,
        WorkloadKind as Kind, WorkloadRef, pods_of, workload_platforms,
    };

    const IMAGE: &str = "r.example/app:latest";

    fn owner(kind: &str, uid: &str) -> Vec<OwnerRef> {
        vec![OwnerRef {
            kind: kind.into(),
            name: "x".into(),
            uid: uid.into(),
            controller: true,
        }]
    }

    fn node(name: &str, arch: &str) -> Node {
        Node {
            name: name.into(),
            labels: [
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("kubernetes.io/arch".to_owned(), arch.to_owned()),
            ]
            .into_iter()
            .collect(),
            ..Node::default()
        }
    }

    /// One pod of `web` on the arm64 node running `runs`, or stuck when `runs` is
    /// `None`.
    fn pod(runs: Option<&Digest>) -> Pod {
        Pod {
            namespace: "ns".into(),
            name: "web-1".into(),
            owners: owner("ReplicaSet", "rs1"),
            node_name: Some("arm".into()),
            containers: vec![PodContainer {
                name: "app".into(),
                image: IMAGE.into(),
                image_id: runs
                    .map(|d| format!("r.example/app@{d}"))
                    .unwrap_or_default(),
                waiting_reason: runs.is_none().then(|| "ImagePullBackOff".into()),
                waiting_message: runs.is_none().then(|| {
                    "no matching manifest for linux/arm64 in the manifest list entries".into()
                }),
                ..PodContainer::default()
            }],
        }
    }

    fn workload(annotations: &[(&str, String)]) -> Workload {
        Workload {
            kind: WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: "web".into(),
            resource_version: "1".into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .chain([(POLICY.to_owned(), "digest".to_owned())])
                .collect(),
            containers: vec![crate::refresh::Container {
                name: "app".into(),
                image: IMAGE.into(),
                init: false,
                pull_policy: Some("Always".into()),
                env: BTreeMap::new(),
            }],
        }
    }

    /// Plans `w` whose pod runs `runs` (stuck with `None`), the tag naming `target`.
    fn plan(w: &Workload, runs: Option<&Digest>, target: Target) -> super::super::WorkloadPlan {
        let nodes = vec![node("amd", "amd64"), node("arm", "arm64")];
        let index_ = NodeIndex::new(&nodes, &NodePlatformRules::default());
        let pods = vec![pod(runs)];
        let rs = vec![Intermediate {
            kind: "ReplicaSet".into(),
            namespace: "ns".into(),
            name: "x".into(),
            uid: "rs1".into(),
            owners: owner("Deployment", "w1"),
        }];
        let me = WorkloadRef {
            kind: Kind::Deployment,
            namespace: "ns".into(),
            name: "web".into(),
            uid: "w1".into(),
        };
        let owned = pods_of(&me, &rs, &pods);
        let scheduling = Scheduling {
            node_selector: [("kubernetes.io/hostname".to_owned(), "arm".to_owned())]
                .into_iter()
                .collect(),
            ..Scheduling::default()
        };
        let platforms = workload_platforms(&owned.pods, &scheduling, &index_);
        let digest = target.digest().clone();
        let targets = BTreeMap::from([(IMAGE.to_owned(), target)]);
        let facts = RunsFacts {
            owned,
            platforms,
            nodes: &index_,
            targets: &targets,
            warnings: vec![],
        };
        let image_facts: ImageFacts = BTreeMap::from([(
            IMAGE.to_owned(),
            Facts {
                tags: None,
                digests: BTreeMap::from([("latest".to_owned(), Ok(digest))]),
            },
        )]);
        let e = from_annotations(&w.annotations).unwrap().unwrap();
        let now = Timestamp::parse("2026-11-28T10:00:00Z").unwrap();
        plan_with_runs(w, &e, &image_facts, Some(&facts), now)
    }

    fn restarts(p: &super::super::WorkloadPlan) -> Vec<(Digest, Digest)> {
        p.changes
            .iter()
            .filter_map(|c| match c {
                Change::Restart { from, to, .. } => Some((from.clone(), to.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stale_pods_are_caught_up_on_first_sight_unless_catch_up_is_false() {
        let target = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
        let p = plan(&workload(&[]), Some(&d(9)), target.clone());
        assert_eq!(restarts(&p), [(d(9), d(1))]);
        let record = p.annotations[REFRESHED].as_ref().unwrap();
        assert!(
            record.contains(&format!("\"linux/arm64\":\"{}\"", d(3))),
            "{record}"
        );

        let off = workload(&[(CATCH_UP, "false".into())]);
        let p = plan(&off, Some(&d(9)), target.clone());
        assert!(p.changes.is_empty() && p.baselines == [IMAGE], "{p:?}");

        let current = plan(&workload(&[]), Some(&d(1)), target);
        assert!(current.changes.is_empty() && current.baselines == [IMAGE]);
    }

    #[test]
    fn a_target_without_the_running_platform_is_blocked_with_a_platform_streak() {
        let p = plan(&workload(&[]), Some(&d(9)), image(1, Some("linux/amd64")));
        assert!(p.changes.is_empty(), "{p:?}");
        assert_eq!(p.transient.len(), 1);
        assert!(p.transient[0].message.starts_with("platform: "));
        assert_eq!(p.events[0].reason, "ImagePlatformMissing");
        assert!(
            p.events[0].note.contains("linux/arm64 (running on arm)"),
            "{:?}",
            p.events
        );
        assert!(!p.annotations.contains_key(REFRESHED), "nothing recorded");
        assert_eq!(
            p.annotations[FAILURES].as_deref(),
            Some(&*format!("{{\"{IMAGE}\":1}}"))
        );
    }

    #[test]
    fn an_index_moved_for_other_platforms_only_is_recorded_with_why_and_not_restarted() {
        let recorded = format!(
            "{{\"{IMAGE}\":{{\"digest\":\"{}\",\"at\":\"x\",\"platforms\":{{\"linux/arm64\":\"{}\"}}}}}}",
            d(1),
            d(3)
        );
        let w = workload(&[(REFRESHED, recorded)]);
        let moved = index(4, &[("linux/amd64", 5), ("linux/arm64", 3)]);
        let p = plan(&w, Some(&d(1)), moved);
        assert!(p.changes.is_empty(), "{p:?}");
        let record = p.annotations[REFRESHED].as_ref().unwrap();
        assert!(record.contains(&d(4).to_string()), "{record}");
        assert!(record.contains("nothing restarted"), "{record}");

        let arm_moved = index(6, &[("linux/amd64", 2), ("linux/arm64", 7)]);
        let p = plan(&w, Some(&d(1)), arm_moved);
        assert_eq!(restarts(&p), [(d(1), d(6))]);
    }

    #[test]
    fn stuck_pods_are_a_streak_and_a_warning_event_whoever_caused_them() {
        let target = index(1, &[("linux/amd64", 2), ("linux/arm64", 3)]);
        let p = plan(&workload(&[]), None, target);
        assert_eq!(p.transient.len(), 1, "{p:?}");
        assert!(p.transient[0].message.starts_with("platform: "));
        let stuck = p
            .events
            .iter()
            .find(|e| e.reason == "ImagePullFailing")
            .unwrap();
        assert!(stuck.note.contains("ImagePullBackOff"), "{}", stuck.note);
    }
}
