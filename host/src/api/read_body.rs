//! Reading a request's body once, whole, within a size limit and a deadline,
//! before anything else looks at the request.
//!
//! Everything inside (the sealed gate, audit, authorization, handlers) then sees a
//! body that is already in memory, so none of them can be held by a client that
//! sends slowly. The limit is the path's: 64 MiB where a plugin component is
//! uploaded, [`MAX_BODY_BYTES`] elsewhere.
//!
//! A body over the limit gets 413, and the client reliably *receives* it: the
//! answer goes out at once (from `Content-Length`, before reading anything),
//! and the rest of the body is read and thrown away in the background, as nginx
//! does, instead of closing a socket the client is still writing to (which
//! resets the connection and loses the 413 on the way). A client that asked
//! `Expect: 100-continue` has sent nothing yet and is simply told no.

use super::body::MAX_BODY_BYTES;
use super::response::ApiError;
use super::sys_plugins::MAX_COMPONENT_BYTES;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::time::Duration;

/// How much more than the limit is read and discarded so the 413 arrives; a
/// client sending more than this is cut off.
const DRAIN_BYTES: u64 = 64 << 20;

/// The largest body `path` accepts.
fn limit_of(path: &str) -> usize {
    if path.starts_with("/v1/sys/plugins/catalog/") {
        MAX_COMPONENT_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// The middleware: `read_timeout` is the listener's body-read timeout.
pub async fn read_body(
    State(read_timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let limit = limit_of(request.uri().path());
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        let expects_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects_continue {
            return close(too_large());
        }
        let length = declared.unwrap_or_default();
        if length > limit as u64 + DRAIN_BYTES {
            return close(too_large());
        }
        drain(body, read_timeout);
        return too_large();
    }
    let read = tokio::time::timeout(read_timeout, collect(body, limit)).await;
    let bytes = match read {
        Ok(Collected::Whole(bytes)) => bytes,
        Ok(Collected::TooLarge(rest)) => {
            drain(rest, read_timeout);
            return too_large();
        }
        Ok(Collected::Broken(err)) => {
            return close(ApiError::bad_request(format!(
                "could not read the request body: {err}"
            )));
        }
        Err(_) => {
            return close(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {}",
                    humantime::format_duration(read_timeout)
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

enum Collected {
    Whole(Bytes),
    /// Over the limit; what is left of the body.
    TooLarge(Body),
    Broken(axum::Error),
}

async fn collect(mut body: Body, limit: usize) -> Collected {
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if buffer.len() + data.len() > limit {
                        return Collected::TooLarge(body);
                    }
                    buffer.extend_from_slice(&data);
                }
            }
            Err(err) => return Collected::Broken(err),
        }
    }
    Collected::Whole(Bytes::from(buffer))
}

/// Reads and discards what is left of `body` in the background, so the
/// connection stays readable while the 413 goes out.
fn drain(mut body: Body, deadline: Duration) {
    tokio::spawn(async move {
        let mut seen: u64 = 0;
        let discard = async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                    if seen > DRAIN_BYTES {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(deadline, discard).await;
    });
}

fn too_large() -> Response {
    // The limit is per path, so the message does not name one number.
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body is larger than this path accepts",
    )
    .into_response()
}

/// Asks hyper to close the connection after this response.
fn close(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
