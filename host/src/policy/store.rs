//! Policies in the barrier, with the built-in `root`, `default` and
//! `response-wrapping`.

use super::acl::Acl;
use super::parse::{Policy, PolicyError, parse};
use crate::barrier::{Barrier, BarrierError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const PREFIX: &str = "sys/policy/";

/// What a token gets whatever else it has: looking after itself and its leases.
pub const DEFAULT_POLICY: &str = r#"
# Look up, renew and revoke the token itself.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
# Ask what the token may do on a path.
path "sys/capabilities-self" { capabilities = ["update"] }
# Renew and look up leases (the lease id is the proof of ownership).
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/renew" { capabilities = ["update"] }
# Wrap values, look up and unwrap response-wrapping tokens.
path "sys/wrapping/wrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
path "sys/wrapping/unwrap" { capabilities = ["update"] }
"#;

/// The one policy of a response-wrapping token, as Vault names it: it may
/// unwrap itself and do nothing else. Fixed: it cannot be written, deleted or
/// given to a token by `auth/token/create`.
pub const RESPONSE_WRAPPING_POLICY: &str = "response-wrapping";

const RESPONSE_WRAPPING_RULES: &str = r#"
path "sys/wrapping/unwrap" { capabilities = ["update"] }
"#;

/// Why a policy change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    /// The document is wrong.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// `root` and `response-wrapping` cannot be written or deleted; `default`
    /// cannot be deleted.
    #[error("the `{0}` policy cannot be {1}")]
    BuiltIn(String, &'static str),
    /// A name that is not a valid policy name.
    #[error("policy name `{0}` is invalid: use letters, digits, `-`, `_` and `.`")]
    BadName(String),
    /// Storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// Stored policies.
#[derive(Clone)]
pub struct PolicyStore {
    barrier: Arc<Barrier>,
    /// ACLs already built, by the policy names they are of: every request
    /// needs its token's, and reading and parsing its policies each time is
    /// most of authorization's cost. Emptied by every policy write or delete.
    acls: Arc<Mutex<AclCache>>,
}

/// Most sets of policy names kept; tokens share a few sets, so past this the
/// cache starts over rather than tracking use.
const MAX_CACHED_ACLS: usize = 4096;

#[derive(Default)]
struct AclCache {
    /// Bumped by every change: an ACL built from what was read before a change
    /// is not kept after it.
    generation: u64,
    built: HashMap<Vec<String>, Arc<Acl>>,
}

impl PolicyStore {
    fn acl_cache(&self) -> std::sync::MutexGuard<'_, AclCache> {
        self.acls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every cached ACL (a policy changed).
    fn changed(&self) {
        let mut cache = self.acl_cache();
        cache.generation += 1;
        cache.built.clear();
    }
}

fn check_name(name: &str) -> Result<(), PolicyStoreError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(PolicyStoreError::BadName(name.to_owned()))
    }
}

impl PolicyStore {
    /// Policies stored in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            acls: Arc::default(),
        }
    }

    /// The text of policy `name`, if it exists.
    pub async fn read(&self, name: &str) -> Result<Option<String>, PolicyStoreError> {
        let name = name.to_ascii_lowercase();
        if name == "root" {
            return Ok(Some(String::new()));
        }
        if name == RESPONSE_WRAPPING_POLICY {
            return Ok(Some(RESPONSE_WRAPPING_RULES.to_owned()));
        }
        match self.barrier.get(&format!("{PREFIX}{name}")).await? {
            Some(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            None if name == "default" => Ok(Some(DEFAULT_POLICY.to_owned())),
            None => Ok(None),
        }
    }

    /// Checks and stores policy `name`.
    pub async fn write(&self, name: &str, text: &str) -> Result<Policy, PolicyStoreError> {
        let name = name.to_ascii_lowercase();
        check_name(&name)?;
        if name == "root" || name == RESPONSE_WRAPPING_POLICY {
            return Err(PolicyStoreError::BuiltIn(name, "changed"));
        }
        let policy = parse(&name, text)?;
        self.barrier
            .put(&format!("{PREFIX}{name}"), text.as_bytes())
            .await?;
        self.changed();
        Ok(policy)
    }

    /// Deletes policy `name` (deleting an absent one is not an error).
    pub async fn delete(&self, name: &str) -> Result<(), PolicyStoreError> {
        let name = name.to_ascii_lowercase();
        if ["root", "default", RESPONSE_WRAPPING_POLICY].contains(&name.as_str()) {
            return Err(PolicyStoreError::BuiltIn(name, "deleted"));
        }
        self.barrier.delete(&format!("{PREFIX}{name}")).await?;
        self.changed();
        Ok(())
    }

    /// Every policy name, with `root` and `default` (not `response-wrapping`,
    /// which no one assigns, as in Vault).
    pub async fn list(&self) -> Result<Vec<String>, PolicyStoreError> {
        let mut names: Vec<String> = self
            .barrier
            .list(PREFIX)
            .await?
            .into_iter()
            .filter_map(|key| key.strip_prefix(PREFIX).map(str::to_owned))
            .filter(|name| name != RESPONSE_WRAPPING_POLICY)
            .collect();
        for built_in in ["default", "root"] {
            if !names.iter().any(|n| n == built_in) {
                names.push(built_in.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The ACL of a token holding `names`. Missing policies grant nothing.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>, PolicyStoreError> {
        let generation = {
            let cache = self.acl_cache();
            if let Some(acl) = cache.built.get(names) {
                return Ok(acl.clone());
            }
            cache.generation
        };
        let acl = Arc::new(self.build_acl(names).await?);
        let mut cache = self.acl_cache();
        if cache.generation == generation {
            if cache.built.len() >= MAX_CACHED_ACLS {
                cache.built.clear();
            }
            cache.built.insert(names.to_vec(), acl.clone());
        }
        Ok(acl)
    }

    async fn build_acl(&self, names: &[String]) -> Result<Acl, PolicyStoreError> {
        if names.iter().any(|n| n == "root") {
            return Ok(Acl::root());
        }
        let mut policies = Vec::with_capacity(names.len());
        for name in names {
            if let Some(text) = self.read(name).await? {
                // A stored policy was checked when written; one that no longer
                // parses (written by an older version) grants nothing.
                match parse(name, &text) {
                    Ok(policy) => policies.push(policy),
                    Err(err) => {
                        tracing::warn!(policy = %name, error = %err, "ignoring a policy that does not parse")
                    }
                }
            }
        }
        Ok(Acl::from_policies(&policies))
    }
}
