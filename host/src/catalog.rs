//! The plugin catalog: which components may be mounted, by name and version.
//!
//! An entry is registered with the component's SHA-256, which must match the
//! bytes; the name and version come from the component's own `info`, so a
//! catalog entry cannot lie about what it runs. Entries and bytes live in the
//! barrier: `sys/plugins/catalog/<name>/<version>` and `sys/plugins/wasm/<sha256>`.
//! Compiled plugins are kept in memory by SHA-256.
//!
//! A registered version never changes: a new build ships as a new version,
//! and mounts move to it with a tune. Only in `--dev` does registering a name
//! and version again with other bytes replace them. A call holds the compiled
//! plugin it started with ([`Catalog::plugin`] hands out an `Arc`), so a
//! [`Catalog::reload`] or a replacement changes what the next call gets and
//! never what a running call runs.

use crate::barrier::{Barrier, BarrierError, BarrierOp};
use crate::clock::unix_now;
use crate::plugin::{ArtifactPins, Plugin, Runtime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const ENTRIES: &str = "sys/plugins/catalog/";
const BYTES: &str = "sys/plugins/wasm/";
/// Digests of the compiled artifacts in the on-disk cache, by file name.
const ARTIFACTS: &str = "sys/plugins/artifacts/";

/// The plugins compiled into the server, registered at first start.
pub const BUNDLED: &[&[u8]] = &[
    leasehold_plugin_artifacts::NOOP_WASM,
    leasehold_plugin_artifacts::HTPASSWD_WASM,
    leasehold_plugin_artifacts::WEBHOOK_WASM,
    leasehold_plugin_artifacts::REDIS_WASM,
    leasehold_plugin_artifacts::POSTGRES_WASM,
];

/// One registered version of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The plugin's name, from its `info`.
    pub name: String,
    /// Its version, from its `info`.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// One line from the plugin.
    pub description: String,
    /// Whether the server ships it.
    pub builtin: bool,
    /// When it was registered.
    pub registered_at: u64,
    /// JSON Schema of the connection config.
    pub config_schema: String,
    /// JSON Schema of a role.
    pub role_schema: String,
    /// Whether its `renew` does something.
    pub can_renew: bool,
    /// Whether it implements `rotate-root`.
    pub can_rotate_root: bool,
    /// The version of the plugin contract (`leasehold:provider@X.Y.Z`) the
    /// component was built against, read from the component at registration.
    #[serde(default = "first_contract_version")]
    pub contract_version: String,
}

/// Entries registered before the catalog recorded the contract version were
/// all built against the only version there was then.
fn first_contract_version() -> String {
    "0.1.0".into()
}

/// Why a registration or lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The bytes do not hash to the given SHA-256.
    #[error("sha256 mismatch: the component's SHA-256 is {actual}, not the {expected} given")]
    ShaMismatch {
        /// What the request said.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The bytes are not a plugin component.
    #[error("not a usable plugin: {0}")]
    Invalid(String),
    /// The version in the request is not the plugin's own.
    #[error("the component is version {actual} of the plugin, not {requested}")]
    WrongVersion {
        /// The request's version.
        requested: String,
        /// The plugin's version.
        actual: String,
    },
    /// This name and version is registered with other bytes.
    #[error(
        "version {version} of `{name}` is already registered with another sha256, and a registered version never changes (outside --dev): build the new component as a new version, register it, then move each mount to it with `plugin_version` on sys/mounts/<path>/tune (a `database` mount's connection: write `plugin_version` on <mount>/config/<name>)"
    )]
    Conflict {
        /// The plugin.
        name: String,
        /// The version.
        version: String,
    },
    /// No such plugin or version.
    #[error("no plugin `{0}` in the catalog")]
    Unknown(String),
    /// Storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// The catalog.
pub struct Catalog {
    barrier: Arc<Barrier>,
    runtime: Arc<Runtime>,
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    /// `--dev`: registering a name and version again with other bytes
    /// replaces them.
    replaceable: bool,
}

/// The barrier is where only the broker writes: an artifact is trusted only if
/// its digest was recorded here.
struct BarrierPins<'a>(&'a Barrier);

#[async_trait::async_trait]
impl ArtifactPins for BarrierPins<'_> {
    async fn pinned(&self, artifact: &str) -> Option<String> {
        let digest = self.0.get(&format!("{ARTIFACTS}{artifact}")).await.ok()??;
        String::from_utf8(digest.to_vec()).ok()
    }

    async fn pin(&self, artifact: &str, digest: &str) {
        if let Err(err) = self
            .0
            .put(&format!("{ARTIFACTS}{artifact}"), digest.as_bytes())
            .await
        {
            tracing::warn!(error = %err, "could not record a compiled plugin's digest; it is compiled again next time");
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn entry_key(name: &str, version: &str) -> String {
    format!("{ENTRIES}{name}/{version}")
}

/// Whether two spellings name one version (`v1.2.0` is `1.2.0`).
pub fn same_version(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

/// Orders versions as semver where both parse, as text otherwise.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |v: &str| semver::Version::parse(v.trim_start_matches('v')).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

impl Catalog {
    /// A catalog stored in `barrier`, compiling with `runtime`.
    pub fn new(barrier: Arc<Barrier>, runtime: Arc<Runtime>) -> Self {
        Self {
            barrier,
            runtime,
            loaded: Mutex::new(HashMap::new()),
            replaceable: false,
        }
    }

    /// For `--dev`: registering a name and version again with other bytes
    /// replaces them, and the mounts running it get the new component at
    /// their next call. Elsewhere that is refused, saying how to ship a new
    /// version.
    pub fn replacing_versions(mut self, replaceable: bool) -> Self {
        self.replaceable = replaceable;
        self
    }

    /// The runtime plugins run in.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Registers `bytes` as a plugin. `expected_sha256` must match; `name` and
    /// `version`, when given, must be the plugin's own. Registering the same bytes
    /// again is not an error.
    pub async fn register(
        &self,
        bytes: &[u8],
        expected_sha256: &str,
        name: Option<&str>,
        version: Option<&str>,
        builtin: bool,
    ) -> Result<CatalogEntry, CatalogError> {
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(expected_sha256.trim()) {
            return Err(CatalogError::ShaMismatch {
                expected: expected_sha256.trim().to_owned(),
                actual,
            });
        }
        let plugin = self
            .runtime
            .load_pinned(bytes, Some(&BarrierPins(&self.barrier)))
            .await
            .map_err(|err| CatalogError::Invalid(err.to_string()))?;
        let mut info = plugin.info().clone();
        // The catalog name is the operator's, as in Vault (`bao plugin register
        // ... secret NAME`); the plugin's own name is its default.
        if let Some(requested) = name {
            if !crate::ids::is_plain_name(requested) {
                return Err(CatalogError::Invalid(format!(
                    "plugin name `{requested}`: use letters, digits, `-`, `_` and `.`"
                )));
            }
            info.name = requested.to_owned();
        }
        if let Some(requested) = version.filter(|v| !v.is_empty())
            && !same_version(requested, &info.version)
        {
            return Err(CatalogError::WrongVersion {
                requested: requested.into(),
                actual: info.version,
            });
        }
        let replaced = match self.get(&info.name, Some(&info.version)).await? {
            Some(existing) if existing.sha256 == actual => return Ok(existing),
            Some(existing) if self.replaceable => Some(existing),
            Some(_) => {
                return Err(CatalogError::Conflict {
                    name: info.name,
                    version: info.version,
                });
            }
            None => None,
        };
        let entry = CatalogEntry {
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: actual.clone(),
            description: info.description.clone(),
            builtin,
            registered_at: unix_now(),
            config_schema: info.config_schema.clone(),
            role_schema: info.role_schema.clone(),
            can_renew: info.can_renew,
            can_rotate_root: info.can_rotate_root,
            contract_version: info.contract_version.to_string(),
        };
        let json = serde_json::to_vec(&entry).expect("a catalog entry serializes");
        let mut ops = vec![
            BarrierOp::Put(format!("{BYTES}{actual}"), bytes.to_vec()),
            BarrierOp::Put(entry_key(&entry.name, &entry.version), json),
        ];
        let mut unused = None;
        if let Some(old) = &replaced {
            // `v1.0.0` and `1.0.0` are one version, stored under its first spelling.
            if old.version != entry.version {
                ops.push(BarrierOp::Delete(entry_key(&old.name, &old.version)));
            }
            if !self.shared(old).await? {
                ops.push(BarrierOp::Delete(format!("{BYTES}{}", old.sha256)));
                unused = Some(old.sha256.clone());
            }
        }
        self.barrier.batch(ops).await?;
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            loaded.insert(actual, Arc::new(plugin));
            if let Some(sha) = unused {
                loaded.remove(&sha);
            }
        }
        match replaced {
            Some(old) => {
                tracing::info!(plugin = %entry.name, version = %entry.version, sha256 = %entry.sha256, replaced = %old.sha256, "plugin replaced (dev mode): the next call runs it")
            }
            None => {
                tracing::info!(plugin = %entry.name, version = %entry.version, sha256 = %entry.sha256, "plugin registered")
            }
        }
        Ok(entry)
    }

    /// Whether another entry (another name or version) has `entry`'s bytes.
    async fn shared(&self, entry: &CatalogEntry) -> Result<bool, CatalogError> {
        Ok(self.list().await?.iter().any(|e| {
            e.sha256 == entry.sha256 && (e.name != entry.name || e.version != entry.version)
        }))
    }

    /// Registers the bundled plugins whose versions are not in the catalog yet.
    pub async fn register_bundled(&self) -> Result<(), CatalogError> {
        // Bundled entries already there (under the plugin's own name, with
        // these bytes): no need to compile them at every unseal. The same
        // bytes under an operator's name do not count.
        let registered: Vec<String> = self
            .list()
            .await?
            .into_iter()
            .filter(|e| e.builtin)
            .map(|e| e.sha256)
            .collect();
        for bytes in BUNDLED {
            let sha = sha256_hex(bytes);
            if !registered.contains(&sha) {
                self.register(bytes, &sha, None, None, true).await?;
            }
        }
        Ok(())
    }

    /// The entry for `name` at `version`, or its highest version.
    pub async fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<CatalogEntry>, CatalogError> {
        // The exact version, as connections store it: one read (every issue
        // and revocation comes through here).
        if let Some(wanted) = version.filter(|v| !v.is_empty() && !name.contains('/'))
            && let Some(bytes) = self.barrier.get(&entry_key(name, wanted)).await?
            && let Ok(entry) = serde_json::from_slice::<CatalogEntry>(&bytes)
        {
            return Ok(Some(entry));
        }
        let versions = self.versions(name).await?;
        Ok(match version.filter(|v| !v.is_empty()) {
            Some(wanted) => versions
                .into_iter()
                .find(|e| same_version(&e.version, wanted)),
            None => versions.into_iter().last(),
        })
    }

    /// Every version of `name`, lowest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<CatalogEntry>, CatalogError> {
        if name.is_empty() || name.contains('/') {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        for key in self.barrier.list(&format!("{ENTRIES}{name}/")).await? {
            if let Some(bytes) = self.barrier.get(&key).await?
                && let Ok(entry) = serde_json::from_slice::<CatalogEntry>(&bytes)
            {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| version_order(&a.version, &b.version));
        Ok(entries)
    }

    /// Every entry, by name then version.
    pub async fn list(&self) -> Result<Vec<CatalogEntry>, CatalogError> {
        let mut names: Vec<String> = self
            .barrier
            .list(ENTRIES)
            .await?
            .iter()
            .filter_map(|key| key[ENTRIES.len()..].split('/').next().map(str::to_owned))
            .collect();
        names.dedup();
        let mut all = Vec::new();
        for name in names {
            all.extend(self.versions(&name).await?);
        }
        Ok(all)
    }

    /// Removes `entry` (its bytes too, unless another entry has the same bytes).
    pub async fn deregister(&self, entry: &CatalogEntry) -> Result<(), CatalogError> {
        let mut ops = vec![BarrierOp::Delete(entry_key(&entry.name, &entry.version))];
        // The same bytes may be registered under several names.
        if !self.shared(entry).await? {
            ops.push(BarrierOp::Delete(format!("{BYTES}{}", entry.sha256)));
            self.loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&entry.sha256);
        }
        self.barrier.batch(ops).await?;
        Ok(())
    }

    /// The compiled plugin of `entry`, compiling it on first use. The caller
    /// holds it for the whole of its call.
    pub async fn plugin(&self, entry: &CatalogEntry) -> Result<Arc<Plugin>, CatalogError> {
        if let Some(plugin) = self.loaded(&entry.sha256) {
            return Ok(plugin);
        }
        let bytes = match self.bytes(entry).await? {
            Some(bytes) => bytes,
            // Replaced (`--dev`) since the caller read the entry: the bytes
            // registered under its name and version now.
            None => match self.get(&entry.name, Some(&entry.version)).await? {
                Some(now) if now.sha256 != entry.sha256 => {
                    return Box::pin(self.plugin(&now)).await;
                }
                _ => {
                    return Err(CatalogError::Unknown(format!(
                        "{} {}",
                        entry.name, entry.version
                    )));
                }
            },
        };
        let plugin = Arc::new(
            self.runtime
                .load_pinned(&bytes, Some(&BarrierPins(&self.barrier)))
                .await
                .map_err(|err| CatalogError::Invalid(err.to_string()))?,
        );
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.sha256.clone(), plugin.clone());
        Ok(plugin)
    }

    /// Reads the registered bytes of `entries` again and compiles them afresh
    /// (not from the artifact cache), then makes the new components what the
    /// next calls get; calls already running finish on the ones they hold.
    /// Nothing is swapped unless every entry compiles.
    pub async fn reload(&self, entries: &[CatalogEntry]) -> Result<(), CatalogError> {
        let mut fresh = Vec::with_capacity(entries.len());
        for entry in entries {
            let bytes = self.bytes(entry).await?.ok_or_else(|| {
                CatalogError::Unknown(format!("{} {}", entry.name, entry.version))
            })?;
            let plugin = self
                .runtime
                .load(&bytes)
                .await
                .map_err(|err| CatalogError::Invalid(err.to_string()))?;
            fresh.push((entry, Arc::new(plugin)));
        }
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        for (entry, plugin) in fresh {
            tracing::info!(plugin = %entry.name, version = %entry.version, sha256 = %entry.sha256, "plugin reloaded: the next call runs the fresh component");
            loaded.insert(entry.sha256.clone(), plugin);
        }
        Ok(())
    }

    fn loaded(&self, sha256: &str) -> Option<Arc<Plugin>> {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha256)
            .cloned()
    }

    /// The bytes registered for `entry`, if they are still there (the
    /// barrier binds them to their key, which names their SHA-256).
    async fn bytes(
        &self,
        entry: &CatalogEntry,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, CatalogError> {
        Ok(self
            .barrier
            .get(&format!("{BYTES}{}", entry.sha256))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::version_order;
    use std::cmp::Ordering;

    #[test]
    fn versions_order_as_semver() {
        assert_eq!(version_order("0.10.0", "0.9.0"), Ordering::Greater);
        assert_eq!(version_order("v1.2.0", "1.10.0"), Ordering::Less);
        assert_eq!(version_order("1.0.0", "1.0.0"), Ordering::Equal);
    }
}
