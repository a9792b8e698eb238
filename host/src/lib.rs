//! leasehold: a dynamic-secrets broker whose credential providers are sandboxed
//! WebAssembly plugins.
//!
//! This crate is the broker. Its modules follow the flow of a request; so far:
//! - [`plugin`]: the wasmtime runtime that loads provider plugins and calls them in
//!   a sandbox with per-mount capability grants;
//! - [`barrier`]: encryption at rest, the keyring, seal and unseal;
//! - [`storage`]: the ordered key-value backend under the barrier (redb);
//! - [`audit`]: the HMAC'd, hash-chained audit log, failing closed;
//! - [`auth`]: tokens, stored by hash;
//! - [`catalog`]: registered plugin components, by name, version and SHA-256;
//! - [`secrets`]: mounts, connections, roles, and issuing credentials;
//! - [`leases`]: leases, their expiry, revocation retries and recovery;
//! - [`revocation`]: revoking a token with its children and leases, on request
//!   or at expiry;
//! - [`wrapping`]: response wrapping, responses kept in the barrier behind
//!   single-use tokens;
//! - [`metrics`]: Prometheus metrics;
//! - [`policy`]: Vault's path ACL policies;
//! - [`quotas`]: rate-limit and lease-count quotas;
//! - [`lifecycle`]: init, unseal, seal, and every step that follows an unseal
//!   or precedes a seal;
//! - [`api`]: the Vault-compatible HTTP API, the only module that knows HTTP;
//! - [`server`], `listener` and [`config`]: the `leasehold server` process and
//!   the limits on its connections;
//! - [`cli`]: the `leasehold` command line.

pub mod api;
pub mod audit;
pub mod auth;
pub mod barrier;
pub mod catalog;
pub mod cli;
mod clock;
pub mod config;
mod ids;
pub mod leases;
pub mod lifecycle;
mod listener;
pub mod metrics;
mod path_prefix;
/// The plugin sandbox lives in its own crate so that plugin authors can test
/// against it without building the broker.
pub use leasehold_runtime as plugin;
pub mod policy;
pub mod quotas;
pub mod revocation;
pub mod secrets;
pub mod server;
pub mod storage;
mod tls;
pub mod wrapping;
