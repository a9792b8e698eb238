//! `X-Vault-Wrap-TTL`: the one place a response is wrapped.
//!
//! A layer between the audit log and the handler. On an authenticated route,
//! a request carrying the header has it checked before its handler runs (a
//! malformed or out-of-bounds TTL is a 400 and nothing is issued); the
//! handler's answer, if it is a 200, is then stored by [`crate::wrapping`] and
//! replaced by Vault's `wrap_info` envelope. The audit log, outside this
//! layer, records the wrapped response and never sees the original; the
//! client never receives it in clear — if it cannot be stored, the client gets
//! a 500. Errors and empty answers (204, 202) are not wrapped, as in Vault.
//!
//! A handler may ask for its own answer to be wrapped with [`WrapWith`]
//! (`sys/wrapping/rewrap`), and finds the TTL the request asked for as a
//! [`WrapTtl`] extension (`sys/wrapping/wrap`). Open routes (health, init,
//! unseal, wrapping lookup) hold nothing to wrap and ignore the header.

use super::AppState;
use super::authorize::Caller;
use super::response::{ApiError, Envelope};
use super::routes::Resolved;
use crate::wrapping::{MAX_TTL, MIN_TTL, WrapRequest, Wrapped};
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use zeroize::Zeroizing;

/// The header naming the wrap TTL.
const WRAP_TTL: &str = "x-vault-wrap-ttl";

/// The wrap TTL a request asked for, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrapTtl(pub u64);

/// A handler's request that its answer be wrapped (a rewrap): with this TTL
/// (or the request's, if shorter) and this creation path.
#[derive(Debug, Clone)]
pub struct WrapWith {
    /// Seconds.
    pub ttl: u64,
    /// The path whose response it is.
    pub creation_path: String,
}

/// The wrap TTL of `headers`, if one was asked for; 400 with Vault's prefix if
/// it is malformed or out of bounds. An empty header asks for nothing, as in
/// Vault.
pub fn requested(headers: &HeaderMap) -> Result<Option<WrapTtl>, ApiError> {
    let Some(value) = headers.get(WRAP_TTL) else {
        return Ok(None);
    };
    let refused = |why: String| {
        ApiError::bad_request(format!("error parsing X-Vault-Wrap-TTL header: {why}"))
    };
    let text = value
        .to_str()
        .map_err(|_| refused("not a duration".into()))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse_ttl(text)
        .map(|ttl| Some(WrapTtl(ttl)))
        .map_err(refused)
}

/// Seconds (`"300"`) or a duration (`"60s"`, `"5m"`, `"1h30m"`), within
/// [`MIN_TTL`]..=[`MAX_TTL`]; a fraction of a second above the minimum is
/// dropped.
fn parse_ttl(text: &str) -> Result<u64, String> {
    if text.starts_with('-') {
        return Err("requested wrap ttl cannot be negative".into());
    }
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|_| "not a duration: use seconds or a value like 60s, 5m, 1h".to_owned())?,
    };
    if duration < Duration::from_secs(MIN_TTL) {
        return Err(format!("the wrap TTL must be at least {MIN_TTL}s"));
    }
    if duration > Duration::from_secs(MAX_TTL) {
        return Err(format!(
            "the wrap TTL must be at most {}h, the longest a token lives",
            MAX_TTL / 3600
        ));
    }
    Ok(duration.as_secs())
}

/// Just what names a token carried by a response, nothing else of it.
#[derive(Deserialize)]
struct CarriedToken {
    auth: Option<CarriedAccessor>,
}

#[derive(Deserialize)]
struct CarriedAccessor {
    #[serde(default)]
    accessor: String,
}

/// The middleware.
pub async fn wrap(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(resolved) = request.extensions().get::<Resolved>().cloned() else {
        return ApiError::internal("a request reached wrapping unresolved").into_response();
    };
    if resolved.route.unauthenticated {
        return next.run(request).await;
    }
    let asked = match requested(request.headers()) {
        Ok(asked) => asked,
        Err(refused) => return refused.into_response(),
    };
    if let Some(ttl) = asked {
        request.extensions_mut().insert(ttl);
    }
    let display_name = request
        .extensions()
        .get::<Caller>()
        .map(|caller| caller.entry.display_name.clone())
        .unwrap_or_default();

    let response = next.run(request).await;

    let by_handler = response.extensions().get::<WrapWith>().cloned();
    let ttl = match (asked, &by_handler) {
        (Some(WrapTtl(asked)), Some(with)) => asked.min(with.ttl),
        (Some(WrapTtl(asked)), None) => asked,
        (None, Some(with)) => with.ttl,
        (None, None) => return response,
    };
    if response.status() != StatusCode::OK {
        return response;
    }
    let creation_path = by_handler.map_or(resolved.path, |with| with.creation_path);
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => Zeroizing::new(Vec::from(bytes)),
        Err(err) => return ApiError::internal(err).into_response(),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let wrapped_accessor = serde_json::from_slice::<CarriedToken>(&body)
        .ok()
        .and_then(|carried| carried.auth)
        .map(|auth| auth.accessor)
        .unwrap_or_default();
    let issued = state
        .wrapping
        .wrap(
            Wrapped::new(body, content_type),
            WrapRequest {
                ttl,
                creation_path,
                display_name,
                wrapped_accessor,
            },
        )
        .await;
    match issued {
        Ok(issued) => {
            let mut wrap_info = json!({
                "token": issued.token.expose(),
                "accessor": issued.accessor,
                "ttl": issued.ttl,
                "creation_time": issued.info.creation_time,
                "creation_path": issued.info.creation_path,
            });
            if !issued.info.wrapped_accessor.is_empty() {
                wrap_info["wrapped_accessor"] = json!(issued.info.wrapped_accessor);
            }
            Envelope::wrapped(wrap_info).into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_duration_forms_within_bounds() {
        assert_eq!(parse_ttl("300"), Ok(300));
        assert_eq!(parse_ttl("60s"), Ok(60));
        assert_eq!(parse_ttl("5m"), Ok(300));
        assert_eq!(parse_ttl("1h30m"), Ok(5400));
        assert_eq!(parse_ttl("1500ms"), Ok(1));
        assert_eq!(parse_ttl("768h"), Ok(MAX_TTL));
        for refused in [
            "0",
            "0s",
            "500ms",
            "-5",
            "-5s",
            "soon",
            "769h",
            "99999999999",
        ] {
            assert!(parse_ttl(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn an_empty_header_asks_for_nothing_and_a_bad_one_is_400() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested(&headers).unwrap(), None);
        headers.insert(WRAP_TTL, "".parse().unwrap());
        assert_eq!(requested(&headers).unwrap(), None);
        headers.insert(WRAP_TTL, "2m".parse().unwrap());
        assert_eq!(requested(&headers).unwrap(), Some(WrapTtl(120)));
        headers.insert(WRAP_TTL, "never".parse().unwrap());
        let refused = requested(&headers).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.messages()[0].starts_with("error parsing X-Vault-Wrap-TTL header"));
    }
}
