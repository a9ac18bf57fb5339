//! Webhook counters: deliveries and images by source and outcome.
//!
//! Owns two prometheus-client families the controller registers in its registry with
//! [`WebhookMetrics::register`]. Label values are bounded: the source is a configured
//! name (or `unknown`, never the path text) and the outcome a fixed word.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The source label of deliveries to a path no source is configured for.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// Labels of `freshet_webhook_deliveries_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The configured source name, or `unknown`.
    pub source: String,
    /// `accepted`, `nothing_tracked`, `ignored`, `unknown_source`, `too_large`,
    /// `unauthenticated`, `bad_credential`, `rate_limited`, `replayed`, or a payload
    /// error label (`malformed_json`, `missing_field`, `bad_reference`, `too_many_images`).
    pub outcome: String,
}

/// Labels of `freshet_webhook_images_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImageLabels {
    /// The configured source name.
    pub source: String,
    /// `queued`, `untracked`, `foreign_registry`, `debounced`, `debounce_full`,
    /// `queue_full`.
    pub outcome: String,
}

/// The webhook receiver's counters. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct WebhookMetrics {
    deliveries: Family<DeliveryLabels, Counter>,
    images: Family<ImageLabels, Counter>,
}

impl WebhookMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `freshet_webhook_deliveries_total` and `freshet_webhook_images_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "freshet_webhook_deliveries",
            "Registry webhook deliveries by source and outcome",
            self.deliveries.clone(),
        );
        registry.register(
            "freshet_webhook_images",
            "Images named by registry webhook deliveries, by source and what was done",
            self.images.clone(),
        );
    }

    /// Deliveries counted for `source` and `outcome` (reading creates no series).
    pub fn deliveries(&self, source: &str, outcome: &str) -> u64 {
        let labels = delivery(source, outcome);
        self.deliveries.get(&labels).map_or(0, |c| c.get())
    }

    /// Images counted for `source` and `outcome` (reading creates no series).
    pub fn images(&self, source: &str, outcome: &str) -> u64 {
        let labels = ImageLabels {
            source: source.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.images.get(&labels).map_or(0, |c| c.get())
    }

    pub(super) fn count_delivery(&self, source: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&delivery(source, outcome))
            .inc();
    }

    pub(super) fn count_image(&self, source: &str, outcome: &str) {
        self.images
            .get_or_create(&ImageLabels {
                source: source.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

fn delivery(source: &str, outcome: &str) -> DeliveryLabels {
    DeliveryLabels {
        source: source.to_owned(),
        outcome: outcome.to_owned(),
    }
}
