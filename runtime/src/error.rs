//! What can go wrong when loading or calling a plugin.
//!
//! Two layers: [`LoadError`] for a component the runtime refuses to load, and
//! [`PluginError`] for a call that failed, whether the plugin said so (a typed
//! [`Failure`]) or the sandbox stopped it (timeout, memory, crash, denied
//! capability). Messages are written for operators and never contain a secret.

use std::time::Duration;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component (a core module, garbage, a
    /// truncated file).
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component is valid but does not implement `leasehold:provider/plugin`
    /// as this host expects: an export is missing or has another type, or it
    /// imports something the host does not provide.
    #[error("the component does not implement the leasehold:provider/plugin@0.1.0 world: {0}")]
    WrongWorld(String),
    /// The component loaded but its `info` call failed.
    #[error("the plugin's info call failed: {0}")]
    InfoFailed(Box<PluginError>),
    /// The engine could not be set up or the cache could not be used.
    #[error("plugin runtime error: {0}")]
    Runtime(String),
}

/// A failure the plugin itself reported, one variant per WIT `error` case.
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

/// Longest error message kept from a plugin; it goes into responses and logs.
const MAX_MESSAGE: usize = 2048;

/// `message`, cut at [`MAX_MESSAGE`] bytes on a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        message.truncate(message.floor_char_boundary(MAX_MESSAGE));
        message.push_str(" [cut]");
    }
    message
}

impl From<super::bindings::PluginFailure> for Failure {
    fn from(err: super::bindings::PluginFailure) -> Self {
        use super::bindings::PluginFailure as Wit;
        match err {
            Wit::InvalidConfig(m) => Self::InvalidConfig(bounded(m)),
            Wit::InvalidRequest(m) => Self::InvalidRequest(bounded(m)),
            Wit::Unavailable(m) => Self::Unavailable(bounded(m)),
            Wit::Denied(m) => Self::Denied(bounded(m)),
            Wit::Internal(m) => Self::Internal(bounded(m)),
        }
    }
}
