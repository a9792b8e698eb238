//! {{name}}: users in an in-house service's HTTP user API, one per lease.
//!
//! `create` adds a user with a fresh password; `revoke` deletes it again, by the
//! name derived from the lease, so it needs no handle; `validate` checks the
//! service answers and takes the admin token.

use leasehold_sdk::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
struct Config {
    /// The service's base URL, e.g. `http://inventory.internal:8080`.
    url: String,
    /// The token the user API takes as `Authorization: Bearer`.
    admin_token: Secret,
}

#[derive(Deserialize, JsonSchema)]
struct Role {
    /// The group new users join.
    group: String,
}

struct Plugin;

impl Provider for Plugin {
    const NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "Users in the service's HTTP user API";
    const MAX_USERNAME_LENGTH: u32 = 32;
    type Config = Config;
    type Role = Role;

    fn validate(cfg: &Config, _: Option<&Role>) -> Result<()> {
        users(cfg, http::get(format!("{}/users", cfg.url)))
            .send()?
            .success()?;
        Ok(())
    }

    fn create(cfg: &Config, role: &Role, lease: &Lease) -> Result<Issued> {
        let (user, password) = (lease.username(), generate_password(24));
        let body = json!({"username": user, "password": password, "group": role.group});
        users(cfg, http::post(format!("{}/users", cfg.url)))
            .json(&body)
            .send()?
            .success()?;
        Ok(Issued::new(&user)
            .field("username", &user)
            .secret("password", password))
    }

    fn revoke(cfg: &Config, _: &Role, _: Option<&str>, lease: &Lease) -> Result<()> {
        let url = format!("{}/users/{}", cfg.url, lease.username());
        users(cfg, http::delete(url)).send()?.success_or_not_found()
    }
}

fn users(cfg: &Config, request: http::Request) -> http::Request {
    request.bearer(cfg.admin_token.expose())
}

export_provider!(Plugin);
