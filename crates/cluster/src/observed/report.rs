//! What `freshet status` shows of what runs: per container of a tracked image, the
//! core's [`RunsReport`] (the digests the pods run and on which platforms, stuck
//! pulls, and the freshness against what the tag names now and what was recorded).
//!
//! Owns the choice of targets handed to the core: the full target the pass resolved
//! when the tag moved, else the recorded one (which answers for the platforms it
//! recorded). Must not decide anything: [`runs_report`] does.

use std::collections::BTreeMap;

use freshet_core::Digest;
use freshet_core::refresh::Workload;
use freshet_core::refresh::audit::Audit;
use freshet_core::runs::{NodeIndex, OwnedPods, Resolved, RunsReport, Target, runs_report};

/// The reports of `containers` of `workload` that run the tracked `image`
/// (canonical), whose tag names `current` now (when resolved); `targets` holds the
/// full targets of the workload's set.
pub fn container_reports(
    workload: &Workload,
    image: &str,
    containers: &[String],
    current: Option<&str>,
    owned: &OwnedPods<'_>,
    nodes: &NodeIndex<'_>,
    targets: &BTreeMap<String, Target>,
) -> Vec<RunsReport> {
    let audit = Audit::read(&workload.annotations);
    let recorded: Option<Target> = audit.record(image).and_then(|r| {
        Some(Target::recorded(
            Digest::parse(&r.digest).ok()?,
            &r.platforms,
        ))
    });
    let now: Option<Target> = match (targets.get(image), &recorded, current) {
        (Some(t), _, Some(c)) if t.digest().as_str() == c => Some(t.clone()),
        (_, Some(r), Some(c)) if r.digest().as_str() == c => Some(r.clone()),
        (_, _, Some(c)) => Digest::parse(c).ok().map(|d| Target::Image {
            digest: d,
            platform: None,
        }),
        _ => None,
    };
    let known: Vec<Target> = recorded.into_iter().collect();
    containers
        .iter()
        .filter_map(|name| {
            let c = workload.containers.iter().find(|c| &c.name == name)?;
            let resolved = now.as_ref().map(|target| Resolved {
                target,
                known: &known,
            });
            Some(runs_report(name, &c.image, owned, nodes, resolved))
        })
        .collect()
}
