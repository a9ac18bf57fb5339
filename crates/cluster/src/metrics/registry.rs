//! Registry request metrics: the [`Recorder`] the registry clients report to.
//!
//! Owns `freshet_registry_requests_total{registry,method,outcome}`,
//! `freshet_registry_tokens_fetched_total{registry}` and
//! `freshet_registry_ratelimit_remaining{registry}`. Label values are bounded: the
//! registries are those the tracked images name, methods and outcomes fixed words.
//! Must not block: it only bumps counters.

use freshet_registry::Recorder;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a registry request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The registry host (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// `GET`, `HEAD`, `POST`.
    pub method: String,
    /// `2xx`, `3xx`, `4xx`, `429`, `5xx` or `network`.
    pub outcome: String,
}

/// The `registry` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabel {
    /// The registry host.
    pub registry: String,
}

/// Registry counters; clones share them.
#[derive(Debug, Clone, Default)]
pub struct RegistryMetrics {
    requests: Family<RequestLabels, Counter>,
    tokens: Family<RegistryLabel, Counter>,
    remaining: Family<RegistryLabel, Gauge>,
}

impl RegistryMetrics {
    /// Registers the three families under `registry` (prefixed `freshet_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "registry_requests",
            "Registry HTTP requests (retries included), by registry, method and outcome class",
            self.requests.clone(),
        );
        registry.register(
            "registry_tokens_fetched",
            "Bearer tokens fetched from registries' token endpoints, by registry",
            self.tokens.clone(),
        );
        registry.register(
            "registry_ratelimit_remaining",
            "Requests left in the registry's rate-limit window (Docker Hub's ratelimit-remaining), as last reported",
            self.remaining.clone(),
        );
    }
}

impl Recorder for RegistryMetrics {
    fn request(&self, registry: &str, method: &str, outcome: &'static str, token: bool) {
        self.requests
            .get_or_create(&RequestLabels {
                registry: registry.to_owned(),
                method: method.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if token && outcome == "2xx" {
            self.tokens
                .get_or_create(&RegistryLabel {
                    registry: registry.to_owned(),
                })
                .inc();
        }
    }

    fn rate_limit_remaining(&self, registry: &str, remaining: u64) {
        self.remaining
            .get_or_create(&RegistryLabel {
                registry: registry.to_owned(),
            })
            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_tokens_and_the_rate_limit_show_by_registry() {
        let m = RegistryMetrics::default();
        let mut registry = Registry::with_prefix("freshet");
        m.register(&mut registry);
        m.request("docker.io", "GET", "2xx", true);
        m.request("docker.io", "GET", "4xx", true);
        m.request("docker.io", "HEAD", "429", false);
        m.request("docker.io", "HEAD", "429", false);
        m.rate_limit_remaining("docker.io", 76);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "freshet_registry_requests_total{registry=\"docker.io\",method=\"HEAD\",outcome=\"429\"} 2",
            "freshet_registry_tokens_fetched_total{registry=\"docker.io\"} 1",
            "freshet_registry_ratelimit_remaining{registry=\"docker.io\"} 76",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
