//! Notifications as values: what happened in a pass ([`Event`], [`Level`],
//! [`EventKind`]), where to send it ([`config`]: the `notifications` section of the
//! config file, validated), and what each sink receives ([`render`]: one bounded,
//! escaped message per sink per pass).
//!
//! Owns the event vocabulary, per-sink filtering by level and kind, the escaping of
//! text that comes from outside (image names, registry error messages) and the
//! payload shapes documented in `docs/notifications.md`.
//!
//! Must not send anything, read a secret, a file, an env var or the clock: the shell
//! crate `freshet-notify` resolves secrets, signs and delivers; the time of a message
//! is passed in.

pub mod config;
pub mod event;
pub mod render;

pub use config::{NotifyConfig, NotifyConfigError, SecretSource, SinkConfig, SinkKind};
pub use event::{Batch, Event, EventKind, Level};
