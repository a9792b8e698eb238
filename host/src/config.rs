//! `leasehold.toml`: what the operator configures for a server.
//!
//! ```toml
//! listen = "127.0.0.1:8200"
//! data_dir = "/var/lib/leasehold"
//! # Optional, and weaker than Shamir shares held by people: anyone who can read
//! # this file can unseal the data directory.
//! # unseal_key_file = "/etc/leasehold/unseal.key"
//!
//! # [tls]
//! # cert_file = "/etc/leasehold/tls.crt"
//! # key_file = "/etc/leasehold/tls.key"
//!
//! [plugins]
//! # Where `leasehold plugin register -command FILE` looks for components.
//! # directory = "/var/lib/leasehold/plugins"
//! memory_limit_mb = 64
//! call_timeout_seconds = 10
//! max_instances = 128
//!
//! [leases]
//! revocation_workers = 32
//! revocations_per_connection = 4
//! retry_base_seconds = 10
//! retry_max_seconds = 1800
//! # Keep retrying a failed revocation this long before calling it irrevocable.
//! retry_budget_seconds = 86400
//! irrevocable_retry_seconds = 86400
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The server's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where storage lives.
    pub data_dir: PathBuf,
    /// A file holding unseal key shares (as many as the threshold, one per line),
    /// for unattended restarts.
    #[serde(default)]
    pub unseal_key_file: Option<PathBuf>,
    /// Plugin directory and sandbox limits.
    #[serde(default)]
    pub plugins: PluginSettings,
    /// Revocation workers and retries.
    #[serde(default)]
    pub leases: LeaseSettings,
    /// Serve HTTPS with this certificate and key; plain HTTP without it.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

/// PEM files for the listener's TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key.
    pub key_file: PathBuf,
}

/// Where plugins come from, and limits for every plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// Directory of components that `sys/plugins/catalog` may register by file
    /// name (`command`).
    pub directory: Option<PathBuf>,
    /// Linear memory per plugin instance, in MiB.
    pub memory_limit_mb: usize,
    /// Wall-clock limit per call, in seconds.
    pub call_timeout_seconds: u64,
    /// Plugin calls that may run at once.
    pub max_instances: u32,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            directory: None,
            memory_limit_mb: 64,
            call_timeout_seconds: 10,
            max_instances: 128,
        }
    }
}

impl PluginSettings {
    /// The runtime configuration these limits stand for.
    pub fn runtime_config(&self, cache_dir: Option<PathBuf>) -> crate::plugin::RuntimeConfig {
        crate::plugin::RuntimeConfig {
            memory_limit_bytes: self.memory_limit_mb << 20,
            call_timeout: Duration::from_secs(self.call_timeout_seconds),
            max_instances: self.max_instances,
            cache_dir,
        }
    }
}

/// How expired and revoked leases are worked off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseSettings {
    /// Revocations that may run at once.
    pub revocation_workers: usize,
    /// Revocations that may run at once against one connection, so one slow or
    /// dead target cannot hold every worker.
    pub revocations_per_connection: usize,
    /// Wait after the first failed revocation; doubles with each failure.
    pub retry_base_seconds: u64,
    /// Longest wait between two attempts.
    pub retry_max_seconds: u64,
    /// How long failed revocations are retried before the lease is irrevocable
    /// (Vault gives up after about 10 minutes; a day rides out real outages).
    pub retry_budget_seconds: u64,
    /// How often an irrevocable lease is tried again.
    pub irrevocable_retry_seconds: u64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            revocation_workers: 32,
            revocations_per_connection: 4,
            retry_base_seconds: 10,
            retry_max_seconds: 1800,
            retry_budget_seconds: 86_400,
            irrevocable_retry_seconds: 86_400,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8200))
}

impl ServerConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("reading config {}: {err}", path.display()))?;
        toml::from_str(&text).map_err(|err| format!("config {}: {err}", path.display()))
    }
}
