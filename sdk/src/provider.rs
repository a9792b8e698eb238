//! The trait a plugin implements, and the glue between it and the WIT bindings.

use crate::bindings::leasehold::provider::types::{
    Error as WitError, Issued as WitIssued, LeaseInfo, PluginInfo,
};
use crate::error::Call;
use crate::{Error, Issued, Lease, Result};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A credential provider for one kind of target.
///
/// Config and role are your own serde types; the SDK derives their JSON Schemas for
/// the host and deserializes what the host passes. Every method is called in a fresh
/// sandboxed instance: keep no state between calls.
pub trait Provider {
    /// A short, stable name, such as `postgres`.
    const NAME: &'static str;
    /// One sentence for operators.
    const DESCRIPTION: &'static str;
    /// The longest username the target accepts, in bytes. Every [`Lease`] the
    /// plugin gets carries it, so [`Lease::username`] gives the same name in
    /// `create`, `renew` and a `revoke` without a handle. Changing it changes
    /// the names of leases already issued: keep it once a plugin is in use.
    const MAX_USERNAME_LENGTH: u32 = crate::lease::DEFAULT_MAX_USERNAME_LENGTH;
    /// Whether [`Provider::renew`] does something on the target.
    const CAN_RENEW: bool = false;
    /// Whether [`Provider::rotate_root`] is implemented.
    const CAN_ROTATE_ROOT: bool = false;
    /// How many calls the target takes at once on one connection, if it has a
    /// limit (a file rewritten whole tolerates one writer); 0 for no opinion. The
    /// host runs at most this many calls at once per connection, whatever the
    /// operator's `max_parallel` says.
    const MAX_PARALLEL: u32 = 0;

    /// The connection config: how to reach the target and as whom. Mark secret
    /// fields with [`crate::Secret`] (or `#[schemars(extend("secret" = true))]`).
    type Config: Serialize + DeserializeOwned + JsonSchema;
    /// A role: what a credential issued under it may do.
    type Role: DeserializeOwned + JsonSchema;

    /// Checks a config and, when given, a role; may connect to the target.
    fn validate(config: &Self::Config, role: Option<&Self::Role>) -> Result<()> {
        let _ = (config, role);
        Ok(())
    }

    /// Creates a credential for `lease`. Everything created must be found again from
    /// the lease alone (use [`Lease::username`]), since a revoke after a crash has no
    /// handle. Return [`Error::Uncertain`] (an HTTP request that broke after it
    /// went out does, through `?`) when the target may have acted although the
    /// call failed.
    fn create(config: &Self::Config, role: &Self::Role, lease: &Lease) -> Result<Issued>;

    /// Extends the credential to `lease.expires_at()`.
    fn renew(config: &Self::Config, role: &Self::Role, handle: &str, lease: &Lease) -> Result<()> {
        let _ = (config, role, handle, lease);
        Ok(())
    }

    /// Removes the credential. Revoking what is already gone is success; with no
    /// handle, remove what `create` would have made for this lease
    /// ([`Lease::handle_or_username`]).
    fn revoke(
        config: &Self::Config,
        role: &Self::Role,
        handle: Option<&str>,
        lease: &Lease,
    ) -> Result<()>;

    /// Changes the root credential on the target and returns the updated config.
    fn rotate_root(config: &Self::Config) -> Result<Self::Config> {
        let _ = config;
        Err(Error::invalid_request(format!(
            "the {} plugin cannot rotate its root credential",
            Self::NAME
        )))
    }
}

/// Parses the JSON the host passed into a plugin type.
///
/// serde's messages quote the offending value ("invalid type: string \"...\""), and
/// that value may be a password, so for wrong values only the field's path is
/// reported.
fn parse<T: DeserializeOwned>(what: &str, json: &str) -> Result<T> {
    let deserializer = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        let quotes_a_value =
            message.starts_with("invalid type") || message.starts_with("invalid value");
        let explained = if quotes_a_value {
            format!("{what} field `{path}` has the wrong type or value")
        } else {
            format!("{what}: {message}")
        };
        match what {
            "config" => Error::invalid_config(explained),
            _ => Error::invalid_request(explained),
        }
    })
}

fn schema_of<T: JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(T)).expect("a JSON Schema serializes")
}

/// The keyword in the config schema's root that carries
/// [`Provider::MAX_PARALLEL`] to the host (the `0.1.0` contract's `plugin-info`
/// has no field for it).
pub const MAX_PARALLEL_KEYWORD: &str = "x-leasehold-max-parallel";

/// The config schema, with the plugin's concurrency limit when it has one.
fn config_schema_of<P: Provider>() -> String {
    let mut schema = schemars::schema_for!(P::Config);
    if P::MAX_PARALLEL > 0 {
        schema.insert(MAX_PARALLEL_KEYWORD.into(), P::MAX_PARALLEL.into());
    }
    serde_json::to_string(&schema).expect("a JSON Schema serializes")
}

/// Called by the code [`crate::export_provider!`] expands to.
#[doc(hidden)]
pub mod adapter {
    use super::*;

    pub fn info<P: Provider>(version: &str) -> PluginInfo {
        PluginInfo {
            name: P::NAME.into(),
            version: version.into(),
            description: P::DESCRIPTION.into(),
            config_schema: config_schema_of::<P>(),
            role_schema: schema_of::<P::Role>(),
            max_username_length: P::MAX_USERNAME_LENGTH,
            can_renew: P::CAN_RENEW,
            can_rotate_root: P::CAN_ROTATE_ROOT,
        }
    }

    pub fn validate<P: Provider>(config: String, role: Option<String>) -> Result<(), WitError> {
        let run = || {
            let config: P::Config = parse("config", &config)?;
            let role: Option<P::Role> = role.as_deref().map(|r| parse("role", r)).transpose()?;
            P::validate(&config, role.as_ref())
        };
        run().map_err(|err| err.into_wit(Call::Validate))
    }

    pub fn create<P: Provider>(
        config: String,
        role: String,
        lease: LeaseInfo,
    ) -> Result<WitIssued, WitError> {
        let run = || {
            let config: P::Config = parse("config", &config)?;
            let role: P::Role = parse("role", &role)?;
            P::create(&config, &role, &Lease::for_provider::<P>(lease))
        };
        run()
            .map(Into::into)
            .map_err(|err| err.into_wit(Call::Create))
    }

    pub fn renew<P: Provider>(
        config: String,
        role: String,
        handle: String,
        lease: LeaseInfo,
    ) -> Result<(), WitError> {
        let run = || {
            let config: P::Config = parse("config", &config)?;
            let role: P::Role = parse("role", &role)?;
            P::renew(&config, &role, &handle, &Lease::for_provider::<P>(lease))
        };
        run().map_err(|err| err.into_wit(Call::Renew))
    }

    pub fn revoke<P: Provider>(
        config: String,
        role: String,
        handle: Option<String>,
        lease: LeaseInfo,
    ) -> Result<(), WitError> {
        let run = || {
            let config: P::Config = parse("config", &config)?;
            let role: P::Role = parse("role", &role)?;
            P::revoke(
                &config,
                &role,
                handle.as_deref(),
                &Lease::for_provider::<P>(lease),
            )
        };
        run().map_err(|err| err.into_wit(Call::Revoke))
    }

    pub fn rotate_root<P: Provider>(config: String) -> Result<String, WitError> {
        let run = || {
            let config: P::Config = parse("config", &config)?;
            let rotated = P::rotate_root(&config)?;
            serde_json::to_string(&rotated).map_err(|err| {
                Error::internal(format!("the rotated config does not serialize: {err}"))
            })
        };
        run().map_err(|err| err.into_wit(Call::RotateRoot))
    }
}
