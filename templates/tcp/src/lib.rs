//! {{name}}: users in an in-house service spoken to over TCP, one per lease.
//!
//! The service takes one command per line and answers `OK` or `ERR message`
//! (see `service/keyserver.py`). `create` adds a user with a fresh password;
//! `revoke` deletes it again, by the name derived from the lease, so it needs no
//! handle; `validate` checks the service takes the admin token.
//!
//! The connection belongs to the broker: after a call that went well, the
//! authenticated admin session is handed back ([`Session::keep`]) and the next
//! call takes it instead of connecting and logging in again.

use leasehold_sdk::connection::Connection;
use leasehold_sdk::prelude::*;
use std::io::{BufRead, BufReader, Write};

/// What a kept session is: the service's admin, logged in.
const ADMIN_SESSION: &str = "admin";

#[derive(Serialize, Deserialize, JsonSchema)]
struct Config {
    /// The service's host name or address.
    host: String,
    /// The service's TCP port.
    port: u16,
    /// The token that makes a connection an admin's.
    admin_token: Secret,
}

#[derive(Deserialize, JsonSchema)]
struct Role {}

struct Plugin;

impl Provider for Plugin {
    const NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "Users in the service's line protocol over TCP";
    const MAX_USERNAME_LENGTH: u32 = 32;
    type Config = Config;
    type Role = Role;

    fn validate(cfg: &Config, _: Option<&Role>) -> Result<()> {
        Session::admin(cfg).map(Session::keep)
    }

    fn create(cfg: &Config, _: &Role, lease: &Lease) -> Result<Issued> {
        let (user, password) = (lease.username(), generate_password(24));
        let mut session = Session::admin(cfg)?;
        session.command(&format!("CREATE {user} {password}"))?;
        session.keep();
        Ok(Issued::new(&user)
            .field("username", &user)
            .secret("password", password))
    }

    fn revoke(cfg: &Config, _: &Role, _: Option<&str>, lease: &Lease) -> Result<()> {
        let mut session = Session::admin(cfg)?;
        match session.command(&format!("DELETE {}", lease.username())) {
            Err(Error::InvalidRequest(m)) if m == "no such user" => {}
            other => other?,
        }
        session.keep();
        Ok(())
    }
}

/// One connection to the service, opened by the broker where the mount's grants
/// allow. A call that hangs is ended by the broker's call deadline, so no timeout
/// is set here.
struct Session {
    reader: BufReader<Connection>,
}

impl Session {
    /// The admin session an earlier call kept, or a new one: connects and
    /// authenticates as the admin.
    fn admin(cfg: &Config) -> Result<Self> {
        if let Some(kept) = Connection::take(ADMIN_SESSION) {
            return Ok(Self {
                reader: BufReader::new(kept),
            });
        }
        let mut session = Self {
            reader: BufReader::new(Connection::open(&cfg.host, cfg.port)?),
        };
        session
            .command(&format!("ADMIN {}", cfg.admin_token.expose()))
            .map_err(|err| match err {
                Error::InvalidRequest(m) => Error::denied(m),
                other => other,
            })?;
        Ok(session)
    }

    /// Hands the session back to the broker for the next call, if nothing is
    /// left unread. The broker pools it only if this call succeeds.
    fn keep(self) {
        if self.reader.buffer().is_empty() {
            self.reader.into_inner().keep(ADMIN_SESSION);
        }
    }

    /// Sends one line and reads the answer; `ERR m` becomes an invalid request
    /// with message `m`. The line is never part of an error: it may hold a secret.
    fn command(&mut self, line: &str) -> Result<()> {
        let lost =
            |err: std::io::Error| Error::unavailable(format!("talking to the service: {err}"));
        self.reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .map_err(lost)?;
        let mut answer = String::new();
        self.reader.read_line(&mut answer).map_err(lost)?;
        match answer.trim_end() {
            "OK" => Ok(()),
            "" => Err(Error::unavailable("the service closed the connection")),
            other => Err(Error::invalid_request(
                other.strip_prefix("ERR ").unwrap_or(other),
            )),
        }
    }
}

export_provider!(Plugin);
