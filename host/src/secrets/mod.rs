//! Secrets engines: mounts of catalog plugins, their connections and roles, and
//! issuing credentials on them.
//!
//! This module decides what a request means (which plugin, config, grants,
//! role and TTLs); [`crate::leases`] keeps the leases; [`crate::api`] speaks HTTP.

mod connection;
mod grants;
mod mounts;
pub mod schema;
mod versions;

pub use connection::{Connection, MountData, Role};
pub use grants::{GrantLimits, MountGrants};
pub use mounts::{DATABASE_TYPE, MountEntry, MountTable, normalize};
use versions::running;
pub use versions::{MountTune, Reload};

use crate::barrier::{Barrier, BarrierError};
use crate::catalog::{Catalog, CatalogEntry, CatalogError, same_version};
use crate::config::LeaseSettings;
use crate::leases::{
    IssueRequest, IssuedLease, LeaseEntry, LeaseError, LeaseLimit, Leases, Target, Targets,
    TtlSettings,
};
use crate::plugin::{CallScope, ConnectionLimit, GrantError, Grants, PluginError};
use schema::ObjectSchema;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why a secrets operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// Nothing there.
    #[error("not found")]
    NotFound,
    /// A plugin call failed.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// A lease operation failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    /// Something in the broker broke.
    #[error("{0}")]
    Internal(String),
}

fn invalid(message: impl Into<String>) -> SecretsError {
    SecretsError::Invalid(message.into())
}

/// Finds a lease's target from the mount table, the mount's connections and the
/// catalog.
struct Resolver {
    catalog: Arc<Catalog>,
    mounts: Arc<MountTable>,
    data: MountData,
    limits: GrantLimits,
}

impl Resolver {
    /// What a call on `connection` may reach: the mount's grants, within
    /// today's limits (the config may have changed since they were set),
    /// narrowed by the connection's. A connection written when its mount
    /// granted more keeps only what the mount grants now, so it can still
    /// revoke what it issued if that is within reach.
    fn grants(&self, mount: &MountEntry, connection: &Connection) -> Result<Grants, SecretsError> {
        let granted = |err: String| invalid(format!("the grants of mount {}: {err}", mount.path));
        let of_mount = mount.grants.grants().map_err(|e| granted(e.to_string()))?;
        let of_connection = connection
            .grants()
            .map_err(|err| invalid(format!("connection grants: {err}")))?;
        let outside = of_mount.widened_by(&of_connection);
        if !outside.is_empty() {
            tracing::warn!(
                mount = %mount.path,
                outside = ?outside,
                "a connection names grants its mount no longer grants; they are not given"
            );
        }
        let narrowed = of_mount.narrowed_by(&of_connection);
        // The directory the call will get, as resolved now, within today's
        // limits; the sandbox then opens exactly this path, refusing any
        // symlink that appeared on it since.
        if let Some(dir) = narrowed.granted_directory() {
            self.limits.check_directory(dir).map_err(granted)?;
        }
        Ok(narrowed)
    }

    async fn target(
        &self,
        mount: &MountEntry,
        name: &str,
        connection: &Connection,
    ) -> Result<Target, SecretsError> {
        let version = versions::running_version(mount, connection);
        let entry = self
            .catalog
            .get(&connection.plugin_name, Some(version))
            .await?
            .ok_or_else(|| {
                invalid(format!(
                    "plugin `{}` version {version} is not in the catalog",
                    connection.plugin_name
                ))
            })?;
        let plugin = self.catalog.plugin(&entry).await?;
        let grants = self.grants(mount, connection)?;
        let hint = ObjectSchema::parse(&entry.config_schema).max_parallel_hint();
        let limit = ConnectionLimit {
            key: connection_key(mount, name),
            max_parallel: connection.parallel_calls(hint),
        };
        Ok(Target {
            plugin,
            plugin_version: entry.version,
            scope: CallScope::new(mount.path.trim_matches('/'), grants).on_connection(limit),
            config: SecretString::from(connection.config_json()),
        })
    }
}

#[async_trait::async_trait]
impl Targets for Resolver {
    async fn target(&self, lease: &LeaseEntry) -> Result<Target, String> {
        let mount = self
            .mounts
            .by_uuid(&lease.mount_uuid)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("mount {} no longer exists", lease.mount_path))?;
        let connection = self
            .data
            .connection(&lease.mount_uuid, &lease.connection)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("connection `{}` no longer exists", lease.connection))?;
        Resolver::target(self, &mount, &lease.connection, &connection)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Who asks for a credential.
pub struct Requester {
    /// Token accessor.
    pub accessor: String,
    /// Token display name.
    pub display_name: String,
    /// Token expiry, if any.
    pub expire_at: Option<u64>,
}

/// A connection write: the broker's fields, and the plugin's own in `config`.
pub struct ConnectionWrite {
    /// `plugin_name`.
    pub plugin_name: Option<String>,
    /// `plugin_version`.
    pub plugin_version: Option<String>,
    /// `allowed_roles`.
    pub allowed_roles: Option<Vec<String>>,
    /// `allowed_hosts`.
    pub allowed_hosts: Option<Vec<String>>,
    /// `allowed_origins`.
    pub allowed_origins: Option<Vec<String>>,
    /// `directory`.
    pub directory: Option<String>,
    /// `verify_connection` (default true).
    pub verify_connection: Option<bool>,
    /// `max_parallel` (or Vault's `max_open_connections`).
    pub max_parallel: Option<u32>,
    /// The plugin's fields given in this request.
    pub config: Map<String, Value>,
}

/// Mounts, connections, roles, credentials.
pub struct Secrets {
    /// The plugin catalog.
    pub catalog: Arc<Catalog>,
    /// The mount table.
    pub mounts: Arc<MountTable>,
    /// Connections and roles.
    pub data: MountData,
    /// Leases.
    pub leases: Arc<Leases>,
    resolver: Arc<Resolver>,
    /// Per mount (by uuid): issues share it; unmounting and changing or deleting
    /// a connection take it alone, so no credential is issued on a connection
    /// while it is being removed or its root credential replaced.
    gates: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::RwLock<()>>>>,
}

impl Secrets {
    /// Everything over `barrier`, running plugins from `catalog`, with
    /// directory grants within `limits`.
    pub fn new(
        barrier: Arc<Barrier>,
        catalog: Arc<Catalog>,
        settings: LeaseSettings,
        limits: GrantLimits,
    ) -> Self {
        let mounts = Arc::new(MountTable::new(barrier.clone()));
        let data = MountData::new(barrier.clone());
        let resolver = Arc::new(Resolver {
            catalog: catalog.clone(),
            mounts: mounts.clone(),
            data: data.clone(),
            limits,
        });
        let leases = Arc::new(Leases::new(barrier, resolver.clone(), settings));
        Self {
            catalog,
            mounts,
            data,
            leases,
            resolver,
            gates: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The mount's gate held alone, and the mount as it is now (an unmount or
    /// a change of its grants may have finished while this waited).
    async fn alone(
        &self,
        mount: &MountEntry,
    ) -> Result<(tokio::sync::OwnedRwLockWriteGuard<()>, MountEntry), SecretsError> {
        let guard = self.gate(&mount.uuid).write_owned().await;
        let current = self.current(mount).await?;
        Ok((guard, current))
    }

    /// `mount` as the table holds it now, or an error if it was disabled.
    async fn current(&self, mount: &MountEntry) -> Result<MountEntry, SecretsError> {
        self.mounts
            .by_uuid(&mount.uuid)
            .await?
            .ok_or_else(|| invalid(format!("{} was disabled", mount.path)))
    }

    fn gate(&self, mount_uuid: &str) -> Arc<tokio::sync::RwLock<()>> {
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(mount_uuid.to_owned())
            .or_default()
            .clone()
    }

    /// The connection `name` of `mount`, with the plugin version its calls
    /// run (see [`running`]).
    async fn stored_connection(
        &self,
        mount: &MountEntry,
        name: &str,
    ) -> Result<Option<Connection>, SecretsError> {
        Ok(self
            .data
            .connection(&mount.uuid, name)
            .await?
            .map(|c| running(mount, c)))
    }

    /// Whether requests may be served: unsealed, and the steps after the
    /// unseal done ([`crate::lifecycle`] opens and closes the leases).
    pub fn is_active(&self) -> bool {
        self.leases.is_active()
    }

    /// The catalog entry a mount or connection names.
    async fn catalog_entry(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<CatalogEntry, SecretsError> {
        self.catalog.get(name, version).await?.ok_or_else(|| {
            invalid(match version {
                Some(v) if !v.is_empty() => {
                    format!("plugin `{name}` version {v} is not in the catalog")
                }
                _ => format!("plugin `{name}` is not in the catalog"),
            })
        })
    }

    /// Mounts a plugin at `path`.
    pub async fn mount(
        &self,
        path: &str,
        kind: &str,
        plugin_version: Option<&str>,
        description: String,
        default_lease_ttl: u64,
        max_lease_ttl: u64,
    ) -> Result<MountEntry, SecretsError> {
        let path = normalize(path).map_err(SecretsError::Invalid)?;
        if max_lease_ttl != 0 && default_lease_ttl > max_lease_ttl {
            return Err(invalid("default_lease_ttl is greater than max_lease_ttl"));
        }
        let (plugin, version) = if kind == DATABASE_TYPE {
            (None, None)
        } else {
            let entry = self.catalog_entry(kind, plugin_version).await?;
            (Some(entry.name), Some(entry.version))
        };
        let entry = MountEntry {
            path,
            kind: kind.to_owned(),
            plugin,
            plugin_version: version,
            description,
            default_lease_ttl,
            max_lease_ttl,
            uuid: crate::ids::uuid(),
            accessor: format!(
                "{}_{}",
                kind,
                &crate::ids::random_text(8).to_ascii_lowercase()
            ),
            grants: MountGrants::default(),
        };
        self.mounts
            .insert(entry.clone())
            .await
            .map_err(SecretsError::Invalid)?;
        Ok(entry)
    }

    /// Unmounts `path`, revoking its leases first. Refuses, naming the failures,
    /// while any cannot be revoked, unless `force` (which removes them anyway).
    pub async fn unmount(&self, path: &str, force: bool) -> Result<usize, SecretsError> {
        let path = normalize(path).map_err(SecretsError::Invalid)?;
        let Some(mount) = self.mounts.all().await?.remove(&path) else {
            return Ok(0);
        };
        let _alone = self.gate(&mount.uuid).write_owned().await;
        let (revoked, failed) = self.leases.revoke_prefix(&path, force).await?;
        if let Some((id, error)) = failed.first() {
            return Err(invalid(format!(
                "cannot disable {path}: {} lease(s) could not be revoked (first: {id}: {error}); they are retried; disable with force=true to remove them without revocation",
                failed.len()
            )));
        }
        self.mounts.remove(&path).await?;
        self.data.purge(&mount.uuid).await?;
        self.catalog.runtime().forget_mount_connections(&mount.uuid);
        Ok(revoked)
    }

    /// The mount serving `path` and the rest of the path.
    pub async fn resolve(&self, path: &str) -> Result<Option<(MountEntry, String)>, SecretsError> {
        Ok(self.mounts.resolve(path).await?)
    }

    /// The directories granted to mounts, resolved.
    pub async fn granted_directories(&self) -> Result<Vec<std::path::PathBuf>, SecretsError> {
        Ok(self
            .mounts
            .all()
            .await?
            .values()
            .filter_map(|m| m.grants.directory.as_deref())
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .collect())
    }

    /// The mount at `path` (written with or without its trailing slash).
    pub async fn mount_at(&self, path: &str) -> Result<MountEntry, SecretsError> {
        let path = normalize(path).map_err(SecretsError::Invalid)?;
        self.mounts
            .all()
            .await?
            .remove(&path)
            .ok_or(SecretsError::NotFound)
    }

    /// Sets what the plugin of the mount at `path` may reach, replacing what
    /// it had. Answers the mount and, as warnings, the connections whose own
    /// grants now name something the mount no longer grants (they lose it).
    /// `audit_files` are the audit logs: no grant may hold one.
    pub async fn set_grants(
        &self,
        path: &str,
        grants: MountGrants,
        audit_files: &[std::path::PathBuf],
    ) -> Result<(MountEntry, Vec<String>), SecretsError> {
        let mount = self.mount_at(path).await?;
        let parsed = grants.grants().map_err(|err| invalid(err.to_string()))?;
        if let Some(dir) = &grants.directory {
            let logs: Vec<_> = audit_files
                .iter()
                .map(|file| (file.clone(), "audit log"))
                .collect();
            self.resolver
                .limits
                .check_directory_besides(std::path::Path::new(dir), &logs)
                .map_err(SecretsError::Invalid)?;
        }
        // Alone on the mount: no call starts with half of the old grants.
        let (_alone, mount) = self.alone(&mount).await?;
        let mount = self
            .mounts
            .modify(&mount, |m| {
                m.grants = grants;
                Ok::<_, SecretsError>(())
            })
            .await?
            .ok_or_else(|| invalid(format!("{} was disabled", mount.path)))?;
        let mut warnings = Vec::new();
        for name in self.data.connections(&mount.uuid).await? {
            let Some(connection) = self.data.connection(&mount.uuid, &name).await? else {
                continue;
            };
            if let Ok(own) = connection.grants() {
                let lost = parsed.widened_by(&own);
                if !lost.is_empty() {
                    warnings.push(format!(
                        "connection `{name}` names grants the mount no longer grants, which it loses: {}",
                        lost.join(", ")
                    ));
                }
            }
        }
        Ok((mount, warnings))
    }

    /// Writes (creates or updates) a connection; plugin fields merge into the
    /// existing ones, so a secret need not be sent again. Validated against the
    /// plugin's schema, then by the plugin itself when `verify_connection`.
    pub async fn write_connection(
        &self,
        mount: &MountEntry,
        name: &str,
        mut write: ConnectionWrite,
    ) -> Result<Vec<String>, SecretsError> {
        check_name("connection", name)?;
        let (_alone, mount) = self.alone(mount).await?;
        let mount = &mount;
        if let Some(asked) = write.plugin_name.take() {
            write.plugin_name = Some(self.catalog_name(asked).await?);
        }
        let mut warnings = Vec::new();
        let existing = self.stored_connection(mount, name).await?;
        let plugin_name = write
            .plugin_name
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| existing.as_ref().map(|c| c.plugin_name.clone()))
            .or_else(|| mount.plugin.clone())
            .ok_or_else(|| invalid("plugin_name is required on a `database` mount"))?;
        if let (Some(own), Some(asked)) = (&mount.plugin, &write.plugin_name)
            && !asked.is_empty()
            && asked != own
        {
            return Err(invalid(format!(
                "this mount runs plugin `{own}`; plugin_name `{asked}` does not match"
            )));
        }
        let asked_version = write.plugin_version.clone().filter(|v| !v.is_empty());
        let version = match (&mount.plugin, &mount.plugin_version) {
            // A mount of one plugin: its connections run the mount's version.
            (Some(own), Some(runs)) => {
                if let Some(asked) = asked_version.filter(|v| !same_version(v, runs)) {
                    return Err(invalid(format!(
                        "mount {} runs version {runs} of `{own}`, and so do its connections: to move them to {asked}, tune the mount (`plugin_version` on sys/mounts/{}/tune)",
                        mount.path,
                        mount.path.trim_end_matches('/'),
                    )));
                }
                Some(runs.clone())
            }
            _ => asked_version.or_else(|| {
                existing
                    .as_ref()
                    .filter(|c| c.plugin_name == plugin_name)
                    .map(|c| c.plugin_version.clone())
            }),
        };
        let entry = self.catalog_entry(&plugin_name, version.as_deref()).await?;

        let schema = ObjectSchema::parse(&entry.config_schema);
        let secret_fields = self
            .secret_fields(&schema, existing.as_ref(), &plugin_name, &entry.version)
            .await?;
        let sent_secrets: Vec<String> = secret_fields
            .iter()
            .filter(|field| write.config.get(*field).is_some_and(|v| !v.is_null()))
            .cloned()
            .collect();
        let mut config = existing
            .as_ref()
            .filter(|c| c.plugin_name == plugin_name)
            .map(|c| c.config.clone())
            .unwrap_or_default();
        for (field, value) in write.config {
            if value.is_null() {
                config.remove(&field);
            } else {
                config.insert(field, value);
            }
        }
        schema.coerce(&mut config);
        // Vault's own connection settings, sent by configs written for Vault:
        // kept for a plugin that declares them, otherwise set aside, saying so.
        for field in VAULT_CONNECTION_FIELDS {
            if !schema.has_property(field) && config.remove(*field).is_some() {
                warnings.push(format!(
                    "`{field}` was ignored: plugin `{plugin_name}` does not use it"
                ));
            }
        }
        reject_unknown(&schema, &config, "connection")?;
        schema
            .check("connection config", &config)
            .map_err(SecretsError::Invalid)?;

        let keep = |new: Option<Vec<String>>, old: fn(&Connection) -> &Vec<String>| {
            new.or_else(|| existing.as_ref().map(|c| old(c).clone()))
                .unwrap_or_default()
        };
        let connection = Connection {
            plugin_name,
            plugin_version: entry.version.clone(),
            allowed_roles: keep(write.allowed_roles, |c| &c.allowed_roles),
            allowed_hosts: keep(write.allowed_hosts, |c| &c.allowed_hosts),
            allowed_origins: keep(write.allowed_origins, |c| &c.allowed_origins),
            directory: write
                .directory
                .or_else(|| existing.as_ref().and_then(|c| c.directory.clone())),
            verify_connection: write.verify_connection.unwrap_or(true),
            max_parallel: write
                .max_parallel
                .or_else(|| existing.as_ref().map(|c| c.max_parallel))
                .unwrap_or(0),
            config,
        };
        let of_mount = mount
            .grants
            .grants()
            .map_err(|err| invalid(format!("the grants of mount {}: {err}", mount.path)))?;
        // A directory the connection names is reported as written, whether it
        // is missing or lies elsewhere: whoever writes a connection learns
        // nothing about the host's files from the answer.
        let as_written = connection.directory.clone().unwrap_or_default();
        let wider = match connection.grants() {
            Ok(own) => of_mount
                .widened_by(&own)
                .into_iter()
                .map(|grant| match own.granted_directory() {
                    Some(dir) if dir.display().to_string() == grant => as_written.clone(),
                    _ => grant,
                })
                .collect(),
            Err(GrantError::BadDirectory(_)) => vec![as_written],
            Err(err) => return Err(invalid(format!("connection grants: {err}"))),
        };
        if !wider.is_empty() {
            return Err(invalid(format!(
                "a connection may only narrow its mount's grants, and mount {} does not grant {}; a sudo holder sets them on sys/grants/{}",
                mount.path,
                quoted(&wider.iter().map(String::as_str).collect::<Vec<_>>()),
                mount.path.trim_end_matches('/'),
            )));
        }
        if let Some(old) = existing.as_ref() {
            refuse_retarget(&secret_fields, old, &connection, &sent_secrets)?;
        }
        let mut target = self.resolver.target(mount, name, &connection).await?;
        if connection.verify_connection {
            // A config not yet saved is checked outside the connection's turns
            // and breaker: the operator may be fixing the very target that
            // opened it.
            target.scope.connection = None;
            target
                .plugin
                .validate(&target.scope, &target.config, None)
                .await?;
        }
        self.data
            .put_connection(&mount.uuid, name, &connection)
            .await?;
        self.catalog
            .runtime()
            .forget_connection(&connection_key(mount, name));
        Ok(warnings)
    }

    /// The catalog's name for a plugin a request names: itself if the catalog
    /// has it, else the bundled plugin Vault's name stands for.
    async fn catalog_name(&self, asked: String) -> Result<String, SecretsError> {
        if self.catalog.get(&asked, None).await?.is_some() {
            return Ok(asked);
        }
        Ok(VAULT_PLUGIN_NAMES
            .iter()
            .find(|(vaults, _)| *vaults == asked)
            .map(|(_, ours)| (*ours).to_owned())
            .unwrap_or(asked))
    }

    /// The fields of a connection write that are secret: the new plugin
    /// version's, and, when the version changes, the stored one's too (a
    /// newer version that stopped marking a field secret must not receive
    /// the stored value unasked). If the stored version is gone from the
    /// catalog, every stored field counts.
    async fn secret_fields(
        &self,
        schema: &ObjectSchema,
        existing: Option<&Connection>,
        plugin_name: &str,
        version: &str,
    ) -> Result<Vec<String>, SecretsError> {
        let mut fields = schema.secret_fields();
        if let Some(old) =
            existing.filter(|c| c.plugin_name == plugin_name && c.plugin_version != version)
        {
            match self
                .catalog
                .get(&old.plugin_name, Some(&old.plugin_version))
                .await?
            {
                Some(entry) => {
                    fields.extend(ObjectSchema::parse(&entry.config_schema).secret_fields())
                }
                None => fields.extend(old.config.keys().cloned()),
            }
            fields.sort_unstable();
            fields.dedup();
        }
        Ok(fields)
    }

    /// A connection and the catalog entry of its plugin.
    pub async fn connection(
        &self,
        mount: &MountEntry,
        name: &str,
    ) -> Result<(Connection, CatalogEntry), SecretsError> {
        let connection = self
            .stored_connection(mount, name)
            .await?
            .ok_or(SecretsError::NotFound)?;
        let entry = self
            .catalog_entry(&connection.plugin_name, Some(&connection.plugin_version))
            .await?;
        Ok((connection, entry))
    }

    /// Deletes a connection no lease uses.
    pub async fn delete_connection(
        &self,
        mount: &MountEntry,
        name: &str,
    ) -> Result<(), SecretsError> {
        let (_alone, mount) = self.alone(mount).await?;
        let mount = &mount;
        if self.leases.connection_in_use(&mount.uuid, name).await? {
            return Err(invalid(format!(
                "connection `{name}` has leases; revoke them first (sys/leases/revoke-prefix/{}creds)",
                mount.path
            )));
        }
        self.data.delete_connection(&mount.uuid, name).await?;
        self.catalog
            .runtime()
            .forget_connection(&connection_key(mount, name));
        Ok(())
    }

    /// Rotates the connection's root credential through the plugin and stores
    /// the config it returns in one write.
    pub async fn rotate_root(&self, mount: &MountEntry, name: &str) -> Result<(), SecretsError> {
        let (_alone, mount) = self.alone(mount).await?;
        let mount = &mount;
        let (mut connection, entry) = self.connection(mount, name).await?;
        if !entry.can_rotate_root {
            return Err(invalid(format!(
                "plugin `{}` cannot rotate its root credential",
                entry.name
            )));
        }
        let target = self.resolver.target(mount, name, &connection).await?;
        let rotated = target
            .plugin
            .rotate_root(&target.scope, &target.config)
            .await;
        // Whether or not the new config is stored, the root credential on the
        // target may have changed: sessions set up with the old one go.
        self.catalog
            .runtime()
            .forget_connection(&connection_key(mount, name));
        let rotated = rotated?;
        let config: Map<String, Value> = serde_json::from_str(rotated.expose_secret())
            .map_err(|_| invalid("the plugin returned a config that is not a JSON object"))?;
        connection.config = config;
        self.data
            .put_connection(&mount.uuid, name, &connection)
            .await?;
        self.catalog
            .runtime()
            .forget_connection(&connection_key(mount, name));
        Ok(())
    }

    /// Writes a role after checking its fields against the plugin's role schema
    /// and the plugin's own `validate`.
    pub async fn write_role(
        &self,
        mount: &MountEntry,
        name: &str,
        db_name: Option<String>,
        default_ttl: Option<u64>,
        max_ttl: Option<u64>,
        fields: Map<String, Value>,
    ) -> Result<(), SecretsError> {
        check_name("role", name)?;
        let existing = self.data.role(&mount.uuid, name).await?;
        let db_name = db_name
            .filter(|d| !d.is_empty())
            .or_else(|| existing.as_ref().map(|r| r.db_name.clone()))
            .ok_or_else(|| invalid("db_name is required: the connection the role issues on"))?;
        let found = match self.connection(mount, &db_name).await {
            Err(SecretsError::NotFound) => None,
            other => Some(other?),
        };
        let existing_fields = existing
            .as_ref()
            .map(|r| r.fields.clone())
            .unwrap_or_default();
        let schema = found
            .as_ref()
            .map(|(_, entry)| ObjectSchema::parse(&entry.role_schema));
        let mut role = Role {
            db_name,
            default_ttl: default_ttl
                .or(existing.as_ref().map(|r| r.default_ttl))
                .unwrap_or(0),
            max_ttl: max_ttl
                .or(existing.as_ref().map(|r| r.max_ttl))
                .unwrap_or(0),
            fields: merge_role_fields(schema.as_ref(), existing_fields, fields)?,
            // As Vault does, a role may name a connection written later; its
            // fields are then checked by the plugin at the first issue.
            checked: found.is_some(),
        };
        if role.max_ttl != 0 && role.default_ttl > role.max_ttl {
            return Err(invalid("default_ttl is greater than max_ttl"));
        }
        if let Some((connection, _)) = &found {
            self.check_role(mount, &mut role, connection).await?;
        }
        self.data.put_role(&mount.uuid, name, &role).await?;
        Ok(())
    }

    /// Checks a role's fields against its connection's plugin: its schema,
    /// then the plugin's own `validate`.
    async fn check_role(
        &self,
        mount: &MountEntry,
        role: &mut Role,
        connection: &Connection,
    ) -> Result<(), SecretsError> {
        let entry = self
            .catalog_entry(&connection.plugin_name, Some(&connection.plugin_version))
            .await?;
        let schema = ObjectSchema::parse(&entry.role_schema);
        role.fields = merge_role_fields(Some(&schema), Map::new(), role.fields.clone())?;
        let target = self
            .resolver
            .target(mount, &role.db_name, connection)
            .await?;
        target
            .plugin
            .validate(&target.scope, &target.config, Some(&role.fields_json()))
            .await?;
        role.checked = true;
        Ok(())
    }

    /// The role `name`.
    pub async fn role(&self, mount: &MountEntry, name: &str) -> Result<Role, SecretsError> {
        self.data
            .role(&mount.uuid, name)
            .await?
            .ok_or(SecretsError::NotFound)
    }

    /// Issues a credential for `role_name`, within `lease_limit` (a
    /// lease-count quota over the role's leases) if one applies.
    pub async fn issue(
        &self,
        mount: &MountEntry,
        role_name: &str,
        requester: Requester,
        lease_limit: Option<LeaseLimit>,
    ) -> Result<IssuedLease, SecretsError> {
        let shared = self.gate(&mount.uuid).read_owned().await;
        // As the table holds it now: its grants may have changed while this
        // waited for the gate.
        let mount = &self.current(mount).await?;
        let role = match self.data.role(&mount.uuid, role_name).await? {
            Some(role) => role,
            None => return Err(invalid(format!("unknown role: {role_name}"))),
        };
        let connection = self
            .stored_connection(mount, &role.db_name)
            .await?
            .ok_or_else(|| {
                invalid(format!(
                    "connection `{}` of role `{role_name}` does not exist",
                    role.db_name
                ))
            })?;
        if !connection.allows(role_name) {
            return Err(invalid(format!(
                "role `{role_name}` is not in the allowed_roles of connection `{}`",
                role.db_name
            )));
        }
        let mut role = role;
        if !role.checked {
            let as_read = role.clone();
            self.check_role(mount, &mut role, &connection).await?;
            // Recorded as checked only if no one rewrote the role meanwhile
            // (a rewrite is checked by its own first issue).
            let current = self.data.role(&mount.uuid, role_name).await?;
            let unchanged = |c: &Role| {
                c.fields == as_read.fields
                    && c.db_name == as_read.db_name
                    && c.default_ttl == as_read.default_ttl
                    && c.max_ttl == as_read.max_ttl
            };
            if current.is_some_and(|c| unchanged(&c)) {
                self.data.put_role(&mount.uuid, role_name, &role).await?;
            }
        }
        let target = self
            .resolver
            .target(mount, &role.db_name, &connection)
            .await?;
        let request = IssueRequest {
            mount_path: mount.path.clone(),
            mount_uuid: mount.uuid.clone(),
            role: role_name.to_owned(),
            role_fields: role.fields_json(),
            connection: role.db_name.clone(),
            target,
            ttl: TtlSettings {
                mount_default: mount.default_lease_ttl,
                mount_max: mount.max_lease_ttl,
                role_default: role.default_ttl,
                role_max: role.max_ttl,
            },
            token_accessor: requester.accessor,
            requester: requester.display_name,
            token_expire_at: requester.expire_at,
            lease_limit,
        };
        // In its own task: a client that hangs up must not cancel a create
        // half-way and strand its pending lease until the next unseal.
        let leases = self.leases.clone();
        tokio::spawn(async move {
            let _shared = shared;
            leases.issue(request).await
        })
        .await
        .map_err(|err| SecretsError::Internal(format!("the issue task failed: {err}")))?
        .map_err(SecretsError::from)
    }
}

/// A role's fields after a write: `fields` merged into `existing` (a null
/// removes one), Vault's always-sent empty fields dropped where the plugin
/// does not declare them, and, when the plugin's `schema` is known, coerced
/// and checked against it.
fn merge_role_fields(
    schema: Option<&ObjectSchema>,
    existing: Map<String, Value>,
    fields: Map<String, Value>,
) -> Result<Map<String, Value>, SecretsError> {
    let mut merged = existing;
    for (field, value) in fields {
        // Vault's database-engine role fields a client library always sends;
        // meaningful only to plugins that declare them.
        let empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty) || value == "";
        let declared = schema.is_some_and(|s| s.has_property(&field));
        if empty && VAULT_ROLE_FIELDS.contains(&field.as_str()) && !declared {
            continue;
        }
        if value.is_null() {
            merged.remove(&field);
        } else {
            merged.insert(field, value);
        }
    }
    if let Some(schema) = schema {
        schema.coerce(&mut merged);
        reject_unknown(schema, &merged, "role")?;
        schema
            .check("role", &merged)
            .map_err(SecretsError::Invalid)?;
    }
    Ok(merged)
}

/// Vault's database plugins and the bundled plugins that serve their targets,
/// so a connection written for Vault carries over unchanged.
const VAULT_PLUGIN_NAMES: &[(&str, &str)] = &[
    ("postgresql-database-plugin", "postgres"),
    ("redis-database-plugin", "redis"),
    ("valkey-database-plugin", "redis"),
];

/// Connection settings of Vault's database engine that have no meaning here
/// unless a plugin declares them.
const VAULT_CONNECTION_FIELDS: &[&str] = &["root_rotation_statements"];

/// Role fields of Vault's database engine that hvac and others send with empty
/// values whatever the plugin.
const VAULT_ROLE_FIELDS: &[&str] = &[
    "creation_statements",
    "revocation_statements",
    "rollback_statements",
    "renew_statements",
    "credential_type",
    "credential_config",
];

/// The key a connection's calls take turns and share a breaker under.
fn connection_key(mount: &MountEntry, name: &str) -> String {
    format!("{}/{name}", mount.uuid)
}

fn check_name(what: &str, name: &str) -> Result<(), SecretsError> {
    if crate::ids::is_plain_name(name) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} name `{name}`: use letters, digits, `-`, `_` and `.` (at most 128)"
        )))
    }
}

/// A field the plugin's schema does not list is refused by name, even when the
/// schema itself allows extra fields.
fn reject_unknown(
    schema: &ObjectSchema,
    value: &Map<String, Value>,
    what: &str,
) -> Result<(), SecretsError> {
    let known = schema.properties();
    if known.is_empty() && schema.is_unconstrained() {
        return Ok(());
    }
    let unknown: Vec<&String> = value.keys().filter(|k| !known.contains(k)).collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!(
            "unknown {what} field(s) for this plugin: {}",
            unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}

/// Refuses a write that would send a connection's stored secret somewhere
/// new: if any plugin field (host, port, URL, auth method…) or grant changes,
/// every stored secret field must be sent again with it. Otherwise whoever may
/// update a connection could repoint it at a server of theirs and receive the
/// root credential when the broker connects.
fn refuse_retarget(
    secrets: &[String],
    old: &Connection,
    new: &Connection,
    sent_secrets: &[String],
) -> Result<(), SecretsError> {
    let stored: Vec<&String> = secrets
        .iter()
        .filter(|field| old.config.get(*field).is_some_and(|v| !v.is_null()))
        .collect();
    let missing: Vec<&str> = stored
        .iter()
        .filter(|field| !sent_secrets.contains(field))
        .map(|field| field.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut changed: Vec<&str> = old
        .config
        .keys()
        .chain(new.config.keys())
        .filter(|field| !secrets.contains(field))
        .filter(|field| old.config.get(*field) != new.config.get(*field))
        .map(String::as_str)
        .collect();
    changed.sort_unstable();
    changed.dedup();
    for (field, differs) in [
        ("plugin_name", old.plugin_name != new.plugin_name),
        // Another version is other code: it gets the secret only if resent.
        ("plugin_version", old.plugin_version != new.plugin_version),
        ("allowed_hosts", old.allowed_hosts != new.allowed_hosts),
        (
            "allowed_origins",
            old.allowed_origins != new.allowed_origins,
        ),
        ("directory", old.directory != new.directory),
    ] {
        if differs {
            changed.push(field);
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "changing {} would send the stored {} to a new target: send {} again with the change",
        quoted(&changed),
        quoted(&missing),
        quoted(&missing),
    )))
}

fn quoted(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
