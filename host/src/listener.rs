//! Accepting connections, plain or TLS, within limits a hostile client cannot
//! stretch.
//!
//! One accept loop serves both HTTP and HTTPS, HTTP/1.1 only (as over TLS,
//! where no other protocol is offered; no cleartext HTTP/2 with hundreds of
//! streams a connection). Each connection is watched:
//! - at most `max_connections` are open at once; beyond that the loop stops
//!   accepting (connections wait in the kernel's backlog) instead of running
//!   the process out of file descriptors;
//! - a TLS handshake must finish within `tls_handshake_timeout`;
//! - a request's head must arrive within `header_read_timeout`; hyper's own
//!   timer enforces it, so it also covers a partial head that came in behind
//!   a complete request. Waiting for the next request's head counts too, so an
//!   idle keep-alive connection is closed after the shorter of this and
//!   `idle_timeout` (Apache closes them after 5 s, nginx after 75 s);
//! - a connection with no request in flight is closed after `idle_timeout`.
//!
//! Reading bodies under a deadline is the API's job (`api::read_body`), which
//! knows each path's size limit; a body it drains after answering keeps the
//! connection busy through a [`ConnectionHold`]. The defaults are Vault's.

use crate::config::ListenerSettings;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How many requests a connection has in flight, and since when it has had
/// none.
struct Activity {
    state: Mutex<(usize, Instant)>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new((0, Instant::now())),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
        InFlight(self.clone())
    }

    /// Resolves once the connection has had nothing in flight for `idle`.
    async fn idled(&self, idle: Duration) {
        loop {
            let (in_flight, since) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
            if in_flight > 0 {
                // Requests bound their own time (body deadline, plugin deadline).
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if since.elapsed() >= idle {
                return;
            }
            tokio::time::sleep_until(since + idle).await;
        }
    }
}

/// Something in flight on a connection; it is idle again when the last goes.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            state.1 = Instant::now();
        }
    }
}

/// In every request's extensions: lets work that outlives the response (a
/// body drained after an early 413) keep its connection from being idle.
#[derive(Clone)]
pub(crate) struct ConnectionHold(Arc<Activity>);

impl ConnectionHold {
    /// Counts as a request in flight until dropped.
    pub(crate) fn hold(&self) -> InFlight {
        self.0.begin()
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
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
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
        let (app, peer, requests) = (self.app, self.peer, activity.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let in_flight = requests.begin();
            request.extensions_mut().insert(ConnectInfo(peer));
            request
                .extensions_mut()
                .insert(ConnectionHold(requests.clone()));
            let app = app.clone();
            async move {
                let response = app.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        });
        let served = self.watcher.watch(
            self.builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::select! {
            result = served => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
            }
            () = activity.idled(self.limits.idle_timeout) => {
                tracing::debug!(%peer, "closing an idle connection");
            }
        }
    }
}
