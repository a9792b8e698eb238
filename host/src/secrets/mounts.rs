//! The mount table: which plugin serves which path.
//!
//! Stored at `sys/mounts/<path>` and kept in memory (every request to a mount
//! resolves its path against it).

use crate::barrier::{Barrier, BarrierError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

const MOUNTS: &str = "sys/mounts/";

/// Mount `type` meaning "the plugin is chosen per connection", as with Vault's
/// database engine.
pub const DATABASE_TYPE: &str = "database";

/// Path prefixes that are not mount paths.
const RESERVED: &[&str] = &["sys", "auth", "cubbyhole", "identity", "v1"];

/// One mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountEntry {
    /// Its path, with a trailing slash (`db/`).
    pub path: String,
    /// The `type` it was mounted with: a catalog plugin name, or `database`.
    pub kind: String,
    /// The catalog plugin for connections that do not name one.
    pub plugin: Option<String>,
    /// The version of `plugin` it runs: chosen when mounted, changed by a
    /// tune. Its connections run this version.
    pub plugin_version: Option<String>,
    /// Free text.
    pub description: String,
    /// `config.default_lease_ttl` in seconds (0: the system's).
    pub default_lease_ttl: u64,
    /// `config.max_lease_ttl` in seconds (0: the system's).
    pub max_lease_ttl: u64,
    /// An id that never changes while mounted.
    pub uuid: String,
    /// Vault's mount accessor.
    pub accessor: String,
    /// What its plugin may reach, set by a sudo holder.
    #[serde(default)]
    pub grants: super::MountGrants,
}

/// Checks a mount path and returns it with one trailing slash.
pub fn normalize(path: &str) -> Result<String, String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err("a mount path is required".into());
    }
    for segment in trimmed.split('/') {
        let plain = !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && segment != "."
            && segment != "..";
        if !plain {
            return Err(format!(
                "mount path `{trimmed}`: segments are letters, digits, `-`, `_` and `.`"
            ));
        }
        if segment == "creds" {
            return Err(format!(
                "mount path `{trimmed}`: `creds` is not allowed as a segment (lease ids use it)"
            ));
        }
        if segment == "tune" {
            return Err(format!(
                "mount path `{trimmed}`: `tune` is not allowed as a segment (sys/mounts/<path>/tune tunes a mount)"
            ));
        }
    }
    let first = trimmed.split('/').next().unwrap_or_default();
    if RESERVED.contains(&first) {
        return Err(format!("mount path `{trimmed}`: `{first}/` is reserved"));
    }
    Ok(format!("{trimmed}/"))
}

/// The mount table.
pub struct MountTable {
    barrier: Arc<Barrier>,
    cache: RwLock<Option<BTreeMap<String, MountEntry>>>,
    /// Bumped by every change, so a load that raced with a change does not
    /// cache what it read before it.
    generation: AtomicU64,
    /// One change at a time (the overlap check and the write go together).
    writing: tokio::sync::Mutex<()>,
}

impl MountTable {
    /// Mounts in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            cache: RwLock::new(None),
            generation: AtomicU64::new(0),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Every mount by path (loaded from storage once).
    pub async fn all(&self) -> Result<BTreeMap<String, MountEntry>, BarrierError> {
        if let Some(table) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Ok(table.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let mut table = BTreeMap::new();
        for key in self.barrier.list(MOUNTS).await? {
            if let Some(bytes) = self.barrier.get(&key).await?
                && let Ok(entry) = serde_json::from_slice::<MountEntry>(&bytes)
            {
                table.insert(entry.path.clone(), entry);
            }
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            *cache = Some(table.clone());
        }
        Ok(table)
    }

    /// The mount serving `path` (a request path without `/v1/`) and the rest of
    /// the path after it.
    pub async fn resolve(&self, path: &str) -> Result<Option<(MountEntry, String)>, BarrierError> {
        let table = self.all().await?;
        let with_slash = format!("{}/", path.trim_end_matches('/'));
        Ok(table
            .values()
            .filter(|m| with_slash.starts_with(&m.path))
            .max_by_key(|m| m.path.len())
            .map(|m| (m.clone(), path[m.path.len().min(path.len())..].to_owned())))
    }

    /// The mount with id `uuid`.
    pub async fn by_uuid(&self, uuid: &str) -> Result<Option<MountEntry>, BarrierError> {
        Ok(self.all().await?.into_values().find(|m| m.uuid == uuid))
    }

    /// Adds a mount; refuses a path that is, contains or is inside another mount.
    pub async fn insert(&self, entry: MountEntry) -> Result<(), String> {
        let _writing = self.writing.lock().await;
        let table = self.all().await.map_err(|e| e.to_string())?;
        if let Some(clash) = table
            .keys()
            .find(|p| p.starts_with(&entry.path) || entry.path.starts_with(p.as_str()))
        {
            return Err(format!("existing mount at {clash}"));
        }
        let json = serde_json::to_vec(&entry).expect("a mount serializes");
        self.barrier
            .put(&format!("{MOUNTS}{}", entry.path), &json)
            .await
            .map_err(|e| e.to_string())?;
        self.forget();
        Ok(())
    }

    /// Changes the settings of `mount` (found by path and id) as `change`
    /// says, applied to the mount as stored now, so two changes of different
    /// settings never undo each other; `None` if it is gone. Nothing is
    /// written if `change` fails.
    pub async fn modify<E: From<BarrierError>>(
        &self,
        mount: &MountEntry,
        change: impl FnOnce(&mut MountEntry) -> Result<(), E>,
    ) -> Result<Option<MountEntry>, E> {
        let _writing = self.writing.lock().await;
        let key = format!("{MOUNTS}{}", mount.path);
        let current = match self.barrier.get(&key).await? {
            Some(bytes) => serde_json::from_slice::<MountEntry>(&bytes).ok(),
            None => None,
        };
        let Some(mut entry) = current.filter(|c| c.uuid == mount.uuid) else {
            return Ok(None);
        };
        change(&mut entry)?;
        let json = serde_json::to_vec(&entry).expect("a mount serializes");
        self.barrier.put(&key, &json).await?;
        self.forget();
        Ok(Some(entry))
    }

    /// Removes the mount at `path`.
    pub async fn remove(&self, path: &str) -> Result<(), BarrierError> {
        let _writing = self.writing.lock().await;
        self.barrier.delete(&format!("{MOUNTS}{path}")).await?;
        self.forget();
        Ok(())
    }

    /// Drops the in-memory table (after a write, or a seal).
    pub fn forget(&self) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        *cache = None;
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn mount_paths() {
        assert_eq!(normalize("db").unwrap(), "db/");
        assert_eq!(normalize("/team/db/").unwrap(), "team/db/");
        for bad in ["", "/", "sys", "auth/x", "a//b", "a/../b", "x/creds", "a b"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
