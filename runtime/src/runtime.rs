//! The wasmtime engine every plugin runs on, and loading components into it.
//!
//! One [`Runtime`] per broker process: a component-model engine with async
//! support, epoch interruption (a background thread ticks every [`EPOCH_TICK`]) and
//! the pooling allocator, sized for [`RuntimeConfig::max_instances`] plugin calls at
//! once. Loading a component checks that it implements `leasehold:provider/plugin`
//! before anything runs, and keeps an `InstancePre` so each call only instantiates.

use super::admission::{Admission, AdmissionConfig};
use super::cache::{ArtifactCache, ArtifactPins};
use super::connections::ConnectionPools;
use super::contract::{self, Linkers, ProviderPre};
use super::http_clients::HttpClients;
use super::sandbox::{CallLabels, Sandbox};
use super::{LoadError, Plugin};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances; the granularity of call deadlines and of
/// yields back to tokio from a busy plugin.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core wasm instances a Rust `wasm32-wasip2` component uses (its module plus the
/// component's shims); the pool is sized with this many per plugin instance.
const CORE_INSTANCES_PER_COMPONENT: u32 = 4;

/// Bytes of each linear memory and table reset in place rather than decommitted
/// when an instance ends, and decommits gathered into one batch.
const KEEP_RESIDENT_MEMORY: usize = 256 << 10;
const KEEP_RESIDENT_TABLE: usize = 16 << 10;
const DECOMMIT_BATCH: usize = 16;

/// Limits for every plugin call.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Linear memory one plugin instance may use, in bytes.
    pub memory_limit_bytes: usize,
    /// Wall-clock time one call may take, including time spent waiting on the
    /// network.
    pub call_timeout: Duration,
    /// How many plugin calls may run at once (the pool's size).
    pub max_instances: u32,
    /// Of those, how many only revocations use.
    pub reserved_for_revocation: u32,
    /// How many calls one mount may run at once.
    pub max_calls_per_mount: u32,
    /// How long a call someone waits for may wait for its turn before it is
    /// refused as [`PluginError::Busy`].
    pub queue_timeout: Duration,
    /// Where precompiled plugins are kept across restarts; `None` compiles on every
    /// load.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 64 << 20,
            call_timeout: Duration::from_secs(10),
            max_instances: 128,
            reserved_for_revocation: 32,
            max_calls_per_mount: 64,
            queue_timeout: Duration::from_secs(10),
            cache_dir: None,
        }
    }
}

/// Shared by the runtime and every plugin loaded into it.
pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    linkers: Linkers,
    pub(crate) config: RuntimeConfig,
    pub(crate) admission: Admission,
    cache: Option<ArtifactCache>,
    /// Connections plugins kept between calls, per connection config.
    pub(crate) pools: Arc<ConnectionPools>,
    /// Keep-alive clients for plugins' HTTP requests, per checked destination.
    pub(crate) http_clients: Arc<HttpClients>,
    ticker: EpochTicker,
}

/// The plugin runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

impl Runtime {
    /// Builds the engine and linker.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        let runtime_error = |err: wasmtime::Error| LoadError::Runtime(format!("{err:#}"));
        let mut pool = PoolingAllocationConfig::new();
        // The admission's shares, plus the slots for reading a new plugin's info.
        let calls = config.max_instances.max(2);
        let instances = calls + super::admission::LOAD_SLOTS;
        pool.total_component_instances(instances)
            .total_core_instances(instances * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(instances * 2)
            .total_tables(instances * CORE_INSTANCES_PER_COMPONENT)
            .max_memory_size(config.memory_limit_bytes)
            // A call's instance is torn down when it returns, thousands of
            // times a second. Resetting the first pages of a slot with memset,
            // and returning the rest to the kernel in batches, keeps that from
            // costing a page fault per touched page and an inter-processor TLB
            // flush per instance. Every slot ever used keeps those bytes
            // resident: at most (instances x 2 memories) x 256 KiB, in
            // practice the few slots a plugin's calls keep reusing.
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .decommit_batch_size(DECOMMIT_BATCH);

        let mut engine_config = Config::new();
        engine_config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&engine_config).map_err(runtime_error)?;

        let mut linker = Linker::<Sandbox>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(runtime_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(runtime_error)?;
        super::name_lookup::add_to_linker(&mut linker).map_err(runtime_error)?;
        super::socket_limit::add_to_linker(&mut linker).map_err(runtime_error)?;
        super::file_replace::add_to_linker(&mut linker).map_err(runtime_error)?;
        let linkers = Linkers::new(&linker).map_err(runtime_error)?;

        let cache = match &config.cache_dir {
            Some(dir) => Some(ArtifactCache::open(dir).map_err(|err| {
                LoadError::Runtime(format!("plugin cache directory {}: {err}", dir.display()))
            })?),
            None => None,
        };
        let pools = Arc::<ConnectionPools>::default();
        let ticker = EpochTicker::start(engine.clone(), pools.clone());
        let admission = Admission::new(AdmissionConfig {
            max_instances: calls,
            reserved_for_revocation: config.reserved_for_revocation,
            max_calls_per_mount: config.max_calls_per_mount,
            queue_timeout: config.queue_timeout,
        });
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linkers,
                admission,
                config,
                cache,
                pools,
                http_clients: Arc::default(),
                ticker,
            }),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Forgets what the breaker learnt about connection `key` and closes the
    /// connections its plugin kept (its config changed): calls on it are
    /// admitted again at once, and connect afresh.
    pub fn forget_connection(&self, key: &str) {
        self.inner.admission.forget(key);
        self.inner.pools.forget(|connection| connection == key);
    }

    /// Closes the connections kept for every connection of the mount with
    /// `mount_id` (it was disabled, or moved to another plugin version).
    pub fn forget_mount_connections(&self, mount_id: &str) {
        let prefix = format!("{mount_id}/");
        self.inner
            .pools
            .forget(|connection| connection.starts_with(&prefix));
    }

    /// How many compiled plugins the on-disk cache holds.
    pub fn cached_artifacts(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, ArtifactCache::len)
    }

    /// Compiles a component, reads the contract version it exports, checks it
    /// against that version's plugin world, and reads its `info`. The on-disk
    /// cache is not used: nothing here could tell a swapped artifact (see
    /// [`Runtime::load_pinned`]).
    pub async fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        self.load_pinned(bytes, None).await
    }

    /// Like [`Runtime::load`], using the on-disk cache: an artifact whose digest
    /// `pins` recorded is deserialized instead of compiling; anything else is
    /// compiled, and the new artifact's digest recorded in `pins`.
    pub async fn load_pinned(
        &self,
        bytes: &[u8],
        pins: Option<&dyn ArtifactPins>,
    ) -> Result<Plugin, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let cache = self.inner.cache.as_ref().zip(pins);
        let artifact = ArtifactCache::name(&self.inner.engine, &sha256);
        let trusted = match cache {
            Some((cache, pins)) => match pins.pinned(&artifact).await {
                Some(expected) => cache.read_verified(&artifact, &expected),
                None => None,
            },
            None => None,
        };
        let cache_wanted = cache.is_some();
        let inner = self.inner.clone();
        let owned = bytes.to_vec();
        // Compiling is CPU-bound for tens of milliseconds: keep it off the reactor.
        let (component, written) = tokio::task::spawn_blocking(move || {
            if let Some(artifact) = trusted {
                // SAFETY: these bytes were written by `Component::serialize` of this
                // engine configuration, and their digest is the one the broker
                // recorded then, where only the broker writes.
                match unsafe { Component::deserialize(&inner.engine, &artifact) } {
                    Ok(component) => return Ok((component, None)),
                    Err(err) => tracing::warn!(error = %err, "a cached plugin artifact did not load; compiling again"),
                }
            }
            let component = Component::new(&inner.engine, &owned)?;
            let written = match &inner.cache {
                Some(cache) if cache_wanted => match cache.store(&artifact, &component) {
                    Ok(digest) => Some((artifact, digest)),
                    Err(err) => {
                        tracing::warn!(error = %err, "could not cache a compiled plugin");
                        None
                    }
                },
                _ => None,
            };
            Ok::<_, wasmtime::Error>((component, written))
        })
        .await
        .map_err(|err| LoadError::Runtime(format!("compile task failed: {err}")))?
        .map_err(|err| LoadError::InvalidComponent(format!("{err:#}")))?;
        if let (Some((_, pins)), Some((artifact, digest))) = (cache, written) {
            pins.pin(&artifact, &digest).await;
        }

        let version = contract::detect(&self.inner.engine, &component)?;
        let pre = ProviderPre::new(&self.inner.linkers, &component, version)?;

        let labels = CallLabels {
            plugin: Arc::from(format!("sha256:{}", &sha256[..12])),
            mount: Arc::from(""),
        };
        let info = super::call::call_info(&self.inner, &pre, labels)
            .await
            .map_err(|err| LoadError::InfoFailed(Box::new(err)))?;
        Ok(Plugin::new(self.inner.clone(), sha256, info, pre))
    }
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Ticks between two sweeps of the idle connection pools (ten seconds).
const SWEEP_EVERY_TICKS: u32 = 1000;

/// Advances the engine's epoch every [`EPOCH_TICK`] until stopped, and closes
/// expired idle connections now and then, so a quiet broker does not hold them.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, pools: Arc<ConnectionPools>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("leasehold-epoch".into())
            .spawn(move || {
                let mut ticks = 0u32;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                    ticks = (ticks + 1) % SWEEP_EVERY_TICKS;
                    if ticks == 0 {
                        pools.sweep();
                    }
                }
            })
            .expect("spawning the epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
