//! `sys/capabilities-self`, `sys/capabilities` and `sys/capabilities-accessor`:
//! what a token's policies grant on some paths (`bao token capabilities`).
//! The answer has each path's capabilities, and, for Vault's older clients,
//! `capabilities` with those of the single path asked.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::response::{ApiError, Envelope};
use crate::auth::{Token, TokenEntry};
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The paths asked about: `paths` (a list or a comma-separated string) or
/// Vault's older `path`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsBody {
    #[serde(default)]
    paths: Option<Value>,
    #[serde(default)]
    path: Option<Value>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    accessor: Option<String>,
}

impl PathsBody {
    fn paths(&self) -> Result<Vec<String>, ApiError> {
        let field = self.paths.as_ref().or(self.path.as_ref());
        let paths = match field {
            Some(value) => super::mount_paths::strings("paths", value.clone())?,
            None => Vec::new(),
        };
        if paths.is_empty() {
            return Err(ApiError::bad_request("missing `paths`"));
        }
        Ok(paths
            .into_iter()
            .map(|p| p.trim_start_matches('/').to_owned())
            .collect())
    }
}

async fn answer(
    state: &AppState,
    entry: &TokenEntry,
    paths: &[String],
) -> Result<Envelope, ApiError> {
    let acl = state
        .policies
        .acl(&entry.policies)
        .await
        .map_err(ApiError::internal)?;
    let mut data = Map::new();
    for path in paths {
        data.insert(path.clone(), json!(acl.capabilities(path)));
    }
    if let [only] = paths {
        data.insert("capabilities".into(), json!(acl.capabilities(only)));
    }
    Ok(Envelope::sys(Value::Object(data)))
}

/// `POST sys/capabilities-self`.
pub async fn of_self(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<PathsBody>,
) -> Result<Envelope, ApiError> {
    answer(&state, &caller.entry, &body.paths()?).await
}

/// `POST sys/capabilities`: of the token in the body.
pub async fn of_token(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<PathsBody>,
) -> Result<Envelope, ApiError> {
    let paths = body.paths()?;
    let token = body
        .token
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("missing `token`"))?;
    let entry = state.tokens.lookup(&Token::from_request(token)).await?;
    answer(&state, &entry, &paths).await
}

/// `POST sys/capabilities-accessor`: of the token with that accessor.
pub async fn of_accessor(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<PathsBody>,
) -> Result<Envelope, ApiError> {
    let paths = body.paths()?;
    let accessor = body
        .accessor
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("missing `accessor`"))?;
    let entry = state.tokens.lookup_accessor(accessor).await?;
    answer(&state, &entry, &paths).await
}
