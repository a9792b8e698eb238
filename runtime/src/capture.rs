//! A plugin's stdout or stderr: the first bytes kept, the rest accepted and
//! thrown away.
//!
//! wasmtime-wasi's `MemoryOutputPipe` refuses writes once full, which makes a
//! Rust guest's `eprintln!` panic: a plugin that merely talks a lot would crash.
//! This sink never refuses a write; it keeps at most its capacity and counts
//! what it dropped, so the host's log stays bounded and the plugin runs on.

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A bounded capture of one output stream. Clones share the buffer.
#[derive(Clone)]
pub(crate) struct Capture {
    capacity: usize,
    kept: Arc<Mutex<BytesMut>>,
}

impl Capture {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            kept: Arc::new(Mutex::new(BytesMut::new())),
        }
    }

    /// What was kept.
    pub(crate) fn contents(&self) -> Bytes {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .freeze()
    }

    /// Keeps what fits of `bytes`; the rest is dropped.
    fn keep(&self, bytes: &[u8]) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
