//! Writes the audit entries of every request, around everything else the API
//! does: the request line before any work (refusing the request if no device can
//! record it), the response line after.

use super::AppState;
use super::response::ApiError;
use crate::audit::AuditRegistry;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::time::SystemTime;

/// Who the caller turned out to be, left on the response by the authorization
/// check so the response line can say it.
#[derive(Clone, Debug)]
pub struct AuditedCaller {
    /// The token's accessor.
    pub accessor: String,
    /// Its policies.
    pub policies: Vec<String>,
    /// Its display name.
    pub display_name: String,
}

fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

fn operation(method: &Method, query: Option<&str>) -> &'static str {
    let list = query.is_some_and(|q| q.split('&').any(|p| p == "list=true"));
    match *method {
        Method::GET | Method::HEAD if list => "list",
        Method::GET | Method::HEAD => "read",
        Method::DELETE => "delete",
        _ => "update",
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The middleware.
pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Devices are configured under the barrier: while sealed there is nothing to
    // write to (and only the lifecycle endpoints answer).
    if state.barrier.is_sealed() {
        return next.run(request).await;
    }
    match state.audit.any_enabled().await {
        Ok(false) => return next.run(request).await,
        Ok(true) => {}
        Err(err) => return ApiError::internal(err).into_response(),
    }

    let (parts, body) = request.into_parts();
    // Already in memory and within its path's limit (`read_body`).
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(err) => return ApiError::bad_request(err.to_string()).into_response(),
    };
    let token = parts
        .headers
        .get("x-vault-token")
        .or_else(|| parts.headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").trim().to_owned())
        .unwrap_or_default();
    let request_section = json!({
        "id": crate::ids::uuid(),
        "operation": operation(&parts.method, parts.uri.query()),
        "path": parts.uri.path().trim_start_matches("/v1/"),
        "client_token": token,
        "data": serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
    });
    let request_entry = object(json!({
        "type": "request",
        "time": now(),
        "auth": { "client_token": token },
        "request": request_section,
        "error": "",
    }));
    // The devices of this request: its response goes to the same ones, even if
    // the request seals the barrier (after which none could be read again).
    let devices = match state.audit.devices().await {
        Ok(devices) if !devices.is_empty() => devices,
        Ok(_) => {
            tracing::error!("request refused: no audit device can write");
            return ApiError::internal(crate::audit::AuditError::NoDeviceWrote).into_response();
        }
        Err(err) => return ApiError::internal(err).into_response(),
    };
    if let Err(err) = AuditRegistry::record_to(&devices, &request_entry).await {
        tracing::error!(error = %err, "request refused: audit failed");
        return ApiError::internal(err).into_response();
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;

    let (mut parts, body) = response.into_parts();
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(err) => return ApiError::internal(err).into_response(),
    };
    let data = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    let error = if parts.status.is_client_error() || parts.status.is_server_error() {
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
    } else {
        String::new()
    };
    let caller = parts.extensions.remove::<AuditedCaller>();
    let auth = match caller {
        Some(c) => json!({
            "client_token": token,
            "accessor": c.accessor,
            "policies": c.policies,
            "display_name": c.display_name,
        }),
        None => json!({ "client_token": token }),
    };
    let response_entry = object(json!({
        "type": "response",
        "time": now(),
        "auth": auth,
        "request": request_entry["request"],
        "response": { "status": parts.status.as_u16(), "data": data },
        "error": error,
    }));
    if let Err(err) = AuditRegistry::record_to(&devices, &response_entry).await {
        tracing::error!(error = %err, "response could not be audited");
        return ApiError::internal(err).into_response();
    }
    Response::from_parts(parts, Body::from(bytes))
}
