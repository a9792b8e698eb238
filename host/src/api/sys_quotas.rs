//! `sys/quotas/rate-limit/*` and `sys/quotas/lease-count/*` (Vault
//! Enterprise's resource quotas), and the middleware that applies rate limits.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::duration::Seconds;
use super::response::{ApiError, Envelope};
use super::routes::Resolved;
use crate::quotas::{Client, GroupBy, LeaseCount, RateLimit};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

/// The middleware, right after authorization: a request over its path's rate
/// limit is answered 429 with `Retry-After` before its handler runs. Clients
/// are told apart by the accessor of their (checked) token, or by address, as
/// the quota's `group_by` says; a made-up token never gets this far, so it
/// cannot make buckets.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The canonical path the ACL saw, not the URI's escaped spelling of it.
    let Some(path) = request
        .extensions()
        .get::<Resolved>()
        .map(|resolved| resolved.path.clone())
    else {
        return ApiError::internal("a request reached rate limiting unresolved").into_response();
    };
    let client = Client {
        accessor: request
            .extensions()
            .get::<Caller>()
            .map(|caller| caller.entry.accessor.clone()),
        address: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip()),
    };
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
    #[serde(default)]
    group_by: Option<String>,
    #[serde(default)]
    secondary_rate: Option<f64>,
    /// Always this path's kind here.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// Whether child namespaces inherit it; leasehold has no namespaces, so
    /// it changes nothing.
    #[serde(default)]
    #[allow(dead_code)]
    inheritable: Option<bool>,
}

/// Vault's `type` and `role` fields: the kind must be this path's, and a quota
/// on an auth role's logins cannot be had (leasehold has no auth roles).
fn check_vault_fields(
    expected: &str,
    kind: Option<&str>,
    role: Option<&str>,
) -> Result<(), ApiError> {
    same_kind(expected, kind)?;
    if role.is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "field `role`: quotas on an auth role's logins are not supported",
        ));
    }
    Ok(())
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
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    inheritable: Option<bool>,
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
    check_vault_fields("rate-limit", body.kind.as_deref(), body.role.as_deref())?;
    let group_by = match body.group_by.as_deref() {
        None | Some("") => GroupBy::default(),
        Some(text) => GroupBy::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "field `group_by`: use ip, none, entity_then_ip or entity_then_none",
            )
        })?,
    };
    if body.secondary_rate.is_some_and(|rate| rate != 0.0) {
        return Err(ApiError::bad_request(
            "field `secondary_rate` is not supported: give the quota one `rate`",
        ));
    }
    state
        .quotas
        .put_rate_limit(RateLimit {
            name,
            path: body.path.unwrap_or_default(),
            rate: body.rate,
            interval: body.interval.map_or(1, |s| s.0),
            block_interval: body.block_interval.map_or(0, |s| s.0),
            group_by,
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
        "group_by": quota.group_by.as_str(),
        "inheritable": false,
        "role": "",
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
) -> Result<Envelope, ApiError> {
    Envelope::keys(state.quotas.rate_limit_names().await?)
}

/// `PUT sys/quotas/lease-count/:name`.
pub async fn write_lease_count(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<LeaseCountBody>,
) -> Result<StatusCode, ApiError> {
    same_name(&name, body.name.as_deref())?;
    check_vault_fields("lease-count", body.kind.as_deref(), body.role.as_deref())?;
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
) -> Result<Envelope, ApiError> {
    Envelope::keys(state.quotas.lease_count_names().await?)
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
