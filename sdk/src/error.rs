//! The error a plugin returns, and how common failures map onto it.
//!
//! The variant matters more than the message: it tells the host whether retrying can
//! help ([`Error::Unavailable`] is the only retryable one). Messages reach operators
//! and logs, so they must never contain a secret.

use std::fmt;

/// Why a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The connection config is wrong; an operator must change it.
    InvalidConfig(String),
    /// The role or request is wrong for this plugin or target.
    InvalidRequest(String),
    /// The target is unreachable or overloaded; the host may retry later.
    Unavailable(String),
    /// The target refused the operation.
    Denied(String),
    /// A bug, or an answer from the target that the plugin did not expect.
    Internal(String),
}

/// The result type of every [`crate::Provider`] method.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The connection config is wrong.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::InvalidConfig(message.into())
    }
    /// The role or the request is wrong.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }
    /// The target cannot be reached right now; worth retrying.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
    /// The target refused.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::Denied(message.into())
    }
    /// Something unexpected happened.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidConfig(m)
            | Self::InvalidRequest(m)
            | Self::Unavailable(m)
            | Self::Denied(m)
            | Self::Internal(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::InvalidConfig(_) => "invalid config",
            Self::InvalidRequest(_) => "invalid request",
            Self::Unavailable(_) => "target unavailable",
            Self::Denied(_) => "denied by target",
            Self::Internal(_) => "internal error",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for Error {}

/// I/O errors come from the file system or a socket. A refused or dropped
/// connection is worth retrying; a permission error is not; the sandbox's own
/// refusals (a path or address that was not granted) arrive as permission errors.
impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let message = err.to_string();
        match err.kind() {
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | TimedOut
            | BrokenPipe | Interrupted | WouldBlock | HostUnreachable | NetworkUnreachable
            | NetworkDown | AddrNotAvailable | UnexpectedEof => Self::Unavailable(message),
            PermissionDenied => Self::Denied(message),
            _ => Self::Internal(message),
        }
    }
}

impl From<Error> for crate::bindings::leasehold::provider::types::Error {
    fn from(err: Error) -> Self {
        use crate::bindings::leasehold::provider::types::Error as Wit;
        match err {
            Error::InvalidConfig(m) => Wit::InvalidConfig(m),
            Error::InvalidRequest(m) => Wit::InvalidRequest(m),
            Error::Unavailable(m) => Wit::Unavailable(m),
            Error::Denied(m) => Wit::Denied(m),
            Error::Internal(m) => Wit::Internal(m),
        }
    }
}
