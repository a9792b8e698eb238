//! The `redis` plugin: Redis 6+/7 ACL users.
//!
//! `create` runs `ACL SETUSER <name> reset on >password <rules>` as the config's
//! admin user; `revoke` kills the user's connections (`CLIENT KILL USER`) and
//! deletes it (`ACL DELUSER`); `rotate-root` gives the admin a new password
//! (`ACL SETUSER <admin> resetpass >new`). RESP frames come from the
//! `redis-protocol` crate, over a connection the host opens to the granted
//! address (with TLS when `tls` is set) and keeps between calls.

mod connection;
mod rules;

use connection::Connection;
use leasehold_sdk::connection::{Tls, TlsMode};
use leasehold_sdk::prelude::*;

/// Longest username this plugin makes.
const MAX_USERNAME: u32 = 64;

/// How to reach Redis and as whom.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Host name or IP address (grant `host:port` in `allowed_hosts`).
    host: String,
    /// Port (default 6379).
    #[serde(default = "default_port")]
    port: u16,
    /// The admin user (default `default`); needs `+acl` and `+client`.
    #[serde(default = "default_user")]
    username: String,
    /// The admin user's password.
    password: Secret,
    /// Connect with TLS (Redis's `tls-port`).
    #[serde(default)]
    tls: bool,
    /// With `tls`, accept any certificate: encrypted, but not protected from a
    /// server in the middle.
    #[serde(default)]
    insecure_tls: bool,
    /// With `tls`, the CA certificates (PEM) to trust instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_cert: Option<String>,
}

fn default_port() -> u16 {
    6379
}

fn default_user() -> String {
    "default".into()
}

/// What a credential may do.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Role {
    /// ACL rules for the user, e.g. `["~app:*", "+@read"]`. Passwords, `nopass`
    /// and `on`/`off` are the plugin's business and refused here.
    acl_rules: Vec<String>,
    /// Allows `allkeys` and `~*` in `acl_rules`.
    #[serde(default)]
    allow_all_keys: bool,
    /// Allows rules that grant administrative commands (`+@all`, `+@admin`,
    /// `+acl`, `+config`, ...), with which a user could manage other users.
    #[serde(default)]
    allow_admin_commands: bool,
}

impl Role {
    fn check(&self) -> Result<()> {
        rules::check(
            &self.acl_rules,
            self.allow_all_keys,
            self.allow_admin_commands,
        )
    }
}

impl Config {
    /// What the host checks of the server's certificate, if TLS is on.
    fn tls(&self) -> Result<Option<Tls>> {
        if !self.tls {
            if self.insecure_tls || self.ca_cert.is_some() {
                return Err(Error::invalid_config(
                    "insecure_tls and ca_cert only apply with tls: true",
                ));
            }
            return Ok(None);
        }
        let mode = if self.insecure_tls {
            TlsMode::Require
        } else {
            TlsMode::VerifyFull
        };
        let tls = Tls::new(mode);
        Ok(Some(match &self.ca_cert {
            Some(pem) => tls.ca_pem(pem),
            None => tls,
        }))
    }

    /// An authenticated admin session: kept from an earlier call, or new.
    fn connect(&self) -> Result<Connection> {
        let tls = self.tls()?;
        let mut connection = match Connection::take() {
            Some(kept) => kept,
            None => {
                let mut connection = Connection::open(&self.host, self.port, tls.as_ref())?;
                connection.auth(&self.username, self.password.expose())?;
                connection
            }
        };
        connection.redact(self.password.expose());
        Ok(connection)
    }
}

struct Redis;

impl Provider for Redis {
    const NAME: &'static str = "redis";
    const DESCRIPTION: &'static str = "Redis 6+/7 ACL users";
    const MAX_USERNAME_LENGTH: u32 = MAX_USERNAME;
    const CAN_ROTATE_ROOT: bool = true;

    type Config = Config;
    type Role = Role;

    fn validate(config: &Config, role: Option<&Role>) -> Result<()> {
        if let Some(role) = role {
            role.check()?;
        }
        let mut connection = config.connect()?;
        connection.command(&["PING"])?;
        connection.keep();
        Ok(())
    }

    fn create(config: &Config, role: &Role, lease: &Lease) -> Result<Issued> {
        role.check()?;
        let user = lease.username();
        let password = generate_password(32);
        let secret = format!(">{password}");
        let mut command = vec!["ACL", "SETUSER", &user, "reset", "on", &secret];
        command.extend(role.acl_rules.iter().map(String::as_str));
        if !role.allow_admin_commands {
            command.extend(rules::WITHOUT_ADMIN);
        }
        let mut connection = config.connect()?;
        connection.redact(&password);
        match connection.command(&command) {
            Ok(_) => {}
            // Redis refused: SETUSER may still have created the user before a
            // later rule failed, so delete it.
            Err(err @ (Error::InvalidRequest(_) | Error::Denied(_))) => {
                let _ = connection.command(&["ACL", "DELUSER", &user]);
                return Err(err);
            }
            // The answer was lost: the user may exist. Delete it on a new
            // connection; if that fails too, `internal` makes the host revoke.
            Err(err) => {
                let deleted = config
                    .connect()
                    .and_then(|mut again| again.command(&["ACL", "DELUSER", &user]));
                return Err(match deleted {
                    Ok(_) => err,
                    Err(_) => Error::internal(format!(
                        "{}; the user may exist and is revoked by the broker",
                        err.message()
                    )),
                });
            }
        }
        connection.keep();
        leasehold_sdk::log::info(format!("created Redis user {user}"));
        Ok(Issued::new(&user)
            .field("username", &user)
            .secret("password", password))
    }

    fn revoke(config: &Config, _: &Role, handle: Option<&str>, lease: &Lease) -> Result<()> {
        let user = lease.handle_or_username(handle);
        let user = user.as_str();
        let mut connection = config.connect()?;
        match connection.command(&["CLIENT", "KILL", "USER", user]) {
            // Redis answers an error for a user that does not exist: nothing to kill.
            Err(Error::InvalidRequest(message)) if message.contains("No such user") => {}
            other => {
                other?;
            }
        }
        connection.command(&["ACL", "DELUSER", user])?;
        connection.keep();
        leasehold_sdk::log::info(format!("deleted Redis user {user}"));
        Ok(())
    }

    fn rotate_root(config: &Config) -> Result<Config> {
        let password = generate_password(32);
        let secret = format!(">{password}");
        let mut connection = config.connect()?;
        connection.redact(&password);
        connection.command(&["ACL", "SETUSER", &config.username, "resetpass", &secret])?;
        Ok(Config {
            host: config.host.clone(),
            port: config.port,
            username: config.username.clone(),
            password: Secret::new(password),
            tls: config.tls,
            insecure_tls: config.insecure_tls,
            ca_cert: config.ca_cert.clone(),
        })
    }
}

export_provider!(Redis);
