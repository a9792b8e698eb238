//! The `noop` plugin: issues a random credential and touches nothing.
//!
//! For tests and benchmarks of the broker itself: it exercises the whole path (a
//! sandboxed instance, a username from the lease, a generated password) without a
//! target, so what it measures is the broker.

use leasehold_sdk::prelude::*;

/// No settings: there is no target.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {}

/// No settings.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Role {}

struct Noop;

impl Provider for Noop {
    const NAME: &'static str = "noop";
    const DESCRIPTION: &'static str =
        "Issues random credentials on no target; for tests and benchmarks";
    const CAN_RENEW: bool = true;

    type Config = Config;
    type Role = Role;

    fn create(_: &Config, _: &Role, lease: &Lease) -> Result<Issued> {
        let user = lease.username();
        Ok(Issued::new(&user)
            .field("username", &user)
            .secret("password", generate_password(24)))
    }

    fn revoke(_: &Config, _: &Role, _: Option<&str>, _: &Lease) -> Result<()> {
        Ok(())
    }
}

export_provider!(Noop);
