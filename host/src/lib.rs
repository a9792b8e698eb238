//! leasehold: a dynamic-secrets broker whose credential providers are sandboxed
//! WebAssembly plugins.
//!
//! This crate is the broker. Its modules follow the flow of a request; so far:
//! - [`plugin`]: the wasmtime runtime that loads provider plugins and calls them in
//!   a sandbox with per-mount capability grants.

pub mod plugin;
