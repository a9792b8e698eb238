//! `sys/wrapping/*`: unwrapping, looking up, rewrapping and wrapping
//! response-wrapping tokens ([`crate::wrapping`] keeps what they wrap;
//! [`super::wrap_response`] wraps responses).
//!
//! The wrapping token is named in the body (`{"token": …}`, a third party
//! unwrapping with its own token) or is the request's own token, as in Vault.

use super::AppState;
use super::authorize::{Caller, presented_text};
use super::body::JsonBody;
use super::response::{ApiError, Envelope};
use super::wrap_response::{WrapTtl, WrapWith};
use crate::auth::Token;
use crate::wrapping::Wrapped;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// Body naming a wrapping token. Vault's Go client sends `null` when the
/// request's own token is the wrapping token (`VAULT_TOKEN=… bao unwrap`),
/// hence the `Option` around it in the handlers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    #[serde(default)]
    token: Option<String>,
}

/// The token named in the body, if any.
fn named(body: Option<TokenBody>) -> Option<Token> {
    body.and_then(|body| body.token)
        .filter(|token| !token.trim().is_empty())
        .map(|token| Token::from_request(token.trim()))
}

/// A wrapped response as it was answered: its status, type and bytes.
fn as_answered(response: Wrapped) -> Response {
    let content_type = HeaderValue::from_str(response.content_type())
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut answer = Response::new(Body::from(response.expose_body().to_vec()));
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    *answer.status_mut() = StatusCode::OK;
    answer
}

/// `POST sys/wrapping/unwrap`: the wrapped response, exactly as it was
/// answered, once.
pub async fn unwrap(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Option<TokenBody>>,
) -> Result<Response, ApiError> {
    let token = named(body).unwrap_or(caller.token);
    let (response, _) = state.wrapping.unwrap(&token).await?;
    Ok(as_answered(response))
}

/// `GET|POST sys/wrapping/lookup`, open as in Vault: when and where a token's
/// response was wrapped, and for how long, without taking it.
pub async fn lookup(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Option<TokenBody>>,
) -> Result<Envelope, ApiError> {
    let token = named(body)
        .or_else(|| presented_text(&headers).map(Token::from_request))
        .ok_or_else(|| ApiError::bad_request("missing \"token\" value in input"))?;
    let info = state.wrapping.lookup(&token).await?;
    Ok(Envelope::data(json!({
        "creation_ttl": info.creation_ttl,
        "creation_time": info.creation_time,
        "creation_path": info.creation_path,
    })))
}

/// `POST sys/wrapping/rewrap`: the same response under a new token with the
/// same TTL and creation path; the old token is used up.
pub async fn rewrap(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Option<TokenBody>>,
) -> Result<Response, ApiError> {
    let token = named(body).unwrap_or(caller.token);
    let (response, info) = state.wrapping.unwrap(&token).await?;
    // Wrapped again on its way out: this answer never leaves in clear.
    let mut answer = as_answered(response);
    answer.extensions_mut().insert(WrapWith {
        ttl: info.creation_ttl,
        creation_path: info.creation_path,
    });
    Ok(answer)
}

/// `POST sys/wrapping/wrap`: wraps the request body's data; only with
/// `X-Vault-Wrap-TTL`.
pub async fn wrap(
    asked: Option<Extension<WrapTtl>>,
    _caller: Caller,
    JsonBody(data): JsonBody<Value>,
) -> Result<Response, ApiError> {
    if asked.is_none() {
        return Err(ApiError::bad_request(
            "endpoint requires response wrapping to be used",
        ));
    }
    if !data.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object: the data to wrap",
        ));
    }
    Ok(Envelope::data(data).into_response())
}
