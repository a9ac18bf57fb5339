//! freshet's file-mode shell: scanning, atomic writes, git commit and push.
//!
//! Owns the imperative half of `freshet plan` / `freshet apply`: walking the given paths
//! ([`walk`]), reading files, asking a [`FactSource`] for exactly the registry facts each
//! tracked reference needs, and handing everything to the pure planner in
//! `freshet_core::files` ([`plan()`]); writing the planned edits atomically, never
//! through a symbolic link out of the repository ([`apply()`], [`write_atomic`],
//! [`write_within`]); and committing and pushing them with the system `git` ([`Git`]),
//! every git process bounded in time and output.
//!
//! Must not decide anything: which references change and how is `freshet-core`'s job.
//! Must not put credentials in argv, URLs or logs: git gets them from the environment,
//! and everything relayed from git is scrubbed ([`redact`]).
#![forbid(unsafe_code)]

mod cache;
pub mod facts;
pub mod git;
pub mod journal;
pub mod message;
pub mod plan;
pub mod read;
pub mod redact;
pub mod remote;
pub mod walk;
pub mod write;

pub use facts::{FactError, FactSource};
pub use git::{
    DEFAULT_MESSAGE, DEFAULT_TIMEOUT, Git, GitError, GitToken, PushOutcome, render_message,
};
pub use plan::{ApplyReport, FilePlan, PlanOptions, PlanReport, apply, plan};
pub use read::{MAX_FILE_BYTES, read_bounded, read_text_bounded};
pub use remote::{RemoteError, validate_branch, validate_remote};
pub use walk::{Skipped, walk, walk_all};
pub use write::{WriteError, resolve_within, sweep_stale_temps, write_atomic, write_within};
