//! The runtime's own types for what passes between the host and a plugin.
//!
//! These are plain Rust types, owned by the broker and independent of any
//! contract version: the rest of the runtime and the broker use them, and only
//! [`crate::contract`] converts them to and from the types each version's
//! bindings generate. A new contract version changes that conversion, not the
//! broker. The field names follow the WIT records of `leasehold:provider@0.1.0`.

use crate::contract::ContractVersion;

/// What the host knows about the lease a call is made for.
///
/// The host stores it before `create` runs and passes the very same values to
/// every later call for the lease, including a `revoke` made by crash recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id: `<mount>/creds/<role>/<random>`.
    pub lease_id: String,
    /// The mount path, without slashes at either end.
    pub mount: String,
    /// The role the credential is issued for.
    pub role: String,
    /// The display name of the token that asked for the credential.
    pub requester: String,
    /// When the lease was first written, in seconds since the Unix epoch.
    pub issued_at: u64,
    /// The lease's time to live in seconds, from the latest issue or renewal.
    pub ttl_seconds: u64,
    /// When the lease expires unless renewed, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// What a plugin said about itself when it was loaded, and the contract
/// version it was built against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// A short, stable name, such as `postgres`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One sentence for operators.
    pub description: String,
    /// A JSON Schema for the connection config object.
    pub config_schema: String,
    /// A JSON Schema for the role object.
    pub role_schema: String,
    /// The longest username the target accepts.
    pub max_username_length: u32,
    /// Whether `renew` does anything on the target.
    pub can_renew: bool,
    /// Whether `rotate-root` is implemented.
    pub can_rotate_root: bool,
    /// The version of `leasehold:provider` the component exports: the host
    /// reads it from the component, never from the plugin's word.
    pub contract_version: ContractVersion,
}

/// A failure the plugin itself reported. Every contract version's error
/// variant maps onto these kinds; the kind tells the host what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The connection config is wrong; an operator must fix it.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The role or request is wrong.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The target is unreachable; retrying later may succeed.
    #[error("target unavailable: {0}")]
    Unavailable(String),
    /// The target refused the operation.
    #[error("denied by target: {0}")]
    Denied(String),
    /// The plugin hit a bug or an unexpected answer.
    #[error("plugin internal error: {0}")]
    Internal(String),
}

/// Longest error message kept from a plugin; it goes into responses and logs.
const MAX_MESSAGE: usize = 2048;

impl Failure {
    /// The same failure with its message cut at [`MAX_MESSAGE`] bytes on a
    /// character boundary.
    pub(crate) fn bounded(self) -> Self {
        let cut = |mut message: String| {
            if message.len() > MAX_MESSAGE {
                message.truncate(message.floor_char_boundary(MAX_MESSAGE));
                message.push_str(" [cut]");
            }
            message
        };
        match self {
            Self::InvalidConfig(m) => Self::InvalidConfig(cut(m)),
            Self::InvalidRequest(m) => Self::InvalidRequest(cut(m)),
            Self::Unavailable(m) => Self::Unavailable(cut(m)),
            Self::Denied(m) => Self::Denied(cut(m)),
            Self::Internal(m) => Self::Internal(cut(m)),
        }
    }
}

/// How important a plugin's log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Step by step detail.
    Trace,
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something an operator may want to look at.
    Warn,
    /// Something failed.
    Error,
}

#[cfg(test)]
mod tests {
    use super::{Failure, MAX_MESSAGE};

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_MESSAGE);
        let Failure::Denied(message) = Failure::Denied(long).bounded() else {
            unreachable!()
        };
        assert!(message.ends_with(" [cut]"));
        assert!(message.len() <= MAX_MESSAGE + " [cut]".len());
        let short = Failure::Internal("short".into());
        assert_eq!(short.clone().bounded(), short);
    }
}
