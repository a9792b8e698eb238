//! What the sandbox costs per plugin call.
//!
//! Measures, in one process and interleaved so both see the same machine state:
//! - **leasehold**: `Plugin::create` on the `noop` plugin through the runtime: a
//!   fresh store with grants, limits, captured output and a deadline, a fresh
//!   instance from the pooling allocator, the call, and the teardown;
//! - **bare wasmtime**: the same component's `create` with the least an embedding
//!   can do: a pooled engine, a default WASI context, instantiate, call, drop.
//!
//! Prints both medians and their ratio. Run with `cargo bench -p leasehold-host`.

use leasehold_host::plugin::{CallScope, Grants, LeaseInfo, Runtime, RuntimeConfig};
use leasehold_plugin_artifacts as artifacts;
use secrecy::SecretString;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bare {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "leasehold:provider/plugin",
        exports: { default: async },
    });
}

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bare::leasehold::provider::types::Host for BareState {}
impl bare::leasehold::provider::logging::Host for BareState {
    fn log(&mut self, _: bare::leasehold::provider::logging::Level, _: String) {}
}

const ROUNDS: usize = 20;
const CALLS_PER_ROUND: usize = 500;

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn lease() -> LeaseInfo {
    LeaseInfo {
        lease_id: "bench/creds/noop/1".into(),
        mount: "bench".into(),
        role: "noop".into(),
        requester: "bench".into(),
        issued_at: 1_700_000_000,
        ttl_seconds: 60,
        expires_at: 1_700_000_060,
    }
}

fn main() -> anyhow::Result<()> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bytes = artifacts::read(artifacts::NOOP);
    tokio.block_on(async {
        // leasehold's path.
        let runtime = Runtime::new(RuntimeConfig::default())?;
        let plugin = runtime.load(&bytes).await?;
        let scope = CallScope::new("bench", Grants::none());
        let config = SecretString::from("{}".to_owned());

        // The bare path.
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(128)
            .total_core_instances(512)
            .total_memories(256)
            .total_tables(512);
        let mut engine_config = Config::new();
        engine_config
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&engine_config)?;
        let component = Component::new(&engine, &bytes)?;
        let mut linker = Linker::<BareState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bare::Plugin::add_to_linker::<_, HasSelf<BareState>>(&mut linker, |s| s)?;
        let pre = bare::PluginPre::new(linker.instantiate_pre(&component)?)?;
        // The same lease, as the bare bindings' own record type.
        let lease = lease();
        let bare_lease = bare::exports::leasehold::provider::provider::LeaseInfo {
            lease_id: lease.lease_id.clone(),
            mount: lease.mount.clone(),
            role: lease.role.clone(),
            requester: lease.requester.clone(),
            issued_at: lease.issued_at,
            ttl_seconds: lease.ttl_seconds,
            expires_at: lease.expires_at,
        };
        let (bare_config, bare_role) = ("{}".to_owned(), "{}".to_owned());

        let mut sandboxed = Vec::with_capacity(ROUNDS * CALLS_PER_ROUND);
        let mut bare = Vec::with_capacity(ROUNDS * CALLS_PER_ROUND);
        for round in 0..=ROUNDS {
            // Round 0 warms both paths up and is not recorded.
            for _ in 0..CALLS_PER_ROUND {
                let started = Instant::now();
                plugin.create(&scope, &config, "{}", &lease).await?;
                if round > 0 {
                    sandboxed.push(started.elapsed());
                }

                let started = Instant::now();
                let mut store = Store::new(
                    &engine,
                    BareState {
                        wasi: WasiCtx::builder().build(),
                        table: ResourceTable::new(),
                    },
                );
                let instance = pre.instantiate_async(&mut store).await?;
                instance
                    .leasehold_provider_provider()
                    .call_create(&mut store, &bare_config, &bare_role, &bare_lease)
                    .await?
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                drop(store);
                if round > 0 {
                    bare.push(started.elapsed());
                }
            }
        }

        let (ours, baseline) = (median(&mut sandboxed), median(&mut bare));
        println!(
            "plugin call: fresh instance + noop create, median of {} calls each",
            sandboxed.len()
        );
        println!("{:<34} {:>12}", "path", "median");
        println!(
            "{:<34} {:>10.1} µs",
            "bare wasmtime (baseline)",
            baseline.as_secs_f64() * 1e6
        );
        println!(
            "{:<34} {:>10.1} µs",
            "leasehold sandbox",
            ours.as_secs_f64() * 1e6
        );
        println!(
            "{:<34} {:>10.2} x",
            "ratio (leasehold / bare)",
            ours.as_secs_f64() / baseline.as_secs_f64()
        );
        anyhow::Ok(())
    })
}
