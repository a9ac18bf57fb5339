//! Registry flags shared by every command that talks to registries, resolved once into
//! a [`freshet_registry::Client`] (in cluster mode, one per set of image pull secrets,
//! which come before the docker config in the credential chain).
//!
//! Every number is range-checked here, before the first system call, with a message
//! naming the flag and its accepted range (then [`ClientOptions::validated`] checks
//! the whole again).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use freshet_registry::{Client, ClientOptions, CredentialStore, Recorder, SharedTokens, TagLimits};

use super::controller::duration_in;

/// Flags that say how to reach registries.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// A registry (HOST or HOST:PORT) that may be reached over plain http. Loopback
    /// registries always may. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Directory holding a docker `config.json` with credentials (`auths`,
    /// `credHelpers`, `credsStore`). Default: $DOCKER_CONFIG, else ~/.docker. In
    /// cluster mode a workload's image pull secrets are tried before it.
    #[arg(long, value_name = "DIR")]
    pub docker_config: Option<PathBuf>,
    /// Allow a registry to send credentials to a token realm on another host
    /// (REGISTRY=REALM_HOST). Repeatable. Only for pairs you know.
    #[arg(long = "trust-realm", value_name = "REGISTRY=REALM_HOST")]
    pub trust_realm: Vec<String>,
    /// Requests in flight to one registry at most.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_concurrency: usize,
    /// Requests per second to one registry at most (default: unpaced).
    #[arg(long, value_name = "RPS")]
    pub max_rps: Option<f64>,
    /// Attempts per request for transient failures.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_attempts: u32,
    /// How long one registry request may take, from sending it to its whole body
    /// (1s to 1h).
    #[arg(long, value_name = "DURATION", value_parser = duration_in(1, 3600), default_value = "30s")]
    pub registry_timeout: Duration,
    /// How long a credential helper (`docker-credential-*`) may run before it is
    /// killed and its registry's images fail (1s to 10m).
    #[arg(long, value_name = "DURATION", value_parser = duration_in(1, 600), default_value = "30s")]
    pub credential_helper_timeout: Duration,
    /// Tags kept at most per repository, all pages together (1 to 10000000); more is
    /// a `too_large` error naming the registry.
    #[arg(long, default_value_t = TagLimits::default().max_tags, value_name = "N")]
    pub max_tags: usize,
    /// Tag-list body bytes read at most per repository, all pages together (1024 to
    /// 4294967296).
    #[arg(long, default_value_t = TagLimits::default().max_bytes, value_name = "BYTES")]
    pub max_tag_bytes: usize,
    /// Tag-list pages read at most per repository (1 to 1000000).
    #[arg(long, default_value_t = TagLimits::default().max_pages, value_name = "N")]
    pub max_tag_pages: usize,
    /// Where clients report their requests (metrics); not a flag.
    #[arg(skip)]
    pub recorder: Option<Arc<dyn Recorder>>,
}

/// The accepted range of each numeric registry flag: (flag, value, min, max).
fn ranges(args: &RegistryArgs) -> [(&'static str, u64, u64, u64); 5] {
    [
        ("--max-concurrency", args.max_concurrency as u64, 1, 10_000),
        ("--max-attempts", u64::from(args.max_attempts), 1, 100),
        ("--max-tags", args.max_tags as u64, 1, 10_000_000),
        ("--max-tag-bytes", args.max_tag_bytes as u64, 1024, 1 << 32),
        ("--max-tag-pages", args.max_tag_pages as u64, 1, 1_000_000),
    ]
}

impl RegistryArgs {
    /// Builds the client: reads the docker config once, validates every flag.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.client_with_pull_secrets(std::iter::empty(), SharedTokens::default())
    }

    /// Builds a client whose credentials are these pull secrets (`namespace/name`
    /// and a `.dockerconfigjson` document), first match wins, then the docker config.
    /// Its tokens live in `tokens`, which must belong to this set of pull secrets.
    pub fn client_with_pull_secrets<'a>(
        &self,
        pull_secrets: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        tokens: SharedTokens,
    ) -> anyhow::Result<Client> {
        let RegistryArgs {
            insecure_registry,
            docker_config,
            trust_realm,
            max_concurrency,
            max_rps,
            max_attempts,
            registry_timeout,
            credential_helper_timeout,
            max_tags,
            max_tag_bytes,
            max_tag_pages,
            recorder,
        } = self;
        for (flag, got, min, max) in ranges(self) {
            if !(min..=max).contains(&got) {
                anyhow::bail!("{flag} {got}: must be between {min} and {max}");
            }
        }
        let requests_per_second = max_rps
            .map(freshet_registry::requests_per_second)
            .transpose()
            .context("--max-rps")?;
        let dir = docker_config.clone().or_else(default_docker_config_dir);
        let mut store =
            CredentialStore::anonymous().with_helper_timeout(*credential_helper_timeout);
        for (name, json) in pull_secrets {
            store = store.with_pull_secret(name, json)?;
        }
        if let Some(dir) = &dir {
            store = store.with_docker_config_dir(dir)?;
        }
        let trusted_realms = trust_realm
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(r, a)| (r.to_owned(), a.to_owned()))
                    .with_context(|| {
                        format!("--trust-realm {pair:?}: expected REGISTRY=REALM_HOST")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let options = ClientOptions {
            insecure_registries: insecure_registry.iter().cloned().collect::<BTreeSet<_>>(),
            trusted_realms,
            max_concurrency_per_registry: *max_concurrency,
            requests_per_second,
            max_attempts: *max_attempts,
            request_timeout: *registry_timeout,
            connect_timeout: (*registry_timeout).min(Duration::from_secs(10)),
            tag_limits: TagLimits {
                max_tags: *max_tags,
                max_bytes: *max_tag_bytes,
                max_pages: *max_tag_pages,
            },
            recorder: recorder.clone(),
            ..ClientOptions::default()
        }
        .validated()?;
        Ok(Client::with_shared_tokens(store, options, tokens)?)
    }
}

fn default_docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        registry: RegistryArgs,
    }

    fn client(args: &[&str]) -> anyhow::Result<Client> {
        let flags = Flags::try_parse_from(
            ["freshet", "--docker-config", "/nonexistent-freshet-dir"]
                .iter()
                .chain(args),
        )?;
        flags.registry.client()
    }

    #[test]
    fn registry_numeric_flags_are_range_checked_before_use() {
        for bad in [
            &["--max-rps", "1e-300"][..],
            &["--max-rps", "1e-9"],
            &["--max-rps", "0"],
            &["--max-rps=-1"],
            &["--max-rps", "NaN"],
            &["--max-rps", "inf"],
            &["--max-concurrency", "0"],
            &["--max-concurrency", "100000000"],
            &["--max-attempts", "0"],
            &["--max-attempts", "4000000000"],
            &["--max-tags", "0"],
            &["--max-tag-bytes", "10"],
            &["--max-tag-bytes", "99999999999999"],
            &["--max-tag-pages", "0"],
            &["--registry-timeout", "0s"],
            &["--registry-timeout", "1000000000y"],
            &["--credential-helper-timeout", "0s"],
            &["--credential-helper-timeout", "1h"],
        ] {
            let err = client(bad).expect_err(&bad.join(" "));
            let text = format!("{err:#}");
            assert!(
                text.contains("between") || text.contains("range") || text.contains("duration"),
                "{bad:?}: {text}"
            );
        }
        for good in [
            &[][..],
            &["--max-rps", "0.5"],
            &[
                "--max-tags",
                "10",
                "--max-tag-bytes",
                "4096",
                "--max-tag-pages",
                "2",
            ],
            &[
                "--registry-timeout",
                "5s",
                "--credential-helper-timeout",
                "2s",
            ],
        ] {
            client(good).unwrap_or_else(|e| panic!("{good:?}: {e:#}"));
        }
    }
}
