//! A record of the capabilities a plugin asked for and was refused during one call.
//!
//! The TCP check and the HTTP hook both report here, in one shape, so the call can
//! fail with [`super::PluginError::CapabilityDenied`] naming what was refused, and
//! every refusal is logged with `error.type = "capability_denied"`.

use std::sync::{Arc, Mutex};

/// Shared between a call's store and the socket check closure, which outlives no
/// call.
#[derive(Debug, Clone)]
pub(crate) struct DenialLog {
    plugin: Arc<str>,
    mount: Arc<str>,
    denied: Arc<Mutex<Vec<String>>>,
}

impl DenialLog {
    pub(crate) fn new(plugin: Arc<str>, mount: Arc<str>) -> Self {
        Self {
            plugin,
            mount,
            denied: Arc::default(),
        }
    }

    /// Records and logs one refusal, such as `TCP connect to 10.0.0.1:22`.
    pub(crate) fn record(&self, what: String) {
        tracing::warn!(
            plugin = %self.plugin,
            mount = %self.mount,
            error.type = "capability_denied",
            "plugin denied: {what} is not granted"
        );
        let mut denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        // A plugin in a retry loop could refuse itself millions of times; the first
        // few say everything.
        if denied.len() < 16 {
            denied.push(what);
        }
    }

    /// Everything refused so far.
    pub(crate) fn refused(&self) -> Vec<String> {
        self.denied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
