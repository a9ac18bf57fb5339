//! Where a registry lives: from the registry name in a reference to the API base URL.
//!
//! Owns Docker Hub's API host (`docker.io` is served by `registry-1.docker.io`), the
//! choice of scheme (https, or plain http for loopback registries, as Docker allows,
//! and for registries the user lists as insecure), and loopback detection.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// Docker Hub's API host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// How to reach one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The host[:port] requests go to.
    pub api_host: String,
    /// `https` or `http`.
    pub scheme: &'static str,
}

impl Endpoint {
    /// Works out the endpoint of `registry`. `insecure` lists registries (host or
    /// host:port) that may use plain http.
    pub fn new(registry: &str, insecure: &BTreeSet<String>) -> Self {
        let api_host = if registry == "docker.io" {
            DOCKER_HUB_API.to_owned()
        } else {
            registry.to_owned()
        };
        let plain = is_loopback(hostname(registry))
            || insecure.contains(registry)
            || insecure.contains(hostname(registry));
        Self {
            registry: registry.to_owned(),
            api_host,
            scheme: if plain { "http" } else { "https" },
        }
    }

    /// `scheme://api_host`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.api_host)
    }

    /// True when this registry may use plain http (loopback or listed insecure).
    pub fn insecure(&self) -> bool {
        self.scheme == "http"
    }
}

/// The host part of `host[:port]` (brackets kept off IPv6 addresses).
pub fn hostname(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// True for `localhost`, 127.0.0.0/8 and `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_table() {
        let insecure: BTreeSet<String> =
            ["registry.lan:5000".to_owned(), "plain.lan".to_owned()].into();
        let table = [
            ("docker.io", "https://registry-1.docker.io"),
            ("ghcr.io", "https://ghcr.io"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("127.3.4.5:80", "http://127.3.4.5:80"),
            ("localhost:5000", "http://localhost:5000"),
            ("[::1]:5000", "http://[::1]:5000"),
            ("registry.lan:5000", "http://registry.lan:5000"),
            ("registry.lan:5001", "https://registry.lan:5001"),
            ("plain.lan:8080", "http://plain.lan:8080"),
            ("10.0.0.1:5000", "https://10.0.0.1:5000"),
        ];
        for (registry, want) in table {
            assert_eq!(
                Endpoint::new(registry, &insecure).base_url(),
                want,
                "{registry}"
            );
        }
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("a.b:5000"), "a.b");
        assert_eq!(hostname("a.b"), "a.b");
        assert_eq!(hostname("[::1]:5000"), "::1");
        assert!(is_loopback("::1") && is_loopback("LOCALHOST") && !is_loopback("10.0.0.1"));
    }
}
