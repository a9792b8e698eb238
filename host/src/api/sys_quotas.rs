//! `sys/quotas/rate-limit/*` and `sys/quotas/lease-count/*` (Vault
//! Enterprise's resource quotas), and the middleware that applies rate limits.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::duration::Seconds;
use super::response::{ApiError, Envelope};
use super::sys_policy::ListQuery;
use crate::quotas::{LeaseCount, QuotaError, RateLimit};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

impl From<QuotaError> for ApiError {
    fn from(err: QuotaError) -> Self {
        match err {
            QuotaError::Invalid(message) => ApiError::bad_request(message),
            QuotaError::Barrier(e) => e.into(),
        }
    }
}

/// The middleware: a request over its path's rate limit is answered 429 with
/// `Retry-After`, before the sealed gate, audit and authorization spend anything
/// on it. Clients are told apart by token (hashed; the token itself is never
/// kept) or, without one, by address.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().trim_start_matches("/v1/").to_owned();
    let client = client_of(&request);
    match state.quotas.check_rate(&path, &client).await {
        Ok(Ok(())) => next.run(request).await,
        Ok(Err(limited)) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "request path \"{path}\": rate limit quota exceeded (quota `{}`)",
                limited.quota
            ),
        )
        .retry_after(limited.retry_after)
        .into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

fn client_of(request: &Request) -> String {
    let token = request
        .headers()
        .get("x-vault-token")
        .or_else(|| request.headers().get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").trim())
        .filter(|v| !v.is_empty());
    match token {
        Some(token) => format!("token:{}", hex::encode(&Sha256::digest(token)[..16])),
        None => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => format!("address:{}", peer.ip()),
            None => "anonymous".into(),
        },
    }
}

/// Body of a rate-limit quota write.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    rate: f64,
    #[serde(default)]
    interval: Option<Seconds>,
    #[serde(default)]
    block_interval: Option<Seconds>,
    /// Vault's; always `rate-limit` here.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Body of a lease-count quota write.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseCountBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    max_leases: u64,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// A name in the body, if given, must be the path's.
fn same_name(path_name: &str, body_name: Option<&str>) -> Result<(), ApiError> {
    match body_name {
        Some(name) if !name.is_empty() && name != path_name => Err(ApiError::bad_request(format!(
            "the body names quota `{name}` but the path names `{path_name}`"
        ))),
        _ => Ok(()),
    }
}

fn same_kind(expected: &str, given: Option<&str>) -> Result<(), ApiError> {
    match given {
        Some(kind) if !kind.is_empty() && kind != expected => Err(ApiError::bad_request(format!(
            "this path holds `{expected}` quotas, not `{kind}`"
        ))),
        _ => Ok(()),
    }
}

/// `PUT sys/quotas/rate-limit/:name`.
pub async fn write_rate_limit(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RateLimitBody>,
) -> Result<StatusCode, ApiError> {
    same_name(&name, body.name.as_deref())?;
    same_kind("rate-limit", body.kind.as_deref())?;
    state
        .quotas
        .put_rate_limit(RateLimit {
            name,
            path: body.path.unwrap_or_default(),
            rate: body.rate,
            interval: body.interval.map_or(1, |s| s.0),
            block_interval: body.block_interval.map_or(0, |s| s.0),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET sys/quotas/rate-limit/:name`.
pub async fn read_rate_limit(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Envelope, ApiError> {
    let quota = state
        .quotas
        .rate_limit(&name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Envelope::data(json!({
        "type": "rate-limit",
        "name": quota.name,
        "path": quota.path,
        "rate": quota.rate,
        "interval": quota.interval,
        "block_interval": quota.block_interval,
    })))
}

/// `DELETE sys/quotas/rate-limit/:name`.
pub async fn delete_rate_limit(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.quotas.delete_rate_limit(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `LIST sys/quotas/rate-limit`.
pub async fn list_rate_limits(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Envelope, ApiError> {
    query.require()?;
    keys(state.quotas.rate_limit_names().await?)
}

/// `PUT sys/quotas/lease-count/:name`.
pub async fn write_lease_count(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<LeaseCountBody>,
) -> Result<StatusCode, ApiError> {
    same_name(&name, body.name.as_deref())?;
    same_kind("lease-count", body.kind.as_deref())?;
    state
        .quotas
        .put_lease_count(LeaseCount {
            name,
            path: body.path.unwrap_or_default(),
            max_leases: body.max_leases,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET sys/quotas/lease-count/:name`, with how many leases it holds now.
pub async fn read_lease_count(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Envelope, ApiError> {
    let quota = state
        .quotas
        .lease_count(&name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let held = state.secrets.leases.count_under(&quota.path);
    Ok(Envelope::data(json!({
        "type": "lease-count",
        "name": quota.name,
        "path": quota.path,
        "max_leases": quota.max_leases,
        "counter": held,
    })))
}

/// `DELETE sys/quotas/lease-count/:name`.
pub async fn delete_lease_count(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.quotas.delete_lease_count(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `LIST sys/quotas/lease-count`.
pub async fn list_lease_counts(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Envelope, ApiError> {
    query.require()?;
    keys(state.quotas.lease_count_names().await?)
}

fn keys(names: Vec<String>) -> Result<Envelope, ApiError> {
    if names.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Envelope::data(json!({ "keys": names })))
}

/// Sets the lease-count quota gauges before the metrics are rendered.
pub async fn record_metrics(state: &AppState) {
    let Ok(quotas) = state.quotas.lease_counts().await else {
        return;
    };
    for quota in quotas {
        let held = state.secrets.leases.count_under(&quota.path);
        metrics::gauge!("leasehold_quota_lease_count", "quota" => quota.name.clone())
            .set(held as f64);
        metrics::gauge!("leasehold_quota_lease_count_max", "quota" => quota.name)
            .set(quota.max_leases as f64);
    }
}
