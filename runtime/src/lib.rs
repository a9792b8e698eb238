//! The plugin runtime: loading credential-provider components and calling them in
//! a sandbox.
//!
//! A plugin is a WebAssembly component implementing `leasehold:provider/plugin`
//! in one of the contract versions under `wit/` ([`ContractVersion::SUPPORTED`]).
//! [`Runtime::load`] compiles it (or reads it from the on-disk cache), reads which
//! version it was built against, checks it against that version's world, and
//! returns a [`Plugin`]; each call on it runs in a fresh instance with only the
//! [`Grants`] of its [`CallScope`], a memory limit and a deadline. Whatever a plugin does (loop forever, allocate without bound,
//! panic, reach for a file or host it was not given), the call fails with a typed
//! [`PluginError`] and the broker goes on. Callers see only the runtime's own
//! types ([`LeaseInfo`], [`PluginInfo`], [`Failure`]), whatever the version.

mod admission;
mod cache;
mod call;
mod capture;
mod connections;
mod contract;
mod credential;
mod denials;
mod domain;
mod egress;
mod error;
mod file_replace;
mod grants;
mod http_clients;
mod name_lookup;
mod output;
mod runtime;
mod sandbox;
mod socket_limit;

pub use admission::ConnectionLimit;
pub use cache::{ArtifactPins, MemoryPins};
pub use call::{CallScope, Plugin};
pub use contract::ContractVersion;
pub use credential::{Credential, CredentialField, Issued};
pub use domain::{Failure, LeaseInfo, PluginInfo};
pub use error::{LoadError, PluginError};
pub use grants::{GrantError, Grants, is_never_granted_by_name};
pub use runtime::{EPOCH_TICK, Runtime, RuntimeConfig};
