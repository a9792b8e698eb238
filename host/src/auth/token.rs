//! Token entries, stored by hash.

use crate::barrier::{Barrier, BarrierError, BarrierOp};
use crate::ids::random_text;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const BY_HASH: &str = "auth/token/id/";
const BY_ACCESSOR: &str = "auth/token/accessor/";

/// A token as its holder presents it. Redacted in `Debug`, wiped on drop.
#[derive(Clone)]
pub struct Token(SecretString);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Wraps a token received in a request.
    pub fn from_request(value: &str) -> Self {
        Self(SecretString::from(value.to_owned()))
    }

    /// The token, to hand to its holder exactly once.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    fn generate(prefix: &str) -> Self {
        Self(SecretString::from(format!("{prefix}{}", random_text(24))))
    }

    /// What is stored instead of the token.
    fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.expose_secret().as_bytes()))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a token may do and for how long. Holds no secret: the accessor names the
/// token without granting its power.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Names the token for lookups and revocation without being it.
    pub accessor: String,
    /// Policies in force.
    pub policies: Vec<String>,
    /// Shown in usernames issued to this token.
    pub display_name: String,
    /// Free-form key/values from the creator.
    pub meta: BTreeMap<String, String>,
    /// Unix seconds.
    pub creation_time: u64,
    /// Seconds the token lives for; 0 is forever (root).
    pub ttl: u64,
    /// Unix seconds at which the token expires; `None` never.
    pub expire_time: Option<u64>,
    /// Whether the token has no parent.
    pub orphan: bool,
    /// Whether the token may be renewed.
    pub renewable: bool,
    /// Where it was created (`auth/token/root`, `auth/token/create`).
    pub path: String,
}

impl TokenEntry {
    /// Seconds left, or 0 for a token that never expires.
    pub fn ttl_remaining(&self, now: u64) -> u64 {
        self.expire_time.map_or(0, |at| at.saturating_sub(now))
    }

    /// Whether the token is past its expiry.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expire_time.is_some_and(|at| at <= now)
    }
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No such token, or it expired: the API answers 403 either way.
    #[error("permission denied")]
    Unknown,
    /// Storage under the barrier failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    /// A stored entry does not parse.
    #[error("token entry is corrupt")]
    Corrupt,
}

/// Tokens in the barrier.
#[derive(Clone)]
pub struct TokenStore {
    barrier: Arc<Barrier>,
}

impl TokenStore {
    /// Tokens stored in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self { barrier }
    }

    /// Creates the root token: policy `root`, no expiry, no parent.
    pub async fn create_root(&self) -> Result<(Token, TokenEntry), TokenError> {
        let entry = TokenEntry {
            accessor: random_text(24),
            policies: vec!["root".into()],
            display_name: "root".into(),
            meta: BTreeMap::new(),
            creation_time: now(),
            ttl: 0,
            expire_time: None,
            orphan: true,
            renewable: false,
            path: "auth/token/root".into(),
        };
        let token = Token::generate("hvs.");
        self.store(&token, &entry).await?;
        Ok((token, entry))
    }

    async fn store(&self, token: &Token, entry: &TokenEntry) -> Result<(), TokenError> {
        let hash = token.hash();
        let json = serde_json::to_vec(entry).expect("a token entry serializes");
        self.barrier
            .batch(vec![
                BarrierOp::Put(format!("{BY_HASH}{hash}"), json),
                BarrierOp::Put(
                    format!("{BY_ACCESSOR}{}", entry.accessor),
                    hash.into_bytes(),
                ),
            ])
            .await?;
        Ok(())
    }

    /// The entry of a live token; [`TokenError::Unknown`] for an unknown or expired
    /// one.
    pub async fn lookup(&self, token: &Token) -> Result<TokenEntry, TokenError> {
        let Some(bytes) = self
            .barrier
            .get(&format!("{BY_HASH}{}", token.hash()))
            .await?
        else {
            return Err(TokenError::Unknown);
        };
        let entry: TokenEntry = serde_json::from_slice(&bytes).map_err(|_| TokenError::Corrupt)?;
        if entry.is_expired(now()) {
            return Err(TokenError::Unknown);
        }
        Ok(entry)
    }
}
