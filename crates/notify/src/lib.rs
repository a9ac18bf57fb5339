//! freshet's notification shell: sends the messages `freshet_core::notify` renders
//! to Slack-compatible incoming webhooks and to generic JSON webhooks signed with
//! HMAC-SHA256 (see `docs/notifications.md`).
//!
//! Owns reading the sinks' secrets from files or env vars ([`sink`]), the signature
//! scheme and its reference verifier ([`sign`]), one HTTP delivery with bounded,
//! jittered retries ([`deliver`]) and the background [`Notifier`] with its bounded
//! per-sink queues and counters ([`notifier`]).
//!
//! Must never stall or fail a pass: [`Notifier::notify`] does not wait, and a pass
//! that ends the process calls [`Notifier::flush`] with a deadline. Must never put a
//! secret (a Slack URL, an HMAC key, a webhook URL's path) in a message, a log line,
//! an error or a `Debug` output.
#![forbid(unsafe_code)]

pub mod deliver;
pub mod notifier;
pub mod sign;
pub mod sink;

pub use deliver::{Backoff, DeliveryError};
pub use notifier::{FlushReport, Metrics, Notifier, NotifierError, NotifierOptions};
pub use sign::{SIGNATURE_HEADER, VerifyError, sign, verify};
pub use sink::{Sink, SinkError, load};
