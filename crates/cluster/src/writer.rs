//! The one place that writes to the cluster: workload patches and Events.
//!
//! Owns the sending of a plan's strategic-merge patch under freshet's field
//! manager (the patch carries its `resourceVersion` precondition, so a `409
//! Conflict` comes back as [`WriteError::Conflict`] for the pass to re-read and
//! re-plan; a patch that takes longer than the writer's timeout is abandoned as
//! [`WriteError::Timeout`], transient too, since it may or may not have applied;
//! the answer is read as a slim object), and the Events (each within the same
//! timeout) and log lines that follow a write ([`Writer::announce`])
//! or an invalid workload ([`Writer::invalid`]). Must not decide anything: it
//! performs a [`WorkloadPlan`] computed by the core, and never retries on its own.
//! A failed Event is logged, never an error of the pass.

use std::time::Duration;

use freshet_core::refresh::{Timestamp, Workload, WorkloadPlan};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;

use crate::errors::error_chain;
use crate::events::{self, Events, Regarding};
use crate::metrics::api::ApiWrites;
use crate::report::ChangeReport;
use crate::watch::WorkloadStore;
use crate::workloads::{self, ReadWorkload, kind_name};

/// The field manager freshet's patches are recorded under.
pub const FIELD_MANAGER: &str = "freshet";

/// Why a patch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The workload changed since it was read (`409 Conflict`): read it again.
    #[error("patching {kind} {namespace}/{name} failed: it changed since it was read")]
    Conflict {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API refused or failed the patch.
    #[error("patch failed")]
    Patch {
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The patch took longer than the timeout (it may or may not have applied).
    #[error("patching {kind} {namespace}/{name} took longer than {}s", after.as_secs())]
    Timeout {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The timeout.
        after: Duration,
    },
}

impl WriteError {
    /// Whether reading the workload again and retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::Timeout { .. })
    }
}

/// Writes patches and Events with one client; clones share the Event memory.
#[derive(Clone)]
pub struct Writer {
    kube: kube::Client,
    events: Events,
    counts: ApiWrites,
    timeout: Duration,
    /// The controller's workload store, told of every write ([`WorkloadStore::wrote`]).
    store: Option<WorkloadStore>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer whose Events name `instance` as the reporting instance, and whose
    /// every request is abandoned after `timeout`.
    pub fn new(kube: kube::Client, instance: &str, timeout: Duration) -> Self {
        Self {
            events: Events::new(kube.clone(), instance),
            kube,
            counts: ApiWrites::default(),
            timeout,
            store: None,
        }
    }

    /// The same writer stamping its Events with `clock`'s time.
    pub fn with_clock(mut self, clock: crate::clock::SharedClock) -> Self {
        self.events = self.events.with_clock(clock);
        self
    }

    /// The Events recorder (shared with the Applications' writes).
    pub(crate) fn events(&self) -> &Events {
        &self.events
    }

    /// The same writer keeping what it writes in `store` (the controller mode).
    pub fn keeping_in(mut self, store: WorkloadStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The same writer counting its writes into `counts`.
    pub fn counting(mut self, counts: ApiWrites) -> Self {
        self.counts = counts;
        self
    }

    /// Sends the patch that performs `plan` on `w` at `now` (nothing when the plan
    /// is empty; returns whether a patch was sent).
    pub async fn patch(
        &self,
        w: &Workload,
        plan: &WorkloadPlan,
        now: Timestamp,
    ) -> Result<bool, WriteError> {
        let Some(body) = plan.patch(w, now) else {
            return Ok(false);
        };
        self.patch_body(w, &body).await
    }

    /// Sends a strategic-merge patch computed elsewhere (a rollback's, which may
    /// also pause the Deployment); it must carry the `resourceVersion` precondition.
    pub async fn patch_body(
        &self,
        w: &Workload,
        body: &serde_json::Value,
    ) -> Result<bool, WriteError> {
        let api = workloads::slim_api(&self.kube, w.kind, Some(&w.namespace));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let sent = tokio::time::timeout(
            self.timeout,
            api.patch(&w.name, &params, &Patch::Strategic(body)),
        )
        .await;
        let outcome = match &sent {
            Ok(Ok(_)) => "ok",
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => "conflict",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        self.counts.count("patch", outcome);
        let sent = sent.map_err(|_| WriteError::Timeout {
            kind: kind_name(w.kind),
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            after: self.timeout,
        })?;
        match sent {
            Ok(written) => {
                if let Some(store) = &self.store {
                    match workloads::from_slim(w.kind, written) {
                        Ok(read) => store.wrote(&w.resource_version, read),
                        Err(e) => tracing::debug!(error = %e, "written workload not kept"),
                    }
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(WriteError::Conflict {
                kind: kind_name(w.kind),
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                source: kube::Error::Api(s),
            }),
            Err(source) => Err(WriteError::Patch { source }),
        }
    }

    /// Events and log lines after `plan` was written to `read`.
    pub async fn announce(&self, read: &ReadWorkload, plan: &WorkloadPlan) {
        let w = &read.workload;
        let regarding = regarding(read);
        for change in plan.changes.iter().map(ChangeReport::of) {
            tracing::info!(
                event = events::REFRESHED,
                kind = kind_name(w.kind), namespace = %w.namespace, name = %w.name,
                action = change.action, image = %change.image, containers = ?change.containers,
                var = change.var.as_deref(), from = %change.from, to = %change.to,
                "refreshed"
            );
            let note = refreshed_note(&change);
            self.event(&regarding, EventType::Normal, events::REFRESHED, &note)
                .await;
        }
        for e in &plan.events {
            self.event(&regarding, EventType::Warning, e.reason, &e.note)
                .await;
        }
        for e in &plan.escalations {
            let note = format!(
                "{}: resolve failures in a row reached the threshold: {}",
                e.image, e.message
            );
            self.event(&regarding, EventType::Warning, events::FAILED, &note)
                .await;
        }
    }

    /// The Warning Event on a workload whose freshet annotations are invalid.
    pub async fn invalid(&self, read: &ReadWorkload, message: &str) {
        let note = format!("freshet skips this workload: {message}");
        self.event(&regarding(read), EventType::Warning, events::INVALID, &note)
            .await;
    }

    /// An Event of `type_` and `reason` on `read` (the pass's gate, a rollback's
    /// `RolledBack`).
    pub async fn note(
        &self,
        read: &ReadWorkload,
        type_: EventType,
        reason: &'static str,
        note: &str,
    ) {
        self.event(&regarding(read), type_, reason, note).await;
    }

    async fn event(
        &self,
        regarding: &Regarding<'_>,
        type_: EventType,
        reason: &'static str,
        note: &str,
    ) {
        let published = tokio::time::timeout(
            self.timeout,
            self.events.publish(regarding, type_, reason, note),
        )
        .await;
        match published {
            Ok(Ok(())) => self.counts.count("event", "ok"),
            Ok(Err(e)) => {
                self.counts.count("event", "error");
                tracing::warn!(error = %error_chain(&e), "event not recorded");
            }
            Err(_) => {
                self.counts.count("event", "timeout");
                tracing::warn!(
                    timeout_seconds = self.timeout.as_secs(),
                    "event not recorded: it took longer than the write timeout"
                );
            }
        }
    }
}

fn regarding(read: &ReadWorkload) -> Regarding<'_> {
    Regarding {
        kind: read.workload.kind,
        namespace: &read.workload.namespace,
        name: &read.workload.name,
        uid: read.uid.as_deref(),
    }
}

/// The note of an `ImageRefreshed` event.
fn refreshed_note(change: &ChangeReport) -> String {
    match &change.var {
        Some(var) => format!(
            "{var} on container {} now follows {}: {} -> {}",
            change.containers.join(","),
            change.image,
            if change.from.is_empty() {
                "(unset)"
            } else {
                &change.from
            },
            change.to
        ),
        None => format!(
            "{} {} on containers {}: {} -> {}",
            change.action,
            change.image,
            change.containers.join(","),
            change.from,
            change.to
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshed_notes_say_what_moved() {
        let restart = ChangeReport {
            action: "restart",
            containers: vec!["api".into(), "worker".into()],
            image: "ghcr.io/a/api:stable".into(),
            var: None,
            from: "sha256:1".into(),
            to: "sha256:2".into(),
        };
        assert_eq!(
            refreshed_note(&restart),
            "restart ghcr.io/a/api:stable on containers api,worker: sha256:1 -> sha256:2"
        );
        let env = ChangeReport {
            action: "set-env",
            containers: vec!["api".into()],
            image: "ghcr.io/a/ing:1".into(),
            var: Some("D".into()),
            from: String::new(),
            to: "sha256:3".into(),
        };
        assert_eq!(
            refreshed_note(&env),
            "D on container api now follows ghcr.io/a/ing:1: (unset) -> sha256:3"
        );
    }
}
