//! What can go wrong when loading or calling a plugin.
//!
//! Two layers: [`LoadError`] for a component the runtime refuses to load, and
//! [`PluginError`] for a call that failed, whether the plugin said so (a typed
//! [`Failure`]) or the sandbox stopped it (timeout, memory, crash, denied
//! capability). Messages are written for operators and never contain a secret.

use crate::contract::ContractVersion;
use crate::domain::Failure;
use std::time::Duration;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component (a core module, garbage, a
    /// truncated file).
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component exports no `leasehold:provider/provider` interface at all:
    /// it was not built as a leasehold plugin.
    #[error(
        "the component exports no leasehold:provider/provider interface, so it is not a leasehold plugin (this broker supports contract versions {})",
        supported_list()
    )]
    NoContract,
    /// The component exports the provider interface of a contract version
    /// this broker does not know (a newer SDK, or a version never released).
    #[error(
        "the plugin was built against contract {built_against}, which this broker does not support; it supports {}: rebuild the plugin against one of those, or upgrade the broker",
        supported_list()
    )]
    UnsupportedContract {
        /// What it exports, such as `leasehold:provider@0.9.0`.
        built_against: String,
    },
    /// The component exports a supported contract version but does not
    /// implement that version's `leasehold:provider/plugin` world as this host
    /// expects: an export is missing or has another type, or it imports
    /// something the host does not provide for that version.
    #[error(
        "the component does not implement the leasehold:provider/plugin@{contract} world: {reason}"
    )]
    WrongWorld {
        /// The version its exports name.
        contract: ContractVersion,
        /// What does not match.
        reason: String,
    },
    /// The component loaded but its `info` call failed.
    #[error("the plugin's info call failed: {0}")]
    InfoFailed(Box<PluginError>),
    /// The engine could not be set up or the cache could not be used.
    #[error("plugin runtime error: {0}")]
    Runtime(String),
}

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin returned an error.
    #[error("{0}")]
    Failed(Failure),
    /// The call did not finish within its deadline and was stopped.
    #[error("the plugin call did not finish within {0:?} and was stopped")]
    Timeout(Duration),
    /// The plugin tried to use more memory than its limit and was stopped.
    #[error("the plugin exceeded its memory limit of {limit_bytes} bytes and was stopped")]
    MemoryLimit {
        /// The limit in force.
        limit_bytes: usize,
    },
    /// The plugin tried to use a capability its mount does not grant (a host,
    /// port or HTTP origin) and the call failed.
    #[error("the plugin was denied a capability it was not granted: {0}")]
    CapabilityDenied(String),
    /// The plugin trapped (a panic, an `unreachable`, a bad memory access).
    #[error("the plugin crashed: {0}")]
    Crashed(String),
    /// The call waited too long for its turn; the caller may retry shortly.
    #[error("too many calls at once: {what}; retry in {}s", retry_after.as_secs().max(1))]
    Busy {
        /// Which limit was full.
        what: &'static str,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// The connection's calls kept timing out; calls are refused until a probe
    /// gets through.
    #[error("the target keeps timing out; calls to it are paused, retry in {}s", retry_after.as_secs().max(1))]
    CircuitOpen {
        /// When the next probe is due.
        retry_after: Duration,
    },
    /// The plugin gave back more than a call may return.
    #[error("the plugin returned {bytes} bytes, more than the {limit} a call may return")]
    TooLarge {
        /// What it returned.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The host could not set up the sandbox for the call.
    #[error("could not prepare the plugin sandbox: {0}")]
    Sandbox(String),
}

impl PluginError {
    /// Whether retrying the same call later can succeed: the target was
    /// unavailable, the call ran out of time (a slow target), or the pool was full.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Failed(Failure::Unavailable(_))
                | Self::Timeout(_)
                | Self::Busy { .. }
                | Self::CircuitOpen { .. }
        )
    }

    /// When a retry may succeed, for refusals that know.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { retry_after, .. } | Self::CircuitOpen { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// A short, stable name for the kind of error, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Failed(Failure::InvalidConfig(_)) => "invalid_config",
            Self::Failed(Failure::InvalidRequest(_)) => "invalid_request",
            Self::Failed(Failure::Unavailable(_)) => "unavailable",
            Self::Failed(Failure::Denied(_)) => "denied",
            Self::Failed(Failure::Internal(_)) => "internal",
            Self::Timeout(_) => "timeout",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::CapabilityDenied(_) => "capability_denied",
            Self::Crashed(_) => "crashed",
            Self::Busy { .. } => "busy",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::TooLarge { .. } => "too_large",
            Self::Sandbox(_) => "sandbox",
        }
    }
}

/// The supported contract versions, for messages: `0.1.0, 0.2.0`.
fn supported_list() -> String {
    ContractVersion::SUPPORTED
        .iter()
        .map(|version| version.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
