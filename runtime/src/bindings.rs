//! Host-side bindings for the `leasehold:provider/plugin` world in `wit/0.1.0`.
//!
//! Exports are async because every call runs on tokio with epoch-based yields; the
//! one import (`logging.log`) is a plain synchronous host function.

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "leasehold:provider/plugin",
    exports: { default: async },
});

pub use exports::leasehold::provider::provider::{Error as PluginFailure, LeaseInfo, PluginInfo};
pub use leasehold::provider::logging::Level;
