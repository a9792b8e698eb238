//! The one place that decides outbound HTTP (`wasi:http/outgoing-handler`).
//!
//! wasmtime-wasi-http calls [`HttpEgress::send_request`] for every request a plugin
//! sends. A request goes out only when its origin is granted, and only to an address
//! the grant resolved to when the call began ([`super::grants`]): the connection is
//! made to that checked address, for `https://` too (the `Host` header and the TLS
//! server name keep the name), so the name cannot be re-resolved to somewhere else
//! in between. Connections are kept alive between requests and calls by
//! [`super::http_clients`], one pool per checked destination.

use super::denials::DenialLog;
use super::grants::ResolvedGrants;
use super::http_clients::{ConnectFailure, Destination, HttpClients};
use http::uri::Scheme;
use http_body_util::BodyExt;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode as HttpErrorCode;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

type ResponseFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), Error>> + Send>,
            )>,
        > + Send,
>;

/// HTTP requests one call may send: each is a connection the broker opens.
pub const MAX_REQUESTS_PER_CALL: u32 = 64;

/// The HTTP hooks of one call.
pub(crate) struct HttpEgress {
    pub(crate) grants: Arc<ResolvedGrants>,
    pub(crate) denials: DenialLog,
    /// Requests sent so far in this call.
    pub(crate) sent: u32,
    /// The runtime's keep-alive clients.
    pub(crate) clients: Arc<HttpClients>,
    /// The mount the call is for: its requests share connections with its own
    /// calls only.
    pub(crate) mount: Arc<str>,
}

impl HttpEgress {
    /// The address the request may connect to, or what to report as refused.
    fn decide(&self, uri: &http::Uri) -> Result<(bool, SocketAddr), String> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(format!("HTTP request to `{uri}` (only http and https)")),
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!(
                "HTTP request to a URL with credentials in it ({scheme}://…@…)",
                scheme = if https { "https" } else { "http" }
            ));
        }
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let scheme = if https { "https" } else { "http" };
        let origin = format!("{scheme}://{host}:{port}");
        match self.grants.http_origin(https, host, port) {
            None => Err(format!("HTTP origin {origin}")),
            Some([]) => Err(format!(
                "HTTP origin {origin} (its name resolved to no address a name may grant)"
            )),
            Some([ip, ..]) => Ok((https, SocketAddr::new(*ip, port))),
        }
    }
}

impl WasiHttpHooks for HttpEgress {
    /// What a plugin hears when hyper fails after the connection was made. The
    /// default calls every such failure a protocol error and logs only hyper's
    /// words; a service that closed the connection before answering (the usual
    /// failure of a small in-house service) is told apart here, so the plugin
    /// can say the request may have reached it.
    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> HttpErrorCode {
        let code = match after_connecting(err) {
            Error::ConnectionTerminated => HttpErrorCode::ConnectionTerminated,
            Error::HttpResponseTimeout => HttpErrorCode::HttpResponseTimeout,
            _ => HttpErrorCode::HttpProtocolError,
        };
        tracing::debug!(error = %err, code = ?code, "a plugin's HTTP request failed");
        code
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        self.sent += 1;
        let decision = if self.sent > MAX_REQUESTS_PER_CALL {
            Err(format!(
                "HTTP request beyond {MAX_REQUESTS_PER_CALL} requests in one call"
            ))
        } else {
            self.decide(request.uri())
        };
        let denials = self.denials.clone();
        let clients = self.clients.clone();
        let mount = self.mount.clone();
        Box::new(async move {
            let (https, addr) = match decision {
                Ok(allowed) => allowed,
                Err(what) => {
                    denials.record(what);
                    return Err(Error::HttpRequestDenied);
                }
            };
            let host = request
                .uri()
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            let request = with_plain_authority(request, https, &host, addr.port())?;
            let client = clients.client(Destination {
                mount,
                https,
                host,
                addr,
            });
            let sent = client.request(request);
            let answered = match options.and_then(|o| o.first_byte_timeout) {
                Some(limit) => tokio::time::timeout(limit, sent)
                    .await
                    .map_err(|_| Error::HttpResponseTimeout)?,
                None => sent.await,
            };
            let response = answered.map_err(|err| request_failure(&err))?;
            // The client drives its connections itself: nothing for the caller to await.
            let done = async { Ok(()) };
            Ok((
                response.map(|body| body.map_err(Error::from).boxed_unsync()),
                Box::new(done) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// The request with its URI's authority spelled one way (`host:port`, the host
/// lowercase), so that the client's pool sees one origin however the plugin
/// wrote it. The `Host` header keeps what the plugin sent.
fn with_plain_authority(
    mut request: http::Request<WasiBody>,
    https: bool,
    host: &str,
    port: u16,
) -> Result<http::Request<WasiBody>, Error> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(if https { Scheme::HTTPS } else { Scheme::HTTP });
    parts.authority =
        Some(http::uri::Authority::try_from(authority).map_err(|_| Error::HttpRequestUriInvalid)?);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)?;
    Ok(request)
}

/// What a plugin hears when a request failed: why the connection could not be
/// made, or how it broke after.
fn request_failure(err: &hyper_util::client::legacy::Error) -> Error {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(connect) = cause.downcast_ref::<ConnectFailure>() {
            tracing::debug!(error = %connect, "a plugin's HTTP connection failed");
            return if connect.refused {
                Error::ConnectionRefused
            } else if connect.tls {
                tracing::warn!(error = %connect, "TLS to a plugin's HTTP origin failed");
                Error::TlsProtocolError
            } else {
                Error::DestinationUnavailable
            };
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            tracing::debug!(error = %hyper, "a plugin's HTTP request failed");
            return after_connecting(hyper);
        }
        source = cause.source();
    }
    tracing::debug!(error = %err, "a plugin's HTTP request failed");
    Error::ConnectionTerminated
}

/// A failure once connected: the service closed the connection before a whole
/// answer (the usual failure of a small in-house service, told apart so the plugin
/// can say the request may have reached it), a timeout, or anything else.
fn after_connecting(err: &hyper::Error) -> Error {
    if err.is_incomplete_message() || err.is_canceled() {
        Error::ConnectionTerminated
    } else if err.is_timeout() {
        Error::HttpResponseTimeout
    } else {
        Error::HttpProtocolError
    }
}
