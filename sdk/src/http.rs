//! A small blocking HTTP client for plugins, over `wasi:http`.
//!
//! Requests leave the sandbox only to the origins the mount grants; anything else
//! fails as [`Error::Denied`]. Responses are read whole, up to
//! [`MAX_RESPONSE_BYTES`].
//!
//! ```no_run
//! use leasehold_sdk::{http, Result};
//! use serde_json::json;
//!
//! fn add_user(base: &str, api_key: &str, user: &str) -> Result<()> {
//!     http::post(format!("{base}/api/users"))
//!         .bearer(api_key)
//!         .json(&json!({ "name": user }))
//!         .send()?
//!         .success()?;
//!     Ok(())
//! }
//! ```
//!
//! Requests are framed the way every HTTP/1.1 server reads them, however small:
//! a body goes with `Content-Length` and is written whole, never chunked (Python's
//! `http.server` and many in-house services cannot read a chunked body); a
//! request without a body (a GET, a DELETE) sends none and no `Transfer-Encoding`;
//! a POST, PUT or PATCH without one says `Content-Length: 0`. The SDK sets these
//! headers itself and drops any the plugin set.
//!
//! When no answer comes, [`Request::send`] fails with a [`TransportError`] that
//! says what happened in words ("connection refused by users.internal:8080") and
//! whether the request [may have reached the service]. `?` turns it into the
//! [`Error`] the broker acts on: a request that never left (a refused connection,
//! a name that did not resolve, a failed TLS handshake) is [`Error::Unavailable`],
//! retried later; one that may have been delivered (the connection broke or
//! timed out after it went out) is [`Error::Uncertain`], which makes a failed
//! `create` revoke whatever it may have made.
//!
//! An answer's status maps onto errors too ([`Response::success`]): 5xx and 429
//! are [`Error::Unavailable`] (retryable), except 502 and 504, a gateway whose
//! service may have acted, which are [`Error::Uncertain`]; 401 and 403 are
//! [`Error::Denied`], other 4xx are [`Error::InvalidRequest`]. Messages name the
//! method and the URL without its query or user info, never a header or a body,
//! which may carry a secret.
//!
//! [may have reached the service]: TransportError::may_have_been_delivered

use crate::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;
use wasip2::http::types::ErrorCode;

/// Largest response body read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// Whether a request of this method is expected to carry a body, so one
    /// without says `Content-Length: 0` (RFC 9110, 8.6).
    fn expects_body(self) -> bool {
        matches!(self, Self::Post | Self::Put | Self::Patch)
    }
}

/// A request's body as the plugin gave it.
#[derive(Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// [`Request::json`] could not serialize its value; [`Request::send`] says so.
    Unserializable(String),
}

/// A request being built.
#[derive(Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Body,
    timeout: Option<Duration>,
}

/// Starts a request.
pub fn request(method: Method, url: impl Into<String>) -> Request {
    Request {
        method,
        url: url.into(),
        headers: Vec::new(),
        body: Body::Bytes(Vec::new()),
        timeout: None,
    }
}

/// Starts a GET request.
pub fn get(url: impl Into<String>) -> Request {
    request(Method::Get, url)
}

/// Starts a POST request.
pub fn post(url: impl Into<String>) -> Request {
    request(Method::Post, url)
}

/// Starts a PUT request.
pub fn put(url: impl Into<String>) -> Request {
    request(Method::Put, url)
}

/// Starts a PATCH request.
pub fn patch(url: impl Into<String>) -> Request {
    request(Method::Patch, url)
}

/// Starts a DELETE request.
pub fn delete(url: impl Into<String>) -> Request {
    request(Method::Delete, url)
}

/// Headers that frame the body, which the SDK sets itself.
const FRAMING_HEADERS: &[&str] = &["content-length", "transfer-encoding"];

impl Request {
    /// Adds a header. `Content-Length` and `Transfer-Encoding` are the SDK's to
    /// set, from the body: given here, they are ignored.
    pub fn header(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sets a JSON body and its content type. A value that does not serialize
    /// (a map with keys that are not strings) fails [`Request::send`].
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.body = match serde_json::to_vec(body) {
            Ok(bytes) => Body::Bytes(bytes),
            Err(err) => Body::Unserializable(err.to_string()),
        };
        self.header("content-type", "application/json")
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// Limits the time to connect, to the first response byte, and between bytes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response, whatever its status.
    pub fn send(self) -> Result<Response, TransportError> {
        let request = format!("{} {}", self.method.as_str(), shown_url(&self.url));
        let parsed = Target::parse(&self.url);
        let origin = parsed
            .as_ref()
            .map(|target| target.origin.clone())
            .unwrap_or_default();
        let fail = |failure: Failure| TransportError {
            request: request.clone(),
            origin: origin.clone(),
            kind: failure.kind,
            delivered: failure.delivered,
        };
        let target =
            parsed.map_err(|why| fail(Failure::before(TransportErrorKind::InvalidUrl(why))))?;
        let body = match &self.body {
            Body::Bytes(bytes) => bytes.as_slice(),
            Body::Unserializable(why) => {
                return Err(fail(Failure::before(TransportErrorKind::InvalidBody(
                    why.clone(),
                ))));
            }
        };
        let headers = headers_to_send(&self.headers, self.method, body.len()).map_err(&fail)?;
        let answer = transport::send(&Outgoing {
            method: self.method,
            target: &target,
            headers,
            body,
            timeout: self.timeout,
        })
        .map_err(&fail)?;
        Ok(Response {
            request,
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }
}

/// `url` as error messages show it: without user info, query or fragment, any
/// of which may hold a secret (`https://user:pw@host/`, `?api_key=...`).
fn shown_url(url: &str) -> String {
    let (kept, cut) = url.split_at(url.find(['?', '#']).unwrap_or(url.len()));
    let (scheme, rest) = match kept.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, kept),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let cut = if cut.is_empty() { "" } else { "?..." };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}{cut}"),
        None => format!("{rest}{cut}"),
    }
}

/// Where a request goes: `url` checked and split as `wasi:http` wants it.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    /// `host[:port]` as written, which the `Host` header carries.
    authority: String,
    /// The path and query, `/` when the URL has none.
    path_and_query: String,
    /// `host:port` with the scheme's port filled in, for messages.
    origin: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, &'static str> {
        let uri: http::Uri = url.parse().map_err(|_| "not a URL")?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("the URL must start with http:// or https://"),
        };
        let authority = uri.authority().ok_or("the URL has no host")?;
        if authority.as_str().contains('@') {
            return Err("the URL must not hold a user or password (send them in a header)");
        }
        let host = authority.host();
        if host.is_empty() {
            return Err("the URL has no host");
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self {
            https,
            authority: authority.as_str().to_owned(),
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            origin: format!("{host}:{port}"),
        })
    }
}

/// The headers that go out: the plugin's, checked, without framing headers,
/// and `Content-Length` when there is a body or the method expects one.
fn headers_to_send(
    given: &[(String, Vec<u8>)],
    method: Method,
    body_len: usize,
) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut headers = Vec::with_capacity(given.len() + 1);
    for (name, value) in given {
        if FRAMING_HEADERS.contains(&name.as_str()) {
            continue;
        }
        // The value is not named: it may be a token.
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_bytes(value).is_err()
        {
            return Err(Failure::before(TransportErrorKind::InvalidHeader(
                String::from_utf8_lossy(name.as_bytes()).into_owned(),
            )));
        }
        headers.push((name.clone(), value.clone()));
    }
    if body_len > 0 || method.expects_body() {
        headers.push(("content-length".into(), body_len.to_string().into_bytes()));
    }
    Ok(headers)
}

/// What a failed request went through, as [`TransportError::kind`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The URL cannot be sent; the text says why.
    InvalidUrl(&'static str),
    /// A header's name or value has characters HTTP does not allow; the header
    /// is named, its value is not shown.
    InvalidHeader(String),
    /// The JSON body did not serialize.
    InvalidBody(String),
    /// The mount does not grant this plugin the request's origin.
    NotGranted,
    /// The service's name did not resolve.
    NameNotResolved,
    /// Nothing accepted the connection.
    ConnectionRefused,
    /// The network has no route to the service.
    Unreachable,
    /// Connecting took longer than the timeout.
    ConnectTimeout,
    /// The TLS handshake failed, before the request went out; the text says how.
    Tls(String),
    /// No answer came within the timeout.
    ResponseTimeout,
    /// The service closed the connection before a complete answer.
    ConnectionClosed,
    /// The connection ended early or the answer was not HTTP: the HTTP runtime
    /// does not tell the two apart.
    ClosedOrNotHttp,
    /// The answer is larger than [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge,
    /// Anything else the HTTP runtime reported, in words.
    Other(String),
}

/// A request that got no usable answer.
///
/// Its message names the request and says what happened, in words an operator
/// can act on; [`TransportError::may_have_been_delivered`] says whether the
/// service may have acted on it. `?` in a provider method turns it into the
/// matching [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// Method and shown URL.
    request: String,
    /// `host:port`, empty when the URL did not parse.
    origin: String,
    kind: TransportErrorKind,
    delivered: bool,
}

impl TransportError {
    /// What went wrong.
    pub fn kind(&self) -> &TransportErrorKind {
        &self.kind
    }

    /// Whether the service may have received the request, and so may have
    /// acted on it although no answer came: true once the request may have been
    /// written to the connection (the connection then broke or timed out, the
    /// answer was cut off or too large); false when it certainly never left
    /// (the URL or a header was invalid, the origin is not granted, the name
    /// did not resolve, the connection was refused or timed out, the TLS
    /// handshake failed). When unsure, true.
    pub fn may_have_been_delivered(&self) -> bool {
        self.delivered
    }

    /// What happened, without the request.
    fn what(&self) -> String {
        let origin = &self.origin;
        match &self.kind {
            TransportErrorKind::InvalidUrl(why) => (*why).to_owned(),
            TransportErrorKind::InvalidHeader(name) => {
                format!("header `{name}` has characters HTTP does not allow")
            }
            TransportErrorKind::InvalidBody(why) => {
                format!("the request body does not serialize: {why}")
            }
            TransportErrorKind::NotGranted => format!(
                "{origin} is not granted to this plugin (an operator adds it to the mount's allowed_origins)"
            ),
            TransportErrorKind::NameNotResolved => {
                let host = origin.rsplit_once(':').map_or(origin.as_str(), |(h, _)| h);
                format!("the name {host} did not resolve")
            }
            TransportErrorKind::ConnectionRefused => format!("connection refused by {origin}"),
            TransportErrorKind::Unreachable => format!("{origin} is unreachable"),
            TransportErrorKind::ConnectTimeout => format!("timed out connecting to {origin}"),
            TransportErrorKind::Tls(how) => {
                format!("the TLS handshake with {origin} failed: {how}")
            }
            TransportErrorKind::ResponseTimeout => "timed out waiting for the response".into(),
            TransportErrorKind::ConnectionClosed => {
                "the service closed the connection before answering".into()
            }
            TransportErrorKind::ClosedOrNotHttp => {
                "the service closed the connection before answering, or its answer was not HTTP"
                    .into()
            }
            TransportErrorKind::ResponseTooLarge => {
                format!("the response is larger than {MAX_RESPONSE_BYTES} bytes")
            }
            TransportErrorKind::Other(what) => what.clone(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.request, self.what())?;
        if self.delivered {
            f.write_str("; the request may have reached the service")?;
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {}

/// A request that may have reached the service is [`Error::Uncertain`]; one
/// that never left is [`Error::Unavailable`] when the service could not be
/// reached, [`Error::Denied`] when the origin is not granted, and otherwise says
/// what the plugin or its config got wrong.
impl From<TransportError> for Error {
    fn from(err: TransportError) -> Self {
        let message = err.to_string();
        if err.delivered {
            return Error::Uncertain(message);
        }
        match err.kind {
            TransportErrorKind::InvalidUrl(_) => Error::InvalidConfig(message),
            TransportErrorKind::InvalidHeader(_) => Error::InvalidRequest(message),
            TransportErrorKind::NotGranted => Error::Denied(message),
            TransportErrorKind::InvalidBody(_) | TransportErrorKind::Other(_) => {
                Error::Internal(message)
            }
            TransportErrorKind::NameNotResolved
            | TransportErrorKind::ConnectionRefused
            | TransportErrorKind::Unreachable
            | TransportErrorKind::ConnectTimeout
            | TransportErrorKind::Tls(_)
            | TransportErrorKind::ResponseTimeout
            | TransportErrorKind::ConnectionClosed
            | TransportErrorKind::ClosedOrNotHttp
            | TransportErrorKind::ResponseTooLarge => Error::Unavailable(message),
        }
    }
}

/// A failure inside the SDK, before the request and its origin are attached.
#[derive(Debug, PartialEq, Eq)]
struct Failure {
    kind: TransportErrorKind,
    delivered: bool,
}

impl Failure {
    /// A failure before anything was sent.
    fn before(kind: TransportErrorKind) -> Self {
        Self {
            kind,
            delivered: false,
        }
    }

    /// A failure once the request may have been written.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn after(kind: TransportErrorKind) -> Self {
        Self {
            kind,
            delivered: true,
        }
    }
}

/// What `wasi:http` reported, in the SDK's words, with whether the request may
/// have been written before it happened. Only errors the runtime raises before
/// writing (name lookup, connect, TLS, the request's own checks) count as not
/// delivered; anything else, or anything unknown, may have been.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn failure_of(code: &ErrorCode) -> Failure {
    use TransportErrorKind as Kind;
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            Failure::before(Kind::NotGranted)
        }
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            Failure::before(Kind::NameNotResolved)
        }
        ErrorCode::ConnectionRefused => Failure::before(Kind::ConnectionRefused),
        ErrorCode::DestinationUnavailable | ErrorCode::DestinationIpUnroutable => {
            Failure::before(Kind::Unreachable)
        }
        ErrorCode::ConnectionTimeout => Failure::before(Kind::ConnectTimeout),
        ErrorCode::ConnectionLimitReached => Failure::before(Kind::Other(
            "too many connections are open to open another".into(),
        )),
        ErrorCode::TlsProtocolError => Failure::before(Kind::Tls("a TLS protocol error".into())),
        ErrorCode::TlsCertificateError => {
            Failure::before(Kind::Tls("the service's certificate is not trusted".into()))
        }
        ErrorCode::TlsAlertReceived(alert) => Failure::before(Kind::Tls(format!(
            "the service sent alert {}",
            alert.alert_message.as_deref().unwrap_or("(no message)")
        ))),
        ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestLengthRequired
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_) => Failure::before(Kind::Other(format!(
            "the HTTP runtime refused the request: {}",
            request_problem(code)
        ))),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            Failure::after(Kind::ResponseTimeout)
        }
        ErrorCode::ConnectionTerminated | ErrorCode::HttpResponseIncomplete => {
            Failure::after(Kind::ConnectionClosed)
        }
        ErrorCode::HttpProtocolError => Failure::after(Kind::ClosedOrNotHttp),
        ErrorCode::ConnectionWriteTimeout => {
            Failure::after(Kind::Other("timed out sending the request".into()))
        }
        ErrorCode::HttpResponseBodySize(_) => Failure::after(Kind::Other(
            "the response body is not as long as its Content-Length".into(),
        )),
        ErrorCode::HttpRequestBodySize(_) => Failure::after(Kind::Other(
            "the request body is not as long as its Content-Length".into(),
        )),
        ErrorCode::HttpResponseHeaderSectionSize(_)
        | ErrorCode::HttpResponseHeaderSize(_)
        | ErrorCode::HttpResponseTrailerSectionSize(_)
        | ErrorCode::HttpResponseTrailerSize(_) => {
            Failure::after(Kind::Other("the response's headers are too large".into()))
        }
        ErrorCode::HttpResponseTransferCoding(coding)
        | ErrorCode::HttpResponseContentCoding(coding) => Failure::after(Kind::Other(format!(
            "the response uses an encoding the client cannot read ({})",
            coding.as_deref().unwrap_or("unnamed")
        ))),
        ErrorCode::HttpRequestTrailerSectionSize(_) | ErrorCode::HttpRequestTrailerSize(_) => {
            Failure::after(Kind::Other("the request's trailers are too large".into()))
        }
        ErrorCode::HttpUpgradeFailed => {
            Failure::after(Kind::Other("the connection upgrade failed".into()))
        }
        ErrorCode::LoopDetected => {
            Failure::after(Kind::Other("a request loop was detected".into()))
        }
        ErrorCode::ConfigurationError => Failure::after(Kind::Other(
            "the broker's HTTP runtime is misconfigured".into(),
        )),
        ErrorCode::InternalError(detail) => Failure::after(Kind::Other(match detail {
            Some(detail) => format!("the broker's HTTP runtime failed: {detail}"),
            None => "the broker's HTTP runtime failed".into(),
        })),
    }
}

/// Words for the codes the runtime raises when it refuses a request outright.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn request_problem(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::HttpRequestMethodInvalid => "invalid method",
        ErrorCode::HttpRequestUriInvalid => "invalid URL",
        ErrorCode::HttpRequestUriTooLong => "the URL is too long",
        ErrorCode::HttpRequestLengthRequired => "the body's length is required",
        _ => "the headers are too large",
    }
}

/// A response, read whole.
#[derive(Clone)]
pub struct Response {
    request: String,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl fmt::Debug for Response {
    /// Bodies and headers may hold credentials: only the status is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("request", &self.request)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (case-insensitive), if it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text (invalid sequences replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|err| {
            Error::internal(format!(
                "{}: the response is not the expected JSON (line {}, column {})",
                self.request,
                err.line(),
                err.column()
            ))
        })
    }

    /// The response if its status is 2xx, else the error the status stands for.
    pub fn success(self) -> Result<Self> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let message = format!("{} answered {}", self.request, self.status);
        Err(match self.status {
            502 | 504 => Error::Uncertain(format!(
                "{message}, a gateway's answer: the service behind it may have acted"
            )),
            429 | 500..=599 => Error::Unavailable(message),
            401 | 403 => Error::Denied(message),
            400..=499 => Error::InvalidRequest(message),
            _ => Error::Internal(message),
        })
    }

    /// Success for 2xx and for 404 (the thing is already gone: what an idempotent
    /// revoke wants); otherwise as [`Response::success`].
    pub fn success_or_not_found(self) -> Result<()> {
        if self.status == 404 {
            return Ok(());
        }
        self.success().map(drop)
    }
}

/// A checked request, ready for the transport.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Outgoing<'a> {
    method: Method,
    target: &'a Target,
    headers: Vec<(String, Vec<u8>)>,
    body: &'a [u8],
    timeout: Option<Duration>,
}

/// What came back.
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

#[cfg(target_arch = "wasm32")]
mod transport {
    use super::{Answer, Failure, MAX_RESPONSE_BYTES, Method, Outgoing, TransportErrorKind};
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, http_error_code};
    use wasip2::http::types::{
        FutureIncomingResponse, IncomingBody, IncomingResponse, Method as WasiMethod, OutgoingBody,
        OutgoingRequest, RequestOptions, Scheme,
    };
    use wasip2::io::streams::StreamError;

    /// Most bytes `blocking-write-and-flush` accepts at once.
    const WRITE_CHUNK: usize = 4096;

    pub(super) fn send(request: &Outgoing<'_>) -> Result<Answer, Failure> {
        let refused = |what: &str| {
            Failure::before(TransportErrorKind::Other(format!(
                "the HTTP runtime refused the request's {what}"
            )))
        };
        let headers = Fields::from_list(&request.headers).map_err(|_| refused("headers"))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        };
        let scheme = if request.target.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_method(&method)
            .map_err(|()| refused("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| refused("scheme"))?;
        outgoing
            .set_authority(Some(&request.target.authority))
            .map_err(|()| refused("host"))?;
        outgoing
            .set_path_with_query(Some(&request.target.path_and_query))
            .map_err(|()| refused("path"))?;
        // Without a body taken, the runtime sends none: no chunked framing, no
        // `Transfer-Encoding`. With one, `Content-Length` (set by the caller)
        // frames it.
        let body = if request.body.is_empty() {
            None
        } else {
            Some(outgoing.body().map_err(|()| refused("body"))?)
        };

        let options = request.timeout.map(|timeout| {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let options = RequestOptions::new();
            // Each setter fails only if the host does not support that timeout.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let pending =
            outgoing_handler::handle(outgoing, options).map_err(|code| super::failure_of(&code))?;

        if let Some(body) = body {
            // A failed write or finish means the request did not go out whole;
            // the pending response says why (a refused connection is reported
            // there), or, if the service answered before reading it all, has
            // that answer.
            if write_whole(&body, request.body).is_ok() {
                if let Err(code) = OutgoingBody::finish(body, None) {
                    return Err(answer_after_failed_body(&pending)
                        .err()
                        .unwrap_or_else(|| super::failure_of(&code)));
                }
            } else {
                drop(body);
                return answer_after_failed_body(&pending).and_then(read);
            }
        }
        read(response(&pending)?)
    }

    /// Writes `bytes` to the body's stream, then drops the stream so the body
    /// can be finished.
    fn write_whole(body: &OutgoingBody, bytes: &[u8]) -> Result<(), ()> {
        let stream = body.write()?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream.blocking_write_and_flush(chunk).map_err(drop)?;
        }
        Ok(())
    }

    /// The response once it is ready, or why there is none.
    fn response(pending: &FutureIncomingResponse) -> Result<IncomingResponse, Failure> {
        pending.subscribe().block();
        match pending.get() {
            Some(Ok(Ok(response))) => Ok(response),
            Some(Ok(Err(code))) => Err(super::failure_of(&code)),
            Some(Err(())) | None => Err(Failure::after(TransportErrorKind::Other(
                "the response was already taken".into(),
            ))),
        }
    }

    /// After the body could not be written whole: the answer that came anyway,
    /// the error that stopped the request, or a closed connection.
    fn answer_after_failed_body(
        pending: &FutureIncomingResponse,
    ) -> Result<IncomingResponse, Failure> {
        response(pending).map_err(|failure| match failure.kind {
            TransportErrorKind::Other(_) => Failure::after(TransportErrorKind::ConnectionClosed),
            _ => failure,
        })
    }

    /// Reads the whole answer. The service got the request by now, so every
    /// failure here may have been delivered.
    fn read(response: IncomingResponse) -> Result<Answer, Failure> {
        let status = response.status();
        let headers = response.headers().entries();
        let broken = Failure::after;
        let incoming = response.consume().map_err(|()| {
            broken(TransportErrorKind::Other(
                "the response body was already taken".into(),
            ))
        })?;
        let mut received = Vec::new();
        {
            let stream = incoming.stream().map_err(|()| {
                broken(TransportErrorKind::Other(
                    "the response body stream was already taken".into(),
                ))
            })?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => {
                        received.extend_from_slice(&chunk);
                        if received.len() > MAX_RESPONSE_BYTES {
                            return Err(broken(TransportErrorKind::ResponseTooLarge));
                        }
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(err)) => {
                        let kind = match http_error_code(&err) {
                            Some(code) => super::failure_of(&code).kind,
                            None => TransportErrorKind::ConnectionClosed,
                        };
                        return Err(broken(kind));
                    }
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        Ok(Answer {
            status,
            headers,
            body: received,
        })
    }
}

/// Plugins run only as wasm components; a native build (for `cargo check`, a
/// workspace build or a doc test) has no `wasi:http` to call.
#[cfg(not(target_arch = "wasm32"))]
mod transport {
    use super::{Answer, Failure, Outgoing, TransportErrorKind};

    pub(super) fn send(_: &Outgoing<'_>) -> Result<Answer, Failure> {
        Err(Failure::before(TransportErrorKind::Other(
            "HTTP is available only inside the broker's sandbox (wasm32-wasip2)".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasip2::http::types::{DnsErrorPayload, TlsAlertReceivedPayload};

    fn error(kind: TransportErrorKind, delivered: bool) -> TransportError {
        TransportError {
            request: "POST http://inventory.internal:8080/api/users".into(),
            origin: "inventory.internal:8080".into(),
            kind,
            delivered,
        }
    }

    fn from_code(code: ErrorCode) -> TransportError {
        let failure = failure_of(&code);
        error(failure.kind, failure.delivered)
    }

    #[test]
    fn failures_before_sending_were_not_delivered_and_are_retryable() {
        for code in [
            ErrorCode::ConnectionRefused,
            ErrorCode::DnsTimeout,
            ErrorCode::DnsError(DnsErrorPayload {
                rcode: Some("address not available".into()),
                info_code: None,
            }),
            ErrorCode::DestinationNotFound,
            ErrorCode::DestinationUnavailable,
            ErrorCode::DestinationIpUnroutable,
            ErrorCode::ConnectionTimeout,
            ErrorCode::TlsProtocolError,
            ErrorCode::TlsCertificateError,
            ErrorCode::TlsAlertReceived(TlsAlertReceivedPayload {
                alert_id: Some(40),
                alert_message: Some("handshake failure".into()),
            }),
        ] {
            let err = from_code(code.clone());
            assert!(!err.may_have_been_delivered(), "{code:?}");
            assert!(
                matches!(Error::from(err), Error::Unavailable(_)),
                "{code:?}"
            );
        }
    }

    #[test]
    fn failures_after_the_request_went_out_may_have_been_delivered() {
        for code in [
            ErrorCode::ConnectionReadTimeout,
            ErrorCode::HttpResponseTimeout,
            ErrorCode::ConnectionTerminated,
            ErrorCode::HttpResponseIncomplete,
            ErrorCode::HttpProtocolError,
            ErrorCode::ConnectionWriteTimeout,
            ErrorCode::HttpRequestBodySize(Some(3)),
            ErrorCode::HttpResponseBodySize(None),
            ErrorCode::InternalError(None),
            ErrorCode::InternalError(Some("something broke".into())),
            ErrorCode::ConfigurationError,
        ] {
            let err = from_code(code.clone());
            assert!(err.may_have_been_delivered(), "{code:?}");
            assert!(
                err.to_string()
                    .ends_with("; the request may have reached the service"),
                "{err}"
            );
            assert!(matches!(Error::from(err), Error::Uncertain(_)), "{code:?}");
        }
        let too_large = error(TransportErrorKind::ResponseTooLarge, true);
        assert!(matches!(Error::from(too_large), Error::Uncertain(_)));
    }

    #[test]
    fn a_refused_origin_is_denied_and_a_bad_url_is_config() {
        let denied = from_code(ErrorCode::HttpRequestDenied);
        assert!(!denied.may_have_been_delivered());
        assert_eq!(
            denied.to_string(),
            "POST http://inventory.internal:8080/api/users: inventory.internal:8080 is not granted \
             to this plugin (an operator adds it to the mount's allowed_origins)"
        );
        assert!(matches!(Error::from(denied), Error::Denied(_)));
        assert!(matches!(
            Error::from(from_code(ErrorCode::DestinationIpProhibited)),
            Error::Denied(_)
        ));
        let url = post("ftp://files").send().unwrap_err();
        assert_eq!(
            url.kind(),
            &TransportErrorKind::InvalidUrl("the URL must start with http:// or https://")
        );
        assert!(matches!(Error::from(url), Error::InvalidConfig(_)));
    }

    #[test]
    fn messages_say_what_happened_in_words() {
        let cases = [
            (
                ErrorCode::ConnectionRefused,
                "connection refused by inventory.internal:8080",
            ),
            (
                ErrorCode::ConnectionReadTimeout,
                "timed out waiting for the response; the request may have reached the service",
            ),
            (
                ErrorCode::ConnectionTerminated,
                "the service closed the connection before answering; the request may have reached the service",
            ),
            (
                ErrorCode::HttpProtocolError,
                "the service closed the connection before answering, or its answer was not HTTP; \
                 the request may have reached the service",
            ),
            (
                ErrorCode::DnsTimeout,
                "the name inventory.internal did not resolve",
            ),
            (
                ErrorCode::ConnectionTimeout,
                "timed out connecting to inventory.internal:8080",
            ),
            (
                ErrorCode::TlsCertificateError,
                "the TLS handshake with inventory.internal:8080 failed: the service's certificate is not trusted",
            ),
        ];
        for (code, what) in cases {
            let message = from_code(code).to_string();
            assert_eq!(
                message,
                format!("POST http://inventory.internal:8080/api/users: {what}")
            );
            assert!(!message.contains("ErrorCode"), "{message}");
        }
    }

    #[test]
    fn shown_urls_hold_no_user_info_or_query() {
        assert_eq!(
            shown_url("https://admin:hunter2@users.internal:8443/api/users?api_key=hunter2#x"),
            "https://users.internal:8443/api/users?..."
        );
        assert_eq!(
            shown_url("http://users.internal/a@b"),
            "http://users.internal/a@b"
        );
        let err = get("http://admin:hunter2@users.internal/api?token=hunter2")
            .send()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(matches!(err.kind(), TransportErrorKind::InvalidUrl(_)));
    }

    #[test]
    fn bodies_are_framed_by_content_length_and_bodiless_requests_send_none() {
        let framing = |method, len| {
            headers_to_send(
                &[
                    ("authorization".into(), b"Bearer t".to_vec()),
                    ("transfer-encoding".into(), b"chunked".to_vec()),
                    ("content-length".into(), b"999".to_vec()),
                ],
                method,
                len,
            )
            .unwrap()
            .into_iter()
            .filter(|(name, _)| FRAMING_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| (name, String::from_utf8(value).unwrap()))
            .collect::<Vec<_>>()
        };
        let length = |n: &str| vec![("content-length".to_owned(), n.to_owned())];
        assert_eq!(framing(Method::Post, 17), length("17"));
        assert_eq!(framing(Method::Delete, 5), length("5"));
        assert_eq!(framing(Method::Post, 0), length("0"));
        assert_eq!(framing(Method::Put, 0), length("0"));
        assert_eq!(framing(Method::Delete, 0), vec![]);
        assert_eq!(framing(Method::Get, 0), vec![]);
    }

    #[test]
    fn a_bad_header_is_named_without_its_value() {
        let err = get("http://users.internal/")
            .header("x-api-key", "secret\nvalue")
            .send()
            .unwrap_err();
        assert!(!err.may_have_been_delivered());
        let message = Error::from(err).to_string();
        assert!(message.contains("x-api-key"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn gateway_errors_may_have_acted_and_other_statuses_keep_their_kinds() {
        let answer = |status| Response {
            request: "DELETE http://users/u".into(),
            status,
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert!(matches!(answer(504).success(), Err(Error::Uncertain(_))));
        assert!(matches!(answer(502).success(), Err(Error::Uncertain(_))));
        assert!(matches!(answer(503).success(), Err(Error::Unavailable(_))));
        assert!(matches!(answer(429).success(), Err(Error::Unavailable(_))));
        assert!(matches!(answer(403).success(), Err(Error::Denied(_))));
        assert!(matches!(
            answer(409).success(),
            Err(Error::InvalidRequest(_))
        ));
        assert!(answer(404).success_or_not_found().is_ok());
        assert!(answer(204).success().is_ok());
    }

    #[test]
    fn unserializable_json_fails_the_send_not_the_build() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let err = post("http://users.internal/")
            .json(&map)
            .send()
            .unwrap_err();
        assert!(matches!(err.kind(), TransportErrorKind::InvalidBody(_)));
        assert!(matches!(Error::from(err), Error::Internal(_)));
    }
}
