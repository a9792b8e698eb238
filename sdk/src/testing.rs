//! Run a plugin in the broker's own sandbox, in-process, from `cargo test`.
//!
//! The harness uses the same runtime crate the broker does (`leasehold-runtime`:
//! engine settings, memory and time limits, capability checks), so a test passes
//! here only if the plugin works with the grants it will get in production. It
//! does not depend on the broker: enabling the `testing` feature builds the
//! sandbox, not the server.
//!
//! In a plugin crate, [`TestPlugin::this_crate`] builds the crate's component
//! (`cargo build --release --target wasm32-wasip2`, which does nothing when it is
//! up to date, so a test never runs a stale `.wasm`) and loads it:
//!
//! ```no_run
//! use leasehold_sdk::testing::{Grants, TestPlugin, lease};
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let plugin = TestPlugin::this_crate()
//!     .with_grants(Grants::none().directory(dir.path()).unwrap());
//! let lease = lease("reader");
//! let issued = plugin.create(&json!({"file": "users"}), &json!({}), &lease).unwrap();
//! assert!(issued.credential.get("password").is_some());
//! plugin.revoke(&json!({"file": "users"}), &json!({}), None, &lease).unwrap();
//! ```
//!
//! What a call's outcome looks like: a plugin's own errors arrive as
//! [`PluginError::Failed`] carrying a [`Failure`] (the kind the plugin chose and
//! its message); a trap, a panic, an exceeded limit or a refused capability is one
//! of the other [`PluginError`] variants. The plugin's log lines, stdout and
//! stderr (a panic's message among them) are printed into the test's output,
//! which `cargo test` shows for a failing test.
//!
//! Compiling a component is slow with a compiler built without optimisations, as
//! a test profile builds it; the harness keeps compiled components in
//! `leasehold-harness-cache` next to the `.wasm`, keyed by its SHA-256, so only a
//! changed plugin is compiled again. A plugin crate should still optimise the
//! compiler in its dev profile (the template from `leasehold plugin new` does):
//!
//! ```toml
//! [profile.dev.package]
//! cranelift-codegen = { opt-level = 2 }
//! regalloc2 = { opt-level = 2 }
//! wasmtime = { opt-level = 2 }
//! ```

use leasehold_runtime::{ArtifactPins, CallScope, Plugin, Runtime};
#[doc(inline)]
pub use leasehold_runtime::{
    Credential, CredentialField, Failure, GrantError, Grants, Issued, LeaseInfo, PluginError,
    PluginInfo, RuntimeConfig,
};
use secrecy::SecretString;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A plugin loaded into the real sandbox.
pub struct TestPlugin {
    tokio: tokio::runtime::Runtime,
    plugin: Plugin,
    scope: CallScope,
}

impl TestPlugin {
    /// Builds the plugin crate under test and loads its component.
    ///
    /// Runs `cargo build --release --target wasm32-wasip2 --lib` on the crate
    /// whose tests are running (cargo tells tests where that is), once per test
    /// process; cargo rebuilds only when a source changed. Panics with cargo's
    /// diagnostics if the build fails.
    pub fn this_crate() -> Self {
        static BUILT: OnceLock<PathBuf> = OnceLock::new();
        let wasm = BUILT.get_or_init(|| {
            let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
                .expect("CARGO_MANIFEST_DIR is set: run the tests with `cargo test`");
            build_component(&Path::new(&manifest_dir).join("Cargo.toml"))
        });
        Self::load(wasm)
    }

    /// Loads the component at `path` with the broker's default limits and no
    /// grants. Panics with the loader's message if the component is refused.
    pub fn load(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let cache_dir = path.parent().map(|dir| dir.join("leasehold-harness-cache"));
        Self::load_with(
            path,
            RuntimeConfig {
                cache_dir,
                ..RuntimeConfig::default()
            },
        )
    }

    /// Loads with explicit limits.
    pub fn load_with(path: impl AsRef<Path>, config: RuntimeConfig) -> Self {
        show_plugin_output();
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .unwrap_or_else(|err| panic!("reading plugin {}: {err}", path.display()));
        let pins = config.cache_dir.as_deref().map(FilePins::new);
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the test harness");
        let plugin = tokio.block_on(async {
            let runtime = Runtime::new(config).unwrap_or_else(|err| panic!("{err}"));
            runtime
                .load_pinned(&bytes, pins.as_ref().map(|p| p as &dyn ArtifactPins))
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

/// Builds the `cdylib` of the crate at `manifest` for `wasm32-wasip2` in release
/// and returns the component's path, as cargo reports it.
fn build_component(manifest: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest)
        .args([
            "--lib",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|err| panic!("running cargo to build the plugin: {err}"));
    assert!(
        output.status.success(),
        "building the plugin failed (see cargo's messages above); \
         is the target installed? `rustup target add wasm32-wasip2`"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(PathBuf::from))
        .rfind(|name| name.extension().is_some_and(|ext| ext == "wasm"))
        .unwrap_or_else(|| {
            panic!(
                "cargo built no .wasm for {}: the crate needs `crate-type = [\"cdylib\"]`",
                manifest.display()
            )
        })
}

/// Sends the plugin's log lines, stdout and stderr (which the runtime forwards
/// to `tracing`) to the test's captured output.
fn show_plugin_output() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_test_writer()
            .without_time()
            .try_init();
    });
}

/// Digests of compiled components, one file each in the cache directory.
///
/// The broker keeps these pins behind its barrier, since a swapped artifact is
/// code run in the broker; the harness runs the author's own plugin on the
/// author's machine, so its target directory is trusted as the rest of the build
/// is.
struct FilePins {
    dir: PathBuf,
}

impl FilePins {
    fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("pins"),
        }
    }
}

#[async_trait::async_trait]
impl ArtifactPins for FilePins {
    async fn pinned(&self, artifact: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(artifact)).ok()
    }

    async fn pin(&self, artifact: &str, digest: &str) {
        if std::fs::create_dir_all(&self.dir).is_ok() {
            let _ = std::fs::write(self.dir.join(artifact), digest);
        }
    }
}
