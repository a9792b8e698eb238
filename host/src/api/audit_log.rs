//! Writes the audit entries of every request: the request line before any work
//! (refusing the request if no device can record it), the response line after.
//!
//! An authorized request is recorded with the body exactly as the handler will
//! act on it ([`RequestData`], parsed once). A request refused by authorization
//! is recorded by [`record_refused`] with its path, operation, status and remote
//! address only: its body is never read, so an anonymous client cannot make
//! the log grow by more than a line per request.

use super::AppState;
use super::authorize::Caller;
use super::body::RequestData;
use super::response::ApiError;
use super::routes::{Operation, Resolved};
use crate::audit::{AuditDevice, AuditRegistry, Durability};
use crate::policy::Capability;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

/// Vault's name for what the request did.
fn operation(resolved: &Resolved, capability: Option<Capability>) -> &'static str {
    match (resolved.operation, capability) {
        (Operation::Write, Some(Capability::Create)) => "create",
        (Operation::Write, _) => "update",
        (Operation::Read, _) => "read",
        (Operation::List, _) => "list",
        (Operation::Delete, _) => "delete",
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The request's token as sent (HMAC'd by each device).
fn token_of(parts: &Parts) -> String {
    super::authorize::presented_text(&parts.headers)
        .unwrap_or_default()
        .to_owned()
}

/// The query string as name to value (a name given twice keeps its last).
fn query_of(parts: &Parts) -> Value {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).unwrap_or_default();
    Value::Object(
        pairs
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect(),
    )
}

/// The request section: what was asked, where from, on which mount. `data` is
/// the body as the handler sees it, or nothing for a refused request.
fn request_section(
    parts: &Parts,
    resolved: &Resolved,
    caller: Option<&Caller>,
    data: Value,
) -> Value {
    let capability = caller.map(|c| c.capability);
    let remote = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_default();
    let mut section = json!({
        "id": crate::ids::uuid(),
        "operation": operation(resolved, capability),
        "path": resolved.path,
        "client_token": token_of(parts),
        "client_token_accessor": caller.map(|c| c.entry.accessor.as_str()).unwrap_or(""),
        "remote_address": remote,
        // Names in clear, values HMAC'd like any data: a query may carry a
        // token (`sys/wrapping/lookup?token=`).
        "query": query_of(parts),
        "data": data,
    });
    if let Ok(Some(super::wrap_response::WrapTtl(ttl))) =
        super::wrap_response::requested(&parts.headers)
    {
        section["wrap_ttl"] = json!(ttl);
    }
    if let Some(mount) = &resolved.mount {
        section["mount_point"] = json!(mount.path);
        section["mount_type"] = json!(mount.kind);
        section["mount_accessor"] = json!(mount.accessor);
    }
    section
}

/// The response section in Vault's shape: the answer's `data` (a credential's
/// fields straight under it), `secret.lease_id` (kept in clear to correlate
/// with leases), `auth`, `wrap_info` (a wrapped response: its token and
/// accessors HMAC'd, never what it wraps, which this layer does not see) and
/// `warnings`; plus the mount and our `status`. An answer that is not an
/// envelope (health, seal status, metrics) is recorded whole as `data`.
fn response_section(status: axum::http::StatusCode, resolved: &Resolved, body: Value) -> Value {
    let mut section = json!({ "status": status.as_u16() });
    if let Some(mount) = &resolved.mount {
        section["mount_point"] = json!(mount.path);
        section["mount_type"] = json!(mount.kind);
        section["mount_accessor"] = json!(mount.accessor);
    }
    let Value::Object(mut body) = body else {
        section["data"] = body;
        return section;
    };
    if !body.contains_key("request_id") {
        body.remove("errors");
        section["data"] = Value::Object(body);
        return section;
    }
    if let Some(data) = body.remove("data").filter(|d| !d.is_null()) {
        section["data"] = data;
    }
    if let Some(lease_id) = body
        .remove("lease_id")
        .filter(|id| id.as_str().is_some_and(|s| !s.is_empty()))
    {
        section["secret"] = json!({ "lease_id": lease_id });
    }
    for field in ["auth", "wrap_info", "warnings"] {
        if let Some(value) = body.remove(field).filter(|v| !v.is_null()) {
            section[field] = value;
        }
    }
    section
}

/// The devices that will record this request, or `None` if none is enabled.
async fn devices(state: &AppState) -> Result<Option<Vec<Arc<AuditDevice>>>, ApiError> {
    // Devices are configured under the barrier: while sealed there is nothing to
    // write to (and only the lifecycle endpoints answer).
    if state.barrier.is_sealed()
        || !state
            .audit
            .any_enabled()
            .await
            .map_err(ApiError::internal)?
    {
        return Ok(None);
    }
    match state.audit.devices().await {
        Ok(devices) if !devices.is_empty() => Ok(Some(devices)),
        Ok(_) => {
            tracing::error!("request refused: no audit device can write");
            Err(ApiError::internal(crate::audit::AuditError::NoDeviceWrote))
        }
        Err(err) => Err(ApiError::internal(err)),
    }
}

/// The errors of a failed response, joined, for the entry's `error`.
fn errors_of(status: axum::http::StatusCode, data: &Value) -> String {
    if !(status.is_client_error() || status.is_server_error()) {
        return String::new();
    }
    data.get("errors")
        .and_then(|e| e.as_array())
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// The middleware, for authorized (and open) requests.
pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let devices = match devices(&state).await {
        Ok(Some(devices)) => devices,
        Ok(None) => return next.run(request).await,
        Err(err) => return err.into_response(),
    };
    let (parts, body) = request.into_parts();
    let Some(resolved) = parts.extensions.get::<Resolved>().cloned() else {
        return ApiError::internal("a request reached the audit log unresolved").into_response();
    };
    let caller = parts.extensions.get::<Caller>().cloned();
    // An open route (health, init, unseal) answers anyone: its body is not
    // recorded, so an anonymous client cannot make the log grow by it.
    let data = match parts.extensions.get::<RequestData>() {
        Some(data) if !resolved.route.unauthenticated => Value::clone(&data.0),
        _ => Value::Null,
    };
    let token = token_of(&parts);
    // Vault's `auth` section, on the request line and the response line alike.
    let auth = match &caller {
        Some(c) => json!({
            "client_token": token,
            "accessor": c.entry.accessor,
            "policies": c.entry.policies,
            "token_policies": c.entry.policies,
            "display_name": c.entry.display_name,
            "metadata": c.entry.meta,
        }),
        None => json!({ "client_token": token }),
    };
    let request_entry = object(json!({
        "type": "request",
        "time": now(),
        "auth": auth,
        "request": request_section(&parts, &resolved, caller.as_ref(), data),
        "error": "",
    }));
    // The devices of this request: its response goes to the same ones, even if
    // the request seals the barrier (after which none could be read again).
    // Written, not yet fsynced: the response line's fsync makes both durable
    // before the response leaves.
    if let Err(err) = AuditRegistry::record_to(
        &devices,
        request_entry.clone(),
        resolved.route.in_clear,
        Durability::Written,
    )
    .await
    {
        tracing::error!(error = %err, "request refused: audit failed");
        return ApiError::internal(err).into_response();
    }

    let response = next.run(Request::from_parts(parts, body)).await;

    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(err) => return ApiError::internal(err).into_response(),
    };
    let body = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    let response_entry = object(json!({
        "type": "response",
        "time": now(),
        "auth": auth,
        "request": request_entry["request"],
        "error": errors_of(parts.status, &body),
        "response": response_section(parts.status, &resolved, body),
    }));
    if let Err(err) = AuditRegistry::record_to(
        &devices,
        response_entry,
        resolved.route.in_clear,
        Durability::Synced,
    )
    .await
    {
        tracing::error!(error = %err, "response could not be audited");
        return ApiError::internal(err).into_response();
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Records a request that authorization refused — path, operation, status and
/// remote address, never its body — and returns the refusal.
pub async fn record_refused(
    state: &AppState,
    parts: &Parts,
    resolved: &Resolved,
    refusal: ApiError,
) -> Response {
    let devices = match devices(state).await {
        Ok(Some(devices)) => devices,
        Ok(None) => return refusal.into_response(),
        Err(err) => return err.into_response(),
    };
    let section = request_section(parts, resolved, None, Value::Null);
    let error = refusal.messages().join("; ");
    let refusal = refusal.into_response();
    let auth = json!({ "client_token": token_of(parts) });
    // Both lines, as Vault writes them, so consumers pairing requests with
    // responses find the pair.
    let entries = [
        (
            json!({ "type": "request", "time": now(), "auth": auth, "request": section,
                    "error": error }),
            Durability::Written,
        ),
        (
            json!({ "type": "response", "time": now(), "auth": auth, "request": section,
                    "error": error, "response": { "status": refusal.status().as_u16() } }),
            Durability::Synced,
        ),
    ];
    for (entry, durability) in entries {
        if let Err(err) = AuditRegistry::record_to(&devices, object(entry), &[], durability).await {
            tracing::error!(error = %err, "a refused request could not be audited");
            return ApiError::internal(err).into_response();
        }
    }
    refusal
}
