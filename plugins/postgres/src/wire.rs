//! One PostgreSQL session over a connection the host keeps: TLS negotiation
//! (`SSLRequest`, then the host's TLS), startup, authentication (SCRAM-SHA-256;
//! MD5 or cleartext only when the config allows), and the simple query protocol.
//! Messages and SCRAM come from the `postgres-protocol` crate.
//!
//! A session that ends idle (no transaction open, nothing unread) is handed back
//! to the host with [`Connection::keep`], and the next call for the same config
//! takes it already authenticated: one TCP connection and one SCRAM exchange
//! serve many credentials.
//!
//! Errors carry PostgreSQL's SQLSTATE and message, with every secret the
//! connection knows replaced by `[redacted]`: a syntax error can quote the text
//! around a password.

use crate::endpoint::{Endpoint, SslMode};
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use leasehold_sdk::connection::Connection as HostConnection;
use leasehold_sdk::{Error, Result};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::io::{Read, Write};

/// Where and as whom to connect.
pub struct Target<'a> {
    pub endpoint: &'a Endpoint,
    /// PEM CA certificates to trust instead of the system's.
    pub tls_ca: Option<&'a str>,
    pub user: &'a str,
    pub password: &'a str,
    pub allow_md5: bool,
    pub allow_cleartext: bool,
}

/// The key a session is kept under: everything else that set it up is in the
/// config, which the host keys its pool by.
const POOL_KEY: &str = "root";

/// One row of a result: each column as text, or `None` for NULL.
pub type Row = Vec<Option<String>>;

/// A connected, authenticated session.
pub struct Connection {
    /// `None` once handed back to the host.
    stream: Option<HostConnection>,
    incoming: BytesMut,
    secrets: Vec<String>,
    /// Whether the last `ReadyForQuery` said no transaction is open.
    idle: bool,
}

fn protocol(err: std::io::Error) -> Error {
    Error::internal(format!("PostgreSQL protocol: {err}"))
}

impl Connection {
    /// A session kept by an earlier call for this config, or a new one.
    pub fn open(target: &Target<'_>) -> Result<Self> {
        let mut connection = match HostConnection::take(POOL_KEY) {
            Some(kept) => Self::around(kept),
            None => Self::connect(target)?,
        };
        connection.secrets.push(target.password.to_owned());
        Ok(connection)
    }

    fn around(stream: HostConnection) -> Self {
        Self {
            stream: Some(stream),
            incoming: BytesMut::new(),
            secrets: Vec::new(),
            idle: true,
        }
    }

    /// Connects, negotiates TLS as `sslmode` says, and authenticates.
    fn connect(target: &Target<'_>) -> Result<Self> {
        let endpoint = target.endpoint;
        let stream = HostConnection::open(&endpoint.host, endpoint.port)?;
        let mut connection = Self::around(stream);
        connection.secrets.push(target.password.to_owned());
        if let Some(tls) = endpoint.sslmode.tls(target.tls_ca) {
            connection.negotiate_tls(endpoint.sslmode, &tls)?;
        }
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", target.user),
                ("database", endpoint.database.as_str()),
                ("application_name", "leasehold"),
                ("client_encoding", "UTF8"),
                // Statement templates double a value's quotes inside '...'
                // and nothing else: a backslash must stay a backslash there,
                // whatever the server, database or role defaults to.
                ("standard_conforming_strings", "on"),
            ],
            &mut out,
        )
        .map_err(protocol)?;
        connection.send(&out)?;
        connection.authenticate(target)?;
        Ok(connection)
    }

    /// `SSLRequest`: the server answers one byte, `S` to go on in TLS (the host
    /// does the handshake) or `N` to stay in clear, which only `prefer` accepts.
    fn negotiate_tls(&mut self, mode: SslMode, tls: &leasehold_sdk::connection::Tls) -> Result<()> {
        let mut out = BytesMut::new();
        frontend::ssl_request(&mut out);
        self.send(&out)?;
        let mut answer = [0u8; 1];
        self.stream_mut()?
            .read_exact(&mut answer)
            .map_err(|err| Error::unavailable(format!("reading from PostgreSQL: {err}")))?;
        match (answer[0], mode) {
            (b'S', _) => self.stream_mut()?.start_tls(tls),
            (b'N', SslMode::Prefer) => Ok(()),
            (b'N', _) => Err(Error::invalid_config(
                "the server does not accept SSL connections, and sslmode requires one",
            )),
            (other, _) => Err(Error::internal(format!(
                "PostgreSQL answered the SSL request with {other:#04x}"
            ))),
        }
    }

    /// Hands the session back to the host for a later call, if it is idle (no
    /// transaction open, nothing unread) and `DISCARD ALL` returns it to how it
    /// started: a role's statements may `SET ROLE`, change settings, create
    /// temporary tables or take advisory locks, and none of that may follow the
    /// session into another role's call. Otherwise it is closed.
    pub fn keep(mut self) {
        if !self.idle || !self.incoming.is_empty() {
            return;
        }
        if self.query("DISCARD ALL").is_err() || !self.idle {
            return;
        }
        if let Some(stream) = self.stream.take() {
            stream.keep(POOL_KEY);
        }
    }

    fn stream_mut(&mut self) -> Result<&mut HostConnection> {
        self.stream
            .as_mut()
            .ok_or_else(|| Error::internal("the PostgreSQL session was already handed back"))
    }

    /// Also redact `secret` from errors from now on.
    pub fn redact(&mut self, secret: &str) {
        self.secrets.push(secret.to_owned());
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream_mut()?
            .write_all(bytes)
            .map_err(|err| Error::unavailable(format!("writing to PostgreSQL: {err}")))
    }

    fn receive(&mut self) -> Result<Message> {
        loop {
            if let Some(message) = Message::parse(&mut self.incoming).map_err(protocol)? {
                return Ok(message);
            }
            let mut chunk = [0u8; 8192];
            let read = self
                .stream_mut()?
                .read(&mut chunk)
                .map_err(|err| Error::unavailable(format!("reading from PostgreSQL: {err}")))?;
            if read == 0 {
                return Err(Error::unavailable("PostgreSQL closed the connection"));
            }
            self.incoming.extend_from_slice(&chunk[..read]);
        }
    }

    fn authenticate(&mut self, target: &Target<'_>) -> Result<()> {
        let mut scram: Option<ScramSha256> = None;
        loop {
            let mut out = BytesMut::new();
            match self.receive()? {
                Message::AuthenticationOk
                | Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => return Ok(()),
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(mechanism) = mechanisms.next().map_err(protocol)? {
                        offered |= mechanism == SCRAM_SHA_256;
                    }
                    if !offered {
                        return Err(Error::invalid_config(
                            "the server offers no SASL mechanism leasehold supports (SCRAM-SHA-256)",
                        ));
                    }
                    // No channel binding, encrypted or not: the host holds the
                    // TLS session and its certificate. Said as "not supported"
                    // (`n`): "supported but not offered" (`y`) would make a
                    // server that offers SCRAM-SHA-256-PLUS over TLS suspect a
                    // downgrade and refuse.
                    let exchange =
                        ScramSha256::new(target.password.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), &mut out)
                        .map_err(protocol)?;
                    scram = Some(exchange);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let exchange = scram
                        .as_mut()
                        .ok_or_else(|| Error::internal("SCRAM continued before it started"))?;
                    exchange
                        .update(body.data())
                        .map_err(|_| Error::denied("SCRAM-SHA-256 exchange failed"))?;
                    frontend::sasl_response(exchange.message(), &mut out).map_err(protocol)?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let exchange = scram
                        .as_mut()
                        .ok_or_else(|| Error::internal("SCRAM finished before it started"))?;
                    exchange.finish(body.data()).map_err(|_| {
                        Error::denied("the server's SCRAM signature does not verify")
                    })?;
                }
                Message::AuthenticationMd5Password(body) if target.allow_md5 => {
                    let hash = md5_hash(
                        target.user.as_bytes(),
                        target.password.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut out).map_err(protocol)?;
                }
                Message::AuthenticationCleartextPassword if target.allow_cleartext => {
                    frontend::password_message(target.password.as_bytes(), &mut out)
                        .map_err(protocol)?;
                }
                Message::AuthenticationMd5Password(_)
                | Message::AuthenticationCleartextPassword => {
                    return Err(Error::invalid_config(
                        "the server asks for MD5 or cleartext password authentication; \
                         use SCRAM-SHA-256, or set allow_md5 / allow_cleartext",
                    ));
                }
                Message::ErrorResponse(body) => return Err(self.error(&body)),
                _ => {
                    return Err(Error::internal(
                        "PostgreSQL asked for an authentication method leasehold does not support",
                    ));
                }
            }
            if !out.is_empty() {
                self.send(&out)?;
            }
        }
    }

    /// Runs `sql` (one or more statements) with the simple query protocol and
    /// returns the rows of the last result.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Row>> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(protocol)?;
        self.send(&out)?;
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            match self.receive()? {
                Message::ReadyForQuery(body) => {
                    self.idle = body.status() == b'I';
                    break;
                }
                Message::RowDescription(_) => rows.clear(),
                Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let row: Row = body
                        .ranges()
                        .map(|range| {
                            Ok(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()))
                        })
                        .collect()
                        .map_err(protocol)?;
                    rows.push(row);
                }
                Message::ErrorResponse(body) => failure = Some(self.error(&body)),
                _ => {}
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(rows),
        }
    }

    /// A typed error from an ErrorResponse, with PostgreSQL's SQLSTATE and
    /// message and no secret.
    fn error(&self, body: &postgres_protocol::message::backend::ErrorResponseBody) -> Error {
        let (mut code, mut message) = (String::new(), String::new());
        let mut fields = body.fields();
        while let Ok(Some(field)) = fields.next() {
            match field.type_() {
                b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                _ => {}
            }
        }
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            message = message.replace(secret.as_str(), "[redacted]");
        }
        let text = format!("PostgreSQL error {code}: {message}");
        if is_conflict_code(&code, &message) {
            return Error::unavailable(format!("{CONFLICT_MARK}{text}"));
        }
        match code.get(..2).unwrap_or_default() {
            // Connection problems, too many connections, shutting down,
            // serialization failures: worth retrying.
            "08" | "53" | "57" | "40" => Error::unavailable(text),
            // Authorization: a wrong password or a missing privilege.
            "28" | "42" if code == "28P01" || code == "28000" || code == "42501" => {
                Error::denied(text)
            }
            _ => Error::invalid_request(text),
        }
    }
}

/// Marks the errors of statements that collided with concurrent ones.
const CONFLICT_MARK: &str = "conflict with a concurrent statement: ";

/// Whether an error is a collision with concurrent statements, which the same
/// statements retried a moment later get past: a serialization failure
/// (`40001`), a deadlock (`40P01`), a lock not available (`55P03`), or the
/// catalog's `tuple concurrently updated` (`XX000`), which concurrent `GRANT`s
/// on one object raise.
fn is_conflict_code(code: &str, message: &str) -> bool {
    matches!(code, "40001" | "40P01" | "55P03")
        || (code == "XX000" && message.contains("concurrently updated"))
}

/// Whether `err` is such a collision (see [`is_conflict_code`]).
pub fn is_conflict(err: &Error) -> bool {
    err.message().starts_with(CONFLICT_MARK)
}

impl Drop for Connection {
    /// A session that is not kept ends with `Terminate`, so the server does not
    /// log an unexpected EOF.
    fn drop(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            let mut out = BytesMut::new();
            frontend::terminate(&mut out);
            let _ = stream.write_all(&out);
        }
    }
}
