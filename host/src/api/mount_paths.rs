//! Paths under a mount, in Vault's database-engine shape:
//! `:mount/config/:name`, `:mount/roles/:name`, `:mount/creds/:role`,
//! `:mount/rotate-root/:name`, `:mount/reset/:name`.
//!
//! Mounts come and go at run time, so these paths are declared relative to a
//! mount ([`routes`]), each with its handlers, in the same form as the broker's
//! own routes; the front middleware finds the mount and the route, and the
//! router's fallback ([`MountRoutes`]) hands the request to that route.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::response::{ApiError, Envelope};
use super::routes::{Existence, Resolved, Route};
use crate::leases::LeaseLimit;
use crate::secrets::schema::ObjectSchema;
use crate::secrets::{ConnectionWrite, MountEntry, Requester};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

/// The paths under every mount, relative to it, with their handlers.
pub fn routes() -> Vec<Route> {
    vec![
        Route::at("config").list(list_connections),
        Route::at("config/{name}")
            .read(read_connection)
            .write(write_connection)
            .delete(delete_connection)
            .existence(Existence::Connection),
        Route::at("roles").list(list_roles),
        Route::at("roles/{name}")
            .read(read_role)
            .write(write_role)
            .delete(delete_role)
            .existence(Existence::Role),
        Route::at("creds/{name}").read(issue),
        Route::at("rotate-root/{name}").write(rotate_root),
        Route::at("reset/{name}").write(reset),
    ]
}

/// Each mount route's service, by pattern; the router's fallback, since
/// mounts come and go at run time.
#[derive(Clone)]
pub struct MountRoutes(Arc<HashMap<&'static str, MethodRouter>>);

impl MountRoutes {
    /// The services of [`routes`] over `state`.
    pub fn new(state: &AppState) -> Self {
        Self(Arc::new(
            routes()
                .into_iter()
                .map(|route| {
                    let pattern = route.spec.pattern;
                    (pattern, route.into_service(state).with_state(state.clone()))
                })
                .collect(),
        ))
    }

    /// Hands a request the front middleware resolved under a mount to its
    /// route's service.
    pub async fn dispatch(self, request: Request) -> Response {
        let resolved = request.extensions().get::<Resolved>().cloned();
        let service = resolved
            .as_ref()
            .filter(|r| r.mount.is_some())
            .and_then(|r| self.0.get(r.route.pattern).cloned());
        match (service, resolved) {
            (Some(service), _) => service.oneshot(request).await.into_response(),
            (None, Some(resolved)) => ApiError::no_route(&resolved.path).into_response(),
            (None, None) => ApiError::no_route(request.uri().path()).into_response(),
        }
    }
}

/// The mount a request is under and the route's `{name}`.
pub struct UnderMount {
    mount: MountEntry,
    name: String,
}

impl<S: Send + Sync> FromRequestParts<S> for UnderMount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let resolved = parts
            .extensions
            .get::<Resolved>()
            .ok_or_else(|| ApiError::internal("a mount path reached its handler unresolved"))?;
        let mount = resolved
            .mount
            .clone()
            .ok_or_else(|| ApiError::no_route(&resolved.path))?;
        Ok(Self {
            mount,
            name: resolved.param("name").unwrap_or_default().to_owned(),
        })
    }
}

async fn list_connections(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    names(state.secrets.data.connections(&at.mount.uuid).await?)
}

async fn write_connection(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let warnings = state
        .secrets
        .write_connection(&at.mount, &at.name, connection_write(body)?)
        .await?;
    if warnings.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(warnings
        .into_iter()
        .fold(Envelope::data(Value::Null), Envelope::warn)
        .into_response())
}

async fn delete_connection(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    state.secrets.delete_connection(&at.mount, &at.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_roles(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    names(state.secrets.data.roles(&at.mount.uuid).await?)
}

async fn delete_role(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    state
        .secrets
        .data
        .delete_role(&at.mount.uuid, &at.name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate_root(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    state.secrets.rotate_root(&at.mount, &at.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every plugin call gets a fresh instance, so there is no connection to
/// reset; the endpoint exists because Vault clients call it.
async fn reset(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    state.secrets.connection(&at.mount, &at.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn names(keys: Vec<String>) -> Result<Response, ApiError> {
    Ok(Envelope::keys(keys)?.into_response())
}

/// A list of strings, also accepted as one comma-separated string (Vault does).
pub(super) fn strings(field: &str, value: Value) -> Result<Vec<String>, ApiError> {
    let wrong = || ApiError::bad_request(format!("field `{field}` must be a list of strings"));
    match value {
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong))
            .collect(),
        _ => Err(wrong()),
    }
}

pub(super) fn string(field: &str, value: Value) -> Result<String, ApiError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request(format!("field `{field}` must be a string")))
}

fn boolean(field: &str, value: Value) -> Result<bool, ApiError> {
    match value {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(ApiError::bad_request(format!(
            "field `{field}` must be true or false"
        ))),
    }
}

/// A whole number of calls, 1 to 1024; also as a string (Vault's clients send
/// either).
fn count(field: &str, value: Value) -> Result<u32, ApiError> {
    let number = match &value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    number
        .filter(|n| (1..=1024).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "field `{field}` must be a whole number from 1 to 1024"
            ))
        })
}

fn seconds(field: &str, value: Value) -> Result<u64, ApiError> {
    serde_json::from_value::<super::duration::Seconds>(value)
        .map(|s| s.0)
        .map_err(|_| {
            ApiError::bad_request(format!(
                "field `{field}` must be a duration of at most 100 years (seconds, or like 1h, 30m)"
            ))
        })
}

/// Splits a connection body into the broker's fields and the plugin's.
fn connection_write(body: Map<String, Value>) -> Result<ConnectionWrite, ApiError> {
    let mut write = ConnectionWrite {
        plugin_name: None,
        plugin_version: None,
        allowed_roles: None,
        allowed_hosts: None,
        allowed_origins: None,
        directory: None,
        verify_connection: None,
        max_parallel: None,
        config: Map::new(),
    };
    for (field, value) in body {
        if value.is_null() && BROKER_FIELDS.contains(&field.as_str()) {
            continue;
        }
        match field.as_str() {
            "plugin_name" => write.plugin_name = Some(string(&field, value)?),
            "plugin_version" => write.plugin_version = Some(string(&field, value)?),
            "allowed_roles" => write.allowed_roles = Some(strings(&field, value)?),
            "allowed_hosts" => write.allowed_hosts = Some(strings(&field, value)?),
            "allowed_origins" => write.allowed_origins = Some(strings(&field, value)?),
            "directory" => write.directory = Some(string(&field, value)?),
            "verify_connection" => write.verify_connection = Some(boolean(&field, value)?),
            "max_parallel" | "max_open_connections" => {
                write.max_parallel = Some(count(&field, value)?)
            }
            // Sent empty by Vault clients whatever the plugin.
            "root_rotation_statements" if value.as_array().is_some_and(Vec::is_empty) => {}
            // Vault's other database settings go to the plugin's config; what
            // the plugin does not declare is set aside with a warning.
            // The plugin's own field; a null removes it.
            _ => {
                write.config.insert(field, value);
            }
        }
    }
    Ok(write)
}

/// Connection fields the broker reads; every other field is the plugin's.
const BROKER_FIELDS: &[&str] = &[
    "plugin_name",
    "plugin_version",
    "allowed_roles",
    "allowed_hosts",
    "allowed_origins",
    "directory",
    "verify_connection",
    "max_parallel",
    "max_open_connections",
    "root_rotation_statements",
];

async fn read_connection(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    let (connection, entry) = state.secrets.connection(&at.mount, &at.name).await?;
    let schema = ObjectSchema::parse(&entry.config_schema);
    Ok(Envelope::data(json!({
        "plugin_name": connection.plugin_name,
        "plugin_version": connection.plugin_version,
        "allowed_roles": connection.allowed_roles,
        "allowed_hosts": connection.allowed_hosts,
        "allowed_origins": connection.allowed_origins,
        "directory": connection.directory,
        "verify_connection": connection.verify_connection,
        "max_parallel": connection.parallel_calls(schema.max_parallel_hint()),
        // Vault's own fields, for clients that read them.
        "password_policy": "",
        "root_credentials_rotate_statements": [],
        "connection_details": Value::Object(schema.without_secrets(&connection.config)),
    }))
    .into_response())
}

async fn read_role(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    let (mount, name) = (&at.mount, &at.name);
    let role = state.secrets.role(mount, name).await?;
    // Without the plugin's schema there is no telling which fields are secret:
    // show none of them.
    let mut data = match state.secrets.connection(mount, &role.db_name).await {
        Ok((_, entry)) => ObjectSchema::parse(&entry.role_schema).without_secrets(&role.fields),
        Err(_) => Map::new(),
    };
    // Vault's role fields a client reads, where the plugin has none of its own.
    for (field, empty) in [
        ("creation_statements", json!([])),
        ("revocation_statements", json!([])),
        ("rollback_statements", json!([])),
        ("renew_statements", json!([])),
        ("credential_type", json!("password")),
        ("credential_config", json!({})),
    ] {
        data.entry(field).or_insert(empty);
    }
    data.insert("db_name".into(), json!(role.db_name));
    data.insert("default_ttl".into(), json!(role.default_ttl));
    data.insert("max_ttl".into(), json!(role.max_ttl));
    Ok(Envelope::data(Value::Object(data)).into_response())
}

async fn write_role(
    State(state): State<AppState>,
    _caller: Caller,
    at: UnderMount,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let (mount, name) = (&at.mount, at.name.as_str());
    let (mut db_name, mut default_ttl, mut max_ttl) = (None, None, None);
    let mut fields = Map::new();
    for (field, value) in body {
        match field.as_str() {
            "db_name" if !value.is_null() => db_name = Some(string(&field, value)?),
            "default_ttl" if !value.is_null() => default_ttl = Some(seconds(&field, value)?),
            "max_ttl" if !value.is_null() => max_ttl = Some(seconds(&field, value)?),
            "db_name" | "default_ttl" | "max_ttl" => {}
            _ => {
                fields.insert(field, value);
            }
        }
    }
    state
        .secrets
        .write_role(mount, name, db_name, default_ttl, max_ttl, fields)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    at: UnderMount,
) -> Result<Response, ApiError> {
    let (mount, role) = (&at.mount, at.name.as_str());
    let lease_limit = state
        .quotas
        .lease_count_for(&format!("{}creds/{role}", mount.path))
        .await?
        .map(|quota| LeaseLimit {
            name: quota.name,
            path: quota.path,
            max: quota.max_leases,
        });
    let issued = state
        .secrets
        .issue(
            mount,
            role,
            Requester {
                accessor: caller.entry.accessor.clone(),
                display_name: caller.entry.display_name.clone(),
                expire_at: caller.entry.expire_time,
            },
            lease_limit,
        )
        .await?;
    let data: Map<String, Value> = issued
        .credential
        .fields()
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                Value::String(f.value.expose_secret().to_owned()),
            )
        })
        .collect();
    Ok(Envelope::lease(
        &issued.entry.lease_id,
        true,
        issued.entry.ttl,
        Some(Value::Object(data)),
    )
    .into_response())
}
