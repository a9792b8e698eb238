//! Connections and roles of a mount, in Vault's database-engine shape.
//!
//! A connection holds the plugin's config (its own fields, secrets included,
//! encrypted in the barrier) and the capability grants its calls get; a role
//! names a connection and holds the plugin's role fields and TTLs. Both live
//! under `logical/<mount uuid>/`.

use crate::barrier::{Barrier, BarrierError};
use crate::plugin::{GrantError, Grants};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A connection to a target.
#[derive(Clone, Serialize, Deserialize)]
pub struct Connection {
    /// The catalog plugin it uses.
    pub plugin_name: String,
    /// The plugin version it uses.
    pub plugin_version: String,
    /// Roles that may use it (`*` for all).
    pub allowed_roles: Vec<String>,
    /// Of its mount's TCP grants, the ones it may use (empty: all).
    pub allowed_hosts: Vec<String>,
    /// Of its mount's HTTP grants, the ones it may use (empty: all).
    pub allowed_origins: Vec<String>,
    /// The mount's granted directory or one inside it (none: the mount's).
    pub directory: Option<String>,
    /// Whether `validate` ran when it was written.
    pub verify_connection: bool,
    /// Plugin calls that may run on it at once (0: the default,
    /// [`DEFAULT_MAX_PARALLEL`]), like Vault's `max_open_connections`.
    #[serde(default)]
    pub max_parallel: u32,
    /// The plugin's own fields.
    pub config: Map<String, Value>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("plugin_name", &self.plugin_name)
            .field("plugin_version", &self.plugin_version)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Calls at once on a connection unless the operator says otherwise: Vault's
/// default `max_open_connections`.
pub const DEFAULT_MAX_PARALLEL: u32 = 4;

impl Connection {
    /// Calls that may run on it at once: the operator's setting (or the
    /// default), never more than the plugin says its target takes.
    pub fn parallel_calls(&self, plugin_hint: Option<u32>) -> u32 {
        let configured = match self.max_parallel {
            0 => DEFAULT_MAX_PARALLEL,
            n => n,
        };
        plugin_hint.map_or(configured, |hint| configured.min(hint))
    }

    /// The grants it names, which narrow its mount's (none: all of the mount's).
    pub fn grants(&self) -> Result<Grants, GrantError> {
        super::grants::grants_of(
            &self.allowed_hosts,
            &self.allowed_origins,
            self.directory.as_deref(),
        )
    }

    /// Whether `role` may use it.
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }

    /// The config the plugin reads, as JSON text.
    pub fn config_json(&self) -> String {
        Value::Object(self.config.clone()).to_string()
    }
}

/// A role.
#[derive(Clone, Serialize, Deserialize)]
pub struct Role {
    /// The connection it issues on.
    pub db_name: String,
    /// Default TTL in seconds (0: the mount's).
    pub default_ttl: u64,
    /// Max TTL in seconds (0: the mount's).
    pub max_ttl: u64,
    /// The plugin's own role fields.
    pub fields: Map<String, Value>,
    /// Whether the plugin checked the fields; a role written before its
    /// connection is checked at its first issue.
    #[serde(default = "checked_before")]
    pub checked: bool,
}

/// Roles stored before the field existed were all checked when written.
fn checked_before() -> bool {
    true
}

impl std::fmt::Debug for Role {
    /// Plugin fields may be secret: only their names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role")
            .field("db_name", &self.db_name)
            .field("default_ttl", &self.default_ttl)
            .field("max_ttl", &self.max_ttl)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Role {
    /// The role the plugin reads, as JSON text.
    pub fn fields_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }
}

/// Connections and roles, per mount.
#[derive(Clone)]
pub struct MountData {
    barrier: Arc<Barrier>,
}

fn key(mount_uuid: &str, kind: &str, name: &str) -> String {
    format!("logical/{mount_uuid}/{kind}/{name}")
}

impl MountData {
    /// Stored in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self { barrier }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<T>, BarrierError> {
        match self.barrier.get(&key).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| BarrierError::Tampered(key)),
            None => Ok(None),
        }
    }

    async fn names(&self, mount_uuid: &str, kind: &str) -> Result<Vec<String>, BarrierError> {
        let prefix = key(mount_uuid, kind, "");
        Ok(self
            .barrier
            .list(&prefix)
            .await?
            .into_iter()
            .map(|k| k[prefix.len()..].to_owned())
            .collect())
    }

    /// The connection `name`.
    pub async fn connection(
        &self,
        mount_uuid: &str,
        name: &str,
    ) -> Result<Option<Connection>, BarrierError> {
        self.read(key(mount_uuid, "config", name)).await
    }

    /// Writes the connection `name`.
    pub async fn put_connection(
        &self,
        mount_uuid: &str,
        name: &str,
        connection: &Connection,
    ) -> Result<(), BarrierError> {
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(connection).expect("a connection serializes"),
        );
        self.barrier
            .put(&key(mount_uuid, "config", name), &json)
            .await
    }

    /// Connection names.
    pub async fn connections(&self, mount_uuid: &str) -> Result<Vec<String>, BarrierError> {
        self.names(mount_uuid, "config").await
    }

    /// Removes the connection `name`.
    pub async fn delete_connection(
        &self,
        mount_uuid: &str,
        name: &str,
    ) -> Result<(), BarrierError> {
        self.barrier.delete(&key(mount_uuid, "config", name)).await
    }

    /// The role `name`.
    pub async fn role(&self, mount_uuid: &str, name: &str) -> Result<Option<Role>, BarrierError> {
        self.read(key(mount_uuid, "roles", name)).await
    }

    /// Writes the role `name`.
    pub async fn put_role(
        &self,
        mount_uuid: &str,
        name: &str,
        role: &Role,
    ) -> Result<(), BarrierError> {
        let json = serde_json::to_vec(role).expect("a role serializes");
        self.barrier
            .put(&key(mount_uuid, "roles", name), &json)
            .await
    }

    /// Role names.
    pub async fn roles(&self, mount_uuid: &str) -> Result<Vec<String>, BarrierError> {
        self.names(mount_uuid, "roles").await
    }

    /// Removes the role `name`.
    pub async fn delete_role(&self, mount_uuid: &str, name: &str) -> Result<(), BarrierError> {
        self.barrier.delete(&key(mount_uuid, "roles", name)).await
    }

    /// Removes everything of a mount.
    pub async fn purge(&self, mount_uuid: &str) -> Result<(), BarrierError> {
        let keys = self.barrier.list(&format!("logical/{mount_uuid}/")).await?;
        self.barrier
            .batch(
                keys.into_iter()
                    .map(crate::barrier::BarrierOp::Delete)
                    .collect(),
            )
            .await
    }
}
