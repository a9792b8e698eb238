//! The error a plugin returns, and how common failures map onto it.
//!
//! The variant matters more than the message: it tells the host whether retrying can
//! help ([`Error::Unavailable`] is the only retryable one), and whether a failed
//! `create` may have left something on the target ([`Error::Uncertain`]).
//! Messages reach operators and logs, so they must never contain a secret.

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
    /// The target may have acted, but its answer was lost: a request went out
    /// and the connection then broke or timed out. A failed `create` says
    /// `internal` to the broker, which then revokes without a handle whatever
    /// the lease may have made (the contract's rule); any other call says
    /// `unavailable`, and is retried (a revoke is idempotent).
    Uncertain(String),
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
    /// The target may have acted before its answer was lost.
    pub fn uncertain(message: impl Into<String>) -> Self {
        Self::Uncertain(message.into())
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidConfig(m)
            | Self::InvalidRequest(m)
            | Self::Unavailable(m)
            | Self::Denied(m)
            | Self::Internal(m)
            | Self::Uncertain(m) => m,
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
            Self::Uncertain(_) => "outcome unknown",
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

/// Which provider call an error ends, for [`Error::into_wit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Validate,
    Create,
    Renew,
    Revoke,
    RotateRoot,
}

impl Error {
    /// The contract's error for this one, as `call` returns it. Only
    /// [`Error::Uncertain`] depends on the call: after `create` (and
    /// `rotate-root`, whose new root credential may now be in force on the
    /// target) the broker must not assume that nothing happened, so it is
    /// `internal`; elsewhere trying again is safe, so it is `unavailable`.
    pub(crate) fn into_wit(self, call: Call) -> crate::bindings::leasehold::provider::types::Error {
        use crate::bindings::leasehold::provider::types::Error as Wit;
        match self {
            Error::InvalidConfig(m) => Wit::InvalidConfig(m),
            Error::InvalidRequest(m) => Wit::InvalidRequest(m),
            Error::Unavailable(m) => Wit::Unavailable(m),
            Error::Denied(m) => Wit::Denied(m),
            Error::Internal(m) => Wit::Internal(m),
            Error::Uncertain(m) => match call {
                Call::Create => Wit::Internal(format!(
                    "{m}; the broker revokes whatever it may have made for this lease"
                )),
                Call::RotateRoot => Wit::Internal(format!(
                    "{m}; the new root credential may be in force on the target: check it before rotating again"
                )),
                Call::Validate | Call::Renew | Call::Revoke => Wit::Unavailable(m),
            },
        }
    }
}

impl Error {
    /// The error of a host function (`connections`), as the plugin's own.
    pub(crate) fn from_wit(err: crate::bindings::leasehold::provider::types::Error) -> Self {
        use crate::bindings::leasehold::provider::types::Error as Wit;
        match err {
            Wit::InvalidConfig(m) => Self::InvalidConfig(m),
            Wit::InvalidRequest(m) => Self::InvalidRequest(m),
            Wit::Unavailable(m) => Self::Unavailable(m),
            Wit::Denied(m) => Self::Denied(m),
            Wit::Internal(m) => Self::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::leasehold::provider::types::Error as Wit;

    #[test]
    fn an_uncertain_create_is_internal_and_anything_else_uncertain_is_retried() {
        let lost =
            || Error::uncertain("POST http://users:8080/u: timed out waiting for the response");
        assert!(matches!(lost().into_wit(Call::Create), Wit::Internal(m) if m.contains("revokes")));
        assert!(matches!(
            lost().into_wit(Call::RotateRoot),
            Wit::Internal(_)
        ));
        for call in [Call::Validate, Call::Renew, Call::Revoke] {
            assert!(
                matches!(lost().into_wit(call), Wit::Unavailable(_)),
                "{call:?}"
            );
        }
        assert_eq!(
            lost().to_string(),
            "outcome unknown: POST http://users:8080/u: timed out waiting for the response"
        );
        // The other kinds are the same whatever the call.
        assert!(matches!(
            Error::unavailable("down").into_wit(Call::Create),
            Wit::Unavailable(m) if m == "down"
        ));
        assert!(matches!(
            Error::denied("no").into_wit(Call::Revoke),
            Wit::Denied(_)
        ));
    }
}
