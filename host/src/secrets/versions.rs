//! Which plugin version a mount runs, and changing it at run time: a tune of
//! `plugin_version`, a reload of the registered bytes, and what keeps a
//! version in the catalog while something runs it.
//!
//! A mount of one plugin runs one version, and so do all its connections; a
//! `database` mount's connections each run the version written on them. A
//! change reaches the next call and no other: each call resolves its plugin
//! once, as it starts, and holds it to its end, so a call in flight finishes
//! on the component it started with and nothing waits for it. A lease records
//! the version that issued it; renewing or revoking it runs the version its
//! mount runs then.

use super::schema::ObjectSchema;
use super::{
    Connection, MountEntry, Secrets, SecretsError, invalid, normalize, quoted, reject_unknown,
};
use crate::catalog::{CatalogEntry, same_version};

/// A tune of a mount: each `None` leaves its setting as it is.
#[derive(Debug, Default)]
pub struct MountTune {
    /// Seconds (0: the system's).
    pub default_lease_ttl: Option<u64>,
    /// Seconds (0: the system's).
    pub max_lease_ttl: Option<u64>,
    /// Free text.
    pub description: Option<String>,
    /// A registered version of the mount's plugin.
    pub plugin_version: Option<String>,
}

/// What a reload names: Vault's `plugin` or `mounts`.
#[derive(Debug)]
pub enum Reload {
    /// Every mount and connection running this catalog plugin.
    Plugin(String),
    /// These mounts, by path.
    Mounts(Vec<String>),
}

/// The version `connection` runs on `mount`: the mount's, on a mount of one
/// plugin; its own, on a `database` mount.
pub(super) fn running_version<'a>(mount: &'a MountEntry, connection: &'a Connection) -> &'a str {
    match (&mount.plugin, &mount.plugin_version) {
        (Some(plugin), Some(version)) if *plugin == connection.plugin_name => version,
        _ => &connection.plugin_version,
    }
}

/// `connection` as it runs on `mount` (see [`running_version`]).
pub(super) fn running(mount: &MountEntry, mut connection: Connection) -> Connection {
    connection.plugin_version = running_version(mount, &connection).to_owned();
    connection
}

impl Secrets {
    /// Changes a mount's TTLs, description and plugin version. Leases already
    /// issued keep their TTLs. A new version must be registered and fit every
    /// connection of the mount; the next call runs it, while calls in flight
    /// finish on the version they started with. A refused tune changes
    /// nothing.
    pub async fn tune(&self, path: &str, tune: MountTune) -> Result<MountEntry, SecretsError> {
        let mount = self.mount_at(path).await?;
        let version = match tune.plugin_version.as_deref().filter(|v| !v.is_empty()) {
            Some(asked) => Some(self.version_to_run(&mount, asked).await?),
            None => None,
        };
        let tuned = self
            .mounts
            .modify(&mount, |m| {
                if let Some(ttl) = tune.default_lease_ttl {
                    m.default_lease_ttl = ttl;
                }
                if let Some(ttl) = tune.max_lease_ttl {
                    m.max_lease_ttl = ttl;
                }
                if m.max_lease_ttl != 0 && m.default_lease_ttl > m.max_lease_ttl {
                    return Err(invalid("default_lease_ttl is greater than max_lease_ttl"));
                }
                if let Some(description) = tune.description {
                    m.description = description;
                }
                if let Some(version) = version {
                    // The connections were checked against the version the
                    // mount ran then.
                    if m.plugin_version != mount.plugin_version {
                        return Err(invalid(format!(
                            "the plugin version of {} changed while this tune was checked; tune again",
                            m.path
                        )));
                    }
                    m.plugin_version = Some(version);
                }
                Ok(())
            })
            .await?
            .ok_or_else(|| invalid(format!("{} was disabled", mount.path)))?;
        if tuned.plugin_version != mount.plugin_version {
            tracing::info!(
                mount = %tuned.path,
                from = mount.plugin_version.as_deref().unwrap_or_default(),
                to = tuned.plugin_version.as_deref().unwrap_or_default(),
                "mount moved to another plugin version: the next call runs it"
            );
            // What the old version kept open is of no use to the new one.
            self.catalog.runtime().forget_mount_connections(&tuned.uuid);
        }
        Ok(tuned)
    }

    /// The catalog's spelling of version `asked` of the mount's plugin, once
    /// it is known to be registered and to fit the mount's connections.
    async fn version_to_run(
        &self,
        mount: &MountEntry,
        asked: &str,
    ) -> Result<String, SecretsError> {
        let (Some(plugin), Some(runs)) = (&mount.plugin, &mount.plugin_version) else {
            return Err(invalid(format!(
                "mount {} is a `database` mount, whose connections each run their own plugin version: write `plugin_version` on {}config/<name>",
                mount.path, mount.path
            )));
        };
        let Some(next) = self.catalog.get(plugin, Some(asked)).await? else {
            let registered: Vec<String> = self
                .catalog
                .versions(plugin)
                .await?
                .into_iter()
                .map(|e| e.version)
                .collect();
            return Err(invalid(format!(
                "plugin `{plugin}` version {asked} is not in the catalog (registered: {}); register it first (sys/plugins/catalog/secret/{plugin})",
                registered.join(", ")
            )));
        };
        if !same_version(&next.version, runs) {
            let current = self.catalog.get(plugin, Some(runs)).await?;
            self.check_connections_fit(mount, current.as_ref(), &next)
                .await?;
        }
        Ok(next.version)
    }

    /// Refuses a version that a connection of `mount` does not fit: its
    /// config must pass the version's schema, and every field the running
    /// version (`current`) keeps secret must stay secret, or reading the
    /// connection would show it.
    async fn check_connections_fit(
        &self,
        mount: &MountEntry,
        current: Option<&CatalogEntry>,
        next: &CatalogEntry,
    ) -> Result<(), SecretsError> {
        let schema = ObjectSchema::parse(&next.config_schema);
        let secret_then = schema.secret_fields();
        for name in self.data.connections(&mount.uuid).await? {
            let Some(connection) = self.data.connection(&mount.uuid, &name).await? else {
                continue;
            };
            let misfit = |err: SecretsError| {
                invalid(format!(
                    "connection `{name}` does not fit version {} of `{}`: {err}; write the connection for it, or tune to another version",
                    next.version, next.name
                ))
            };
            let mut config = connection.config.clone();
            schema.coerce(&mut config);
            reject_unknown(&schema, &config, "connection").map_err(misfit)?;
            schema
                .check("connection config", &config)
                .map_err(|err| misfit(invalid(err)))?;
            // A version gone from the catalog cannot say: every stored field
            // counts as secret.
            let secret_now = match current {
                Some(entry) => ObjectSchema::parse(&entry.config_schema).secret_fields(),
                None => connection.config.keys().cloned().collect(),
            };
            let exposed: Vec<&str> = secret_now
                .iter()
                .filter(|field| connection.config.contains_key(*field))
                .filter(|field| !secret_then.contains(field))
                .map(String::as_str)
                .collect();
            if !exposed.is_empty() {
                return Err(invalid(format!(
                    "version {} of `{}` does not keep {} of connection `{name}` secret, which the running version does: tune to another version",
                    next.version,
                    next.name,
                    quoted(&exposed)
                )));
            }
        }
        Ok(())
    }

    /// What runs a catalog entry, if anything, with what to do before it can
    /// go: a mount (tune it to another version) or a `database` mount's
    /// connection (write it with another version).
    pub async fn plugin_user(&self, entry: &CatalogEntry) -> Result<Option<String>, SecretsError> {
        for mount in self.mounts.all().await?.into_values() {
            if mount.plugin.as_deref() == Some(&entry.name) {
                if mount
                    .plugin_version
                    .as_deref()
                    .is_some_and(|v| same_version(v, &entry.version))
                {
                    return Ok(Some(format!(
                        "mount {}: tune it to another version first (`plugin_version` on sys/mounts/{}/tune)",
                        mount.path,
                        mount.path.trim_end_matches('/')
                    )));
                }
                // Its connections run the mount's version.
                continue;
            }
            for name in self.data.connections(&mount.uuid).await? {
                if let Some(c) = self.data.connection(&mount.uuid, &name).await?
                    && c.plugin_name == entry.name
                    && same_version(&c.plugin_version, &entry.version)
                {
                    return Ok(Some(format!(
                        "connection {}config/{name}: write it with another `plugin_version` first",
                        mount.path
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The catalog entry a mount of one plugin runs (`None` for a `database`
    /// mount, or a version gone from the catalog).
    pub async fn running_plugin(
        &self,
        mount: &MountEntry,
    ) -> Result<Option<CatalogEntry>, SecretsError> {
        Ok(match (&mount.plugin, &mount.plugin_version) {
            (Some(plugin), Some(version)) => self.catalog.get(plugin, Some(version)).await?,
            _ => None,
        })
    }

    /// Compiles again, from their registered bytes, the plugin versions that
    /// the mounts `what` names run, and makes the fresh components what the
    /// next calls get. Answers the mounts reloaded. An unknown plugin or
    /// mount is refused before anything is reloaded.
    pub async fn reload(&self, what: Reload) -> Result<Vec<String>, SecretsError> {
        let mounts = self.mounts.all().await?;
        let (chosen, plugin): (Vec<&MountEntry>, Option<String>) = match &what {
            Reload::Plugin(asked) => {
                let name = self.catalog_name(asked.clone()).await?;
                if self.catalog.versions(&name).await?.is_empty() {
                    return Err(invalid(format!("no plugin `{asked}` in the catalog")));
                }
                (mounts.values().collect(), Some(name))
            }
            Reload::Mounts(paths) => {
                let mut chosen = Vec::with_capacity(paths.len());
                for path in paths {
                    let path = normalize(path).map_err(SecretsError::Invalid)?;
                    chosen.push(
                        mounts
                            .get(&path)
                            .ok_or_else(|| invalid(format!("no mount at {path}")))?,
                    );
                }
                (chosen, None)
            }
        };
        let mut entries: Vec<CatalogEntry> = Vec::new();
        let mut reloaded = Vec::new();
        for mount in chosen {
            let mut running = self.running_entries(mount).await?;
            if let Some(plugin) = &plugin {
                running.retain(|e| e.name == *plugin);
            }
            if running.is_empty() {
                continue;
            }
            reloaded.push(mount.path.clone());
            for entry in running {
                if !entries.iter().any(|e| e.sha256 == entry.sha256) {
                    entries.push(entry);
                }
            }
        }
        self.catalog.reload(&entries).await?;
        Ok(reloaded)
    }

    /// The catalog entries a mount's calls run: the mount's version, or on a
    /// `database` mount each connection's.
    async fn running_entries(&self, mount: &MountEntry) -> Result<Vec<CatalogEntry>, SecretsError> {
        let mut wanted: Vec<(String, String)> = match (&mount.plugin, &mount.plugin_version) {
            (Some(plugin), Some(version)) => vec![(plugin.clone(), version.clone())],
            _ => {
                let mut wanted = Vec::new();
                for name in self.data.connections(&mount.uuid).await? {
                    if let Some(c) = self.data.connection(&mount.uuid, &name).await? {
                        wanted.push((c.plugin_name, c.plugin_version));
                    }
                }
                wanted
            }
        };
        wanted.sort();
        wanted.dedup();
        let mut entries = Vec::with_capacity(wanted.len());
        for (name, version) in wanted {
            entries.push(self.catalog_entry(&name, Some(&version)).await?);
        }
        Ok(entries)
    }
}
