//! Connections to the target that the broker opens, encrypts and keeps between
//! calls.
//!
//! Every call runs in a fresh instance, so a socket opened with `std::net` is gone
//! when the call returns, and the next credential connects and authenticates
//! again. A [`Connection`] belongs to the broker instead: hand it back with
//! [`Connection::keep`] when the call is done with it, and the next call for the
//! same connection config gets it from [`Connection::take`], already
//! authenticated.
//!
//! ```no_run
//! use leasehold_sdk::connection::{Connection, Tls, TlsMode};
//! use leasehold_sdk::Result;
//! use std::io::{Read, Write};
//!
//! fn session(host: &str, port: u16, user: &str) -> Result<Connection> {
//!     let key = format!("{user}@{host}:{port}");
//!     if let Some(kept) = Connection::take(&key) {
//!         return Ok(kept);
//!     }
//!     let connection = Connection::connect_tls(host, port, &Tls::new(TlsMode::VerifyFull))?;
//!     // ... authenticate as `user` ...
//!     Ok(connection)
//! }
//!
//! fn ping(host: &str, port: u16) -> Result<()> {
//!     let mut connection = session(host, port, "admin")?;
//!     connection.write_all(b"PING\r\n")?;
//!     let mut reply = [0u8; 7];
//!     connection.read_exact(&mut reply)?;
//!     // Ready for the next command: a later call may take it.
//!     connection.keep("admin@db:6379");
//!     Ok(())
//! }
//! ```
//!
//! The broker decides, not the plugin, whether a connection is opened (the mount
//! must grant the host and port, like a socket) and whether a kept one is offered
//! again: only to calls with the same connection config (a changed password or a
//! `rotate-root` starts afresh), only if the call that kept it succeeded, only if
//! it saw no error, and only while it is still open and quiet.
//!
//! Reads and writes implement [`std::io::Read`] and [`std::io::Write`]; their
//! errors convert to [`Error`] with `?` (a broken connection is
//! [`Error::Unavailable`]).

use crate::bindings::leasehold::provider::connections as wit;
use crate::{Error, Result};
use std::io;

/// How much of the server's certificate is checked, as in libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Encrypted; any certificate is accepted (`sslmode=require`), unless
    /// [`Tls::ca_pem`] is given: then the chain is checked, as libpq does.
    Require,
    /// Encrypted; the chain must lead to a trusted root (`sslmode=verify-ca`).
    VerifyCa,
    /// Encrypted; the chain must lead to a trusted root and the certificate be
    /// for the server's name (`sslmode=verify-full`).
    VerifyFull,
}

/// TLS settings: the mode, the name to verify, and the roots to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    mode: TlsMode,
    server_name: Option<String>,
    ca_pem: Option<String>,
}

impl Tls {
    /// `mode`, against the system's roots, for the host name connected to.
    pub fn new(mode: TlsMode) -> Self {
        Self {
            mode,
            server_name: None,
            ca_pem: None,
        }
    }

    /// Verifies the certificate for `name` instead of the host connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Trusts the CA certificates in `pem` (and only those).
    pub fn ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    fn to_wit(&self) -> wit::TlsOptions {
        wit::TlsOptions {
            mode: match self.mode {
                TlsMode::Require => wit::TlsMode::Require,
                TlsMode::VerifyCa => wit::TlsMode::VerifyCa,
                TlsMode::VerifyFull => wit::TlsMode::VerifyFull,
            },
            server_name: self.server_name.clone(),
            ca_pem: self.ca_pem.clone(),
        }
    }
}

/// A TCP connection the broker holds for the plugin, in clear or encrypted.
pub struct Connection {
    inner: wit::Connection,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("encrypted", &self.is_encrypted())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `host:port` in clear. [`Error::Denied`] when the mount does not
    /// grant it, [`Error::Unavailable`] when nothing answers.
    pub fn open(host: &str, port: u16) -> Result<Self> {
        let inner = wit::Connection::open(host, port).map_err(Error::from_wit)?;
        Ok(Self { inner })
    }

    /// Connects to `host:port` and does the TLS handshake at once. A certificate
    /// that fails `tls` is [`Error::InvalidConfig`].
    pub fn connect_tls(host: &str, port: u16, tls: &Tls) -> Result<Self> {
        let inner =
            wit::Connection::connect_tls(host, port, &tls.to_wit()).map_err(Error::from_wit)?;
        Ok(Self { inner })
    }

    /// Upgrades a connection in clear to TLS, after the protocol's own
    /// negotiation (PostgreSQL's `SSLRequest`).
    pub fn start_tls(&mut self, tls: &Tls) -> Result<()> {
        self.inner.start_tls(&tls.to_wit()).map_err(Error::from_wit)
    }

    /// Whether the connection is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.inner.is_encrypted()
    }

    /// An idle connection an earlier call for this connection config kept under
    /// `key`, if the broker has one that is still usable.
    pub fn take(key: &str) -> Option<Self> {
        wit::Connection::take(key).map(|inner| Self { inner })
    }

    /// Hands the connection back under `key` for a later call. Keep only a
    /// connection that is ready for its next use; choose a key that says what
    /// was set up on it (the user it authenticated as, the database).
    pub fn keep(self, key: &str) {
        wit::Connection::keep(self.inner, key);
    }
}

/// Errors of reads and writes as `std::io` expects them; `?` turns them back
/// into [`Error`] of the same kind.
fn to_io(err: Error) -> io::Error {
    let kind = match &err {
        Error::Unavailable(_) | Error::Uncertain(_) => io::ErrorKind::ConnectionAborted,
        Error::Denied(_) => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, err.message().to_owned())
}

impl io::Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let max = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let data = self
            .inner
            .receive(max)
            .map_err(|err| to_io(Error::from_wit(err)))?;
        let read = data.len().min(buf.len());
        buf[..read].copy_from_slice(&data[..read]);
        Ok(read)
    }
}

impl io::Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner
            .send(buf)
            .map_err(|err| to_io(Error::from_wit(err)))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
