//! Paths under a mount, in Vault's database-engine shape:
//! `:mount/config/:name`, `:mount/roles/:name`, `:mount/creds/:role`,
//! `:mount/rotate-root/:name`, `:mount/reset/:name`.
//!
//! Mounts come and go at run time, so these paths are not routes: this is the
//! router's fallback, which finds the mount and dispatches on the rest.

use super::AppState;
use super::authorize::{Caller, is_list};
use super::body::JsonBody;
use super::response::{ApiError, Envelope};
use crate::leases::LeaseLimit;
use crate::plugin::{Failure, PluginError};
use crate::secrets::schema::ObjectSchema;
use crate::secrets::{ConnectionWrite, MountEntry, Requester, SecretsError};
use axum::extract::{FromRequest, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

/// A plugin failure as an HTTP error: the request or config is wrong (400), the
/// target is unavailable or refused (502), the connection's or the pool's calls
/// are all taken (429), the target keeps timing out (503), or the plugin broke
/// (500). Refusals carry `Retry-After`.
pub fn plugin_error(err: PluginError) -> ApiError {
    let status = match &err {
        PluginError::Failed(Failure::InvalidConfig(_) | Failure::InvalidRequest(_))
        | PluginError::CapabilityDenied(_) => StatusCode::BAD_REQUEST,
        PluginError::Failed(Failure::Unavailable(_) | Failure::Denied(_))
        | PluginError::Timeout(_) => StatusCode::BAD_GATEWAY,
        PluginError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        PluginError::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let retry = if err.is_retryable() {
        " (retryable)"
    } else {
        ""
    };
    let error = ApiError::new(status, format!("plugin error: {err}{retry}"));
    match err.retry_after() {
        Some(after) => error.retry_after(after),
        None => error,
    }
}

impl From<SecretsError> for ApiError {
    fn from(err: SecretsError) -> Self {
        match err {
            SecretsError::Invalid(message) => ApiError::bad_request(message),
            SecretsError::NotFound => ApiError::not_found(),
            SecretsError::Plugin(err) => plugin_error(err),
            SecretsError::Lease(err) => err.into(),
            SecretsError::Catalog(err) => err.into(),
            SecretsError::Barrier(err) => err.into(),
            SecretsError::Internal(message) => ApiError::internal(message),
        }
    }
}

/// The fallback: a path under a mount, or 404.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    match route(&state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn route(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let full = request.uri().path().to_owned();
    let path = full.trim_start_matches("/v1/");
    let Some((mount, rest)) = state.secrets.resolve(path).await? else {
        return Err(ApiError::no_route(&full));
    };
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(ApiError::permission_denied)?;
    let rest = rest.trim_end_matches('/').to_owned();
    let segments: Vec<&str> = rest.split('/').collect();
    let method = request.method().clone();
    let list = is_list(&request);
    let write = method == Method::PUT || method == Method::POST;
    let read = method == Method::GET || method == Method::HEAD;
    let delete = method == Method::DELETE;
    let secrets = &state.secrets;
    match segments.as_slice() {
        ["config"] if read && list => names(secrets.data.connections(&mount.uuid).await?),
        ["config", name] if read => read_connection(state, &mount, name).await,
        ["config", name] if write => {
            let JsonBody(body) =
                JsonBody::<Map<String, Value>>::from_request(request, state).await?;
            secrets
                .write_connection(&mount, name, connection_write(body)?)
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ["config", name] if delete => {
            secrets.delete_connection(&mount, name).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ["roles"] if read && list => names(secrets.data.roles(&mount.uuid).await?),
        ["roles", name] if read => read_role(state, &mount, name).await,
        ["roles", name] if write => {
            let JsonBody(body) =
                JsonBody::<Map<String, Value>>::from_request(request, state).await?;
            write_role(state, &mount, name, body).await
        }
        ["roles", name] if delete => {
            secrets.data.delete_role(&mount.uuid, name).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ["creds", role] if read && !list => issue(state, &mount, role, &caller).await,
        ["rotate-root", name] if write => {
            secrets.rotate_root(&mount, name).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        // Every plugin call gets a fresh instance, so there is no connection to
        // reset; the endpoint exists because Vault clients call it.
        ["reset", name] if write => {
            secrets.connection(&mount, name).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ["config" | "roles", ..] | ["creds" | "rotate-root" | "reset", _] => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("unsupported operation: {method} on this path"),
        )),
        _ => Err(ApiError::no_route(&full)),
    }
}

fn names(keys: Vec<String>) -> Result<Response, ApiError> {
    Ok(Envelope::keys(keys)?.into_response())
}

/// A list of strings, also accepted as one comma-separated string (Vault does).
fn strings(field: &str, value: Value) -> Result<Vec<String>, ApiError> {
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

fn string(field: &str, value: Value) -> Result<String, ApiError> {
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
    state: &AppState,
    mount: &MountEntry,
    name: &str,
) -> Result<Response, ApiError> {
    let (connection, entry) = state.secrets.connection(mount, name).await?;
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
        "connection_details": Value::Object(schema.without_secrets(&connection.config)),
    }))
    .into_response())
}

async fn read_role(state: &AppState, mount: &MountEntry, name: &str) -> Result<Response, ApiError> {
    let role = state.secrets.role(mount, name).await?;
    // Without the plugin's schema there is no telling which fields are secret:
    // show none of them.
    let mut data = match state.secrets.connection(mount, &role.db_name).await {
        Ok((_, entry)) => ObjectSchema::parse(&entry.role_schema).without_secrets(&role.fields),
        Err(_) => Map::new(),
    };
    data.insert("db_name".into(), json!(role.db_name));
    data.insert("default_ttl".into(), json!(role.default_ttl));
    data.insert("max_ttl".into(), json!(role.max_ttl));
    Ok(Envelope::data(Value::Object(data)).into_response())
}

async fn write_role(
    state: &AppState,
    mount: &MountEntry,
    name: &str,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
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
    state: &AppState,
    mount: &MountEntry,
    role: &str,
    caller: &Caller,
) -> Result<Response, ApiError> {
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
