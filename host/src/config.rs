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
//! memory_limit_mb = 64
//! call_timeout_seconds = 10
//! max_instances = 128
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
    /// Plugin sandbox limits.
    #[serde(default)]
    pub plugins: PluginLimits,
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

/// Limits for every plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Linear memory per plugin instance, in MiB.
    pub memory_limit_mb: usize,
    /// Wall-clock limit per call, in seconds.
    pub call_timeout_seconds: u64,
    /// Plugin calls that may run at once.
    pub max_instances: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_limit_mb: 64,
            call_timeout_seconds: 10,
            max_instances: 128,
        }
    }
}

impl PluginLimits {
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
