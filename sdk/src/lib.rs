//! Write credential provider plugins for the leasehold broker.
//!
//! A plugin creates a credential on one kind of target (a database, a cache, an
//! in-house service) when a consumer asks the broker for one, and removes it when
//! the lease ends. It is compiled to a `wasm32-wasip2` component and runs inside the
//! broker's sandbox, which grants it only the directory, hosts and HTTP origins the
//! operator named for its mount.
//!
//! This complete plugin gives out users of an in-house HTTP service (the
//! inventory's user API):
//!
//! ```
//! use leasehold_sdk::prelude::*;
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Config {
//!     /// The service, such as `http://inventory.internal:8080`.
//!     url: String,
//!     /// Its admin API key.
//!     api_key: Secret,
//! }
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Role {
//!     /// Groups the user joins.
//!     groups: Vec<String>,
//! }
//!
//! struct Inventory;
//!
//! impl Provider for Inventory {
//!     const NAME: &'static str = "inventory";
//!     const DESCRIPTION: &'static str = "Users of the inventory service";
//!     const MAX_USERNAME_LENGTH: u32 = 32;
//!     type Config = Config;
//!     type Role = Role;
//!
//!     fn validate(cfg: &Config, _: Option<&Role>) -> Result<()> {
//!         let users = http::get(format!("{}/api/users", cfg.url));
//!         users.bearer(cfg.api_key.expose()).send()?.success().map(drop)
//!     }
//!
//!     fn create(cfg: &Config, role: &Role, lease: &Lease) -> Result<Issued> {
//!         let (user, password) = (lease.username(), generate_password(24));
//!         http::post(format!("{}/api/users", cfg.url))
//!             .bearer(cfg.api_key.expose())
//!             .json(&json!({ "name": user, "password": password, "groups": role.groups }))
//!             .send()?
//!             .success()?;
//!         Ok(Issued::new(&user).field("username", &user).secret("password", password))
//!     }
//!
//!     fn revoke(cfg: &Config, _: &Role, handle: Option<&str>, lease: &Lease) -> Result<()> {
//!         let user = lease.handle_or_username(handle);
//!         http::delete(format!("{}/api/users/{user}", cfg.url))
//!             .bearer(cfg.api_key.expose())
//!             .send()?
//!             .success_or_not_found()
//!     }
//! }
//!
//! export_provider!(Inventory);
//! ```
//!
//! What the SDK does for it:
//! - [`Lease::username`] derives the user's name from the lease, at most
//!   [`Provider::MAX_USERNAME_LENGTH`] bytes, the same in `create` and in a
//!   `revoke` that has no handle (recovery after a crash);
//! - [`http`] frames every body with `Content-Length` (no chunked bodies, which
//!   small services often cannot read), and a request that fails says why in
//!   words; `?` makes it the error the broker acts on: a service that could not
//!   be reached is retried, and a `create` whose request may have reached the
//!   service before the connection broke is revoked by the broker;
//! - the config's and role's JSON Schemas come from the types, and
//!   [`Secret`] fields are never shown back or logged.
//!
//! The plugin crate depends on `leasehold-sdk`, `serde` and `schemars` (their
//! derives name those crates). Build it with
//! `cargo build --release --target wasm32-wasip2` (crate type `cdylib`), and test it in the real sandbox with the [`testing`] module (feature
//! `testing`), from an ordinary `cargo test` on the host.
//!
//! Rules every plugin follows:
//! - `revoke` is idempotent and works without a handle: a crash between the broker
//!   recording a lease and learning the handle leaves only the lease, and recovery
//!   calls `revoke(None)`. Derive names from the lease with [`Lease::username`].
//! - Errors say what went wrong and never contain a secret. [`Error::Unavailable`] is
//!   the one the broker retries; [`Error::Uncertain`] says the target may have
//!   acted although the call failed.
//! - Secrets in config are [`Secret`]s; credentials' secret fields go through
//!   [`Issued::secret`].

extern crate self as leasehold_sdk;

pub mod bindings;
pub mod connection;
mod error;
pub mod http;
mod issued;
mod lease;
pub mod log;
mod password;
mod provider;
mod secret;
#[cfg(all(feature = "testing", not(target_arch = "wasm32")))]
pub mod testing;

pub use error::{Error, Result};
pub use issued::Issued;
pub use lease::{DEFAULT_MAX_USERNAME_LENGTH, Lease};
pub use password::{MIN_PASSWORD_LENGTH, PasswordPolicy, generate_password};
pub use provider::Provider;
pub use secret::Secret;

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::{
        Error, Issued, Lease, Provider, Result, Secret, export_provider, generate_password, http,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::json;
}

/// Items the macros expand to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::provider::adapter;
    pub use wit_bindgen;
}

/// Exports a [`Provider`] as the plugin's implementation of the WIT `provider`
/// interface. Use it once per plugin crate.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        const _: () = {
            struct LeaseholdExport;

            impl $crate::bindings::exports::leasehold::provider::provider::Guest for LeaseholdExport {
                fn info() -> $crate::bindings::leasehold::provider::types::PluginInfo {
                    $crate::__private::adapter::info::<$provider>(env!("CARGO_PKG_VERSION"))
                }

                fn validate(
                    config: String,
                    role: Option<String>,
                ) -> Result<(), $crate::bindings::leasehold::provider::types::Error> {
                    $crate::__private::adapter::validate::<$provider>(config, role)
                }

                fn create(
                    config: String,
                    role: String,
                    lease: $crate::bindings::leasehold::provider::types::LeaseInfo,
                ) -> Result<
                    $crate::bindings::leasehold::provider::types::Issued,
                    $crate::bindings::leasehold::provider::types::Error,
                > {
                    $crate::__private::adapter::create::<$provider>(config, role, lease)
                }

                fn renew(
                    config: String,
                    role: String,
                    handle: String,
                    lease: $crate::bindings::leasehold::provider::types::LeaseInfo,
                ) -> Result<(), $crate::bindings::leasehold::provider::types::Error> {
                    $crate::__private::adapter::renew::<$provider>(config, role, handle, lease)
                }

                fn revoke(
                    config: String,
                    role: String,
                    handle: Option<String>,
                    lease: $crate::bindings::leasehold::provider::types::LeaseInfo,
                ) -> Result<(), $crate::bindings::leasehold::provider::types::Error> {
                    $crate::__private::adapter::revoke::<$provider>(config, role, handle, lease)
                }

                fn rotate_root(
                    config: String,
                ) -> Result<String, $crate::bindings::leasehold::provider::types::Error> {
                    $crate::__private::adapter::rotate_root::<$provider>(config)
                }
            }

            $crate::bindings::export_bindings!(LeaseholdExport with_types_in $crate::bindings);
        };
    };
}
