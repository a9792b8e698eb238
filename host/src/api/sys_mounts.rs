//! `sys/mounts`: mount a catalog plugin at a path, list and read mounts, tune
//! one (its TTLs, description and plugin version), and disable one (revoking
//! its leases first).

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::duration::Seconds;
use super::query::Query;
use super::response::{ApiError, Envelope};
use crate::leases::SYSTEM_MAX_TTL;
use crate::secrets::{MountEntry, MountTune};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// A mount as Vault shows it. A tune of `plugin_version` takes effect at the
/// next call, so the running version is the configured one; `running_sha256`
/// names the component registered for it.
async fn mount_json(state: &AppState, mount: &MountEntry) -> Result<Value, ApiError> {
    let running = state.secrets.running_plugin(mount).await?;
    Ok(json!({
        "type": mount.kind,
        "description": mount.description,
        "accessor": mount.accessor,
        "uuid": mount.uuid,
        "config": {
            "default_lease_ttl": mount.default_lease_ttl,
            "max_lease_ttl": mount.max_lease_ttl,
            "force_no_cache": false,
        },
        "options": {},
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "plugin_version": mount.plugin_version.clone().unwrap_or_default(),
        "running_plugin_version": mount.plugin_version.clone().unwrap_or_default(),
        "running_sha256": running.map(|entry| entry.sha256).unwrap_or_default(),
    }))
}

/// `GET sys/mounts`.
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Result<Envelope, ApiError> {
    let mut mounts = Map::new();
    for mount in state.secrets.mounts.all().await?.values() {
        mounts.insert(mount.path.clone(), mount_json(&state, mount).await?);
    }
    Ok(Envelope::sys(Value::Object(mounts)))
}

/// `GET sys/mounts/:path`, and `GET sys/mounts/:path/tune`.
pub async fn read(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> Result<Envelope, ApiError> {
    if let Some(path) = path.strip_suffix("/tune") {
        let mount = state.secrets.mount_at(path).await?;
        return Ok(Envelope::sys(tune_json(&mount)));
    }
    let mount = state.secrets.mount_at(&path).await?;
    Ok(Envelope::sys(mount_json(&state, &mount).await?))
}

/// A mount's tunable settings as Vault shows them: TTLs in seconds, the
/// system's where the mount has none, and the plugin version it runs.
fn tune_json(mount: &MountEntry) -> Value {
    let or_system = |ttl: u64| if ttl == 0 { SYSTEM_MAX_TTL } else { ttl };
    let mut tune = json!({
        "description": mount.description,
        "default_lease_ttl": or_system(mount.default_lease_ttl),
        "max_lease_ttl": or_system(mount.max_lease_ttl),
        "force_no_cache": false,
    });
    if let Some(version) = &mount.plugin_version {
        tune["plugin_version"] = json!(version);
    }
    tune
}

/// `POST sys/mounts/:path/tune`: TTLs, description and `plugin_version`;
/// Vault's other settings are accepted and have no effect here.
///
/// Unlike Vault, a new `plugin_version` is what the next call runs (a
/// reload after it is harmless), and choosing it needs `sudo`: another
/// version is other code, handed the stored root credentials of the
/// mount's connections.
async fn tune(
    state: &AppState,
    caller: &Caller,
    path: &str,
    body: &Value,
) -> Result<StatusCode, ApiError> {
    let config: MountConfigBody = super::body::into(body)?;
    let plugin_version = config.plugin_version.filter(|v| !v.is_empty());
    if plugin_version.is_some() && !caller.sudo {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission denied: changing a mount's plugin_version needs sudo on this path",
        ));
    }
    state
        .secrets
        .tune(
            path,
            MountTune {
                default_lease_ttl: config.default_lease_ttl.map(|s| s.0),
                max_lease_ttl: config.max_lease_ttl.map(|s| s.0),
                description: config.description,
                plugin_version,
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `config` of a mount request, with every field Vault's Go client
/// (`api.MountConfigInput`) sends; those leasehold has no use for are accepted
/// and ignored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "Vault's fields are accepted, not all are used")]
pub struct MountConfigBody {
    #[serde(default)]
    default_lease_ttl: Option<Seconds>,
    #[serde(default)]
    max_lease_ttl: Option<Seconds>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    plugin_version: Option<String>,
    #[serde(default)]
    force_no_cache: Option<bool>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    listing_visibility: Option<String>,
    #[serde(default)]
    audit_non_hmac_request_keys: Option<Vec<String>>,
    #[serde(default)]
    audit_non_hmac_response_keys: Option<Vec<String>>,
    #[serde(default)]
    passthrough_request_headers: Option<Vec<String>>,
    #[serde(default)]
    allowed_response_headers: Option<Vec<String>>,
    #[serde(default)]
    allowed_managed_keys: Option<Vec<String>>,
    #[serde(default)]
    delegated_auth_accessors: Option<Vec<String>>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    identity_token_key: Option<String>,
    #[serde(default)]
    user_lockout_config: Option<Value>,
}

/// Body of `POST sys/mounts/:path`, with the fields Vault clients send (as
/// nulls when unset).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    config: Option<MountConfigBody>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    plugin_name: Option<String>,
    #[serde(default)]
    plugin_version: Option<String>,
    #[serde(default)]
    local: Option<bool>,
    #[serde(default)]
    seal_wrap: Option<bool>,
    #[serde(default)]
    external_entropy_access: Option<bool>,
}

/// `POST sys/mounts/:path`.
pub async fn mount(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    if let Some(path) = path.strip_suffix("/tune") {
        return tune(&state, &caller, path, &body).await;
    }
    let body: MountBody = super::body::into(&body)?;
    if body.local == Some(true) || body.seal_wrap == Some(true) {
        return Err(ApiError::bad_request(
            "`local` and `seal_wrap` are not supported: every mount is local and every value is encrypted",
        ));
    }
    let _ = (body.options, body.external_entropy_access);
    let kind = match (body.kind.as_str(), body.plugin_name) {
        ("plugin", Some(name)) => name,
        ("plugin", None) => {
            return Err(ApiError::bad_request("type `plugin` needs `plugin_name`"));
        }
        (kind, _) => kind.to_owned(),
    };
    let config = body.config.unwrap_or_default();
    // Either place, whichever is not empty (the Go client sends both).
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let plugin_version = given(body.plugin_version).or(given(config.plugin_version));
    let description = given(body.description).or(given(config.description));
    state
        .secrets
        .mount(
            &path,
            &kind,
            plugin_version.as_deref(),
            description.unwrap_or_default(),
            config.default_lease_ttl.unwrap_or_default().0,
            config.max_lease_ttl.unwrap_or_default().0,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?force=true`.
#[derive(Deserialize)]
pub struct ForceQuery {
    #[serde(default, deserialize_with = "super::query::go_bool_field")]
    force: Option<bool>,
}

/// `DELETE sys/mounts/:path`: revokes the mount's leases, then removes it with
/// its connections and roles.
pub async fn unmount(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    Query(query): Query<ForceQuery>,
) -> Result<StatusCode, ApiError> {
    let force = query.force.unwrap_or(false);
    // Forcing drops leases unrevoked, as `sys/leases/revoke-force` does: sudo.
    if force && !caller.sudo {
        return Err(ApiError::permission_denied());
    }
    state.secrets.unmount(&path, force).await?;
    Ok(StatusCode::NO_CONTENT)
}
