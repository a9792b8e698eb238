//! Enabled audit devices: their configuration under the barrier, and the open
//! devices in memory while unsealed.

use super::chain::{Checkpoint, Verified, VerifyError};
use super::device::AuditDevice;
use super::writer::{CheckpointSink, DeviceKeys, Durability, resume};
use crate::barrier::{Barrier, BarrierError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

const PREFIX: &str = "sys/audit-devices/";
/// Where each device's chain checkpoint is kept.
const HEADS: &str = "sys/audit-heads/";

/// How a device was enabled. The HMAC key is kept beside it, encrypted by the
/// barrier like everything else.
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Device type: `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Operator's description.
    pub description: String,
    /// Device options (`file_path`).
    pub options: BTreeMap<String, String>,
    /// The HMAC key, hex.
    hmac_key: String,
    /// The key of the chain through the file, hex (devices enabled before
    /// the chain was keyed get one when next opened).
    #[serde(default)]
    chain_key: Option<String>,
}

impl std::fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("kind", &self.kind)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Why enabling, disabling or writing failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A device type other than `file`, or missing options.
    #[error("{0}")]
    Invalid(String),
    /// The device's path is taken.
    #[error("an audit device is already enabled at `{0}`")]
    Exists(String),
    /// No device at that path.
    #[error("no audit device at `{0}`")]
    Missing(String),
    /// The file cannot be written.
    #[error("audit file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// Every enabled device failed to record the request.
    #[error("no audit device could record the request, so it was refused")]
    NoDeviceWrote,
    /// Storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

fn heads_key(path: &str) -> String {
    format!("{HEADS}{path}")
}

fn file_len(file: &std::path::Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

/// The enabled devices.
pub struct AuditRegistry {
    barrier: Arc<Barrier>,
    /// Open devices; `None` until loaded after an unseal.
    open: RwLock<Option<Vec<Arc<AuditDevice>>>>,
    /// Every device still alive, by path, including those an in-flight request
    /// holds after the set was dropped (an enable, a disable, a seal). Opened
    /// again, the same device is used, so a file never has two writers and its
    /// chain never forks.
    live: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<AuditDevice>>>,
    /// One opener at a time: opening may store a device's new chain key.
    opening: tokio::sync::Mutex<()>,
    /// Whether any device is enabled, asked by every request: read from
    /// storage once, until an enable, a disable or a seal.
    enabled: std::sync::Mutex<EnabledCache>,
}

#[derive(Default)]
struct EnabledCache {
    /// Bumped by every change: an answer read before one is not kept after it.
    generation: u64,
    any: Option<bool>,
}

fn file_path_of(config: &DeviceConfig) -> Result<&str, AuditError> {
    config
        .options
        .get("file_path")
        .map(String::as_str)
        .ok_or_else(|| AuditError::Invalid("the file device needs options.file_path".into()))
}

fn io_error(file: &str, err: std::io::Error) -> AuditError {
    AuditError::Io {
        path: file.to_owned(),
        error: err.to_string(),
    }
}

fn new_key() -> String {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).expect("the OS random source failed");
    hex::encode(key.as_ref())
}

fn decoded(key: &str) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    hex::decode(key)
        .map(Zeroizing::new)
        .map_err(|_| AuditError::Invalid("corrupt device key".into()))
}

impl AuditRegistry {
    /// Devices configured in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            open: RwLock::new(None),
            live: Default::default(),
            opening: tokio::sync::Mutex::new(()),
            enabled: Default::default(),
        }
    }

    fn cached(&self) -> Option<Vec<Arc<AuditDevice>>> {
        self.open.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The device alive at `path` with `chain_key`, if any.
    fn alive(&self, path: &str, chain_key: &str) -> Option<Arc<AuditDevice>> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(path)
            .and_then(std::sync::Weak::upgrade)
            .filter(|device| device.has_chain_key(chain_key))
    }

    /// Forgets the open devices and whether any is enabled (on seal, and after
    /// an enable or a disable).
    pub fn forget(&self) {
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = None;
        let mut cache = self.enabled.lock().unwrap_or_else(|e| e.into_inner());
        cache.generation += 1;
        cache.any = None;
    }

    /// The enabled devices and their configs.
    pub async fn configs(&self) -> Result<Vec<(String, DeviceConfig)>, AuditError> {
        let mut configs = Vec::new();
        for key in self.barrier.list(PREFIX).await? {
            if let Some(bytes) = self.barrier.get(&key).await? {
                let config: DeviceConfig = serde_json::from_slice(&bytes)
                    .map_err(|_| AuditError::Invalid(format!("stored config {key} is corrupt")))?;
                configs.push((key[PREFIX.len()..].to_owned(), config));
            }
        }
        Ok(configs)
    }

    /// The open devices, opening them after an unseal. A device whose file cannot
    /// be opened is left out (and so cannot record anything).
    pub async fn devices(&self) -> Result<Vec<Arc<AuditDevice>>, AuditError> {
        if let Some(open) = self.cached() {
            return Ok(open);
        }
        let _opening = self.opening.lock().await;
        if let Some(open) = self.cached() {
            return Ok(open);
        }
        let mut open = Vec::new();
        for (path, config) in self.configs().await? {
            match self.open_device(&path, config).await {
                Ok(device) => open.push(device),
                Err(err) => {
                    tracing::error!(device = %path, error = %err, "audit device cannot be opened")
                }
            }
        }
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = Some(open.clone());
        Ok(open)
    }

    /// Opens the device at `path`: its chain continues from its checkpoint.
    async fn open_device(
        &self,
        path: &str,
        mut config: DeviceConfig,
    ) -> Result<Arc<AuditDevice>, AuditError> {
        if config.chain_key.is_none() {
            config.chain_key = Some(new_key());
            self.store(path, &config).await?;
        }
        if let Some(device) = self.alive(path, config.chain_key.as_deref().unwrap_or_default()) {
            return Ok(device);
        }
        let file = file_path_of(&config)?.to_owned();
        let keys = DeviceKeys {
            values: decoded(&config.hmac_key)?,
            chain: decoded(config.chain_key.as_deref().unwrap_or_default())?,
        };
        let stored: Option<Checkpoint> = match self.barrier.get(&heads_key(path)).await? {
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|_| {
                AuditError::Invalid(format!(
                    "the checkpoint of audit device `{path}` is corrupt"
                ))
            })?),
            None => None,
        };
        let file_path = std::path::PathBuf::from(&file);
        let chain_key = keys.chain.clone();
        let checkpoint = tokio::task::spawn_blocking(move || {
            let resumed = resume(&file_path, &chain_key, stored.clone());
            if stored.as_ref().is_some_and(|s| *s == resumed && s.end != file_len(&file_path)) {
                tracing::error!(
                    file = %file_path.display(),
                    "the audit file does not end where the broker last wrote it: it changed while the broker was not running; `leasehold audit verify` shows where"
                );
            }
            resumed
        })
        .await
        .map_err(|err| AuditError::Invalid(err.to_string()))?;
        let retired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let device = Arc::new(
            AuditDevice::open(
                path,
                std::path::Path::new(&file),
                keys,
                checkpoint,
                self.checkpoint_sink(path, retired.clone()),
                retired,
            )
            .map_err(|err| io_error(&file, err))?,
        );
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned(), Arc::downgrade(&device));
        Ok(device)
    }

    /// Records a device's checkpoints in the barrier, from its checkpoint thread.
    /// While sealed nothing can be recorded: the lines are in the file, and
    /// the next open moves the checkpoint over them if they chain on.
    /// A device disabled while requests still write through it (`retired`)
    /// records nothing more, so its checkpoint does not come back.
    fn checkpoint_sink(
        &self,
        path: &str,
        retired: Arc<std::sync::atomic::AtomicBool>,
    ) -> CheckpointSink {
        let barrier = self.barrier.clone();
        let key = heads_key(path);
        let runtime = tokio::runtime::Handle::current();
        Box::new(move |checkpoint: &Checkpoint| {
            if retired.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            let json = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
            match runtime.block_on(barrier.put(&key, &json)) {
                Ok(()) | Err(BarrierError::Sealed) => Ok(()),
                Err(err) => {
                    tracing::error!(device = %key, error = %err, "the audit checkpoint could not be recorded");
                    Err(std::io::Error::other(format!(
                        "the audit checkpoint could not be recorded: {err}"
                    )))
                }
            }
        })
    }

    /// The files of the enabled devices, as configured.
    pub async fn files(&self) -> Result<Vec<std::path::PathBuf>, AuditError> {
        Ok(self
            .configs()
            .await?
            .iter()
            .filter_map(|(_, config)| file_path_of(config).ok().map(std::path::PathBuf::from))
            .collect())
    }

    async fn store(&self, path: &str, config: &DeviceConfig) -> Result<(), AuditError> {
        let json = Zeroizing::new(serde_json::to_vec(config).expect("a device config serializes"));
        self.barrier.put(&format!("{PREFIX}{path}"), &json).await?;
        Ok(())
    }

    /// Whether any device is enabled (even one that cannot write).
    pub async fn any_enabled(&self) -> Result<bool, AuditError> {
        let generation = {
            let cache = self.enabled.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(any) = cache.any {
                return Ok(any);
            }
            cache.generation
        };
        let any = !self.barrier.list(PREFIX).await?.is_empty();
        let mut cache = self.enabled.lock().unwrap_or_else(|e| e.into_inner());
        if cache.generation == generation {
            cache.any = Some(any);
        }
        Ok(any)
    }

    /// Enables a file device at `path`. The file must be writable now.
    pub async fn enable(
        &self,
        path: &str,
        kind: &str,
        description: String,
        options: BTreeMap<String, String>,
    ) -> Result<(), AuditError> {
        if kind != "file" {
            return Err(AuditError::Invalid(format!(
                "audit device type `{kind}` is not supported (supported: file)"
            )));
        }
        if self
            .barrier
            .get(&format!("{PREFIX}{path}"))
            .await?
            .is_some()
        {
            return Err(AuditError::Exists(path.to_owned()));
        }
        let config = DeviceConfig {
            kind: kind.to_owned(),
            description,
            options,
            hmac_key: new_key(),
            chain_key: Some(new_key()),
        };
        let file = file_path_of(&config)?;
        super::writer::open_for_append(std::path::Path::new(file))
            .map_err(|err| io_error(file, err))?;
        let same_file = |other: &str| {
            let canonical = |p: &str| std::fs::canonicalize(p).ok();
            canonical(other).is_some() && canonical(other) == canonical(file)
        };
        if let Some((other, _)) = self
            .configs()
            .await?
            .into_iter()
            .find(|(_, c)| file_path_of(c).is_ok_and(same_file))
        {
            return Err(AuditError::Invalid(format!(
                "audit device `{other}` already writes to this file; two chains in one file would break both"
            )));
        }
        // The device's lines begin where the file ends now; a checkpoint left
        // by an earlier device at this path is replaced.
        let fresh = resume(std::path::Path::new(file), &[], None);
        self.barrier
            .put(
                &heads_key(path),
                &serde_json::to_vec(&fresh).expect("a checkpoint serializes"),
            )
            .await?;
        self.store(path, &config).await?;
        self.forget();
        Ok(())
    }

    /// Disables the device at `path`.
    pub async fn disable(&self, path: &str) -> Result<(), AuditError> {
        if self
            .barrier
            .get(&format!("{PREFIX}{path}"))
            .await?
            .is_none()
        {
            return Err(AuditError::Missing(path.to_owned()));
        }
        // Requests still holding the device finish their lines; it records
        // no checkpoint any more, so the one deleted here stays deleted.
        if let Some(device) = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path)
            .and_then(|weak| weak.upgrade())
        {
            device.retire();
        }
        self.barrier.delete(&format!("{PREFIX}{path}")).await?;
        self.barrier.delete(&heads_key(path)).await?;
        self.forget();
        Ok(())
    }

    /// Writes one entry to each of `devices` (taken before the request ran, so
    /// a request that seals the barrier still has its response recorded where
    /// its request was); fails if none wrote. `in_clear` names request fields
    /// (`request.data.<field>`) recorded as they are, as the route declares.
    pub async fn record_to(
        devices: &[Arc<AuditDevice>],
        entry: serde_json::Map<String, serde_json::Value>,
        in_clear: &'static [&'static str],
        durability: Durability,
    ) -> Result<(), AuditError> {
        let entry = Arc::new(entry);
        let mut wrote = false;
        for device in devices {
            match device.record(entry.clone(), in_clear, durability).await {
                Ok(()) => wrote = true,
                Err(err) => {
                    tracing::error!(device = %device.path(), error = %err, "audit write failed")
                }
            }
        }
        if wrote {
            Ok(())
        } else {
            Err(AuditError::NoDeviceWrote)
        }
    }

    /// Checks the chain of the device at `path` from its first line to the
    /// last the broker recorded.
    pub async fn verify(&self, path: &str) -> Result<Result<Verified, VerifyError>, AuditError> {
        let device = self
            .devices()
            .await?
            .into_iter()
            .find(|d| d.path() == path)
            .ok_or_else(|| AuditError::Missing(path.to_owned()))?;
        tokio::task::spawn_blocking(move || device.verify())
            .await
            .map_err(|err| AuditError::Invalid(format!("verification failed: {err}")))
    }
}
