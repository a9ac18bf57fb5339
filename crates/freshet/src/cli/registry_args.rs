//! Registry flags shared by every command that talks to registries, resolved once into
//! a [`freshet_registry::Client`] (in cluster mode, one per set of image pull secrets,
//! which come before the docker config in the credential chain).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use freshet_registry::{Client, ClientOptions, CredentialStore, SharedTokens};

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
        } = self;
        let dir = docker_config.clone().or_else(default_docker_config_dir);
        let mut store = CredentialStore::anonymous();
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
        if *max_concurrency == 0 {
            anyhow::bail!("--max-concurrency must be at least 1");
        }
        if max_rps.is_some_and(|r| r.is_nan() || r <= 0.0) {
            anyhow::bail!("--max-rps must be a positive number");
        }
        let options = ClientOptions {
            insecure_registries: insecure_registry.iter().cloned().collect::<BTreeSet<_>>(),
            trusted_realms,
            max_concurrency_per_registry: *max_concurrency,
            requests_per_second: *max_rps,
            max_attempts: (*max_attempts).max(1),
            ..ClientOptions::default()
        };
        Ok(Client::with_shared_tokens(store, options, tokens)?)
    }
}

fn default_docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}
