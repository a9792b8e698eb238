//! Write credential provider plugins for the leasehold broker.
//!
//! A plugin creates a credential on one kind of target (a database, a cache, an
//! in-house service) when a consumer asks the broker for one, and removes it when
//! the lease ends. It is compiled to a `wasm32-wasip2` component and runs inside the
//! broker's sandbox, which grants it only the directory, hosts and HTTP origins the
//! operator named for its mount.
//!
//! This complete plugin keeps users in a file inside its granted directory:
//!
//! ```
//! use leasehold_sdk::prelude::*;
//! use std::fs;
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Config {
//!     /// The users file, relative to the granted directory.
//!     file: String,
//! }
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Role {
//!     /// The group new users join.
//!     group: String,
//! }
//!
//! struct UsersFile;
//!
//! impl Provider for UsersFile {
//!     const NAME: &'static str = "users-file";
//!     const DESCRIPTION: &'static str = "Users as lines in a text file";
//!     type Config = Config;
//!     type Role = Role;
//!
//!     fn create(cfg: &Config, role: &Role, lease: &Lease) -> Result<Issued> {
//!         let (user, password) = (lease.username(), generate_password(24));
//!         let mut users = fs::read_to_string(&cfg.file).unwrap_or_default();
//!         users.push_str(&format!("{user}:{}\n", role.group));
//!         fs::write(&cfg.file, users)?;
//!         Ok(Issued::new(&user).field("username", &user).secret("password", password))
//!     }
//!
//!     fn revoke(cfg: &Config, _: &Role, handle: Option<&str>, lease: &Lease) -> Result<()> {
//!         let user = lease.handle_or_username(handle);
//!         let users = fs::read_to_string(&cfg.file).unwrap_or_default();
//!         let kept: String = users
//!             .lines()
//!             .filter(|line| line.split(':').next() != Some(user.as_str()))
//!             .map(|line| format!("{line}\n"))
//!             .collect();
//!         Ok(fs::write(&cfg.file, kept)?)
//!     }
//! }
//!
//! export_provider!(UsersFile);
//! ```
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
//!   the one the broker retries.
//! - Secrets in config are [`Secret`]s; credentials' secret fields go through
//!   [`Issued::secret`].

extern crate self as leasehold_sdk;

pub mod bindings;
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
        Error, Issued, Lease, Provider, Result, Secret, export_provider, generate_password,
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
