//! Accepting connections, plain or TLS, within limits a hostile client cannot
//! stretch.
//!
//! One accept loop serves both HTTP and HTTPS. Each connection is watched:
//! - at most `max_connections` are open at once; beyond that the loop stops
//!   accepting (connections wait in the kernel's backlog) instead of running
//!   the process out of file descriptors;
//! - a TLS handshake must finish within `tls_handshake_timeout`;
//! - a request's head must arrive within `header_read_timeout` of its first
//!   byte (of the connection's start, for the first request), so a client that
//!   sends half a request line is closed rather than held;
//! - a connection with no request in flight is closed after `idle_timeout`.
//!
//! Reading bodies under a deadline is the API's job (`api::read_body`), which
//! knows each path's size limit. The defaults are Vault's listener defaults.

use crate::config::ListenerSettings;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head that has started (or, on a new connection,
    /// for the first one).
    Head,
    /// This many requests are being handled.
    Busy(usize),
    /// Between requests, nothing received yet.
    Idle,
}

/// A connection's phase and when it began; shared by the socket wrapper, the
/// request service and the watchdog.
struct Activity {
    state: Mutex<(Phase, Instant)>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new((Phase::Head, Instant::now())),
        })
    }

    fn get(&self) -> (Phase, Instant) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: an idle connection now has a request head on the way.
    fn received(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Instant::now());
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let busy = match state.0 {
            Phase::Busy(n) => n + 1,
            _ => 1,
        };
        *state = (Phase::Busy(busy), Instant::now());
        InFlight(self.clone())
    }

    /// Resolves when the connection has overstayed its phase's limit.
    async fn expired(&self, limits: &ListenerSettings) -> &'static str {
        loop {
            let (phase, since) = self.get();
            let (limit, why) = match phase {
                Phase::Head => (
                    limits.header_read_timeout,
                    "request head not received in time",
                ),
                Phase::Idle => (limits.idle_timeout, "idle"),
                // Handlers bound their own time (body deadline, plugin deadline).
                Phase::Busy(_) => (Duration::from_secs(1), ""),
            };
            tokio::time::sleep_until(since + limit).await;
            let (now_phase, now_since) = self.get();
            if now_phase == phase && now_since == since && !matches!(phase, Phase::Busy(_)) {
                return why;
            }
        }
    }
}

/// One request being handled; the connection is idle again when the last goes.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = match state.0 {
            Phase::Busy(n) if n > 1 => (Phase::Busy(n - 1), state.1),
            _ => (Phase::Idle, Instant::now()),
        };
    }
}

/// A socket that tells its [`Activity`] when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts connections until `shutdown` resolves, then lets open requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ListenerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    let mut warned_full = false;
    tokio::pin!(shutdown);
    loop {
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or similar: wait a moment, do not spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if open.available_permits() > 0 {
            warned_full = false;
        }
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            builder: builder.clone(),
            limits: limits.clone(),
            watcher: graceful.watcher(),
            peer,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection.run(stream).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        connection.limits.tls_handshake_timeout,
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(stream)) => connection.run(stream).await,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    graceful.shutdown().await;
}

/// What one accepted connection needs.
struct Connection {
    app: Router,
    builder: Builder<TokioExecutor>,
    limits: Arc<ListenerSettings>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
}

impl Connection {
    /// Serves HTTP on `stream` until the client closes, a limit is hit, or the
    /// server shuts down.
    async fn run<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let (app, peer, requests) = (self.app, self.peer, activity.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = requests.begin();
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        });
        let served = self.watcher.watch(
            self.builder
                .serve_connection_with_upgrades(io, service)
                .into_owned(),
        );
        tokio::select! {
            result = served => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
            }
            why = activity.expired(&self.limits) => {
                tracing::debug!(%peer, reason = why, "closing the connection");
            }
        }
    }
}
