//! A small blocking HTTP client for plugins, over `wasi:http`.
//!
//! Requests leave the sandbox only to the origins the mount grants; anything else
//! fails with [`Error::Denied`]. Responses are read whole, up to
//! [`MAX_RESPONSE_BYTES`].
//!
//! ```no_run
//! use leasehold_sdk::{http, Result};
//! use serde_json::json;
//!
//! fn add_user(base: &str, api_key: &str, user: &str) -> Result<()> {
//!     http::post(format!("{base}/api/users"))
//!         .bearer(api_key)
//!         .json(&json!({ "name": user }))?
//!         .send()?
//!         .success()?;
//!     Ok(())
//! }
//! ```
//!
//! Status codes map onto errors the broker understands: 5xx and 429 are
//! [`Error::Unavailable`] (retryable), 401 and 403 are [`Error::Denied`], other 4xx
//! are [`Error::InvalidRequest`]. Error messages name the method, URL and status,
//! never a header or a body, which may carry a secret.

use crate::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

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
}

/// A request being built.
#[derive(Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// Starts a request.
pub fn request(method: Method, url: impl Into<String>) -> Request {
    Request {
        method,
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
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

impl Request {
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self> {
        self.body = serde_json::to_vec(body)
            .map_err(|err| Error::internal(format!("request body does not serialize: {err}")))?;
        Ok(self.header("content-type", "application/json"))
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Limits the time to connect, to the first response byte, and between bytes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The method and URL, for error messages.
    fn describe(&self) -> String {
        format!("{} {}", self.method.as_str(), self.url)
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response> {
        let what = self.describe();
        transport::send(self)
            .map_err(|err| match err {
                Error::Unavailable(m) => Error::Unavailable(format!("{what}: {m}")),
                Error::Denied(m) => Error::Denied(format!("{what}: {m}")),
                Error::InvalidConfig(m) => Error::InvalidConfig(format!("{what}: {m}")),
                Error::InvalidRequest(m) => Error::InvalidRequest(format!("{what}: {m}")),
                Error::Internal(m) => Error::Internal(format!("{what}: {m}")),
            })
            .map(|mut response| {
                response.request = what;
                response
            })
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

impl std::fmt::Debug for Response {
    /// Bodies and headers may hold credentials: only the status is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// Whether a failed [`Request::send`] may still have reached the server: the
/// connection broke or timed out after the request was on its way. A `create`
/// that fails this way cannot know whether the target acted, and should answer
/// [`Error::Internal`], after which the host revokes without a handle. A refused
/// connection, a failed name lookup or an error status did not create anything.
pub fn may_have_been_delivered(err: &Error) -> bool {
    const UNCERTAIN: &[&str] = &[
        "ConnectionTerminated",
        "ConnectionReadTimeout",
        "ConnectionWriteTimeout",
        "HttpResponseTimeout",
        "closed while sending",
        "failed while receiving",
    ];
    match err {
        Error::Unavailable(message) | Error::Internal(message) => {
            UNCERTAIN.iter().any(|u| message.contains(u))
        }
        _ => false,
    }
}

#[cfg(target_arch = "wasm32")]
mod transport {
    use super::{MAX_RESPONSE_BYTES, Method, Request, Response};
    use crate::{Error, Result};
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
        RequestOptions, Scheme,
    };
    use wasip2::io::streams::StreamError;

    /// Most bytes `blocking-write-and-flush` accepts at once.
    const WRITE_CHUNK: usize = 4096;

    fn error_of(code: ErrorCode) -> Error {
        match code {
            ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
                Error::denied("the origin is not granted to this plugin")
            }
            ErrorCode::DnsTimeout
            | ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::ConnectionLimitReached
            | ErrorCode::HttpResponseTimeout => Error::unavailable(format!("{code:?}")),
            other => Error::internal(format!("{other:?}")),
        }
    }

    pub(super) fn send(request: Request) -> Result<Response> {
        let uri: http::Uri = request
            .url
            .parse()
            .map_err(|_| Error::invalid_config("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => {
                return Err(Error::invalid_config(
                    "the URL must start with http:// or https://",
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| Error::invalid_config("the URL has no host"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        };

        let headers = Fields::from_list(&request.headers)
            .map_err(|err| Error::invalid_request(format!("a header is invalid: {err:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let invalid = |what: &str| Error::invalid_request(format!("invalid {what}"));
        outgoing
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        outgoing
            .set_authority(Some(authority.as_str()))
            .map_err(|()| invalid("authority"))?;
        outgoing
            .set_path_with_query(Some(path))
            .map_err(|()| invalid("path"))?;
        let body = outgoing
            .body()
            .map_err(|()| Error::internal("the request body was already taken"))?;

        let options = request.timeout.map(|timeout| {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let options = RequestOptions::new();
            // Each setter fails only if the host does not support that timeout.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let pending = outgoing_handler::handle(outgoing, options).map_err(error_of)?;

        {
            let stream = body
                .write()
                .map_err(|()| Error::internal("the request body stream was already taken"))?;
            for chunk in request.body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|_| Error::unavailable("the connection closed while sending"))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(error_of)?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(error_of(code)),
            Some(Err(())) | None => return Err(Error::internal("the response was already taken")),
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| Error::internal("the response body was already taken"))?;
        let mut received = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| Error::internal("the response body stream was already taken"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => {
                        received.extend_from_slice(&chunk);
                        if received.len() > MAX_RESPONSE_BYTES {
                            return Err(Error::internal(format!(
                                "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                            )));
                        }
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(_)) => {
                        return Err(Error::unavailable("the connection failed while receiving"));
                    }
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        Ok(Response {
            request: String::new(),
            status,
            headers,
            body: received,
        })
    }
}

/// Plugins run only as wasm components; a native build (for `cargo check` or a
/// workspace build) has no `wasi:http` to call.
#[cfg(not(target_arch = "wasm32"))]
mod transport {
    use super::{Request, Response};
    use crate::{Error, Result};

    pub(super) fn send(_: Request) -> Result<Response> {
        Err(Error::internal(
            "HTTP is available only inside the broker's sandbox (wasm32-wasip2)",
        ))
    }
}
