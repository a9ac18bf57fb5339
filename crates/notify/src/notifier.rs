//! The background notifier: one bounded queue and one delivery task per sink, so a
//! slow or dead sink delays only itself and never the pass.
//!
//! Owns the queues (full: the oldest message is dropped and counted), the delivery
//! counters ([`Metrics`]) and [`Notifier::flush`] for runs that end the process.
//! Must not block in [`Notifier::notify`] nor return delivery errors to the pass:
//! failures are logged (without secrets) and counted.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use freshet_core::notify::Batch;
use freshet_core::notify::render::{Message, render};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::deliver::{Backoff, deliver};
use crate::sink::Sink;

/// The `sink` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SinkLabel {
    /// The sink's name.
    pub sink: String,
}

/// The `sink` and `class` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabels {
    /// The sink's name.
    pub sink: String,
    /// [`crate::DeliveryError::class`].
    pub class: String,
}

/// Delivery counters. Clones share the same counters; register them once.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Messages delivered (`freshet_notifications_sent_total{sink}`).
    pub sent: Family<SinkLabel, Counter>,
    /// Messages given up on after retries
    /// (`freshet_notifications_failed_total{sink,class}`).
    pub failed: Family<FailureLabels, Counter>,
    /// Messages dropped because the sink's queue was full
    /// (`freshet_notifications_dropped_total{sink}`).
    pub dropped: Family<SinkLabel, Counter>,
}

impl Metrics {
    /// Registers the counters (prometheus-client adds the `_total` suffix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "freshet_notifications_sent",
            "Notification messages delivered, by sink",
            self.sent.clone(),
        );
        registry.register(
            "freshet_notifications_failed",
            "Notification messages not delivered after retries, by sink and failure class",
            self.failed.clone(),
        );
        registry.register(
            "freshet_notifications_dropped",
            "Notification messages dropped because the sink's queue was full, by sink",
            self.dropped.clone(),
        );
    }

    /// Messages delivered to `sink`.
    pub fn sent(&self, sink: &str) -> u64 {
        self.sent.get_or_create(&label(sink)).get()
    }

    /// Messages to `sink` that failed with `class`.
    pub fn failed(&self, sink: &str, class: &str) -> u64 {
        self.failed
            .get_or_create(&FailureLabels {
                sink: sink.to_owned(),
                class: class.to_owned(),
            })
            .get()
    }

    /// Messages to `sink` dropped from a full queue.
    pub fn dropped(&self, sink: &str) -> u64 {
        self.dropped.get_or_create(&label(sink)).get()
    }
}

fn label(sink: &str) -> SinkLabel {
    SinkLabel {
        sink: sink.to_owned(),
    }
}

/// Notifier settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierOptions {
    /// Messages waiting per sink before the oldest is dropped (default 32, min 1).
    pub queue: usize,
    /// Retry delays.
    pub backoff: Backoff,
    /// Connect timeout (default 5 s; the per-request timeout is the sink's).
    pub connect_timeout: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            queue: 32,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The HTTP client could not be built.
    #[error("cannot initialise the notifications HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// What [`Notifier::flush`] left undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Messages still queued or being sent when the deadline passed (0: all done).
    pub pending: usize,
}

struct Queue {
    sink: Sink,
    messages: Mutex<VecDeque<Message>>,
    /// Queued plus in flight.
    pending: AtomicUsize,
    wake: Notify,
}

struct Shared {
    cluster: Option<String>,
    queues: Vec<Arc<Queue>>,
    metrics: Metrics,
    capacity: usize,
    idle: Notify,
}

/// Sends each pass's batch to every sink in the background. Dropping it stops the
/// delivery tasks (call [`Notifier::flush`] first in one-shot runs).
pub struct Notifier {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sinks: Vec<&Sink> = self.shared.queues.iter().map(|q| &q.sink).collect();
        f.debug_struct("Notifier")
            .field("sinks", &sinks)
            .field("pending", &self.pending())
            .finish()
    }
}

impl Notifier {
    /// Starts one delivery task per sink. Must be called inside a tokio runtime.
    pub fn start(
        cluster: Option<String>,
        sinks: Vec<Sink>,
        options: NotifierOptions,
        metrics: Metrics,
    ) -> Result<Notifier, NotifierError> {
        // freshet uses rustls with the ring provider only; installing it twice is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("freshet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            // A webhook URL must not send freshet, and its signed body, elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(NotifierError::Http)?;
        let shared = Arc::new(Shared {
            cluster,
            queues: sinks
                .into_iter()
                .map(|sink| {
                    Arc::new(Queue {
                        sink,
                        messages: Mutex::new(VecDeque::new()),
                        pending: AtomicUsize::new(0),
                        wake: Notify::new(),
                    })
                })
                .collect(),
            metrics,
            capacity: options.queue.max(1),
            idle: Notify::new(),
        });
        let tasks = (0..shared.queues.len())
            .map(|i| {
                let shared = shared.clone();
                let client = client.clone();
                tokio::spawn(async move { run(shared, i, client, options.backoff).await })
            })
            .collect();
        Ok(Notifier { shared, tasks })
    }

    /// Queues one message per sink that wants some of `batch`'s events. Never waits.
    pub fn notify(&self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for q in &self.shared.queues {
            let Some(message) = render(self.shared.cluster.as_deref(), &q.sink.config, batch, now)
            else {
                continue;
            };
            let dropped = {
                let mut messages = q.messages.lock().unwrap_or_else(|p| p.into_inner());
                messages.push_back(message);
                q.pending.fetch_add(1, Ordering::SeqCst);
                if messages.len() > self.shared.capacity {
                    messages.pop_front()
                } else {
                    None
                }
            };
            if let Some(old) = dropped {
                q.pending.fetch_sub(1, Ordering::SeqCst);
                self.shared
                    .metrics
                    .dropped
                    .get_or_create(&label(q.sink.name()))
                    .inc();
                tracing::warn!(
                    sink = %q.sink.name(), events = old.events,
                    "notification queue full; dropped the oldest message"
                );
            }
            q.wake.notify_one();
        }
    }

    /// Messages queued or in flight, over all sinks.
    pub fn pending(&self) -> usize {
        self.shared
            .queues
            .iter()
            .map(|q| q.pending.load(Ordering::SeqCst))
            .sum()
    }

    /// Waits until every queued message is delivered or given up on, or `deadline`
    /// has passed; reports what is left.
    pub async fn flush(&self, deadline: Duration) -> FlushReport {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let pending = self.pending();
            if pending == 0 {
                return FlushReport { pending };
            }
            if tokio::time::timeout_at(until, idle).await.is_err() {
                return FlushReport {
                    pending: self.pending(),
                };
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn run(shared: Arc<Shared>, index: usize, client: reqwest::Client, backoff: Backoff) {
    let q = &shared.queues[index];
    loop {
        let wake = q.wake.notified();
        let next = q
            .messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let Some(message) = next else {
            wake.await;
            continue;
        };
        let sink = &q.sink;
        match deliver(&client, sink, &message.body, &backoff).await {
            Ok(()) => {
                shared.metrics.sent.get_or_create(&label(sink.name())).inc();
                tracing::debug!(sink = %sink.name(), events = message.events, "notification delivered");
            }
            Err(e) => {
                shared
                    .metrics
                    .failed
                    .get_or_create(&FailureLabels {
                        sink: sink.name().to_owned(),
                        class: e.class().to_owned(),
                    })
                    .inc();
                tracing::warn!(
                    sink = %sink.name(), url = %sink.shown_url(), class = e.class(), error = %e,
                    events = message.events, "notification not delivered; giving up on this message"
                );
            }
        }
        q.pending.fetch_sub(1, Ordering::SeqCst);
        shared.idle.notify_waiters();
    }
}
