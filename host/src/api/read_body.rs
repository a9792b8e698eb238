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
//!
//! This runs before the token is checked, so what bodies may hold in memory at
//! once is bounded too ([`BUFFERED_BYTES`]): past it a request is answered 503
//! with `Retry-After` (and its body drained, never kept). And the large upload
//! limit is only for a caller whose token may write the path with `sudo`
//! (looked up first, without the body); anyone else gets the 1 MiB limit
//! there too.

use super::AppState;
use super::body::MAX_BODY_BYTES;
use super::response::ApiError;
use super::sys_plugins::MAX_COMPONENT_BYTES;
use crate::listener::ConnectionHold;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much more than the limit is read and discarded so the 413 arrives; a
/// client sending more than this is cut off.
const DRAIN_BYTES: u64 = 64 << 20;

/// Bytes of request bodies held in memory at once, all requests together.
pub const BUFFERED_BYTES: usize = 256 << 20;

/// The budget for [`BUFFERED_BYTES`], in KiB (a semaphore counts in `u32`).
fn budget() -> &'static Arc<Semaphore> {
    static BUDGET: OnceLock<Arc<Semaphore>> = OnceLock::new();
    BUDGET.get_or_init(|| Arc::new(Semaphore::new(BUFFERED_BYTES >> 10)))
}

/// KiB of budget for `bytes`, rounded up.
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The largest body this request may send: a component upload's only for a
/// caller who may make one.
async fn limit_of(state: &AppState, parts: &axum::http::request::Parts) -> usize {
    let path = parts.uri.path();
    if path.starts_with("/v1/sys/plugins/catalog/")
        && super::authorize::may_write_with_sudo(state, &parts.headers, path).await
    {
        MAX_COMPONENT_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// The middleware: `read_timeout` is the listener's body-read timeout.
pub async fn read_body(
    State((read_timeout, state)): State<(Duration, AppState)>,
    request: Request,
    next: Next,
) -> Response {
    // A body is not `Sync`: only the head is looked at across the await.
    let (parts, body) = request.into_parts();
    let limit = limit_of(&state, &parts).await;
    let hold = parts.extensions.get::<ConnectionHold>().cloned();
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
        drain(body, read_timeout, hold);
        return too_large();
    }
    // Budget for what the client says it sends now; a body of unknown length
    // takes more as it arrives.
    let reserved = match budget()
        .clone()
        .try_acquire_many_owned(kib(declared.unwrap_or(0)))
    {
        Ok(permit) => permit,
        Err(_) => {
            drain(body, read_timeout, hold);
            return too_busy();
        }
    };
    let read = tokio::time::timeout(read_timeout, collect(body, limit, reserved)).await;
    let (bytes, _budget) = match read {
        Ok(Collected::Whole(bytes, permit)) => (bytes, permit),
        Ok(Collected::TooLarge(rest)) => {
            drain(rest, read_timeout, hold);
            return too_large();
        }
        Ok(Collected::OverBudget(rest)) => {
            drain(rest, read_timeout, hold);
            return too_busy();
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
    /// The body, and its share of the memory budget (held while it is used).
    Whole(Bytes, OwnedSemaphorePermit),
    /// Over the limit; what is left of the body.
    TooLarge(Body),
    /// Over the memory budget; what is left of the body.
    OverBudget(Body),
    Broken(axum::Error),
}

async fn collect(mut body: Body, limit: usize, mut reserved: OwnedSemaphorePermit) -> Collected {
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if buffer.len() + data.len() > limit {
                        return Collected::TooLarge(body);
                    }
                    buffer.extend_from_slice(&data);
                    let needed = kib(buffer.len() as u64);
                    let held = u32::try_from(reserved.num_permits()).unwrap_or(u32::MAX);
                    if needed > held {
                        match budget().clone().try_acquire_many_owned(needed - held) {
                            Ok(permit) => reserved.merge(permit),
                            Err(_) => return Collected::OverBudget(body),
                        }
                    }
                }
            }
            Err(err) => return Collected::Broken(err),
        }
    }
    Collected::Whole(Bytes::from(buffer), reserved)
}

/// Reads and discards what is left of `body` in the background, so the
/// connection stays readable while the answer goes out; the connection counts
/// as busy until it is done.
fn drain(mut body: Body, deadline: Duration, hold: Option<ConnectionHold>) {
    let busy = hold.map(|hold| hold.hold());
    tokio::spawn(async move {
        let _busy = busy;
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

fn too_busy() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is receiving too many request bodies at once; retry shortly",
    )
    .retry_after(Duration::from_secs(1))
    .into_response()
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
