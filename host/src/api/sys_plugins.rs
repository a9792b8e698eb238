//! `sys/plugins/catalog`: register, read, list and deregister plugins; and
//! `sys/plugins/reload/backend`: compile what mounts run again.
//!
//! A registration names the component's `sha256` and gives its bytes, either
//! uploaded (`wasm`, base64) or as a file name in the configured plugin
//! directory (`command`, as in Vault). `secret` and `database` in the path are
//! the same catalog.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::query::Query;
use super::response::{ApiError, Envelope};
use crate::catalog::CatalogEntry;
use crate::secrets::Reload;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest component accepted for upload.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

const TYPES: &[&str] = &["secret", "database"];

fn check_type(kind: &str) -> Result<(), ApiError> {
    if TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "plugin type `{kind}`: leasehold plugins are `secret` (or `database`) plugins"
        )))
    }
}

fn entry_json(entry: &CatalogEntry) -> Value {
    let schema = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    json!({
        "name": entry.name,
        "type": "secret",
        "version": entry.version,
        "sha256": entry.sha256,
        "builtin": entry.builtin,
        "description": entry.description,
        "can_renew": entry.can_renew,
        "can_rotate_root": entry.can_rotate_root,
        "contract_version": entry.contract_version,
        "config_schema": schema(&entry.config_schema),
        "role_schema": schema(&entry.role_schema),
        "registered_at": crate::clock::rfc3339(entry.registered_at),
    })
}

/// `GET sys/plugins/catalog`: every plugin, Vault's shape plus `detailed`.
pub async fn catalog(State(state): State<AppState>, _caller: Caller) -> Result<Envelope, ApiError> {
    let entries = state.secrets.catalog.list().await?;
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.dedup();
    let detailed: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(Envelope::sys(json!({
        "secret": names,
        "database": [],
        "auth": [],
        "detailed": detailed,
    })))
}

/// `LIST sys/plugins/catalog/:type`.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(kind): Path<String>,
) -> Result<Envelope, ApiError> {
    check_type(&kind)?;
    let mut names: Vec<String> = state
        .secrets
        .catalog
        .list()
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.dedup();
    Ok(Envelope::sys(json!({ "keys": names })))
}

/// `?version=`.
#[derive(Deserialize)]
pub struct VersionQuery {
    #[serde(default)]
    version: Option<String>,
}

/// `GET sys/plugins/catalog/:type/:name`: one version (the highest by default).
pub async fn read(
    State(state): State<AppState>,
    _caller: Caller,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<VersionQuery>,
) -> Result<Envelope, ApiError> {
    check_type(&kind)?;
    let entry = state
        .secrets
        .catalog
        .get(&name, query.version.as_deref())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut data = entry_json(&entry);
    data["versions"] = json!(
        state
            .secrets
            .catalog
            .versions(&name)
            .await?
            .into_iter()
            .map(|e| e.version)
            .collect::<Vec<_>>()
    );
    Ok(Envelope::sys(data))
}

/// Body of a registration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    sha256: String,
    /// Vault's clients repeat the path's type here, as a name or as Go's
    /// `consts.PluginType` number (`bao plugin register` sends 3 for secret).
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(default)]
    wasm: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
}

/// The component's bytes: uploaded, or read from the plugin directory.
fn component_bytes(state: &AppState, body: &RegisterBody) -> Result<Vec<u8>, ApiError> {
    match (&body.wasm, &body.command) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give `wasm` or `command`, not both")),
        (Some(encoded), None) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ApiError::bad_request("`wasm` is not base64")),
        (None, Some(command)) => {
            let dir = state.plugin_dir.as_ref().ok_or_else(|| {
                ApiError::bad_request(
                    "no plugin directory is configured ([plugins] directory); upload the component as `wasm`",
                )
            })?;
            let plain = !command.is_empty()
                && !command.contains('/')
                && !command.contains('\\')
                && command != "."
                && command != "..";
            if !plain {
                return Err(ApiError::bad_request(
                    "`command` is a file name in the plugin directory, without a path",
                ));
            }
            std::fs::read(dir.join(command)).map_err(|err| {
                ApiError::bad_request(format!(
                    "reading `{command}` from the plugin directory: {err}"
                ))
            })
        }
        (None, None) => Err(ApiError::bad_request(
            "missing the component: `wasm` (base64 bytes) or `command` (a file in the plugin directory)",
        )),
    }
}

/// `PUT sys/plugins/catalog/:type/:name`.
pub async fn register(
    State(state): State<AppState>,
    _caller: Caller,
    Path((kind, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<StatusCode, ApiError> {
    check_type(&kind)?;
    let said = match &body.kind {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if name.is_empty() => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(Value::Number(n)) => Some(
            match n.as_u64() {
                Some(1) => "auth",
                Some(2) => "database",
                Some(3) => "secret",
                _ => "unknown",
            }
            .to_owned(),
        ),
        Some(_) => return Err(ApiError::bad_request("field `type` has the wrong type")),
    };
    // A `database` plugin is a `secret` one here (see `check_type`).
    if let Some(said) = said.filter(|s| *s != kind && !TYPES.contains(&s.as_str())) {
        return Err(ApiError::bad_request(format!(
            "`type` is `{}` but the path registers a `{kind}` plugin",
            said.escape_debug()
        )));
    }
    if body.args.as_ref().is_some_and(|a| !a.is_empty())
        || body.env.as_ref().is_some_and(|e| !e.is_empty())
    {
        return Err(ApiError::bad_request(
            "`args` and `env` do not apply: a plugin is a sandboxed component, not a process",
        ));
    }
    let bytes = component_bytes(&state, &body)?;
    state
        .secrets
        .catalog
        .register(
            &bytes,
            &body.sha256,
            Some(&name),
            body.version.as_deref(),
            false,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE sys/plugins/catalog/:type/:name`: one version (`?version=`), or every
/// version. Refused while a mount or connection uses it.
pub async fn deregister(
    State(state): State<AppState>,
    _caller: Caller,
    Path((kind, name)): Path<(String, String)>,
    Query(query): Query<VersionQuery>,
) -> Result<StatusCode, ApiError> {
    check_type(&kind)?;
    let catalog = &state.secrets.catalog;
    let entries: Vec<CatalogEntry> = match query.version.as_deref().filter(|v| !v.is_empty()) {
        Some(version) => catalog
            .get(&name, Some(version))
            .await?
            .into_iter()
            .collect(),
        None => catalog.versions(&name).await?,
    };
    for entry in &entries {
        if let Some(user) = state.secrets.plugin_user(entry).await? {
            return Err(ApiError::bad_request(format!(
                "plugin `{}` version {} is in use by {user}",
                entry.name, entry.version
            )));
        }
    }
    for entry in &entries {
        catalog.deregister(entry).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `sys/plugins/reload/backend`, as Vault's clients send it (the Go
/// client sends all three, empty when unset).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadBody {
    #[serde(default)]
    plugin: Option<String>,
    /// A list, or one comma-separated string.
    #[serde(default)]
    mounts: Option<Value>,
    /// One node: `global` is the same as the default.
    #[serde(default)]
    scope: Option<String>,
}

/// `PUT sys/plugins/reload/backend` (sudo): the plugin versions that the
/// mounts of `plugin`, or the `mounts` named, run are read from the catalog
/// and compiled again; the next calls get the fresh components, calls in
/// flight finish on theirs. Exactly one of `plugin` and `mounts`. Answers
/// Vault's `reload_id` (the response's request id).
pub async fn reload(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<ReloadBody>,
) -> Result<Envelope, ApiError> {
    if !matches!(body.scope.as_deref(), None | Some("" | "global")) {
        return Err(ApiError::bad_request(
            "`scope` is empty or `global` (one node: the same)",
        ));
    }
    let plugin = body.plugin.filter(|p| !p.is_empty());
    let mounts = match body.mounts {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => super::mount_paths::strings("mounts", value)?,
    };
    let what = match (plugin, mounts.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::bad_request("give `plugin` or `mounts`, not both"));
        }
        (None, true) => {
            return Err(ApiError::bad_request(
                "give `plugin` (a catalog name) or `mounts` (mount paths)",
            ));
        }
        (Some(plugin), true) => Reload::Plugin(plugin),
        (None, false) => Reload::Mounts(mounts),
    };
    let nothing = match &what {
        Reload::Plugin(name) => format!("no mount runs plugin `{name}`: nothing was reloaded"),
        Reload::Mounts(_) => "no plugin runs on these mounts yet: nothing was reloaded".into(),
    };
    let reloaded = state.secrets.reload(what).await?;
    let id = crate::ids::uuid();
    let envelope = Envelope::sys(json!({ "reload_id": id })).with_request_id(id);
    Ok(if reloaded.is_empty() {
        envelope.warn(nothing)
    } else {
        envelope
    })
}
