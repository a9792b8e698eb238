//! `leasehold.toml`: what the operator configures for a server.
//!
//! Every setting, with its default and what it does, is in the sample
//! `docs/leasehold.toml` (a test below parses it, so it cannot go stale).

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
    /// How storage uses memory.
    #[serde(default)]
    pub storage: StorageSettings,
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
    /// Timeouts and the connection cap.
    #[serde(default)]
    pub listener: ListenerSettings,
    /// Limits on what mounts' plugins may be granted.
    #[serde(default)]
    pub grants: GrantSettings,
    /// The file this was read from, if any: its directory is never granted.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// How the embedded store uses memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Pages of the database file kept in memory, in MiB. redb's own default
    /// (1 GiB) would hold a million leases' pages; the hot ones (new leases,
    /// the due index, tokens, policies) fit in far less, and the rest is read
    /// from the page cache of the operating system.
    pub cache_mb: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { cache_mb: 64 }
    }
}

/// Limits on the grants a sudo holder may give a mount's plugin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrantSettings {
    /// Directories a directory grant may be, or be inside.
    pub directories: Vec<PathBuf>,
}

/// What a client connection may take: time to send a request, time idle, and
/// how many connections may be open at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerSettings {
    /// From a connection's start, or a request's first byte, until its head is
    /// complete.
    #[serde(with = "humantime_text")]
    pub header_read_timeout: Duration,
    /// For the whole request body.
    #[serde(with = "humantime_text")]
    pub body_read_timeout: Duration,
    /// For a TLS handshake.
    #[serde(with = "humantime_text")]
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    #[serde(with = "humantime_text")]
    pub idle_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_connections: 4096,
        }
    }
}

/// Durations in config files as text: `"10s"`, `"5m"`, `"1h30m"`.
mod humantime_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        let duration = humantime::parse_duration(&text).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration: use a value like \"10s\", \"5m\" or \"1h30m\""
            ))
        })?;
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "a timeout of zero would refuse everything",
            ));
        }
        Ok(duration)
    }
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
    /// Plugin calls that may run at once in all (`[leases]
    /// revocation_workers` of them are kept for revocations).
    pub max_instances: u32,
    /// Plugin calls one mount may run at once, so one busy mount leaves room
    /// for the others.
    pub max_calls_per_mount: u32,
    /// How long a request waits for its plugin call's turn (its connection's
    /// `max_parallel`, its mount's share, a free instance) before it is
    /// answered 429 with `Retry-After`.
    pub queue_timeout_seconds: u64,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            directory: None,
            memory_limit_mb: 64,
            call_timeout_seconds: 10,
            max_instances: 128,
            max_calls_per_mount: 64,
            queue_timeout_seconds: 10,
        }
    }
}

impl PluginSettings {
    /// The runtime configuration these limits stand for, with
    /// `reserved_for_revocation` instances kept for revocations.
    pub fn runtime_config(
        &self,
        cache_dir: Option<PathBuf>,
        reserved_for_revocation: usize,
    ) -> crate::plugin::RuntimeConfig {
        crate::plugin::RuntimeConfig {
            memory_limit_bytes: self.memory_limit_mb << 20,
            call_timeout: Duration::from_secs(self.call_timeout_seconds),
            max_instances: self.max_instances,
            reserved_for_revocation: u32::try_from(reserved_for_revocation).unwrap_or(u32::MAX),
            max_calls_per_mount: self.max_calls_per_mount,
            queue_timeout: Duration::from_secs(self.queue_timeout_seconds),
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
        let mut config: Self =
            toml::from_str(&text).map_err(|err| format!("config {}: {err}", path.display()))?;
        config.file = Some(path.to_owned());
        config
            .check()
            .map_err(|err| format!("config {}: {err}", path.display()))?;
        Ok(config)
    }

    /// Settings that parse but cannot work together.
    pub fn check(&self) -> Result<(), String> {
        let workers = self.leases.revocation_workers;
        if workers == 0 || workers > self.plugins.max_instances as usize / 2 {
            return Err(format!(
                "[leases] revocation_workers ({workers}) must be at least 1 and at most half of [plugins] max_instances ({}): that many instances are kept for revocations, the rest serve requests",
                self.plugins.max_instances
            ));
        }
        for (name, value) in [
            (
                "[plugins] max_calls_per_mount",
                self.plugins.max_calls_per_mount as usize,
            ),
            (
                "[plugins] queue_timeout_seconds",
                self.plugins.queue_timeout_seconds as usize,
            ),
            (
                "[plugins] call_timeout_seconds",
                self.plugins.call_timeout_seconds as usize,
            ),
            (
                "[leases] revocations_per_connection",
                self.leases.revocations_per_connection,
            ),
            ("[listener] max_connections", self.listener.max_connections),
            ("[storage] cache_mb", self.storage.cache_mb),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.storage.cache_mb > MAX_CACHE_MB {
            return Err(format!(
                "[storage] cache_mb ({}) must be at most {MAX_CACHE_MB} (1 TiB)",
                self.storage.cache_mb
            ));
        }
        Ok(())
    }
}

/// The largest storage cache taken, in MiB.
const MAX_CACHE_MB: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_cache_of_zero_or_beyond_a_tebibyte_is_refused() {
        let with = |cache_mb: usize| {
            let text = format!("data_dir = \"/tmp/x\"\n[storage]\ncache_mb = {cache_mb}\n");
            toml::from_str::<ServerConfig>(&text).unwrap().check()
        };
        assert!(with(0).unwrap_err().contains("cache_mb"));
        assert!(with(MAX_CACHE_MB + 1).unwrap_err().contains("cache_mb"));
        with(16).unwrap();
    }

    /// The documented sample is a config this server takes, with every
    /// section in it.
    #[test]
    fn the_sample_config_is_a_valid_one() {
        let text = include_str!("../../docs/leasehold.toml");
        let config: ServerConfig = toml::from_str(text).expect("docs/leasehold.toml parses");
        config.check().unwrap();
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.grants.directories, [PathBuf::from("/srv/leasehold")]);
        assert_eq!(config.listener.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.plugins.memory_limit_mb, 64);
        assert_eq!(config.storage.cache_mb, 64);
        assert_eq!(config.leases.retry_budget_seconds, 86_400);
        // The commented settings are real ones too.
        let uncommented = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") || rest.starts_with('[') => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let full: ServerConfig = toml::from_str(&uncommented).expect("every setting parses");
        assert!(full.tls.is_some() && full.unseal_key_file.is_some());
        assert!(full.plugins.directory.is_some());
    }
}
