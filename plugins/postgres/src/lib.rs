//! The `postgres` plugin: PostgreSQL 15+ roles with Vault's database-plugin
//! semantics.
//!
//! `create` runs the role's creation statements in one transaction (and its
//! rollback statements if they fail); `revoke` runs its revocation statements, or
//! by default ends the role's sessions, reassigns and drops what it owns and drops
//! it; `renew` moves `VALID UNTIL`; `rotate-root` gives the connection's user a new
//! password. The plugin speaks the wire protocol itself ([`wire`]) over a
//! connection the host opens where the grant allows, encrypts as `sslmode`
//! says ([`endpoint`]), and keeps between calls, so most calls reuse an
//! authenticated session.

mod endpoint;
mod names;
mod template;
mod wire;

use endpoint::{Endpoint, SslMode};
use leasehold_sdk::PasswordPolicy;
use leasehold_sdk::prelude::*;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use std::time::{Duration, UNIX_EPOCH};
use template::Values;
use wire::{Connection, Target};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

/// Where the server is and who the plugin is there.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `postgresql://{{username}}:{{password}}@host:port/database?sslmode=...`,
    /// as Vault writes it (the placeholders stand for `username` and
    /// `password`); or give `host`, `port`, `database` and `sslmode` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connection_url: Option<String>,
    /// Host name or IP address (grant `host:port` in `allowed_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// Port (default 5432).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    /// Database (default `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    /// libpq's `sslmode`: `disable`, `prefer` (the default: TLS when the server
    /// offers it, unchecked), `require`, `verify-ca` or `verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sslmode: Option<String>,
    /// The CA certificates (PEM) that `verify-ca` and `verify-full` trust,
    /// instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls_ca: Option<String>,
    /// The user the plugin connects as; it needs `CREATEROLE` (and ownership or
    /// superuser for the default revocation).
    username: String,
    /// Its password.
    password: Secret,
    /// Template of new role names (see the README); default
    /// `v-<requester>-<role>-<hash>-<time>`, at most 63 bytes. It must hold
    /// `{{random N}}` with N of at least 16, the part that is each lease's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username_template: Option<String>,
    /// Length and characters of generated passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_policy: Option<PasswordPolicy>,
    /// Answer a server that asks for MD5 password authentication.
    #[serde(default)]
    allow_md5: bool,
    /// Answer a server that asks for the password in clear text.
    #[serde(default)]
    allow_cleartext: bool,
}

/// What a role's credentials are, in SQL.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Role {
    /// Run in one transaction to create the role: `{{name}}`, `{{password}}` and
    /// `{{expiration}}` are substituted and quoted for where they stand.
    creation_statements: Vec<String>,
    /// Run to remove it (default: end its sessions, `REASSIGN OWNED`,
    /// `DROP OWNED`, `DROP ROLE IF EXISTS`).
    #[serde(default)]
    revocation_statements: Vec<String>,
    /// Run at renewal (default: `ALTER ROLE {{name}} VALID UNTIL {{expiration}}`).
    #[serde(default)]
    renew_statements: Vec<String>,
    /// Run when the creation statements fail.
    #[serde(default)]
    rollback_statements: Vec<String>,
}

impl Config {
    /// Host, port, database and `sslmode`.
    fn endpoint(&self) -> Result<Endpoint> {
        let split = self.host.is_some()
            || self.port.is_some()
            || self.database.is_some()
            || self.sslmode.is_some();
        match &self.connection_url {
            Some(_) if split => Err(Error::invalid_config(
                "give connection_url or host/port/database/sslmode, not both",
            )),
            Some(template) => endpoint::parse_url(template),
            None => Ok(Endpoint {
                host: self
                    .host
                    .clone()
                    .ok_or_else(|| Error::invalid_config("connection_url or host is required"))?,
                port: self.port.unwrap_or(5432),
                database: self.database.clone().unwrap_or_else(|| "postgres".into()),
                sslmode: match &self.sslmode {
                    Some(mode) => SslMode::parse(mode)?,
                    None => SslMode::Prefer,
                },
            }),
        }
    }

    /// A session as the config's user: kept from an earlier call, or new.
    fn connect(&self) -> Result<Connection> {
        let endpoint = self.endpoint()?;
        Connection::open(&Target {
            endpoint: &endpoint,
            tls_ca: self.tls_ca.as_deref(),
            user: &self.username,
            password: self.password.expose(),
            allow_md5: self.allow_md5,
            allow_cleartext: self.allow_cleartext,
        })
    }

    fn new_password(&self) -> Result<String> {
        match &self.password_policy {
            Some(policy) => policy.generate(),
            None => Ok(generate_password(24)),
        }
    }

    /// Checks that the username template gives every lease a name of its own.
    fn check_names(&self) -> Result<()> {
        match &self.username_template {
            Some(template) => names::check_template(template, MAX_NAME),
            None => Ok(()),
        }
    }

    /// The role name of `lease`, the same in `create` and in a `revoke` that has
    /// no handle.
    fn role_name(&self, lease: &Lease) -> Result<String> {
        match &self.username_template {
            Some(template) => names::from_template(template, lease, MAX_NAME),
            None => Ok(lease.username()),
        }
    }
}

impl Role {
    fn check(&self) -> Result<()> {
        if self.creation_statements.is_empty() {
            return Err(Error::invalid_request("creation_statements is required"));
        }
        for statement in self
            .creation_statements
            .iter()
            .chain(&self.revocation_statements)
            .chain(&self.renew_statements)
            .chain(&self.rollback_statements)
        {
            template::check(statement)?;
        }
        Ok(())
    }
}

/// `VALID UNTIL` of a lease, as a timestamp PostgreSQL reads.
fn expiration(lease: &Lease) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(lease.expires_at()))
        .to_string()
}

/// How long a transaction that collides with concurrent ones is retried; well
/// inside the host's default 10-second call deadline.
const CONFLICT_BUDGET: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds, fails otherwise than by a collision with
/// concurrent statements (see [`wire::is_conflict`]), or [`CONFLICT_BUDGET`] is
/// spent, waiting a little longer (with jitter) after each collision. Vault's
/// plugin serialises a connection's statements instead; retrying keeps calls
/// on different roles parallel and still never fails one because of another.
fn retrying_conflicts<T>(mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(5);
    loop {
        match attempt() {
            Err(err) if wire::is_conflict(&err) && started.elapsed() < CONFLICT_BUDGET => {
                let jitter = std::time::SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.subsec_nanos() as u64 % (wait.as_millis() as u64 + 1))
                    .unwrap_or(0);
                std::thread::sleep(wait + Duration::from_millis(jitter));
                wait = (wait * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Renders and runs `statements` in one transaction, again if it collides with
/// concurrent ones.
fn in_transaction(
    connection: &mut Connection,
    statements: &[String],
    values: &Values<'_>,
) -> Result<()> {
    let rendered = template::render_all(statements, values)?;
    retrying_conflicts(|| run_transaction(connection, &rendered))
}

/// `BEGIN`, the statements, `COMMIT`; `ROLLBACK` if one fails.
fn run_transaction(connection: &mut Connection, statements: &[String]) -> Result<()> {
    connection.query("BEGIN")?;
    for statement in statements {
        if let Err(err) = connection.query(statement) {
            let _ = connection.query("ROLLBACK");
            return Err(err);
        }
    }
    connection.query("COMMIT")?;
    Ok(())
}

struct Postgres;

impl Provider for Postgres {
    const NAME: &'static str = "postgres";
    const DESCRIPTION: &'static str = "PostgreSQL 15+ roles (Vault's database-plugin semantics)";
    const MAX_USERNAME_LENGTH: u32 = MAX_NAME as u32;
    const CAN_RENEW: bool = true;
    const CAN_ROTATE_ROOT: bool = true;

    type Config = Config;
    type Role = Role;

    fn validate(config: &Config, role: Option<&Role>) -> Result<()> {
        config.endpoint()?;
        config.new_password()?;
        config.check_names()?;
        if let Some(role) = role {
            role.check()?;
        }
        let mut connection = config.connect()?;
        connection.query("SELECT 1")?;
        connection.keep();
        Ok(())
    }

    fn create(config: &Config, role: &Role, lease: &Lease) -> Result<Issued> {
        role.check()?;
        // Also here: a connection written before the check was there.
        config.check_names()?;
        let name = config.role_name(lease)?;
        let password = config.new_password()?;
        let expires = expiration(lease);
        let mut connection = config.connect()?;
        connection.redact(&password);
        let values = Values {
            name: &name,
            password: Some(&password),
            expiration: &expires,
        };
        let rendered = template::render_all(&role.creation_statements, &values)?;
        let rollback = |connection: &mut Connection| {
            let statements = role
                .rollback_statements
                .iter()
                .filter_map(|s| template::render(s, &values).ok())
                .flatten();
            for sql in statements {
                let _ = connection.query(&sql);
            }
        };
        // A commit whose answer was lost is not retried: the role may exist.
        let mut commit_lost = None;
        retrying_conflicts(|| {
            connection.query("BEGIN")?;
            for statement in &rendered {
                if let Err(err) = connection.query(statement) {
                    let _ = connection.query("ROLLBACK");
                    rollback(&mut connection);
                    return Err(err);
                }
            }
            match connection.query("COMMIT") {
                Ok(_) => Ok(()),
                // The server refused the commit: nothing was committed.
                Err(err)
                    if wire::is_conflict(&err)
                        || matches!(err, Error::InvalidRequest(_) | Error::Denied(_)) =>
                {
                    rollback(&mut connection);
                    Err(err)
                }
                Err(err) => {
                    commit_lost = Some(err);
                    Ok(())
                }
            }
        })?;
        if let Some(err) = commit_lost {
            return Err(Error::internal(format!(
                "{}; the commit's answer was lost, so the role may exist and is revoked by the broker",
                err.message()
            )));
        }
        connection.keep();
        leasehold_sdk::log::info(format!("created role {name}"));
        Ok(Issued::new(&name)
            .field("username", &name)
            .secret("password", password))
    }

    fn renew(config: &Config, role: &Role, handle: &str, lease: &Lease) -> Result<()> {
        let expires = expiration(lease);
        let values = Values {
            name: handle,
            password: None,
            expiration: &expires,
        };
        let default = ["ALTER ROLE {{name}} VALID UNTIL {{expiration}}".to_owned()];
        let statements = match role.renew_statements.as_slice() {
            [] => &default[..],
            given => given,
        };
        let mut connection = config.connect()?;
        in_transaction(&mut connection, statements, &values)?;
        connection.keep();
        Ok(())
    }

    fn revoke(config: &Config, role: &Role, handle: Option<&str>, lease: &Lease) -> Result<()> {
        // Derived only without a handle: a template that no longer passes the
        // checks must not keep a role it made from being dropped.
        let derived;
        let name = match handle {
            Some(handle) => handle,
            None => {
                derived = config.role_name(lease)?;
                &derived
            }
        };
        let mut connection = config.connect()?;
        let exists = connection.query(&format!(
            "SELECT 1 FROM pg_roles WHERE rolname = {}",
            escape_literal(name)
        ))?;
        if exists.is_empty() {
            connection.keep();
            return Ok(());
        }
        if !role.revocation_statements.is_empty() {
            let expires = expiration(lease);
            let values = Values {
                name,
                password: None,
                expiration: &expires,
            };
            in_transaction(&mut connection, &role.revocation_statements, &values)?;
            connection.keep();
            return Ok(());
        }
        let (ident, literal) = (escape_identifier(name), escape_literal(name));
        connection.query(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = {literal} AND pid <> pg_backend_pid()"
        ))?;
        let owner = escape_identifier(&config.username);
        let drop = [
            format!("REASSIGN OWNED BY {ident} TO {owner}"),
            format!("DROP OWNED BY {ident}"),
            format!("DROP ROLE IF EXISTS {ident}"),
        ];
        retrying_conflicts(|| run_transaction(&mut connection, &drop))?;
        connection.keep();
        leasehold_sdk::log::info(format!("dropped role {name}"));
        Ok(())
    }

    fn rotate_root(config: &Config) -> Result<Config> {
        let password = config.new_password()?;
        let mut connection = config.connect()?;
        connection.redact(&password);
        connection.query(&format!(
            "ALTER ROLE {} WITH PASSWORD {}",
            escape_identifier(&config.username),
            escape_literal(&password)
        ))?;
        let mut rotated = config.clone();
        rotated.password = Secret::new(password);
        Ok(rotated)
    }
}

export_provider!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;
    use leasehold_sdk::bindings::leasehold::provider::types::LeaseInfo;
    use sha2::{Digest, Sha256};

    #[test]
    fn two_leases_never_share_a_role_name() {
        let lease = |id: &str| {
            Lease::for_provider::<Postgres>(LeaseInfo {
                lease_id: id.into(),
                mount: "db".into(),
                role: "a-role-name-far-longer-than-any-identifier-".repeat(4),
                requester: "a-display-name-far-longer-than-any-identifier-".repeat(4),
                issued_at: 1_795_356_935,
                ttl_seconds: 3600,
                expires_at: 1_795_360_535,
            })
        };
        let (first, second) = (lease("db/creds/r/one"), lease("db/creds/r/two"));
        for template in [
            None,
            Some("v-{{.DisplayName}}-{{.RoleName}}-{{random 20}}-{{unix_time}}"),
        ] {
            let config: Config = serde_json::from_value(json!({
                "host": "10.0.0.5", "username": "admin", "password": "pw",
                "username_template": template,
            }))
            .unwrap();
            config.check_names().unwrap();
            let names = [&first, &second].map(|lease| config.role_name(lease).unwrap());
            assert_ne!(names[0], names[1], "{template:?}");
            for (name, lease) in names.iter().zip([&first, &second]) {
                assert!(name.len() <= MAX_NAME, "{name}");
                let hash = hex::encode(Sha256::digest(lease.id().as_bytes()));
                assert!(name.contains(&hash[..20]), "{template:?}: {name}");
            }
        }
    }
}
