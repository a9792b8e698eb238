//! The one place that decides outbound HTTP (`wasi:http/outgoing-handler`).
//!
//! wasmtime-wasi-http calls [`HttpEgress::send_request`] for every request a plugin
//! sends. A request goes out only when its origin is granted, and only to an address
//! the grant resolved to when the call began ([`super::grants`]): for plain HTTP the
//! connection is made to that checked address (the `Host` header keeps the name), so
//! the name cannot be re-resolved to somewhere else in between.

use super::denials::DenialLog;
use super::grants::ResolvedGrants;
use http::uri::{Authority, Scheme};
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};
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
}

impl HttpEgress {
    /// The address the request may connect to, or what to report as refused.
    fn decide(&self, uri: &http::Uri) -> Result<(bool, SocketAddr), String> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(format!("HTTP request to `{uri}` (only http and https)")),
        };
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
        let code = if err.is_incomplete_message() || err.is_canceled() {
            HttpErrorCode::ConnectionTerminated
        } else if err.is_timeout() {
            HttpErrorCode::HttpResponseTimeout
        } else {
            HttpErrorCode::HttpProtocolError
        };
        tracing::debug!(error = %err, code = ?code, "a plugin's HTTP request failed");
        code
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
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
        Box::new(async move {
            let (https, addr) = match decision {
                Ok(allowed) => allowed,
                Err(what) => {
                    denials.record(what);
                    return Err(Error::HttpRequestDenied);
                }
            };
            if !https {
                pin_authority(&mut request, addr)?;
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// Points a plain-HTTP request at the checked address. The `Host` header, set by
/// wasmtime-wasi-http from the original authority, is left as it is.
fn pin_authority(request: &mut http::Request<WasiBody>, addr: SocketAddr) -> Result<(), Error> {
    let authority = match addr.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.authority =
        Some(Authority::try_from(authority.as_str()).map_err(|_| Error::HttpRequestUriInvalid)?);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)?;
    Ok(())
}
