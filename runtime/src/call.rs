//! Calling a loaded plugin: one fresh, sandboxed instance per call.
//!
//! Every call builds a new store from the mount's grants, instantiates from the
//! plugin's `InstancePre` (microseconds with the pooling allocator), runs the one
//! export under a deadline, and drops everything. The deadline is enforced twice:
//! epoch interruption stops a plugin that computes, and a tokio timeout stops one
//! that waits inside a host call (a socket read), which epochs cannot interrupt.
//! However the call ends, the result is a typed [`PluginError`], never a panic, and
//! the engine and other calls are unaffected.

use super::admission::{Breaking, CallKind, ConnectionLimit, Outcome};
use super::connections::PoolScope;
use super::contract::{ContractVersion, ExportResult, Provider, ProviderPre};
use super::domain::{LeaseInfo, PluginInfo};
use super::runtime::{EPOCH_TICK, RuntimeInner};
use super::sandbox::{CallLabels, Sandbox};
use super::{Grants, Issued, PluginError};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};
use zeroize::Zeroizing;

/// Where a call runs: the mount it is for, what that mount grants, and the
/// connection whose turn it takes.
#[derive(Debug, Clone)]
pub struct CallScope {
    /// The mount path, for logs and the mount's share of the pool.
    pub mount: String,
    /// The capabilities the plugin gets for the call.
    pub grants: Grants,
    /// The connection the call is for; its calls take turns and share a breaker.
    pub connection: Option<ConnectionLimit>,
    /// Whether the call goes even while the connection's breaker is open.
    pub breaking: Breaking,
}

impl CallScope {
    /// A scope for `mount` with `grants`, on no particular connection.
    pub fn new(mount: impl Into<String>, grants: Grants) -> Self {
        Self {
            mount: mount.into(),
            grants,
            connection: None,
            breaking: Breaking::Heed,
        }
    }

    /// The same scope for a forced revocation: one real attempt even while the
    /// connection's breaker is open (still taking its turn).
    pub fn forced(mut self) -> Self {
        self.breaking = Breaking::Ignore;
        self
    }

    /// The same scope, on `connection`.
    pub fn on_connection(mut self, connection: ConnectionLimit) -> Self {
        self.connection = Some(connection);
        self
    }
}

/// A component that implements the plugin world, compiled and ready to call.
pub struct Plugin {
    runtime: Arc<RuntimeInner>,
    sha256: String,
    info: PluginInfo,
    pre: ProviderPre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Most bytes a credential (handle, field names and values) may take. What a
/// call returns is copied out of the instance and kept or sent on; a plugin
/// must not make the broker hold megabytes per request.
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;
/// Most bytes of a config returned by `rotate-root`, and of `info`'s texts.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Refuses a result of `bytes` over `limit`.
fn within(bytes: usize, limit: usize) -> Result<(), PluginError> {
    if bytes > limit {
        return Err(PluginError::TooLarge { bytes, limit });
    }
    Ok(())
}

impl Plugin {
    pub(crate) fn new(
        runtime: Arc<RuntimeInner>,
        sha256: String,
        info: PluginInfo,
        pre: ProviderPre,
    ) -> Self {
        Self {
            runtime,
            sha256,
            info,
            pre,
        }
    }

    /// The SHA-256 of the component's bytes, in hex: the plugin's identity.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What the plugin said about itself when it was loaded.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The contract version the component was built against.
    pub fn contract_version(&self) -> ContractVersion {
        self.info.contract_version
    }

    /// Checks a config and, when given, a role. May reach the target.
    pub async fn validate(
        &self,
        scope: &CallScope,
        config: &SecretString,
        role: Option<&str>,
    ) -> Result<(), PluginError> {
        let config = secret_copy(config);
        let role = role.map(str::to_owned);
        self.call(
            "validate",
            scope,
            &config,
            async |plugin: &Provider, store: &mut Store<Sandbox>| {
                plugin.validate(store, &config, role.as_ref()).await
            },
        )
        .await
    }

    /// Creates a credential on the target for `lease`.
    pub async fn create(
        &self,
        scope: &CallScope,
        config: &SecretString,
        role: &str,
        lease: &LeaseInfo,
    ) -> Result<Issued, PluginError> {
        let config = secret_copy(config);
        let role = role.to_owned();
        let issued = self
            .call(
                "create",
                scope,
                &config,
                async |plugin: &Provider, store: &mut Store<Sandbox>| {
                    plugin.create(store, &config, &role, lease).await
                },
            )
            .await?;
        let size = issued.handle.expose_secret().len()
            + issued
                .credential
                .fields()
                .iter()
                .map(|f| f.name.len() + f.value.expose_secret().len())
                .sum::<usize>();
        within(size, MAX_CREDENTIAL_BYTES)?;
        Ok(issued)
    }

    /// Extends the credential behind `handle` to `lease.expires_at`.
    pub async fn renew(
        &self,
        scope: &CallScope,
        config: &SecretString,
        role: &str,
        handle: &SecretString,
        lease: &LeaseInfo,
    ) -> Result<(), PluginError> {
        let (config, handle) = (secret_copy(config), secret_copy(handle));
        let role = role.to_owned();
        self.call(
            "renew",
            scope,
            &config,
            async |plugin: &Provider, store: &mut Store<Sandbox>| {
                plugin.renew(store, &config, &role, &handle, lease).await
            },
        )
        .await
    }

    /// Removes the credential; with no handle, whatever `create` could have made
    /// for `lease`.
    pub async fn revoke(
        &self,
        scope: &CallScope,
        config: &SecretString,
        role: &str,
        handle: Option<&SecretString>,
        lease: &LeaseInfo,
    ) -> Result<(), PluginError> {
        let config = secret_copy(config);
        let handle = handle.map(secret_copy);
        let role = role.to_owned();
        self.call(
            "revoke",
            scope,
            &config,
            async |plugin: &Provider, store: &mut Store<Sandbox>| {
                plugin
                    .revoke(
                        store,
                        &config,
                        &role,
                        handle.as_ref().map(|h| h.as_str()),
                        lease,
                    )
                    .await
            },
        )
        .await
    }

    /// Rotates the root credential and returns the new config.
    pub async fn rotate_root(
        &self,
        scope: &CallScope,
        config: &SecretString,
    ) -> Result<SecretString, PluginError> {
        let config = secret_copy(config);
        self.call(
            "rotate_root",
            scope,
            &config,
            async |plugin: &Provider, store: &mut Store<Sandbox>| {
                plugin.rotate_root(store, &config).await
            },
        )
        .await
        .and_then(|config: String| {
            within(config.len(), MAX_DOCUMENT_BYTES)?;
            Ok(SecretString::from(config))
        })
    }

    /// Runs one export in a fresh sandbox, timing it for the metrics.
    async fn call<R>(
        &self,
        operation: &'static str,
        scope: &CallScope,
        config: &str,
        export: impl AsyncFnOnce(&Provider, &mut Store<Sandbox>) -> ExportResult<R>,
    ) -> Result<R, PluginError> {
        let labels = CallLabels {
            plugin: Arc::from(self.info.name.as_str()),
            mount: Arc::from(scope.mount.as_str()),
        };
        let kind = if operation == "revoke" {
            CallKind::Revocation
        } else {
            CallKind::Foreground
        };
        let admitted = self
            .runtime
            .admission
            .enter(
                kind,
                &scope.mount,
                scope.connection.as_ref(),
                scope.breaking,
            )
            .await;
        let plugin = self.info.name.clone();
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => {
                metrics::counter!("leasehold_plugin_errors_total", "plugin" => plugin, "operation" => operation, "kind" => refused.kind())
                    .increment(1);
                return Err(refused);
            }
        };
        let started = std::time::Instant::now();
        // Connections kept by one call are offered to the next call on the same
        // connection by the same component with the same config. A call on no
        // connection keeps none, nor does rotate-root: what it set up belongs to
        // a config about to be replaced.
        let pool = scope
            .connection
            .as_ref()
            .filter(|_| operation != "rotate_root")
            .map(|connection| PoolScope {
                pools: self.runtime.pools.clone(),
                key: self
                    .runtime
                    .pools
                    .key(&connection.key, &self.sha256, config),
                limit: connection.max_parallel as usize,
            });
        let result = run_in_sandbox(
            &self.runtime,
            &self.pre,
            &scope.grants,
            labels,
            pool,
            export,
        )
        .await;
        admitted.finish(match &result {
            Err(PluginError::Timeout(_)) => Outcome::TimedOut,
            _ => Outcome::Answered,
        });
        metrics::histogram!("leasehold_plugin_call_seconds", "plugin" => plugin.clone(), "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            metrics::counter!("leasehold_plugin_errors_total", "plugin" => plugin, "operation" => operation, "kind" => err.kind())
                .increment(1);
        }
        result
    }
}

/// The plugin gets its own copy of a secret; this one is wiped when dropped.
fn secret_copy(secret: &SecretString) -> Zeroizing<String> {
    Zeroizing::new(secret.expose_secret().to_owned())
}

/// Reads a freshly loaded plugin's `info`, with no grants.
pub(crate) async fn call_info(
    runtime: &RuntimeInner,
    pre: &ProviderPre,
    labels: CallLabels,
) -> Result<PluginInfo, PluginError> {
    let _slot = runtime.admission.enter_load().await;
    let info = run_in_sandbox(
        runtime,
        pre,
        &Grants::none(),
        labels,
        None,
        async |plugin: &Provider, store: &mut Store<Sandbox>| Ok(Ok(plugin.info(store).await?)),
    )
    .await;
    let info = info?;
    within(
        info.name.len()
            + info.version.len()
            + info.description.len()
            + info.config_schema.len()
            + info.role_schema.len(),
        MAX_DOCUMENT_BYTES,
    )?;
    Ok(info)
}

/// Runs one export in a fresh instance and turns every way it can end into a
/// result.
async fn run_in_sandbox<R>(
    runtime: &RuntimeInner,
    pre: &ProviderPre,
    grants: &Grants,
    labels: CallLabels,
    pool: Option<PoolScope>,
    export: impl AsyncFnOnce(&Provider, &mut Store<Sandbox>) -> ExportResult<R>,
) -> Result<R, PluginError> {
    let limits = &runtime.config;
    let sandbox = Sandbox::build(
        grants,
        labels,
        limits.memory_limit_bytes,
        pool,
        runtime.http_clients.clone(),
    )
    .await?;
    let mut store = Store::new(&runtime.engine, sandbox);
    store.limiter(|sandbox| &mut sandbox.memory);

    // Yield to tokio at every epoch tick so a busy plugin shares its thread, and
    // stop it once the deadline has passed.
    let deadline = Instant::now() + limits.call_timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let run = async {
        let plugin = pre.instantiate(&mut store).await?;
        export(&plugin, &mut store).await
    };
    // A plugin blocked in a host call (a socket read) never reaches an epoch check;
    // the timer stops it there. It fires a little after the epoch deadline so a
    // computing plugin is reported by the more precise mechanism.
    let outcome = tokio::time::timeout(limits.call_timeout + 2 * EPOCH_TICK, run).await;
    store.data_mut().output.flush_streams();

    if let Ok(Ok(Ok(_))) = &outcome {
        store.data_mut().connections.commit();
    }
    let sandbox = store.data();
    let refused = sandbox.denials.refused();
    match outcome {
        Err(_elapsed) => Err(PluginError::Timeout(limits.call_timeout)),
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(failure))) if !refused.is_empty() => {
            let failure = failure.bounded();
            Err(PluginError::CapabilityDenied(format!(
                "{} (the plugin then failed with: {failure})",
                refused.join("; ")
            )))
        }
        Ok(Ok(Err(failure))) => Err(PluginError::Failed(failure.bounded())),
        Ok(Err(trap)) => Err(classify_trap(&trap, sandbox, limits.call_timeout, &refused)),
    }
}

/// Names why the sandbox stopped a plugin.
fn classify_trap(
    err: &wasmtime::Error,
    sandbox: &Sandbox,
    timeout: std::time::Duration,
    refused: &[String],
) -> PluginError {
    if sandbox.memory.exceeded {
        return PluginError::MemoryLimit {
            limit_bytes: sandbox.memory.limit(),
        };
    }
    if err.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return PluginError::Busy {
            what: "every plugin instance is taken",
            retry_after: std::time::Duration::from_secs(1),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout(timeout),
        Some(trap) if !refused.is_empty() => PluginError::CapabilityDenied(format!(
            "{} (then the plugin trapped: {trap})",
            refused.join("; ")
        )),
        Some(trap) => PluginError::Crashed(format!(
            "{trap}; the plugin's stderr, if any, is in the broker log"
        )),
        None => PluginError::Crashed(format!("{err}")),
    }
}
