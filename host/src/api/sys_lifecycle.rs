//! `sys/health`, `sys/init`, `sys/seal-status`, `sys/unseal`, `sys/seal`,
//! `sys/rotate`, `sys/key-status`: Vault's shapes and status codes.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::query::Query;
use super::response::{ApiError, Envelope};
use crate::barrier::UnsealShare;
use crate::clock::{rfc3339, unix_now};
use crate::lifecycle::SealStatus;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Status-code overrides `sys/health` accepts.
#[derive(Deserialize)]
pub struct HealthQuery {
    #[serde(default)]
    activecode: Option<u16>,
    #[serde(default)]
    sealedcode: Option<u16>,
    #[serde(default)]
    uninitcode: Option<u16>,
    // Accepted so that clients sending them are not refused; there are no
    // standbys or replication secondaries.
    #[serde(default, deserialize_with = "super::query::go_bool_field")]
    #[allow(dead_code)]
    standbyok: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    standbycode: Option<u16>,
    #[serde(default, deserialize_with = "super::query::go_bool_field")]
    #[allow(dead_code)]
    perfstandbyok: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    drsecondarycode: Option<u16>,
    #[serde(default)]
    #[allow(dead_code)]
    performancestandbycode: Option<u16>,
}

/// `GET|HEAD sys/health`: not enveloped; 200 active, 501 uninitialized, 503 sealed.
pub async fn health(State(state): State<AppState>, Query(query): Query<HealthQuery>) -> Response {
    let status = match state.lifecycle.status().await {
        Ok(status) => status,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let code = if !status.initialized {
        query.uninitcode.unwrap_or(501)
    } else if status.sealed {
        query.sealedcode.unwrap_or(503)
    } else {
        query.activecode.unwrap_or(200)
    };
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let body = json!({
        "initialized": status.initialized,
        "sealed": status.sealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": unix_now(),
        "version": VERSION,
        "cluster_name": "leasehold",
        "cluster_id": "",
    });
    (code, Json(body)).into_response()
}

/// `GET sys/init`.
pub async fn init_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.lifecycle.status().await?;
    Ok(Json(json!({ "initialized": status.initialized })))
}

/// `PUT sys/init` body. PGP encryption of shares and recovery keys are Vault
/// features leasehold does not have: a client sending them gets a clear 400
/// rather than shares it did not expect in clear.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitRequest {
    secret_shares: u8,
    secret_threshold: u8,
    #[serde(default)]
    pgp_keys: Option<Vec<String>>,
    #[serde(default)]
    root_token_pgp_key: Option<String>,
    #[serde(default)]
    stored_shares: Option<u8>,
    #[serde(default)]
    recovery_shares: Option<u8>,
    #[serde(default)]
    recovery_threshold: Option<u8>,
    #[serde(default)]
    recovery_pgp_keys: Option<Vec<String>>,
}

/// `PUT sys/init`: keys and root token, returned once, not enveloped.
pub async fn init(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<InitRequest>,
) -> Result<Json<Value>, ApiError> {
    let unsupported = [
        (
            "pgp_keys",
            request.pgp_keys.as_ref().is_some_and(|k| !k.is_empty()),
        ),
        (
            "root_token_pgp_key",
            request
                .root_token_pgp_key
                .as_ref()
                .is_some_and(|k| !k.is_empty()),
        ),
        (
            "stored_shares",
            request.stored_shares.is_some_and(|n| n > 0),
        ),
        (
            "recovery_shares",
            request.recovery_shares.is_some_and(|n| n > 0),
        ),
        (
            "recovery_threshold",
            request.recovery_threshold.is_some_and(|n| n > 0),
        ),
        (
            "recovery_pgp_keys",
            request
                .recovery_pgp_keys
                .as_ref()
                .is_some_and(|k| !k.is_empty()),
        ),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, used)| *used) {
        return Err(ApiError::bad_request(format!(
            "`{field}` is not supported by leasehold"
        )));
    }
    let initialized = state
        .lifecycle
        .init(request.secret_shares, request.secret_threshold)
        .await?;
    let keys: Vec<String> = initialized
        .shares
        .iter()
        .map(|s| s.to_hex().to_string())
        .collect();
    let keys_base64: Vec<String> = initialized
        .shares
        .iter()
        .map(|s| s.to_base64().to_string())
        .collect();
    Ok(Json(json!({
        "keys": keys,
        "keys_base64": keys_base64,
        "root_token": initialized.root_token.expose(),
    })))
}

fn seal_status_body(status: &SealStatus) -> Value {
    let mut body = json!({
        "type": "shamir",
        "initialized": status.initialized,
        "sealed": status.sealed,
        "t": status.threshold,
        "n": status.shares,
        "progress": status.progress,
        "nonce": status.nonce,
        "version": VERSION,
        "build_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": "redb",
    });
    if !status.sealed {
        body["cluster_name"] = json!("leasehold");
        body["cluster_id"] = json!("");
    }
    body
}

/// `GET sys/leader`: one node, no HA, sealed or not (what OpenBao answers
/// without HA; `bao status` and `bao operator unseal` read it).
pub async fn leader() -> Json<Value> {
    Json(json!({ "ha_enabled": false }))
}

/// `GET sys/seal-status`.
pub async fn seal_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.lifecycle.status().await?;
    Ok(Json(seal_status_body(&status)))
}

/// `PUT sys/unseal` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    reset: Option<bool>,
    #[serde(default)]
    migrate: Option<bool>,
}

/// `PUT sys/unseal`: one share at a time, or `reset`. The share that opens the
/// barrier answers once the broker serves again.
pub async fn unseal(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<UnsealRequest>,
) -> Result<Json<Value>, ApiError> {
    if request.migrate == Some(true) {
        return Err(ApiError::bad_request(
            "seal migration is not supported by leasehold",
        ));
    }
    let reset = request.reset.unwrap_or(false);
    let share = match request.key.as_deref() {
        Some(text) => Some(UnsealShare::parse(text).ok_or_else(|| {
            ApiError::bad_request("`key` is not an unseal key share (hex or base64)")
        })?),
        None if reset => None,
        None => return Err(ApiError::bad_request("missing `key` (or `reset: true`)")),
    };
    let status = state.lifecycle.unseal(share, reset).await?;
    Ok(Json(seal_status_body(&status)))
}

/// `PUT sys/seal`: needs `sudo`.
pub async fn seal(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.lifecycle.seal().await;
    tracing::warn!(accessor = %caller.entry.accessor, "sealed by request");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT sys/rotate`: needs `sudo`. A new data key for new writes.
pub async fn rotate(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<StatusCode, ApiError> {
    let status = state.barrier.rotate().await?;
    tracing::info!(term = status.term, "data key rotated");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET sys/key-status`.
pub async fn key_status(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Envelope, ApiError> {
    let status = state.barrier.key_status()?;
    Ok(Envelope::sys(json!({
        "term": status.term,
        "install_time": rfc3339(status.installed_at),
    })))
}
