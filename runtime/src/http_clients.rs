//! Keep-alive HTTP clients for plugins' requests (`wasi:http`), one per checked
//! destination.
//!
//! wasmtime-wasi-http's default sender opens a connection per request, and for
//! `https://` it resolves the name again itself. Here every request goes through a
//! client for exactly one destination: the scheme, the name the plugin asked for,
//! and the address [`super::egress`] checked against the grants. The client's
//! connector ignores the request's authority and dials that address (with TLS for
//! the name, checked against the system's roots), so a granted name that
//! re-resolves elsewhere is never reached, and a connection is kept open and
//! reused only for requests to the same checked place.

use crate::connections::{Stream, TlsMode, TlsOptions, handshake};
use crate::domain::Failure;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::WasiBody;

/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per destination.
const MAX_IDLE_PER_DESTINATION: usize = 16;
/// Destinations with a client; past this the clients (and their idle
/// connections) are dropped and made again as needed.
const MAX_DESTINATIONS: usize = 1024;
/// Plugin HTTP connections open at once, in use or idle, across the runtime:
/// each is a descriptor of the broker's.
pub const MAX_HTTP_CONNECTIONS: usize = 1024;

/// Where a request goes, decided before any connection is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Destination {
    /// The mount whose plugin sends it: mounts never share a connection.
    pub(crate) mount: Arc<str>,
    pub(crate) https: bool,
    /// The name (or address) in the request, lowercase: the TLS server name.
    pub(crate) host: String,
    /// The checked address the connection goes to.
    pub(crate) addr: SocketAddr,
}

pub(crate) type HttpClient = Client<PinnedConnector, WasiBody>;

/// The runtime's clients, by destination.
pub(crate) struct HttpClients {
    clients: Mutex<HashMap<Destination, HttpClient>>,
    connections: Arc<Semaphore>,
}

impl Default for HttpClients {
    fn default() -> Self {
        Self {
            clients: Mutex::default(),
            connections: Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS)),
        }
    }
}

impl HttpClients {
    /// The client for `destination` (cheap to clone: clones share a pool).
    pub(crate) fn client(&self, destination: Destination) -> HttpClient {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&destination) {
            return client.clone();
        }
        if clients.len() >= MAX_DESTINATIONS {
            clients.clear();
        }
        let client = Client::builder(TokioExecutor::new())
            // Without a timer the idle timeout is only applied when the same
            // destination is used again.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_DESTINATION)
            .build(PinnedConnector {
                destination: Arc::new(destination.clone()),
                connections: self.connections.clone(),
            });
        clients.insert(destination, client.clone());
        client
    }
}

/// Dials one destination's checked address, whatever the request's URI says.
#[derive(Clone)]
pub(crate) struct PinnedConnector {
    destination: Arc<Destination>,
    connections: Arc<Semaphore>,
}

/// The failure of a connection attempt, with what the plugin should hear.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    pub(crate) failure: Failure,
    pub(crate) refused: bool,
    pub(crate) tls: bool,
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.failure)
    }
}

impl std::error::Error for ConnectFailure {}

impl tower_service::Service<http::Uri> for PinnedConnector {
    type Response = TokioIo<Counted>;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let destination = self.destination.clone();
        let permit = self.connections.clone().try_acquire_owned();
        Box::pin(async move {
            let permit = permit.map_err(|_| ConnectFailure {
                refused: false,
                tls: false,
                failure: Failure::Unavailable(format!(
                    "{MAX_HTTP_CONNECTIONS} plugin HTTP connections are open already"
                )),
            })?;
            let tcp = TcpStream::connect(destination.addr)
                .await
                .map_err(|err| ConnectFailure {
                    refused: err.kind() == io::ErrorKind::ConnectionRefused,
                    tls: false,
                    failure: Failure::Unavailable(format!(
                        "connecting to {}: {err}",
                        destination.addr
                    )),
                })?;
            let _ = tcp.set_nodelay(true);
            let counted = |stream| {
                TokioIo::new(Counted {
                    stream,
                    _permit: permit,
                })
            };
            if !destination.https {
                return Ok(counted(Stream::Plain(tcp)));
            }
            let options = TlsOptions {
                mode: TlsMode::VerifyFull,
                server_name: None,
                ca_pem: None,
            };
            let what = format!("{}:{}", destination.host, destination.addr.port());
            match handshake(tcp, &options, &destination.host, &what).await {
                Ok(stream) => Ok(counted(stream)),
                Err(failure) => Err(ConnectFailure {
                    refused: false,
                    tls: matches!(failure, Failure::InvalidConfig(_)),
                    failure,
                }),
            }
        })
    }
}

/// A connection that holds one of the runtime's [`MAX_HTTP_CONNECTIONS`]
/// permits for as long as it is open.
pub(crate) struct Counted {
    stream: Stream,
    _permit: OwnedSemaphorePermit,
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
