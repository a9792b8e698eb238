//! A TCP stream in clear or TLS, as the host's connections and its HTTP egress
//! hold it, and the handshake that turns one into the other.

use super::TlsOptions;
use super::tls;
use crate::domain::Failure;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long a TLS handshake may take. A server that does not speak TLS on the
/// port often says nothing at all; this names that, well before the call's
/// deadline would end it as a bare timeout.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A TLS upgrade failed half way: nothing can be sent on it any more.
    Broken,
}

/// Encrypts `tcp` for `host` as `options` say. `what` names the peer in errors.
pub(crate) async fn handshake(
    tcp: TcpStream,
    options: &TlsOptions,
    host: &str,
    what: &str,
) -> Result<Stream, Failure> {
    let config = tls::client_config(options).map_err(Failure::InvalidConfig)?;
    let name = tls::server_name(options, host).map_err(Failure::InvalidConfig)?;
    let handshake = TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
        Ok(Err(err)) => Err(handshake_failure(what, err)),
        Err(_elapsed) => Err(Failure::Unavailable(format!(
            "{what} did not answer the TLS handshake within {}s: is TLS served on that port?",
            TLS_HANDSHAKE_TIMEOUT.as_secs()
        ))),
    }
}

/// A failed handshake: a certificate or protocol problem is the config's (retrying
/// will not help), anything else is the network's.
fn handshake_failure(what: &str, err: io::Error) -> Failure {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Failure::InvalidConfig(format!("TLS with {what}: {tls}")),
        None => Failure::Unavailable(format!("TLS handshake with {what}: {err}")),
    }
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection failed during a TLS handshake and is closed",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Stream::Broken => Poll::Ready(Err(broken())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Stream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Stream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Stream::Broken => Poll::Ready(Ok(())),
        }
    }
}
