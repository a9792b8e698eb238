//! One RESP2 connection to Redis over TCP.

use leasehold_sdk::{Error, Result};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode;
use redis_protocol::resp2::types::{OwnedFrame, Resp2Frame};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

/// Largest reply read.
const MAX_REPLY: usize = 1 << 20;

pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Passwords this connection sent, cut out of any error message.
    secrets: Vec<String>,
}

impl Connection {
    /// Connects to `host:port` (the host's grants decide whether it may).
    pub fn open(host: &str, port: u16) -> Result<Self> {
        let stream = TcpStream::connect((host, port)).map_err(|err| match err.kind() {
            ErrorKind::PermissionDenied => {
                Error::denied(format!("connecting to {host}:{port} is not granted"))
            }
            _ => Error::unavailable(format!("connecting to Redis at {host}:{port}: {err}")),
        })?;
        Ok(Self {
            stream,
            buffer: Vec::new(),
            secrets: Vec::new(),
        })
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
