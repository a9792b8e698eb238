//! {{name}}: users in an in-house service spoken to over TCP, one per lease.
//!
//! The service takes one command per line and answers `OK` or `ERR message`
//! (see `service/keyserver.py`). `create` adds a user with a fresh password;
//! `revoke` deletes it again, by the name derived from the lease, so it needs no
//! handle; `validate` checks the service takes the admin token.

use leasehold_sdk::prelude::*;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;

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
        Session::admin(cfg).map(drop)
    }

    fn create(cfg: &Config, _: &Role, lease: &Lease) -> Result<Issued> {
        let (user, password) = (lease.username(), generate_password(24));
        Session::admin(cfg)?.command(&format!("CREATE {user} {password}"))?;
        Ok(Issued::new(&user)
            .field("username", &user)
            .secret("password", password))
    }

    fn revoke(cfg: &Config, _: &Role, _: Option<&str>, lease: &Lease) -> Result<()> {
        match Session::admin(cfg)?.command(&format!("DELETE {}", lease.username())) {
            Err(Error::InvalidRequest(m)) if m == "no such user" => Ok(()),
            other => other,
        }
    }
}

/// One connection to the service. A call that hangs is ended by the broker's
/// call deadline, so no timeout is set here.
struct Session {
    reader: BufReader<TcpStream>,
}

impl Session {
    /// Connects and authenticates as the admin.
    fn admin(cfg: &Config) -> Result<Self> {
        let stream = TcpStream::connect((cfg.host.as_str(), cfg.port)).map_err(|err| {
            let at = format!("{}:{}", cfg.host, cfg.port);
            match err.kind() {
                ErrorKind::PermissionDenied => Error::denied(format!("{at} is not granted")),
                _ => Error::unavailable(format!("connecting to {at}: {err}")),
            }
        })?;
        let mut session = Self {
            reader: BufReader::new(stream),
        };
        session
            .command(&format!("ADMIN {}", cfg.admin_token.expose()))
            .map_err(|err| match err {
                Error::InvalidRequest(m) => Error::denied(m),
                other => other,
            })?;
        Ok(session)
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
