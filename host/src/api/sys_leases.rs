//! `sys/leases/*` (and the older `sys/renew`, `sys/revoke*` aliases): renew,
//! revoke, look up and list leases; revoke by prefix, with or without force;
//! list irrevocable leases. Also `sys/metrics`.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::duration::Seconds;
use super::query::Query;
use super::response::{ApiError, Envelope};
use crate::clock::{rfc3339, unix_now};
use crate::leases::{LeaseEntry, LeaseError};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

fn lease_json(entry: &LeaseEntry) -> Value {
    let now = unix_now();
    json!({
        "id": entry.lease_id,
        // Where it was issued, as OpenBao shows it.
        "path": format!("{}creds/{}", entry.mount_path, entry.role),
        "issue_time": rfc3339(entry.issued_at),
        "expire_time": rfc3339(entry.expire_at),
        "last_renewal": entry.last_renewal.map(rfc3339),
        "renewable": entry.state == crate::leases::LeaseState::Active,
        "ttl": entry.expire_at.saturating_sub(now),
        "state": entry.state.as_str(),
        "revoke_attempts": entry.revoke_attempts,
        "last_error": entry.last_error,
        // The version of the plugin that issued it (leasehold's own field;
        // null for a lease issued before versions were recorded).
        "plugin_version": entry.plugin_version,
    })
}

/// A body naming a lease; also takes what hvac sends alongside.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    #[serde(default)]
    lease_id: Option<String>,
    #[serde(default)]
    increment: Option<Seconds>,
    #[serde(default)]
    sync: Option<bool>,
}

fn lease_id_of(path: Option<String>, body: &LeaseBody) -> Result<String, ApiError> {
    path.filter(|p| !p.is_empty())
        .or_else(|| body.lease_id.clone())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing `lease_id`"))
}

async fn renew_lease(state: &AppState, id: String, body: LeaseBody) -> Result<Envelope, ApiError> {
    let increment = body.increment.unwrap_or_default().0;
    let (entry, warning) = state.secrets.leases.renew(&id, increment).await?;
    let envelope = Envelope::lease(&entry.lease_id, true, entry.ttl, None);
    Ok(match warning {
        Some(warning) => envelope.warn(warning),
        None => envelope,
    })
}

/// `PUT sys/leases/renew`.
pub async fn renew(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<Envelope, ApiError> {
    let id = lease_id_of(None, &body)?;
    renew_lease(&state, id, body).await
}

/// `PUT sys/leases/renew/:lease_id`.
pub async fn renew_path(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<Envelope, ApiError> {
    let id = lease_id_of(Some(id), &body)?;
    renew_lease(&state, id, body).await
}

/// Revokes now (`sync`, the default: 204) or queues it for the worker (202).
async fn revoke_lease(state: &AppState, id: String, sync: bool) -> Result<StatusCode, ApiError> {
    let leases = &state.secrets.leases;
    if sync {
        leases.revoke(&id).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        leases.revoke_later(&id).await?;
        Ok(StatusCode::ACCEPTED)
    }
}

/// `PUT sys/leases/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<StatusCode, ApiError> {
    let id = lease_id_of(None, &body)?;
    revoke_lease(&state, id, body.sync.unwrap_or(true)).await
}

/// `PUT sys/leases/revoke/:lease_id`.
pub async fn revoke_path(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<StatusCode, ApiError> {
    let id = lease_id_of(Some(id), &body)?;
    revoke_lease(&state, id, body.sync.unwrap_or(true)).await
}

/// `PUT sys/leases/lookup`.
pub async fn lookup(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<LeaseBody>,
) -> Result<Envelope, ApiError> {
    let id = lease_id_of(None, &body)?;
    let entry = state.secrets.leases.lookup(&id).await?;
    Ok(Envelope::data(lease_json(&entry)))
}

/// The next path segment of each id under `prefix`, as a directory listing:
/// `db/creds/` lists `ro/` and `rw/`, `db/creds/ro/` lists lease ids.
fn next_segments(prefix: &str, ids: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = ids
        .iter()
        .filter_map(|id| id.strip_prefix(prefix))
        .map(|rest| match rest.find('/') {
            Some(slash) => rest[..=slash].to_owned(),
            None => rest.to_owned(),
        })
        .collect();
    keys.dedup();
    keys
}

async fn list_under(state: &AppState, prefix: String) -> Result<Envelope, ApiError> {
    // The canonical path has no trailing `/`; lease ids do below a prefix.
    let prefix = match prefix.as_str() {
        "" => String::new(),
        p => format!("{p}/"),
    };
    let ids = state.secrets.leases.ids(&prefix).await?;
    let keys = next_segments(&prefix, &ids);
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Envelope::sys(json!({ "keys": keys })))
}

/// `LIST sys/leases/lookup/:prefix`.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(prefix): Path<String>,
) -> Result<Envelope, ApiError> {
    list_under(&state, prefix).await
}

/// `LIST sys/leases/lookup`: the mounts with leases.
pub async fn list_root(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Envelope, ApiError> {
    list_under(&state, String::new()).await
}

/// Body of a prefix revocation (hvac repeats the prefix in it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixBody {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    sync: Option<bool>,
}

async fn revoke_under(
    state: &AppState,
    prefix: &str,
    force: bool,
    sync: bool,
) -> Result<StatusCode, ApiError> {
    if prefix.is_empty() {
        return Err(ApiError::bad_request("a prefix is required"));
    }
    if !sync && !force {
        // Queued at once; the worker revokes them with its retries.
        state.secrets.leases.revoke_prefix_later(prefix).await?;
        return Ok(StatusCode::ACCEPTED);
    }
    let (revoked, failed) = state.secrets.leases.revoke_prefix(prefix, force).await?;
    let Some((id, error)) = failed.first() else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let message = format!(
        "revoked {revoked} lease(s); {} were not and are retried (first: {id}: {error})",
        failed.len()
    );
    // Only deferrals (their targets are paused): all queued, come back later.
    let pauses: Option<Vec<std::time::Duration>> = failed
        .iter()
        .map(|(_, err)| match err {
            LeaseError::Deferred(refused) => refused.retry_after(),
            _ => None,
        })
        .collect();
    Err(match pauses.and_then(|p| p.into_iter().max()) {
        Some(after) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(after),
        None => ApiError::new(StatusCode::BAD_GATEWAY, message),
    })
}

/// `PUT sys/leases/revoke-prefix/:prefix` (sudo).
pub async fn revoke_prefix(
    State(state): State<AppState>,
    _caller: Caller,
    Path(prefix): Path<String>,
    JsonBody(body): JsonBody<PrefixBody>,
) -> Result<StatusCode, ApiError> {
    let _ = body.prefix;
    revoke_under(&state, &prefix, false, body.sync.unwrap_or(true)).await
}

/// `PUT sys/leases/revoke-force/:prefix` (sudo): removes the leases even when
/// the plugin fails. The credentials may stay on the target: Vault's warning
/// applies.
pub async fn revoke_force(
    State(state): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
    JsonBody(body): JsonBody<PrefixBody>,
) -> Result<StatusCode, ApiError> {
    // Forced revocation is always done at once: nothing is retried later.
    let _ = (body.prefix, body.sync);
    tracing::warn!(%prefix, accessor = %caller.entry.accessor, "forced revocation requested");
    revoke_under(&state, &prefix, true, true).await
}

/// `?type=irrevocable`.
#[derive(Deserialize)]
pub struct TypeQuery {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

fn require_irrevocable(query: &TypeQuery) -> Result<(), ApiError> {
    match query.kind.as_deref() {
        Some("irrevocable") => Ok(()),
        _ => Err(ApiError::bad_request(
            "only `type=irrevocable` is supported",
        )),
    }
}

/// `GET sys/leases?type=irrevocable`: leases past their retry budget, with the
/// last error of each.
pub async fn irrevocable(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<TypeQuery>,
) -> Result<Envelope, ApiError> {
    require_irrevocable(&query)?;
    let leases = state.secrets.leases.irrevocable().await?;
    let listed: Vec<Value> = leases
        .iter()
        .map(|l| {
            json!({
                "lease_id": l.lease_id,
                "mount_id": l.mount_uuid,
                "mount_path": l.mount_path,
                "expire_time": rfc3339(l.expire_at),
                "error": l.last_error,
                "revoke_attempts": l.revoke_attempts,
            })
        })
        .collect();
    Ok(Envelope::sys(json!({
        "lease_count": listed.len(),
        "leases": listed,
    })))
}

/// `GET sys/leases/count?type=irrevocable`.
pub async fn count(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<TypeQuery>,
) -> Result<Envelope, ApiError> {
    require_irrevocable(&query)?;
    let mut counts = serde_json::Map::new();
    let mut total = 0;
    for (mount, lease_state, n) in state.secrets.leases.counts() {
        if lease_state == crate::leases::LeaseState::Irrevocable && n > 0 {
            counts.insert(mount, json!(n));
            total += n;
        }
    }
    Ok(Envelope::sys(json!({
        "lease_count": total,
        "counts": counts,
    })))
}

/// `GET sys/metrics`: Prometheus text.
pub async fn metrics(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<MetricsQuery>,
) -> Result<Response, ApiError> {
    super::sys_quotas::record_metrics(&state).await;
    for (mount, lease_state, n) in state.secrets.leases.counts() {
        metrics::gauge!("leasehold_leases", "mount" => mount, "state" => lease_state.as_str())
            .set(n as f64);
    }
    // Vault's default is JSON; Prometheus scrapes with `format=prometheus`.
    match query.format.as_deref() {
        Some("prometheus") => Ok((
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            crate::metrics::render(),
        )
            .into_response()),
        None | Some("") | Some("json") => {
            Ok(axum::Json(crate::metrics::render_json()).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown metrics format `{}`: use `prometheus` or leave it out for JSON",
            other.escape_debug()
        ))),
    }
}

/// `sys/metrics?format=`.
#[derive(Deserialize)]
pub struct MetricsQuery {
    #[serde(default)]
    format: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::next_segments;

    #[test]
    fn listing_shows_one_level() {
        let ids = [
            "db/creds/ro/a".to_owned(),
            "db/creds/ro/b".to_owned(),
            "db/creds/rw/c".to_owned(),
        ];
        assert_eq!(next_segments("db/creds/", &ids), ["ro/", "rw/"]);
        assert_eq!(next_segments("db/creds/ro/", &ids[..2]), ["a", "b"]);
    }
}
