//! `sys/audit`, `sys/audit/:path`, `sys/audit-hash/:path`.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::response::{ApiError, Envelope};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// `GET sys/audit`.
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Envelope, ApiError> {
    let mut devices = Map::new();
    for (path, config) in state.audit.configs().await? {
        devices.insert(
            format!("{path}/"),
            json!({
                "type": config.kind,
                "description": config.description,
                "options": config.options,
                "local": false,
                "path": format!("{path}/"),
            }),
        );
    }
    Ok(Envelope::sys(Value::Object(devices)))
}

/// `PUT sys/audit/:path` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    local: Option<bool>,
}

/// `PUT sys/audit/:path`: enable a device.
pub async fn enable(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    JsonBody(body): JsonBody<EnableBody>,
) -> Result<StatusCode, ApiError> {
    if body.local == Some(true) {
        return Err(ApiError::bad_request(
            "`local` devices are not supported: there is one node",
        ));
    }
    let options = body.options.unwrap_or_default();
    // A plugin granted the log's directory could delete or replace the log.
    if let Some(file) = options.get("file_path") {
        let parent = std::path::Path::new(file)
            .parent()
            .and_then(|dir| std::fs::canonicalize(dir).ok());
        let granted = state.secrets.granted_directories().await?;
        if let Some(dir) = parent.and_then(|p| granted.into_iter().find(|g| p.starts_with(g))) {
            return Err(ApiError::bad_request(format!(
                "the audit file lies in `{}`, a directory granted to a mount's plugin",
                dir.display()
            )));
        }
    }
    state
        .audit
        .enable(
            &path,
            &body.kind,
            body.description.unwrap_or_default(),
            options,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE sys/audit/:path`.
pub async fn disable(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.audit.disable(&path).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT sys/audit-hash/:path` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashBody {
    input: String,
}

/// `PUT sys/audit-hash/:path`: what `input` looks like in that device's log.
pub async fn hash(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    JsonBody(body): JsonBody<HashBody>,
) -> Result<Envelope, ApiError> {
    let devices = state.audit.devices().await?;
    let device = devices
        .iter()
        .find(|d| d.path() == path)
        .ok_or_else(|| ApiError::bad_request(format!("no audit device at `{path}`")))?;
    Ok(Envelope::sys(json!({ "hash": device.hash(&body.input) })))
}

/// `GET sys/audit-verify/:path`: checks the device's file from its first line
/// to the last the broker recorded, against the keyed chain and the checkpoint
/// in the barrier. `intact: false` names the first break.
pub async fn verify(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> Result<Envelope, ApiError> {
    Ok(Envelope::data(match state.audit.verify(&path).await? {
        Ok(verified) => json!({
            "intact": true,
            "lines": verified.lines,
            "lines_before": verified.before,
        }),
        Err(broken) => json!({ "intact": false, "error": broken.to_string() }),
    }))
}
