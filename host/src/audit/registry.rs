//! Enabled audit devices: their configuration under the barrier, and the open
//! devices in memory while unsealed.

use super::device::AuditDevice;
use crate::barrier::{Barrier, BarrierError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

const PREFIX: &str = "sys/audit-devices/";

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

/// The enabled devices.
pub struct AuditRegistry {
    barrier: Arc<Barrier>,
    /// Open devices; `None` until loaded after an unseal.
    open: RwLock<Option<Vec<Arc<AuditDevice>>>>,
}

fn open_device(path: &str, config: &DeviceConfig) -> Result<AuditDevice, AuditError> {
    let file_path = config
        .options
        .get("file_path")
        .ok_or_else(|| AuditError::Invalid("the file device needs options.file_path".into()))?;
    let key = Zeroizing::new(
        hex::decode(&config.hmac_key)
            .map_err(|_| AuditError::Invalid("corrupt device key".into()))?,
    );
    AuditDevice::open(path, std::path::Path::new(file_path), key).map_err(|err| AuditError::Io {
        path: file_path.clone(),
        error: err.to_string(),
    })
}

impl AuditRegistry {
    /// Devices configured in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            open: RwLock::new(None),
        }
    }

    /// Forgets the open devices (on seal).
    pub fn forget(&self) {
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = None;
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
        if let Some(open) = self.open.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(open);
        }
        let mut open = Vec::new();
        for (path, config) in self.configs().await? {
            match open_device(&path, &config) {
                Ok(device) => open.push(Arc::new(device)),
                Err(err) => {
                    tracing::error!(device = %path, error = %err, "audit device cannot be opened")
                }
            }
        }
        // Requests racing here after an unseal or a change each opened the
        // devices; one set wins, so every line of a file goes through one
        // device and one chain.
        let mut stored = self.open.write().unwrap_or_else(|e| e.into_inner());
        Ok(stored.get_or_insert(open).clone())
    }

    /// Whether any device is enabled (even one that cannot write).
    pub async fn any_enabled(&self) -> Result<bool, AuditError> {
        Ok(!self.barrier.list(PREFIX).await?.is_empty())
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
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).expect("the OS random source failed");
        let config = DeviceConfig {
            kind: kind.to_owned(),
            description,
            options,
            hmac_key: hex::encode(key.as_ref()),
        };
        open_device(path, &config)?;
        let json = Zeroizing::new(serde_json::to_vec(&config).expect("a device config serializes"));
        self.barrier.put(&format!("{PREFIX}{path}"), &json).await?;
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
        self.barrier.delete(&format!("{PREFIX}{path}")).await?;
        self.forget();
        Ok(())
    }

    /// Writes one entry to each of `devices` (taken before the request ran, so
    /// a request that seals the barrier still has its response recorded where
    /// its request was); fails if none wrote.
    /// `in_clear` names request fields (`request.data.<field>`) recorded as
    /// they are, as the route declares.
    pub async fn record_to(
        devices: &[Arc<AuditDevice>],
        entry: &serde_json::Map<String, serde_json::Value>,
        in_clear: &[&str],
    ) -> Result<(), AuditError> {
        let mut wrote = false;
        for device in devices {
            let mut hashed = serde_json::Value::Object(entry.clone());
            // `type`, `time` and `error` are the broker's own words, not data.
            device.hmac(&mut hashed);
            let serde_json::Value::Object(mut hashed) = hashed else {
                unreachable!()
            };
            for field in ["type", "time", "error"] {
                if let Some(value) = entry.get(field) {
                    hashed.insert(field.into(), value.clone());
                }
            }
            restore_plain(entry, &mut hashed);
            restore_request_fields(entry, &mut hashed, in_clear);
            // An fsync'd append: off the async workers, like every storage write.
            let writer = device.clone();
            let written = tokio::task::spawn_blocking(move || writer.write(hashed))
                .await
                .unwrap_or_else(|err| Err(std::io::Error::other(err.to_string())));
            match written {
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
}

/// The longest value a route's in-clear request field is recorded with; a
/// longer one stays HMAC'd (and cut), so it cannot grow the log unbounded.
const MAX_IN_CLEAR_BYTES: usize = 4096;

/// Puts a route's in-clear request fields back as they were sent.
fn restore_request_fields(
    entry: &serde_json::Map<String, serde_json::Value>,
    hashed: &mut serde_json::Map<String, serde_json::Value>,
    in_clear: &[&str],
) {
    let Some(serde_json::Value::Object(plain)) = entry.get("request").and_then(|r| r.get("data"))
    else {
        return;
    };
    let Some(serde_json::Value::Object(target)) =
        hashed.get_mut("request").and_then(|r| r.get_mut("data"))
    else {
        return;
    };
    for field in in_clear {
        if let Some(value) = plain.get(*field)
            && value.to_string().len() <= MAX_IN_CLEAR_BYTES
        {
            target.insert((*field).into(), value.clone());
        }
    }
}

/// Fields that are never secret and that operators need readable: the request's
/// path, operation, id and status; the caller's policies and display name.
fn restore_plain(
    entry: &serde_json::Map<String, serde_json::Value>,
    hashed: &mut serde_json::Map<String, serde_json::Value>,
) {
    for (section, fields) in [
        (
            "request",
            &[
                "id",
                "operation",
                "path",
                "remote_address",
                "query",
                "mount_point",
                "mount_type",
                "mount_accessor",
            ][..],
        ),
        ("response", &["status"][..]),
        ("auth", &["policies", "display_name"][..]),
    ] {
        let (Some(plain), Some(serde_json::Value::Object(target))) =
            (entry.get(section), hashed.get_mut(section))
        else {
            continue;
        };
        for field in fields {
            if let Some(value) = plain.get(*field) {
                target.insert((*field).into(), value.clone());
            }
        }
    }
}
