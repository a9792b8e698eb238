//! One RESP2 session with Redis, over a connection the host opens (in clear or
//! TLS) and keeps between calls: a session authenticated by an earlier call is
//! taken again instead of connecting and sending `AUTH` anew.

use leasehold_sdk::connection::{Connection as HostConnection, Tls};
use leasehold_sdk::{Error, Result};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};
use std::io::{Read, Write};

/// Largest reply read.
const MAX_REPLY: usize = 1 << 20;

/// The key an authenticated session is kept under; the config (host, user,
/// password, TLS) that set it up is what the host keys its pool by.
const POOL_KEY: &str = "admin";

pub struct Connection {
    stream: HostConnection,
    buffer: Vec<u8>,
    /// Passwords this connection sent, cut out of any error message.
    secrets: Vec<String>,
}

impl Connection {
    /// A session kept by an earlier call for this config, already authenticated.
    pub fn take() -> Option<Self> {
        HostConnection::take(POOL_KEY).map(Self::around)
    }

    /// Connects to `host:port` (the host's grants decide whether it may), with
    /// TLS when `tls` is given.
    pub fn open(host: &str, port: u16, tls: Option<&Tls>) -> Result<Self> {
        let stream = match tls {
            Some(tls) => HostConnection::connect_tls(host, port, tls)?,
            None => HostConnection::open(host, port)?,
        };
        Ok(Self::around(stream))
    }

    fn around(stream: HostConnection) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            secrets: Vec::new(),
        }
    }

    /// Hands an authenticated session with nothing unread back to the host.
    pub fn keep(self) {
        if self.buffer.is_empty() {
            self.stream.keep(POOL_KEY);
        }
    }

    /// Also cut `secret` out of error messages from now on.
    pub fn redact(&mut self, secret: &str) {
        self.secrets.push(secret.to_owned());
    }

    /// `AUTH user password`; a refusal is `denied`.
    pub fn auth(&mut self, user: &str, password: &str) -> Result<()> {
        self.redact(password);
        match self.command(&["AUTH", user, password]) {
            Ok(_) => Ok(()),
            Err(Error::InvalidRequest(message)) => Err(Error::denied(message)),
            Err(other) => Err(other),
        }
    }

    /// Sends one command and reads its reply. A Redis error reply is
    /// `invalid request` (or `denied` for permission errors), with Redis's
    /// message, with every password this connection sent cut out.
    pub fn command(&mut self, parts: &[&str]) -> Result<OwnedFrame> {
        let frame = OwnedFrame::Array(
            parts
                .iter()
                .map(|p| OwnedFrame::BulkString(p.as_bytes().to_vec()))
                .collect(),
        );
        let mut bytes = vec![0; frame.encode_len(false)];
        encode(&mut bytes, &frame, false)
            .map_err(|err| Error::internal(format!("encoding a Redis command: {err:?}")))?;
        self.stream.write_all(&bytes).map_err(io_error)?;
        let reply = self.read_frame()?;
        match reply {
            OwnedFrame::Error(message) => {
                let mut message = format!("Redis refused {}: {message}", parts[0]);
                for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
                    message = message.replace(secret.as_str(), "[redacted]");
                }
                if message.contains("NOPERM")
                    || message.contains("WRONGPASS")
                    || message.contains("NOAUTH")
                {
                    Err(Error::denied(message))
                } else {
                    Err(Error::invalid_request(message))
                }
            }
            other => Ok(other),
        }
    }

    fn read_frame(&mut self) -> Result<OwnedFrame> {
        loop {
            if let Some((frame, used)) = decode(&self.buffer)
                .map_err(|err| Error::internal(format!("a malformed Redis reply: {err:?}")))?
            {
                self.buffer.drain(..used);
                return Ok(frame);
            }
            if self.buffer.len() > MAX_REPLY {
                return Err(Error::internal("a Redis reply larger than 1 MiB"));
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).map_err(io_error)?;
            if read == 0 {
                return Err(Error::unavailable("Redis closed the connection"));
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

fn io_error(err: std::io::Error) -> Error {
    Error::unavailable(format!("talking to Redis: {err}"))
}
