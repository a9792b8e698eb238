//! Vault's path ACL policies: which capabilities a token has on which paths.
//!
//! A policy is a set of `path "<pattern>" { capabilities = [...] }` rules, written
//! in HCL or JSON ([`parse`]). A token's policies combine into an [`Acl`]: rules for
//! the same pattern merge (capabilities union, `deny` overrides), and a request is
//! decided by the single most specific pattern that matches its path, by Vault's
//! priority rules. `root` allows everything; `default` lets a token look after
//! itself; `response-wrapping` lets a wrapping token unwrap itself.

mod acl;
mod parse;
mod store;

pub use acl::{Acl, Capability, Decision};
pub use parse::{Policy, PolicyError, parse};
pub use store::{DEFAULT_POLICY, PolicyStore, PolicyStoreError, RESPONSE_WRAPPING_POLICY};
