//! Token entries, stored by hash.

use crate::barrier::{Barrier, BarrierError, BarrierOp};
use crate::clock::unix_now;
use crate::ids::random_text;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

const BY_HASH: &str = "auth/token/id/";
const BY_ACCESSOR: &str = "auth/token/accessor/";
/// `auth/token/parent/<parent accessor>/<child accessor>`: who revokes with whom.
const CHILDREN: &str = "auth/token/parent/";
/// `auth/token/expiry/<expire time, 20 digits>/<accessor>`: what to revoke when.
const EXPIRY: &str = "auth/token/expiry/";

fn expiry_key(expire_time: u64, accessor: &str) -> String {
    format!("{EXPIRY}{expire_time:020}/{accessor}")
}

/// The longest any token lives, and the TTL of one created without a TTL:
/// Vault's system default of 32 days.
pub const MAX_TTL: u64 = 768 * 3600;

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
    /// The parent's accessor; `None` for orphans.
    #[serde(default)]
    pub parent: Option<String>,
    /// The longest the token may live from its creation (seconds); 0 means the
    /// system maximum.
    #[serde(default)]
    pub explicit_max_ttl: u64,
    /// Uses left, 0 for no limit (Vault's `num_uses`): each authorized
    /// request takes one, and the token is revoked after its last.
    #[serde(default)]
    pub num_uses: u64,
    /// Its last use was taken: it authorizes nothing more (and is revoked as
    /// soon as that last request is done).
    #[serde(default)]
    pub spent: bool,
    /// A periodic token's period in seconds (0: not periodic): each renewal
    /// gives it this long again, with no maximum but `explicit_max_ttl`.
    #[serde(default)]
    pub period: u64,
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
    /// Renewing a token created non-renewable.
    #[error("this token is not renewable")]
    NotRenewable,
}

/// What a new child token should be.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its policies (already checked against the parent's).
    pub policies: Vec<String>,
    /// Free-form metadata.
    pub meta: BTreeMap<String, String>,
    /// Shown in usernames issued to it.
    pub display_name: String,
    /// Seconds to live; capped at `explicit_max_ttl` and [`MAX_TTL`].
    pub ttl: u64,
    /// Hard cap on its life in seconds, 0 for the system maximum.
    pub explicit_max_ttl: u64,
    /// Whether it may be renewed.
    pub renewable: bool,
    /// The parent's accessor; `None` makes an orphan.
    pub parent: Option<String>,
    /// The path it was created at.
    pub path: String,
    /// Uses allowed, 0 for no limit (see [`TokenEntry::num_uses`]).
    pub num_uses: u64,
    /// A period, 0 for none (see [`TokenEntry::period`]).
    pub period: u64,
}

/// Tokens in the barrier.
#[derive(Clone)]
pub struct TokenStore {
    barrier: Arc<Barrier>,
    /// Renewals and revocations one at a time, so a renewal cannot write back a
    /// token being revoked, nor the expiry sweeper revoke one just renewed.
    changes: Arc<tokio::sync::Mutex<()>>,
    /// Entries already read, by token hash: every request looks its token up.
    /// Only ever holds what the barrier holds: any write to an entry removes
    /// it, and an entry read before a write is not kept after it.
    cache: Arc<std::sync::Mutex<EntryCache>>,
}

/// Most entries kept; past this the cache starts over.
const MAX_CACHED_TOKENS: usize = 65_536;

#[derive(Default)]
struct EntryCache {
    /// Bumped by every write to an entry.
    generation: u64,
    entries: std::collections::HashMap<String, TokenEntry>,
}

impl TokenStore {
    /// Tokens stored in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            changes: Arc::new(tokio::sync::Mutex::new(())),
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, EntryCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the cached entry of `hash` (it is being written or deleted),
    /// and keeps any read that began before from filling it back in.
    fn invalidate(&self, hash: &str) {
        let mut cache = self.cache();
        cache.generation += 1;
        cache.entries.remove(hash);
    }

    /// Creates the root token: policy `root`, no expiry, no parent.
    pub async fn create_root(&self) -> Result<(Token, TokenEntry), TokenError> {
        let entry = TokenEntry {
            accessor: random_text(24),
            policies: vec!["root".into()],
            display_name: "root".into(),
            meta: BTreeMap::new(),
            creation_time: unix_now(),
            ttl: 0,
            expire_time: None,
            orphan: true,
            renewable: false,
            path: "auth/token/root".into(),
            parent: None,
            explicit_max_ttl: 0,
            num_uses: 0,
            spent: false,
            period: 0,
        };
        let token = Token::generate("hvs.");
        self.store(&token, &entry, None).await?;
        Ok((token, entry))
    }

    /// Writes `entry` with its index keys; `previous_expiry` is the expiry slot
    /// to move it from (a renewal).
    async fn store(
        &self,
        token: &Token,
        entry: &TokenEntry,
        previous_expiry: Option<u64>,
    ) -> Result<(), TokenError> {
        let hash = token.hash();
        let json = serde_json::to_vec(entry).expect("a token entry serializes");
        let mut ops = vec![
            BarrierOp::Put(format!("{BY_HASH}{hash}"), json),
            BarrierOp::Put(
                format!("{BY_ACCESSOR}{}", entry.accessor),
                hash.clone().into_bytes(),
            ),
        ];
        if let Some(previous) = previous_expiry
            && Some(previous) != entry.expire_time
        {
            ops.push(BarrierOp::Delete(expiry_key(previous, &entry.accessor)));
        }
        if let Some(expire_time) = entry.expire_time {
            ops.push(BarrierOp::Put(
                expiry_key(expire_time, &entry.accessor),
                Vec::new(),
            ));
        }
        if let Some(parent) = &entry.parent {
            ops.push(BarrierOp::Put(
                format!("{CHILDREN}{parent}/{}", entry.accessor),
                Vec::new(),
            ));
        }
        self.invalidate(&hash);
        let written = self.barrier.batch(ops).await;
        self.invalidate(&hash);
        written?;
        Ok(())
    }

    /// The hard expiry of a token: creation plus its explicit maximum, or the
    /// system maximum.
    fn max_expiry(entry: &TokenEntry) -> u64 {
        let cap = match (entry.explicit_max_ttl, entry.period) {
            (0, 0) => MAX_TTL,
            // A periodic token lives as long as it is renewed in time.
            (0, _) => return u64::MAX,
            (explicit, _) => explicit.min(MAX_TTL),
        };
        entry.creation_time.saturating_add(cap)
    }

    /// Creates a token.
    pub async fn create(&self, new: NewToken) -> Result<(Token, TokenEntry), TokenError> {
        let now = unix_now();
        let mut entry = TokenEntry {
            accessor: random_text(24),
            policies: new.policies,
            display_name: new.display_name,
            meta: new.meta,
            creation_time: now,
            ttl: 0,
            expire_time: None,
            orphan: new.parent.is_none(),
            renewable: new.renewable,
            path: new.path,
            parent: new.parent,
            explicit_max_ttl: new.explicit_max_ttl,
            num_uses: new.num_uses,
            spent: false,
            period: new.period,
        };
        let ttl = match (new.period, new.ttl) {
            (0, 0) => MAX_TTL,
            (0, ttl) => ttl,
            (period, _) => period,
        };
        let expire_time = now.saturating_add(ttl).min(Self::max_expiry(&entry));
        entry.ttl = expire_time - now;
        entry.expire_time = Some(expire_time);
        let token = Token::generate("hvs.");
        self.store(&token, &entry, None).await?;
        Ok((token, entry))
    }

    async fn hash_of_accessor(&self, accessor: &str) -> Result<Option<String>, TokenError> {
        Ok(self
            .barrier
            .get(&format!("{BY_ACCESSOR}{accessor}"))
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn entry_by_hash(&self, hash: &str) -> Result<Option<TokenEntry>, TokenError> {
        match self.barrier.get(&format!("{BY_HASH}{hash}")).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| TokenError::Corrupt),
            None => Ok(None),
        }
    }

    /// The entry of a live token named by its accessor.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<TokenEntry, TokenError> {
        let hash = self
            .hash_of_accessor(accessor)
            .await?
            .ok_or(TokenError::Unknown)?;
        let entry = self
            .entry_by_hash(&hash)
            .await?
            .ok_or(TokenError::Unknown)?;
        if entry.is_expired(unix_now()) {
            return Err(TokenError::Unknown);
        }
        Ok(entry)
    }

    /// Extends a token from now by `increment` seconds (or its original TTL),
    /// capped at its maximum life. Returns the new entry and whether it was capped.
    pub async fn renew(
        &self,
        token: &Token,
        increment: Option<u64>,
    ) -> Result<(TokenEntry, bool), TokenError> {
        let _changing = self.changes.lock().await;
        let mut entry = self.lookup(token).await?;
        if !entry.renewable {
            return Err(TokenError::NotRenewable);
        }
        let now = unix_now();
        // A periodic token gets its period again, whatever was asked (Vault).
        let wanted = if entry.period > 0 {
            now.saturating_add(entry.period)
        } else {
            now.saturating_add(increment.filter(|i| *i > 0).unwrap_or(entry.ttl))
        };
        let max = Self::max_expiry(&entry);
        let expire_time = wanted.min(max);
        let previous = entry.expire_time;
        entry.expire_time = Some(expire_time);
        entry.ttl = expire_time - now;
        self.store(token, &entry, previous).await?;
        Ok((entry, wanted > max))
    }

    /// Revokes the token with `accessor` and, unless they are orphans, all its
    /// descendants. Revoking an unknown accessor is not an error.
    pub async fn revoke_accessor(&self, accessor: &str) -> Result<usize, TokenError> {
        let _changing = self.changes.lock().await;
        let mut revoked = 0;
        let mut pending = vec![accessor.to_owned()];
        while let Some(accessor) = pending.pop() {
            let prefix = format!("{CHILDREN}{accessor}/");
            let children = self.barrier.list(&prefix).await?;
            pending.extend(
                children
                    .iter()
                    .map(|child| child[prefix.len()..].to_owned()),
            );
            let Some(hash) = self.hash_of_accessor(&accessor).await? else {
                continue;
            };
            let mut ops = vec![
                BarrierOp::Delete(format!("{BY_HASH}{hash}")),
                BarrierOp::Delete(format!("{BY_ACCESSOR}{accessor}")),
            ];
            if let Some(entry) = self.entry_by_hash(&hash).await? {
                if let Some(parent) = entry.parent {
                    ops.push(BarrierOp::Delete(format!("{CHILDREN}{parent}/{accessor}")));
                }
                if let Some(expire_time) = entry.expire_time {
                    ops.push(BarrierOp::Delete(expiry_key(expire_time, &accessor)));
                }
            }
            ops.extend(children.into_iter().map(BarrierOp::Delete));
            self.invalidate(&hash);
            let written = self.barrier.batch(ops).await;
            self.invalidate(&hash);
            written?;
            revoked += 1;
        }
        Ok(revoked)
    }

    /// Revokes `token` and its descendants.
    pub async fn revoke(&self, token: &Token) -> Result<usize, TokenError> {
        match self.accessor_of(token).await? {
            Some(accessor) => self.revoke_accessor(&accessor).await,
            None => Ok(0),
        }
    }

    /// Up to `limit` tokens that expired by `now`, earliest first, as
    /// `(expire time, accessor)`.
    pub async fn expired(&self, now: u64, limit: usize) -> Result<Vec<(u64, String)>, TokenError> {
        let keys = self.barrier.scan(EXPIRY, None, limit).await?;
        Ok(keys
            .iter()
            .filter_map(|key| {
                let (time, accessor) = key[EXPIRY.len()..].split_once('/')?;
                Some((time.parse::<u64>().ok()?, accessor.to_owned()))
            })
            .take_while(|(time, _)| *time <= now)
            .collect())
    }

    /// Whether the token with `accessor` still expires at `slot`, and that is
    /// past: not renewed since the slot was read. Once true it stays true, since
    /// an expired token cannot be renewed.
    pub async fn still_expired(&self, accessor: &str, slot: u64) -> Result<bool, TokenError> {
        let _changing = self.changes.lock().await;
        let Some(hash) = self.hash_of_accessor(accessor).await? else {
            return Ok(false);
        };
        Ok(self
            .entry_by_hash(&hash)
            .await?
            .is_some_and(|entry| entry.expire_time == Some(slot) && slot <= unix_now()))
    }

    /// Removes an expiry slot (after the token is revoked, or when it points at
    /// a token that is already gone).
    pub async fn clear_expiry(&self, expire_time: u64, accessor: &str) -> Result<(), TokenError> {
        self.barrier
            .delete(&expiry_key(expire_time, accessor))
            .await?;
        Ok(())
    }

    /// The accessor of `token`, expired or not, if it is stored.
    pub async fn accessor_of(&self, token: &Token) -> Result<Option<String>, TokenError> {
        Ok(self
            .entry_by_hash(&token.hash())
            .await?
            .map(|entry| entry.accessor))
    }

    /// `accessor` and the accessors of every descendant that is not an orphan:
    /// what [`Self::revoke_accessor`] removes, for revoking their leases first.
    pub async fn family(&self, accessor: &str) -> Result<Vec<String>, TokenError> {
        let mut family = Vec::new();
        let mut pending = vec![accessor.to_owned()];
        while let Some(accessor) = pending.pop() {
            let prefix = format!("{CHILDREN}{accessor}/");
            pending.extend(
                self.barrier
                    .list(&prefix)
                    .await?
                    .iter()
                    .map(|child| child[prefix.len()..].to_owned()),
            );
            family.push(accessor);
        }
        Ok(family)
    }

    /// The entry of a live token; [`TokenError::Unknown`] for an unknown or expired
    /// one.
    /// Takes one use of a use-limited token, for a request it authorizes.
    /// Answers whether that was its last (the token is then revoked once the
    /// request is done); a token with no use left is unknown. Uses are taken
    /// one at a time, so of two requests racing for the last use, one loses.
    pub async fn spend_use(&self, token: &Token) -> Result<bool, TokenError> {
        let _changing = self.changes.lock().await;
        let mut entry = self.lookup(token).await?;
        if entry.spent {
            return Err(TokenError::Unknown);
        }
        if entry.num_uses == 0 {
            return Ok(false);
        }
        entry.num_uses -= 1;
        entry.spent = entry.num_uses == 0;
        self.store(token, &entry, entry.expire_time).await?;
        Ok(entry.spent)
    }

    /// The token's entry (a spent one too: its last request may look itself up).
    pub async fn lookup(&self, token: &Token) -> Result<TokenEntry, TokenError> {
        let hash = token.hash();
        // While sealed nothing is answered, cached or not.
        let cached = if self.barrier.is_sealed() {
            None
        } else {
            let cache = self.cache();
            match cache.entries.get(&hash) {
                Some(entry) => Some(Ok(entry.clone())),
                None => Some(Err(cache.generation)),
            }
        };
        let entry = match cached {
            Some(Ok(entry)) => entry,
            generation => {
                let Some(bytes) = self.barrier.get(&format!("{BY_HASH}{hash}")).await? else {
                    return Err(TokenError::Unknown);
                };
                let entry: TokenEntry =
                    serde_json::from_slice(&bytes).map_err(|_| TokenError::Corrupt)?;
                if let Some(Err(generation)) = generation {
                    let mut cache = self.cache();
                    if cache.generation == generation {
                        if cache.entries.len() >= MAX_CACHED_TOKENS {
                            cache.entries.clear();
                        }
                        cache.entries.insert(hash, entry.clone());
                    }
                }
                entry
            }
        };
        if entry.is_expired(unix_now()) {
            return Err(TokenError::Unknown);
        }
        Ok(entry)
    }
}
