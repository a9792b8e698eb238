//! The plugin runtime: loading credential-provider components and calling them in
//! a sandbox.
//!
//! A plugin is a WebAssembly component implementing `leasehold:provider/plugin`
//! (`wit/0.1.0/provider.wit`). [`Runtime::load`] compiles it (or reads it from the
//! on-disk cache), checks the world, and returns a [`Plugin`]; each call on it runs
//! in a fresh instance with only the [`Grants`] of its [`CallScope`], a memory limit
//! and a deadline. Whatever a plugin does (loop forever, allocate without bound,
//! panic, reach for a file or host it was not given), the call fails with a typed
//! [`PluginError`] and the broker goes on.

mod admission;
mod bindings;
mod cache;
mod call;
mod capture;
mod credential;
mod denials;
mod egress;
mod error;
mod file_replace;
mod grants;
mod name_lookup;
mod output;
mod runtime;
mod sandbox;
mod socket_limit;

pub use admission::ConnectionLimit;
pub use bindings::{LeaseInfo, PluginInfo};
pub use cache::{ArtifactPins, MemoryPins};
pub use call::{CallScope, Plugin};
pub use credential::{Credential, CredentialField, Issued};
pub use error::{Failure, LoadError, PluginError};
pub use grants::{GrantError, Grants, is_never_granted_by_name};
pub use runtime::{EPOCH_TICK, Runtime, RuntimeConfig};
