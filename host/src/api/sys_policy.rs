//! `sys/policies/acl/*` and the legacy `sys/policy/*`.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::response::{ApiError, Envelope};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// `LIST sys/policies/acl`.
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Envelope, ApiError> {
    Ok(Envelope::sys(
        json!({ "keys": state.policies.list().await? }),
    ))
}

/// A policy's name and text, with the text under `field` (`policy` now, `rules`
/// on the legacy path); 404 if it does not exist.
async fn read_as(state: &AppState, name: &str, field: &str) -> Result<Envelope, ApiError> {
    let text = state
        .policies
        .read(name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Envelope::sys(json!({ "name": name, field: text })))
}

/// `GET sys/policies/acl/:name`.
pub async fn read(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Envelope, ApiError> {
    read_as(&state, &name, "policy").await
}

/// Body of a policy write: `policy` (or the legacy `rules`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    rules: Option<String>,
}

/// `PUT sys/policies/acl/:name`.
pub async fn write(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<WriteBody>,
) -> Result<StatusCode, ApiError> {
    let text = body
        .policy
        .or(body.rules)
        .ok_or_else(|| ApiError::bad_request("missing `policy`"))?;
    state.policies.write(&name, &text).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE sys/policies/acl/:name`.
pub async fn delete(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.policies.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET sys/policy` (legacy): every name, as `keys` and `policies`.
pub async fn legacy_list(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Envelope, ApiError> {
    let names = state.policies.list().await?;
    Ok(Envelope::sys(json!({ "keys": names, "policies": names })))
}

/// `GET sys/policy/:name` (legacy): the text as `rules`.
pub async fn legacy_read(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Envelope, ApiError> {
    read_as(&state, &name, "rules").await
}
