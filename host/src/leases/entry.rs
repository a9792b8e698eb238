//! What the broker remembers about one lease.

use crate::plugin::LeaseInfo;
use serde::{Deserialize, Serialize};

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Written before the plugin's `create`; nothing is known to exist yet.
    Pending,
    /// The credential exists; the lease holds its revocation handle.
    Active,
    /// Revocation failed for longer than the retry budget: still retried, rarely,
    /// and listed for operators.
    Irrevocable,
}

impl LeaseState {
    /// The label used in metrics and lookups.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Irrevocable => "irrevocable",
        }
    }
}

/// A lease as stored (encrypted, in the barrier). The credential itself is never
/// stored; the handle to revoke it is.
#[derive(Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    /// `<mount>creds/<role>/<random>`.
    pub lease_id: String,
    /// Its state.
    pub state: LeaseState,
    /// The mount's path, with its trailing slash (`db/`).
    pub mount_path: String,
    /// The mount's id, stable while it is mounted.
    pub mount_uuid: String,
    /// The role it was issued for.
    pub role: String,
    /// The role's plugin fields at issue time (JSON), so revocation works even
    /// after the role changes or goes.
    pub role_fields: String,
    /// The connection it was issued on.
    pub connection: String,
    /// SHA-256 of the plugin that issued it.
    pub plugin_sha256: String,
    /// The catalog version of the plugin that issued it; `None` for leases
    /// stored before versions were recorded. Renewals and revocations run the
    /// version the mount runs then, whatever this says.
    #[serde(default)]
    pub plugin_version: Option<String>,
    /// Accessor of the token that asked for it; revoking that token revokes it.
    pub token_accessor: String,
    /// The token's display name, as the plugin saw it.
    pub requester: String,
    /// When it was issued (Unix seconds).
    pub issued_at: u64,
    /// The TTL given at the latest issue or renewal.
    pub ttl: u64,
    /// When it expires unless renewed.
    pub expire_at: u64,
    /// The latest it may be renewed to: issue time plus the max TTL in force at
    /// issue, and never past the token's own expiry.
    pub max_expire_at: u64,
    /// The TTL a renewal without an increment asks for.
    pub default_ttl: u64,
    /// When it was last renewed.
    pub last_renewal: Option<u64>,
    /// When the expiry worker looks at it next (its slot in the due index).
    pub due_at: u64,
    /// The plugin's revocation handle, once `create` returned.
    pub handle: Option<String>,
    /// Failed revocation attempts so far.
    pub revoke_attempts: u32,
    /// When revocation first failed.
    pub first_failure_at: Option<u64>,
    /// The latest revocation error, for operators.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for LeaseEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseEntry")
            .field("lease_id", &self.lease_id)
            .field("state", &self.state)
            .field("expire_at", &self.expire_at)
            .field("handle", &self.handle.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl LeaseEntry {
    /// The connection it was issued on, as the worker's lanes and the
    /// plugin runtime's admission know it: `<mount uuid>/<connection>`.
    pub fn lane(&self) -> String {
        format!("{}/{}", self.mount_uuid, self.connection)
    }

    /// What the plugin is told about the lease: the same at create, renew and
    /// revoke, so a plugin can derive the same names each time.
    pub fn info(&self) -> LeaseInfo {
        LeaseInfo {
            lease_id: self.lease_id.clone(),
            mount: self.mount_path.trim_matches('/').to_owned(),
            role: self.role.clone(),
            requester: self.requester.clone(),
            issued_at: self.issued_at,
            ttl_seconds: self.ttl,
            expires_at: self.expire_at,
        }
    }

    /// The mount path of a lease id: what comes before `creds/`.
    pub fn mount_of(lease_id: &str) -> &str {
        lease_id
            .find("/creds/")
            .map_or(lease_id, |at| &lease_id[..=at])
    }
}
