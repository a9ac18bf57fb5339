//! The runbook commands against the cluster: `freshet rollback`, `pin`, `hold`,
//! `release` and `approve`.
//!
//! Owns the order of one command: read the workload (and, as the command needs,
//! the digests its pods run, a Deployment's revision, the registry's answer for a
//! rollback target), let `freshet_core::safety::command` decide, then send one
//! strategic-merge patch carrying the `resourceVersion` the decision was made on
//! and record an Event. A rollback target the registry does not have is refused
//! before any write. A `409 Conflict` is not retried: someone else (another
//! command, a freshet pass) changed the workload since it was read, so the command
//! fails saying so and nothing of it is written; of two concurrent rollbacks of one
//! workload exactly one wins. [`Commander::prepare`] and [`Commander::apply`] are
//! the two halves (a dry run stops after the first). Must not decide anything
//! itself, nor write anywhere but through its one patch and Event.

pub mod facts;
pub mod patch;

use std::collections::BTreeMap;
use std::sync::Arc;

use freshet_core::refresh::config::keel_labels_under;
use freshet_core::safety::approval::{APPROVAL, ApprovalPolicy, ApprovalRequest};
use freshet_core::safety::command::{self as decide, PIN, Pin, Target};
use freshet_core::safety::hold::{HOLD, Holds};
use freshet_core::safety::{Container, Restore, Rollback};
use freshet_core::{Digest, Reference};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use serde::Serialize;
use serde_json::Value;

use crate::clock::{SharedClock, SystemClock};
use crate::events::{Events, Regarding};
use crate::gather::{BoxError, RegistryFactory};
use crate::workloads::{self, ReadWorkload, kind_name};
use crate::writer::FIELD_MANAGER;

/// The reason of the Event a rollback records.
pub const ROLLED_BACK: &str = "RolledBack";
/// The reason of the Event `freshet pin` records.
pub const PINNED: &str = "ImagePinned";
/// The reason of the Event `freshet hold` records.
pub const HELD: &str = "DigestHeld";
/// The reason of the Event `freshet release` records.
pub const RELEASED: &str = "HoldReleased";
/// The reason of the Event `freshet approve` records.
pub const APPROVED: &str = "UpdateApproved";

/// Why a command failed (nothing of it was written unless it says so).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command does not fit the workload (see the core's message).
    #[error(transparent)]
    Refused(#[from] decide::CommandError),
    /// The workload does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
    },
    /// Reading from the API failed.
    #[error("reading {what} failed")]
    Read {
        /// What was read.
        what: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The workload came back malformed.
    #[error(transparent)]
    Workload(#[from] workloads::WorkloadError),
    /// `--to-revision N` cannot be used.
    #[error("revision {revision}: {reason}")]
    Revision {
        /// The revision asked for.
        revision: u64,
        /// Why not.
        reason: String,
    },
    /// The registry does not have the rollback target.
    #[error(
        "the registry has no {reference}: refusing to roll back to it (nothing was written); check the digest with freshet resolve"
    )]
    UnknownDigest {
        /// The reference asked about.
        reference: String,
    },
    /// The registry could not be asked.
    #[error("checking {reference} in the registry failed; nothing was written")]
    Registry {
        /// The reference asked about.
        reference: String,
        /// The registry error (names the host and the cause).
        #[source]
        source: Box<freshet_registry::RegistryError>,
    },
    /// No registry client could be built.
    #[error("building the registry client failed")]
    RegistryClient(#[source] BoxError),
    /// A freshet annotation on the workload (hold, pin, approvals) is invalid.
    #[error("{0}")]
    Settings(String),
    /// `freshet approve` has nothing to approve.
    #[error("nothing to approve: {0}")]
    NoApproval(String),
    /// The workload changed since it was read.
    #[error(
        "{kind} {namespace}/{name} changed since it was read (another command or a freshet pass wrote it); nothing was written: run the command again"
    )]
    Conflict {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The API refused the patch.
    #[error("the patch was refused")]
    Patch(#[source] Box<kube::Error>),
}

impl CommandError {
    /// Whether running the command again may succeed (a conflict, an unreachable
    /// API or registry).
    pub fn is_transient(&self) -> bool {
        match self {
            CommandError::Conflict { .. } | CommandError::Read { .. } => true,
            CommandError::Registry { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

/// Where `freshet rollback` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTo {
    /// `--to DIGEST`.
    Digest(Digest),
    /// `--to-revision N`: the digest that Deployment revision ran.
    Revision(u64),
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Restore a digest, pin it and hold what runs now.
    Rollback {
        /// `--container`.
        container: Option<String>,
        /// The target.
        to: RollbackTo,
    },
    /// Pin what runs and stop tracking until `release`.
    Pin {
        /// `--container`.
        container: Option<String>,
    },
    /// Hold a digest.
    Hold {
        /// `--container`.
        container: Option<String>,
        /// The digest.
        digest: Digest,
    },
    /// Remove pins and holds.
    Release {
        /// `--container`.
        container: Option<String>,
    },
    /// Approve the pending update.
    Approve {
        /// Who approves.
        by: String,
    },
}

impl Command {
    /// The command's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Rollback { .. } => "rollback",
            Command::Pin { .. } => "pin",
            Command::Hold { .. } => "hold",
            Command::Release { .. } => "release",
            Command::Approve { .. } => "approve",
        }
    }

    fn reason(&self) -> (&'static str, EventType) {
        match self {
            Command::Rollback { .. } => (ROLLED_BACK, EventType::Warning),
            Command::Pin { .. } => (PINNED, EventType::Normal),
            Command::Hold { .. } => (HELD, EventType::Normal),
            Command::Release { .. } => (RELEASED, EventType::Normal),
            Command::Approve { .. } => (APPROVED, EventType::Normal),
        }
    }
}

/// One image change a command makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    /// The container.
    pub container: String,
    /// An init container.
    pub init: bool,
    /// The image before.
    pub from: String,
    /// The image after.
    pub to: String,
}

/// What a command did (or, in a dry run, would do): its `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct CommandReport {
    /// `rollback`, `pin`, `hold`, `release`, `approve`.
    pub command: &'static str,
    /// The workload's kind.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// A dry run: nothing written.
    pub dry_run: bool,
    /// Whether the patch was sent and accepted.
    pub written: bool,
    /// The image changes.
    pub changes: Vec<ImageChange>,
    /// The annotations set (a value) or removed (`null`).
    pub annotations: BTreeMap<String, Option<String>>,
    /// What the Event says.
    pub note: String,
}

/// A decided command, not yet written.
#[derive(Debug, Clone)]
pub struct Prepared {
    read: ReadWorkload,
    command: Command,
    body: Value,
    /// The report (`written: false` until applied).
    pub report: CommandReport,
}

/// Runs commands with one Kubernetes client, a registry client factory (for the
/// rollback target check, with the workload's pull secrets) and a clock.
#[derive(Clone)]
pub struct Commander {
    kube: kube::Client,
    registry: RegistryFactory,
    events: Events,
    clock: SharedClock,
}

impl std::fmt::Debug for Commander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commander")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Commander {
    /// A commander on the wall clock whose Events name `instance`.
    pub fn new(kube: kube::Client, registry: RegistryFactory, instance: &str) -> Self {
        Self {
            events: Events::new(kube.clone(), instance),
            kube,
            registry,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same commander reading the time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Reads, decides and writes one command (`dry_run`: reads and decides only).
    pub async fn run(
        &self,
        target: &Target,
        command: Command,
        dry_run: bool,
    ) -> Result<CommandReport, CommandError> {
        let prepared = self.prepare(target, command).await?;
        if dry_run {
            let mut report = prepared.report;
            report.dry_run = true;
            return Ok(report);
        }
        self.apply(prepared).await
    }

    /// Reads the workload and what the command needs, and decides.
    pub async fn prepare(
        &self,
        target: &Target,
        command: Command,
    ) -> Result<Prepared, CommandError> {
        let object = workloads::api(&self.kube, target.kind, Some(&target.namespace))
            .get(&target.name)
            .await
            .map_err(|source| match source {
                kube::Error::Api(s) if s.code == 404 => CommandError::NotFound {
                    kind: kind_name(target.kind),
                    namespace: target.namespace.clone(),
                    name: target.name.clone(),
                },
                source => CommandError::Read {
                    what: format!(
                        "{} {}/{}",
                        kind_name(target.kind),
                        target.namespace,
                        target.name
                    ),
                    source: Box::new(source),
                },
            })?;
        let read = workloads::from_object(target.kind, &object)?;
        let (decision, note) = self.decide(&read, &object, &command).await?;
        let body = patch::body(&read.workload, &decision.restores, &decision.annotations);
        let w = &read.workload;
        let report = CommandReport {
            command: command.name(),
            kind: kind_name(w.kind),
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            dry_run: false,
            written: false,
            changes: decision.restores.iter().filter_map(image_change).collect(),
            annotations: decision.annotations,
            note,
        };
        Ok(Prepared {
            read,
            command,
            body,
            report,
        })
    }

    /// Sends the prepared patch (with its `resourceVersion`) and records the Event.
    pub async fn apply(&self, prepared: Prepared) -> Result<CommandReport, CommandError> {
        let Prepared {
            read,
            command,
            body,
            mut report,
        } = prepared;
        if report.changes.is_empty() && report.annotations.is_empty() {
            return Ok(report);
        }
        let w = &read.workload;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        workloads::api(&self.kube, w.kind, Some(&w.namespace))
            .patch(&w.name, &params, &Patch::Strategic(&body))
            .await
            .map_err(|source| match source {
                kube::Error::Api(s) if s.code == 409 => CommandError::Conflict {
                    kind: kind_name(w.kind),
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                    source: Box::new(kube::Error::Api(s)),
                },
                source => CommandError::Patch(Box::new(source)),
            })?;
        report.written = true;
        let (reason, type_) = command.reason();
        tracing::info!(
            command = command.name(), kind = report.kind, namespace = %w.namespace,
            name = %w.name, note = %report.note, "command written"
        );
        let regarding = Regarding {
            kind: w.kind,
            namespace: &w.namespace,
            name: &w.name,
            uid: read.uid.as_deref(),
        };
        if let Err(e) = self
            .events
            .publish(&regarding, type_, reason, &report.note)
            .await
        {
            tracing::warn!(error = %crate::errors::error_chain(&e), "event not recorded");
        }
        Ok(report)
    }

    /// The core's decision for `command` on `read`, and the Event's note.
    async fn decide(
        &self,
        read: &ReadWorkload,
        object: &kube::api::DynamicObject,
        command: &Command,
    ) -> Result<(Rollback, String), CommandError> {
        let now = self.clock.now().utc();
        let annotations = &read.workload.annotations;
        let containers = containers(read);
        let holds = Holds::parse(annotations.get(HOLD).map(String::as_str))
            .map_err(|e| CommandError::Settings(e.to_string()))?;
        let pin = Pin::parse(annotations.get(PIN).map(String::as_str))
            .map_err(|e| CommandError::Settings(e.to_string()))?;
        let selector = facts::selector(object);
        match command {
            Command::Rollback { container, to } => {
                let selected = decide::select(&containers, container.as_deref())?;
                let to = match to {
                    RollbackTo::Digest(d) => d.clone(),
                    RollbackTo::Revision(n) => {
                        let first = selected.first().map(|c| c.name.as_str()).unwrap_or("");
                        facts::revision_digest(&self.kube, read.workload.kind, object, *n, first)
                            .await?
                    }
                };
                if let Some(c) = selected.first() {
                    self.check_exists(read, c, &to).await?;
                }
                let running =
                    facts::running(&self.kube, &read.workload.namespace, selector.as_deref())
                        .await?;
                let r = decide::rollback(&selected, &to, &running, &holds, now)?;
                let note = rollback_note(&r, &to);
                Ok((r, note))
            }
            Command::Pin { container } => {
                let selected = decide::select(&containers, container.as_deref())?;
                let running =
                    facts::running(&self.kube, &read.workload.namespace, selector.as_deref())
                        .await?;
                let r = decide::pin(&selected, &running, pin.as_ref(), now)?;
                let note = format!(
                    "pinned what runs ({}); freshet stops tracking this workload until `freshet release`",
                    changes_text(&r)
                );
                Ok((r, note))
            }
            Command::Hold { container, digest } => {
                let selected = decide::select(&containers, container.as_deref())?;
                let r = decide::hold(&selected, digest, &holds, now)?;
                let repos: Vec<String> = selected
                    .iter()
                    .filter_map(|c| decide::repository(c).ok())
                    .collect();
                let note = format!(
                    "held {digest} for {}: freshet will not roll it out",
                    repos.join(", ")
                );
                Ok((r, note))
            }
            Command::Release { container } => {
                let only = match container {
                    Some(name) => Some(decide::select(&containers, Some(name))?),
                    None => None,
                };
                let r = decide::release(&containers, only.as_deref(), pin.as_ref(), &holds)?;
                let note = format!("released pins and holds; {}", changes_text(&r));
                Ok((r, note))
            }
            Command::Approve { by } => approve(read, by, now),
        }
    }

    /// Refuses a rollback target the registry does not have (asked with the
    /// workload's pull secrets).
    async fn check_exists(
        &self,
        read: &ReadWorkload,
        c: &Container,
        to: &Digest,
    ) -> Result<(), CommandError> {
        let repo = decide::repository(c)?;
        let reference = format!("{repo}@{to}");
        let parsed = Reference::parse(&reference).map_err(|_| decide::CommandError::Image {
            container: c.name.clone(),
            image: c.image.clone(),
        })?;
        let secrets = crate::secrets::Reader::new(self.kube.clone())
            .for_workload(read)
            .await;
        let tokens = freshet_registry::SharedTokens::default();
        let client =
            (self.registry)(&secrets.secrets, &tokens).map_err(CommandError::RegistryClient)?;
        match client
            .resolve(&parsed, &freshet_registry::Want::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.class() == freshet_registry::ErrorClass::NotFound => {
                Err(CommandError::UnknownDigest { reference })
            }
            Err(source) => Err(CommandError::Registry {
                reference,
                source: Box::new(source),
            }),
        }
    }
}

/// `freshet approve`: `by`'s approval of the pending request.
fn approve(
    read: &ReadWorkload,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Rollback, String), CommandError> {
    let settings = keel_labels_under(&read.workload.annotations, &read.labels);
    let settings_error =
        |e: freshet_core::safety::approval::ApprovalError| CommandError::Settings(e.to_string());
    let policy = ApprovalPolicy::from_annotations(&settings)
        .map_err(settings_error)?
        .ok_or_else(|| {
            CommandError::NoApproval(
                "the workload asks for no approvals (keel.sh/approvals or freshet.io/approvals)"
                    .into(),
            )
        })?;
    let request =
        ApprovalRequest::parse(read.workload.annotations.get(APPROVAL).map(String::as_str))
            .map_err(settings_error)?
            .ok_or_else(|| {
                CommandError::NoApproval(
                    "no update waits for approval yet (the next pass that finds one asks for it)"
                        .into(),
                )
            })?;
    let approved = request.approve(by, &policy, now).map_err(settings_error)?;
    let note = format!(
        "approved by {}: {} ({} of {})",
        by.trim(),
        approved.target,
        approved.approved_by.len(),
        policy.required
    );
    let mut out = Rollback::default();
    if approved != request {
        out.annotations
            .insert(APPROVAL.into(), Some(approved.render()));
    }
    Ok((out, note))
}

fn containers(read: &ReadWorkload) -> Vec<Container> {
    read.workload
        .containers
        .iter()
        .map(|c| Container {
            name: c.name.clone(),
            init: c.init,
            image: c.image.clone(),
            env: c.env.clone(),
        })
        .collect()
}

fn image_change(r: &Restore) -> Option<ImageChange> {
    match r {
        Restore::Image {
            container,
            init,
            from,
            to,
        } => Some(ImageChange {
            container: container.clone(),
            init: *init,
            from: from.clone(),
            to: to.clone(),
        }),
        Restore::Env { .. } => None,
    }
}

fn changes_text(r: &Rollback) -> String {
    let lines: Vec<String> = r
        .restores
        .iter()
        .filter_map(image_change)
        .map(|c| format!("{}: {} -> {}", c.container, c.from, c.to))
        .collect();
    if lines.is_empty() {
        "no image changed".into()
    } else {
        lines.join("; ")
    }
}

fn rollback_note(r: &Rollback, to: &Digest) -> String {
    let held: Vec<String> = r
        .holds
        .0
        .iter()
        .flat_map(|(repo, h)| h.digests.iter().map(move |d| format!("{repo}@{d}")))
        .collect();
    format!(
        "rolled back to {to} ({}); held: {}",
        changes_text(r),
        if held.is_empty() {
            "nothing".into()
        } else {
            held.join(", ")
        }
    )
}
