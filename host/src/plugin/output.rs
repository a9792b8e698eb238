//! A plugin's log lines, stdout and stderr, forwarded to `tracing` with the plugin
//! and mount attached.
//!
//! A plugin cannot flood the host's log: a line is cut at [`MAX_LINE`] bytes, a call
//! logs at most [`MAX_LINES`] lines, and stdout and stderr are captured in bounded
//! buffers and forwarded when the call ends.

use super::bindings::Level;
use std::sync::Arc;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// Longest log line kept, in bytes.
pub const MAX_LINE: usize = 4096;
/// Most lines one call may log.
pub const MAX_LINES: usize = 1000;
/// Bytes of stdout, and of stderr, kept per call.
const CAPTURE_BYTES: usize = 64 * 1024;

/// Where a plugin's output goes for one call.
pub(crate) struct PluginOutput {
    plugin: Arc<str>,
    mount: Arc<str>,
    lines: usize,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

fn cut(line: &str) -> &str {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

impl PluginOutput {
    pub(crate) fn new(plugin: Arc<str>, mount: Arc<str>) -> Self {
        Self {
            plugin,
            mount,
            lines: 0,
            stdout: MemoryOutputPipe::new(CAPTURE_BYTES),
            stderr: MemoryOutputPipe::new(CAPTURE_BYTES),
        }
    }

    /// One line from the `logging.log` import.
    pub(crate) fn log(&mut self, level: Level, message: &str) {
        self.lines += 1;
        if self.lines > MAX_LINES {
            return;
        }
        let (plugin, mount, message) = (&*self.plugin, &*self.mount, cut(message));
        match level {
            Level::Trace => tracing::trace!(plugin, mount, "{message}"),
            Level::Debug => tracing::debug!(plugin, mount, "{message}"),
            Level::Info => tracing::info!(plugin, mount, "{message}"),
            Level::Warn => tracing::warn!(plugin, mount, "{message}"),
            Level::Error => tracing::error!(plugin, mount, "{message}"),
        }
    }

    /// Forwards what the plugin wrote to stdout and stderr, once the call is over.
    pub(crate) fn flush_streams(&mut self) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let captured = pipe.contents();
            for line in String::from_utf8_lossy(&captured).lines() {
                self.lines += 1;
                if self.lines > MAX_LINES {
                    return;
                }
                let (plugin, mount, line) = (&*self.plugin, &*self.mount, cut(line));
                tracing::warn!(plugin, mount, stream, "{line}");
            }
        }
    }
}
