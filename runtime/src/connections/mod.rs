//! Connections the host opens for a plugin, encrypts for it and keeps between
//! calls (`leasehold:provider/connections`, contract 0.2.0).
//!
//! A socket from `wasi:sockets` dies with the call's instance, so a plugin on it
//! connects and authenticates for every credential. A [`Connection`] is owned by
//! the host instead: the plugin may hand it back ([`CallConnections::keep`]) and a
//! later call for the same connection config takes it ([`CallConnections::take`]).
//! Every open is decided by the call's resolved grants exactly like a socket's
//! connect (the name must be granted for the port, and only the addresses resolved
//! for it are dialled); a kept connection is offered again only while its address
//! is still granted, only if it never failed, only if it is still open and quiet,
//! and only if the call that kept it succeeded.

mod pool;
mod stream;
mod tls;

pub(crate) use pool::{ConnectionPools, PoolKey};
pub(crate) use stream::{Stream, handshake};

use crate::denials::DenialLog;
use crate::domain::Failure;
use crate::grants::{ResolvedGrants, SocketDecision};
use futures::FutureExt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes one `receive` returns: what the host allocates per read.
pub const MAX_RECEIVE: u32 = 64 * 1024;
/// The longest host name a plugin may ask for (DNS's limit, with brackets).
pub const MAX_HOST: usize = 255;
/// The longest key a connection is kept under.
pub const MAX_KEY: usize = 256;
/// How long one connection attempt may take; a name with several addresses
/// tries the next after it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of the server's certificate is checked (libpq's `sslmode` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Encrypt; accept any certificate.
    Require,
    /// Encrypt; the chain must lead to a trusted root.
    VerifyCa,
    /// Encrypt; the chain must lead to a trusted root and name the server.
    VerifyFull,
}

/// TLS settings a plugin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// How much is checked.
    pub mode: TlsMode,
    /// The name the certificate must be for; by default the host dialled.
    pub server_name: Option<String>,
    /// Trusted roots (PEM); by default the system's.
    pub ca_pem: Option<String>,
}

/// A TCP connection (in clear or encrypted) that the host owns for a plugin.
pub struct Connection {
    stream: Stream,
    /// The host name (or address) the plugin asked for.
    host: String,
    /// The address actually connected to.
    peer: SocketAddr,
    /// Whether a read, write or handshake on it failed: such a connection is in an
    /// unknown state and is never pooled.
    failed: bool,
}

impl Connection {
    fn describe(&self) -> String {
        describe(&self.host, self.peer.port())
    }

    /// Whether the connection is encrypted.
    pub(crate) fn is_encrypted(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Writes all of `bytes`.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        write_all(&mut self.stream, bytes).await.map_err(|err| {
            self.failed = true;
            Failure::Unavailable(format!("sending to {}: {err}", self.describe()))
        })
    }

    /// Waits for between 1 and `max` bytes; none when the peer closed.
    pub(crate) async fn receive(&mut self, max: u32) -> Result<Vec<u8>, Failure> {
        let mut buffer = vec![0; max.clamp(1, MAX_RECEIVE) as usize];
        match self.stream.read(&mut buffer).await {
            Ok(read) => {
                buffer.truncate(read);
                Ok(buffer)
            }
            Err(err) => {
                self.failed = true;
                Err(Failure::Unavailable(format!(
                    "receiving from {}: {err}",
                    self.describe()
                )))
            }
        }
    }

    /// Upgrades a connection in clear to TLS. Data already waiting from the
    /// server is refused: it arrived before the handshake, so anyone on the path
    /// could have written it (CVE-2021-23222 in libpq).
    pub(crate) async fn start_tls(&mut self, options: &TlsOptions) -> Result<(), Failure> {
        let Stream::Plain(tcp) = &mut self.stream else {
            return Err(Failure::Internal(format!(
                "the connection to {} is already encrypted or broken",
                self.describe()
            )));
        };
        match quiet_or_not(tcp) {
            None => {}
            Some(Unquiet::Data) => {
                self.failed = true;
                return Err(Failure::InvalidConfig(format!(
                    "{} sent data before the TLS handshake; refusing to encrypt a session that may be tampered with",
                    self.describe()
                )));
            }
            Some(Unquiet::Ended) => {
                self.failed = true;
                return Err(Failure::Unavailable(format!(
                    "{} ended the connection before the TLS handshake",
                    self.describe()
                )));
            }
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Broken) else {
            unreachable!("checked above");
        };
        match handshake(tcp, options, &self.host, &self.describe()).await {
            Ok(encrypted) => {
                self.stream = encrypted;
                Ok(())
            }
            Err(failure) => {
                self.failed = true;
                Err(failure)
            }
        }
    }

    /// Whether the connection can be handed to another call: never failed, still
    /// open, nothing unread.
    fn reusable(&mut self) -> bool {
        if self.failed {
            return false;
        }
        !matches!(self.stream, Stream::Broken) && quiet_or_not(&mut self.stream).is_none()
    }
}

fn describe(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn write_all(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// What a connection that should be quiet has to say, without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unquiet {
    /// The peer sent something nobody asked for.
    Data,
    /// The peer closed the connection, or it failed.
    Ended,
}

/// `None` when nothing is waiting to be read and the peer has not closed.
fn quiet_or_not(stream: &mut (impl AsyncRead + Unpin)) -> Option<Unquiet> {
    let mut probe = [0u8; 1];
    match stream.read(&mut probe).now_or_never() {
        None => None,
        Some(Ok(0) | Err(_)) => Some(Unquiet::Ended),
        Some(Ok(_)) => Some(Unquiet::Data),
    }
}

/// Where one call's kept connections go when it succeeds.
pub(crate) struct PoolScope {
    pub(crate) pools: Arc<ConnectionPools>,
    pub(crate) key: PoolKey,
    /// Idle connections the connection may keep: as many as may be in use at once.
    pub(crate) limit: usize,
}

/// The connection side of one call's sandbox.
pub(crate) struct CallConnections {
    grants: Arc<ResolvedGrants>,
    denials: DenialLog,
    pool: Option<PoolScope>,
    /// Connections handed back, filed when the call succeeds.
    kept: Vec<(String, Connection)>,
}

impl CallConnections {
    pub(crate) fn new(
        grants: Arc<ResolvedGrants>,
        denials: DenialLog,
        pool: Option<PoolScope>,
    ) -> Self {
        Self {
            grants,
            denials,
            pool,
            kept: Vec::new(),
        }
    }

    /// The addresses `host:port` may be dialled at; a refusal is recorded as a
    /// denial.
    fn granted_addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
        match self.granted_addresses_quietly(host, port) {
            Some(allowed) if !allowed.is_empty() => Ok(allowed),
            _ => {
                let what = describe(host, port);
                self.denials.record(format!("connection to {what}"));
                Err(Failure::Denied(format!(
                    "connecting to {what} is not granted to this mount"
                )))
            }
        }
    }

    /// Opens a connection in clear to `host:port`, if granted. `sockets` is the
    /// call's socket count, shared with `wasi:sockets`.
    pub(crate) async fn open(
        &self,
        host: &str,
        port: u16,
        sockets: &mut u32,
    ) -> Result<Connection, Failure> {
        if host.len() > MAX_HOST {
            return Err(Failure::InvalidRequest(format!(
                "a host name of {} bytes (at most {MAX_HOST})",
                host.len()
            )));
        }
        let addresses = self.granted_addresses(host, port)?;
        let mut last_error = None;
        for addr in addresses {
            // The limit is the call's, shared with wasi:sockets: every attempt
            // is a descriptor.
            if *sockets >= crate::socket_limit::MAX_SOCKETS_PER_CALL {
                let limit = crate::socket_limit::MAX_SOCKETS_PER_CALL;
                self.denials
                    .record(format!("connection beyond {limit} sockets in one call"));
                return Err(Failure::Denied(format!(
                    "a call may open at most {limit} connections"
                )));
            }
            *sockets += 1;
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
            match attempt.unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                ))
            }) {
                Ok(tcp) => {
                    // Requests are small and answered one by one: Nagle would
                    // only delay them.
                    let _ = tcp.set_nodelay(true);
                    return Ok(Connection {
                        stream: Stream::Plain(tcp),
                        host: host.to_owned(),
                        peer: addr,
                        failed: false,
                    });
                }
                Err(err) => last_error = Some(err),
            }
        }
        let err = last_error.map(|e| e.to_string()).unwrap_or_default();
        Err(Failure::Unavailable(format!(
            "connecting to {}: {err}",
            describe(host, port)
        )))
    }

    /// Takes an idle connection kept under `key` for this call's connection
    /// config, skipping (and closing) any that is no longer granted or usable.
    pub(crate) fn take(&self, key: &str) -> Option<Connection> {
        let scope = self.pool.as_ref().filter(|_| key.len() <= MAX_KEY)?;
        while let Some(mut connection) = scope.pools.take(&scope.key, key) {
            if self.still_granted(&connection) && connection.reusable() {
                return Some(connection);
            }
        }
        None
    }

    /// Whether the mount still grants what `connection` goes to, as the call's
    /// grants resolve it now.
    fn still_granted(&self, connection: &Connection) -> bool {
        match self.granted_addresses_quietly(&connection.host, connection.peer.port()) {
            Some(allowed) => allowed.contains(&connection.peer),
            None => false,
        }
    }

    /// The addresses `host:port` may be dialled at, in the grants' order; `None`
    /// for a name that is not granted at all.
    fn granted_addresses_quietly(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let candidates: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self.grants.lookup(bare)?,
        };
        Some(
            candidates
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .filter(|addr| self.grants.tcp_connect(*addr) == SocketDecision::Allow)
                .collect(),
        )
    }

    /// Holds `connection` for the pool until the call ends. A connection that
    /// failed, or a call with no connection config to pool for, closes it now.
    pub(crate) fn keep(&mut self, connection: Connection, key: String) {
        if connection.failed || self.pool.is_none() || key.len() > MAX_KEY {
            return;
        }
        self.kept.push((key, connection));
    }

    /// The call succeeded: what it kept goes to the pool, if still usable.
    pub(crate) fn commit(&mut self) {
        let Some(scope) = &self.pool else {
            return;
        };
        let usable: Vec<(String, Connection)> = std::mem::take(&mut self.kept)
            .into_iter()
            .filter_map(|(key, mut connection)| connection.reusable().then_some((key, connection)))
            .collect();
        scope.pools.put(&scope.key, usable, scope.limit);
    }
}
