//! Run a built plugin in the broker's own sandbox, in-process, from `cargo test`.
//!
//! The harness loads the plugin's `.wasm` into the same runtime the broker uses
//! (same engine settings, limits, capability checks), so a test passes here only if
//! the plugin works with the grants it will get in production.
//!
//! ```no_run
//! use leasehold_sdk::testing::{Grants, TestPlugin, lease};
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let plugin = TestPlugin::load("target/wasm32-wasip2/release/my_plugin.wasm")
//!     .with_grants(Grants::none().directory(dir.path()).unwrap());
//! let lease = lease("reader");
//! let issued = plugin.create(&json!({"file": "users"}), &json!({}), &lease).unwrap();
//! assert!(issued.credential.get("password").is_some());
//! plugin.revoke(&json!({"file": "users"}), &json!({}), None, &lease).unwrap();
//! ```

use leasehold_runtime::{CallScope, Plugin, Runtime};
pub use leasehold_runtime::{
    Credential, Failure, Grants, Issued, LeaseInfo, PluginError, PluginInfo, RuntimeConfig,
};
use secrecy::SecretString;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A plugin loaded into the real sandbox.
pub struct TestPlugin {
    tokio: tokio::runtime::Runtime,
    plugin: Plugin,
    scope: CallScope,
}

impl TestPlugin {
    /// Loads the component at `path` with the broker's default limits and no
    /// grants. Panics with the loader's message if the component is refused.
    pub fn load(path: impl AsRef<Path>) -> Self {
        Self::load_with(path, RuntimeConfig::default())
    }

    /// Loads with explicit limits.
    pub fn load_with(path: impl AsRef<Path>, config: RuntimeConfig) -> Self {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .unwrap_or_else(|err| panic!("reading plugin {}: {err}", path.display()));
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the test harness");
        let plugin = tokio.block_on(async {
            let runtime = Runtime::new(config).unwrap_or_else(|err| panic!("{err}"));
            runtime
                .load(&bytes)
                .await
                .unwrap_or_else(|err| panic!("loading plugin {}: {err}", path.display()))
        });
        Self {
            tokio,
            plugin,
            scope: CallScope::new("test", Grants::none()),
        }
    }

    /// Replaces the capabilities calls get.
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.scope.grants = grants;
        self
    }

    /// What the plugin says about itself.
    pub fn info(&self) -> &PluginInfo {
        self.plugin.info()
    }

    /// Calls `validate`.
    pub fn validate(&self, config: &Value, role: Option<&Value>) -> Result<(), PluginError> {
        let role = role.map(Value::to_string);
        self.tokio.block_on(
            self.plugin
                .validate(&self.scope, &secret(config), role.as_deref()),
        )
    }

    /// Calls `create`.
    pub fn create(
        &self,
        config: &Value,
        role: &Value,
        lease: &LeaseInfo,
    ) -> Result<Issued, PluginError> {
        self.tokio.block_on(self.plugin.create(
            &self.scope,
            &secret(config),
            &role.to_string(),
            lease,
        ))
    }

    /// Calls `renew`.
    pub fn renew(
        &self,
        config: &Value,
        role: &Value,
        handle: &str,
        lease: &LeaseInfo,
    ) -> Result<(), PluginError> {
        let handle = SecretString::from(handle.to_owned());
        self.tokio.block_on(self.plugin.renew(
            &self.scope,
            &secret(config),
            &role.to_string(),
            &handle,
            lease,
        ))
    }

    /// Calls `revoke`; `handle` is `None` to test recovery after a crash.
    pub fn revoke(
        &self,
        config: &Value,
        role: &Value,
        handle: Option<&str>,
        lease: &LeaseInfo,
    ) -> Result<(), PluginError> {
        let handle = handle.map(|h| SecretString::from(h.to_owned()));
        self.tokio.block_on(self.plugin.revoke(
            &self.scope,
            &secret(config),
            &role.to_string(),
            handle.as_ref(),
            lease,
        ))
    }

    /// Calls `rotate-root` and parses the returned config.
    pub fn rotate_root(&self, config: &Value) -> Result<Value, PluginError> {
        let rotated = self
            .tokio
            .block_on(self.plugin.rotate_root(&self.scope, &secret(config)))?;
        Ok(
            serde_json::from_str(secrecy::ExposeSecret::expose_secret(&rotated))
                .expect("rotate-root returned JSON"),
        )
    }
}

fn secret(config: &Value) -> SecretString {
    SecretString::from(config.to_string())
}

/// A fresh lease for `role`, as the broker would write it: a unique id under mount
/// `test`, requester `tester`, issued now with a one-hour TTL.
pub fn lease(role: &str) -> LeaseInfo {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let unique = format!(
        "{}{:x}{:x}",
        std::process::id(),
        now,
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    LeaseInfo {
        lease_id: format!("test/creds/{role}/{unique}"),
        mount: "test".into(),
        role: role.into(),
        requester: "tester".into(),
        issued_at: now,
        ttl_seconds: 3600,
        expires_at: now + 3600,
    }
}
