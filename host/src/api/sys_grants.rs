//! `sys/grants/:mount`: what a mount's plugin may reach, set and read by a
//! sudo holder (the route table requires sudo). Grant changes are audited like
//! every request, with the grants themselves in clear.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::mount_paths::{string, strings};
use super::response::{ApiError, Envelope};
use crate::secrets::MountGrants;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

/// Request fields that are grants, recorded in clear by the audit log: an
/// operator reading it must see what was granted.
pub const GRANT_FIELDS: &[&str] = &["allowed_hosts", "allowed_origins", "directory"];

fn grants_json(grants: &MountGrants) -> Value {
    json!({
        "allowed_hosts": grants.allowed_hosts,
        "allowed_origins": grants.allowed_origins,
        "directory": grants.directory,
    })
}

/// `GET sys/grants/:mount`.
pub async fn read(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
) -> Result<Envelope, ApiError> {
    let mount = state.secrets.mount_at(&path).await?;
    Ok(Envelope::data(grants_json(&mount.grants)))
}

/// `POST sys/grants/:mount`: replaces the mount's grants; a field left out
/// grants nothing of its kind.
pub async fn write(
    State(state): State<AppState>,
    _caller: Caller,
    Path(path): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Envelope, ApiError> {
    let mut grants = MountGrants::default();
    for (field, value) in body {
        if value.is_null() {
            continue;
        }
        match field.as_str() {
            "allowed_hosts" => grants.allowed_hosts = strings(&field, value)?,
            "allowed_origins" => grants.allowed_origins = strings(&field, value)?,
            "directory" => {
                grants.directory = Some(string(&field, value)?).filter(|d| !d.is_empty())
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown field `{field}`: grants are {}",
                    GRANT_FIELDS.join(", ")
                )));
            }
        }
    }
    let audit_files = state.audit.files().await?;
    let (mount, warnings) = state
        .secrets
        .set_grants(&path, grants, &audit_files)
        .await?;
    tracing::info!(
        mount = %mount.path,
        hosts = ?mount.grants.allowed_hosts,
        origins = ?mount.grants.allowed_origins,
        directory = ?mount.grants.directory,
        "mount grants set"
    );
    Ok(warnings
        .into_iter()
        .fold(Envelope::data(grants_json(&mount.grants)), Envelope::warn))
}
