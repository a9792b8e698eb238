//! A plugin's log lines, stdout and stderr, forwarded to `tracing` with the plugin
//! and mount attached.
//!
//! A plugin cannot flood the host's log: a line is cut at [`MAX_LINE`] bytes, a call
//! logs at most [`MAX_LINES`] lines and [`MAX_BYTES`] bytes in all, and stdout and
//! stderr are captured in bounded buffers and forwarded when the call ends. What
//! goes past a limit is dropped, and one line says so. Control characters
//! (newlines, carriage returns, terminal escapes) are written escaped, so a
//! plugin cannot forge a log entry of the broker's or rewrite a terminal.

use super::capture::Capture;
use super::domain::Level;
use std::sync::Arc;

/// Longest log line kept, in bytes.
pub const MAX_LINE: usize = 4096;
/// Most lines one call may log.
pub const MAX_LINES: usize = 1000;
/// Most bytes one call may log, all lines together.
pub const MAX_BYTES: usize = 256 * 1024;
/// Bytes of stdout, and of stderr, kept per call.
const CAPTURE_BYTES: usize = 64 * 1024;

/// Where a plugin's output goes for one call.
pub(crate) struct PluginOutput {
    plugin: Arc<str>,
    mount: Arc<str>,
    lines: usize,
    bytes: usize,
    /// Whether the "dropped" line has been written.
    cut_off: bool,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
}

fn cut(line: &str) -> &str {
    &line[..line.floor_char_boundary(MAX_LINE)]
}

/// `line` with every control character escaped (`\n`, `\u{1b}`).
fn escaped(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.chars().any(char::is_control) {
        return line.into();
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

impl PluginOutput {
    pub(crate) fn new(plugin: Arc<str>, mount: Arc<str>) -> Self {
        Self {
            plugin,
            mount,
            lines: 0,
            bytes: 0,
            cut_off: false,
            stdout: Capture::new(CAPTURE_BYTES),
            stderr: Capture::new(CAPTURE_BYTES),
        }
    }

    /// One line from the `logging.log` import.
    pub(crate) fn log(&mut self, level: Level, message: &str) {
        let message = escaped(cut(message));
        if !self.admit(&message) {
            return;
        }
        let (plugin, mount) = (&*self.plugin, &*self.mount);
        match level {
            Level::Trace => tracing::trace!(plugin, mount, "{message}"),
            Level::Debug => tracing::debug!(plugin, mount, "{message}"),
            Level::Info => tracing::info!(plugin, mount, "{message}"),
            Level::Warn => tracing::warn!(plugin, mount, "{message}"),
            Level::Error => tracing::error!(plugin, mount, "{message}"),
        }
    }

    /// Counts `line` against the call's limits; false once they are spent.
    fn admit(&mut self, line: &str) -> bool {
        self.lines += 1;
        self.bytes += line.len();
        if self.lines <= MAX_LINES && self.bytes <= MAX_BYTES {
            return true;
        }
        if !self.cut_off {
            self.cut_off = true;
            let (plugin, mount) = (&*self.plugin, &*self.mount);
            tracing::warn!(
                plugin,
                mount,
                "the plugin's output for this call passed {MAX_LINES} lines or {MAX_BYTES} bytes; the rest is dropped"
            );
        }
        false
    }

    /// Forwards what the plugin wrote to stdout and stderr, once the call is over.
    pub(crate) fn flush_streams(&mut self) {
        let captured = [
            ("stdout", self.stdout.contents()),
            ("stderr", self.stderr.contents()),
        ];
        for (stream, captured) in captured {
            for line in String::from_utf8_lossy(&captured).lines() {
                let line = escaped(cut(line));
                if !self.admit(&line) {
                    return;
                }
                let (plugin, mount) = (&*self.plugin, &*self.mount);
                tracing::warn!(plugin, mount, stream, "{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn a_plugin_line_cannot_forge_another() {
        assert_eq!(escaped("plain line"), "plain line");
        assert_eq!(
            escaped("ok\n2026-12-05T00:00:00Z INFO leasehold: unsealed\r\u{1b}[2K"),
            "ok\\n2026-12-05T00:00:00Z INFO leasehold: unsealed\\r\\u{1b}[2K"
        );
    }
}
