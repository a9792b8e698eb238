//! Response wrapping, Vault's way: a response handed out as a single-use
//! wrapping token instead of its data, kept in the barrier until the token is
//! used or gone.
//!
//! What it guarantees:
//! - **Never in clear.** The wrapped response is stored only through the
//!   barrier (AES-256-GCM, its storage key as associated data), under the
//!   wrapping token's accessor; the token itself is stored only as its hash,
//!   by the token store. In memory it is zeroized when dropped and redacted in
//!   `Debug`.
//! - **Read once.** Unwrapping takes the response out (deletes it) under one
//!   lock, then revokes the token: of any number of concurrent unwraps of one
//!   token, exactly one gets the response and the rest find nothing.
//! - **Gone with its token.** Revoking a token, on request or when it expires
//!   ([`crate::revocation`]), discards what it wraps before the token itself,
//!   so a crash in between leaves the token — and the next attempt — behind,
//!   never a response no token reaches.
//!
//! A wrapping token is a real token, in Vault's shape: policy
//! `response-wrapping` only (it may unwrap itself and nothing else), no parent,
//! not renewable, one use, its TTL and explicit max TTL both the wrap TTL.
//! Leases issued in a wrapped response belong to the caller's token as any
//! other and expire on their own schedule, unwrapped or not.

use crate::auth::{NewToken, Token, TokenEntry, TokenError, TokenStore};
use crate::barrier::{Barrier, BarrierError, BarrierOp};
use crate::policy::RESPONSE_WRAPPING_POLICY;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;
use zeroize::Zeroizing;

/// `sys/wrapping/info/<accessor>`: what `sys/wrapping/lookup` shows.
const INFO: &str = "sys/wrapping/info/";
/// `sys/wrapping/response/<accessor>`: the wrapped response's bytes.
const RESPONSE: &str = "sys/wrapping/response/";

/// The shortest wrap TTL: a second (Vault takes anything above zero; a
/// token that expires before its holder can use it protects nothing).
pub const MIN_TTL: u64 = 1;
/// The longest wrap TTL: the system's token maximum (Vault's 32 days).
pub const MAX_TTL: u64 = crate::auth::MAX_TTL;

/// A response as its handler answered it: the body and its content type.
pub struct Wrapped {
    body: Zeroizing<Vec<u8>>,
    content_type: String,
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrapped")
            .field(
                "body",
                &format_args!("<{} bytes redacted>", self.body.len()),
            )
            .field("content_type", &self.content_type)
            .finish()
    }
}

impl Wrapped {
    /// A response to wrap.
    pub fn new(body: Zeroizing<Vec<u8>>, content_type: impl Into<String>) -> Self {
        Self {
            body,
            content_type: content_type.into(),
        }
    }

    /// The body, to hand to the token's holder once.
    pub fn expose_body(&self) -> &[u8] {
        &self.body
    }

    /// Its content type.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }
}

/// What is known about a wrapped response without reading it: no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapInfo {
    /// When it was wrapped, RFC 3339 with nanoseconds (as Vault writes it).
    pub creation_time: String,
    /// The wrap TTL it was created with, in seconds.
    pub creation_ttl: u64,
    /// The path whose response it is.
    pub creation_path: String,
    /// The accessor of a token the response carries (`auth/token/create`).
    #[serde(default)]
    pub wrapped_accessor: String,
    /// The content type of the response.
    pub content_type: String,
}

/// A response just wrapped.
#[derive(Debug)]
pub struct Issued {
    /// The wrapping token, for the caller only.
    pub token: Token,
    /// Its accessor.
    pub accessor: String,
    /// Seconds it lives.
    pub ttl: u64,
    /// What lookup shows.
    pub info: WrapInfo,
}

/// What to wrap, besides the response.
#[derive(Debug, Clone)]
pub struct WrapRequest {
    /// Seconds the wrapping token lives, within [`MIN_TTL`]..=[`MAX_TTL`].
    pub ttl: u64,
    /// The path whose response it is.
    pub creation_path: String,
    /// The caller's display name, for the token's.
    pub display_name: String,
    /// The accessor of a token the response carries, if any.
    pub wrapped_accessor: String,
}

/// Why a wrapping operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WrappingError {
    /// Not a live wrapping token, or its response was already taken (Vault's
    /// words).
    #[error("wrapping token is not valid or does not exist")]
    Invalid,
    /// A wrap TTL out of bounds.
    #[error("the wrap TTL must be between {MIN_TTL}s and {MAX_TTL}s; {0}s was asked")]
    Ttl(u64),
    /// The token store failed.
    #[error(transparent)]
    Token(TokenError),
    /// Storage under the barrier failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    /// A stored wrapping record does not parse.
    #[error("wrapping information is corrupt")]
    Corrupt,
}

impl From<TokenError> for WrappingError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Unknown => Self::Invalid,
            other => Self::Token(other),
        }
    }
}

/// Wrapped responses in the barrier.
#[derive(Clone)]
pub struct Wrapping {
    barrier: Arc<Barrier>,
    tokens: TokenStore,
    /// Taking a response out (unwrap, rewrap) and discarding it (revocation)
    /// one at a time, so a response is read at most once.
    taking: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Wrapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrapping").finish_non_exhaustive()
    }
}

fn is_wrapping_token(entry: &TokenEntry) -> bool {
    entry.policies.len() == 1 && entry.policies[0] == RESPONSE_WRAPPING_POLICY
}

impl Wrapping {
    /// Wrapped responses stored in `barrier`, their tokens in `tokens`.
    pub fn new(barrier: Arc<Barrier>, tokens: TokenStore) -> Self {
        Self {
            barrier,
            tokens,
            taking: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Wraps `response` in a new wrapping token. The token is made first: if
    /// the response cannot be stored, the token is revoked again; if the
    /// process dies in between, the token expires and finds nothing.
    pub async fn wrap(
        &self,
        mut response: Wrapped,
        request: WrapRequest,
    ) -> Result<Issued, WrappingError> {
        if !(MIN_TTL..=MAX_TTL).contains(&request.ttl) {
            return Err(WrappingError::Ttl(request.ttl));
        }
        let (token, entry) = self
            .tokens
            .create(NewToken {
                policies: vec![RESPONSE_WRAPPING_POLICY.to_owned()],
                meta: Default::default(),
                display_name: request.display_name,
                ttl: request.ttl,
                explicit_max_ttl: request.ttl,
                renewable: false,
                parent: None,
                path: request.creation_path.clone(),
                num_uses: 1,
                period: 0,
            })
            .await?;
        let info = WrapInfo {
            creation_time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            creation_ttl: request.ttl,
            creation_path: request.creation_path,
            wrapped_accessor: request.wrapped_accessor,
            content_type: response.content_type,
        };
        let accessor = entry.accessor;
        let stored = self
            .barrier
            .batch(vec![
                BarrierOp::Put(
                    format!("{INFO}{accessor}"),
                    serde_json::to_vec(&info).expect("wrapping information serializes"),
                ),
                BarrierOp::Put(
                    format!("{RESPONSE}{accessor}"),
                    std::mem::take(&mut *response.body),
                ),
            ])
            .await;
        if let Err(err) = stored {
            if let Err(revoking) = self.tokens.revoke_accessor(&accessor).await {
                tracing::warn!(error = %revoking, "revoking a wrapping token whose response was not stored failed; it expires on its own");
            }
            return Err(err.into());
        }
        Ok(Issued {
            token,
            accessor,
            ttl: entry.ttl,
            info,
        })
    }

    /// What `token` wraps, without taking it: `sys/wrapping/lookup`.
    pub async fn lookup(&self, token: &Token) -> Result<WrapInfo, WrappingError> {
        let entry = self.wrapping_entry(token).await?;
        self.info(&entry.accessor)
            .await?
            .ok_or(WrappingError::Invalid)
    }

    /// Takes the response `token` wraps, once: it is deleted, then the token
    /// revoked. Every later call, and every concurrent one but the first,
    /// gets [`WrappingError::Invalid`].
    pub async fn unwrap(&self, token: &Token) -> Result<(Wrapped, WrapInfo), WrappingError> {
        let _one_at_a_time = self.taking.lock().await;
        let entry = self.wrapping_entry(token).await?;
        let accessor = entry.accessor;
        let info = self.info(&accessor).await?.ok_or(WrappingError::Invalid)?;
        let body = self
            .barrier
            .get(&format!("{RESPONSE}{accessor}"))
            .await?
            .ok_or(WrappingError::Invalid)?;
        self.barrier
            .batch(vec![
                BarrierOp::Delete(format!("{INFO}{accessor}")),
                BarrierOp::Delete(format!("{RESPONSE}{accessor}")),
            ])
            .await?;
        // The response is gone: whatever happens to the token now, nothing
        // can be unwrapped with it again.
        if let Err(err) = self.tokens.revoke_accessor(&accessor).await {
            tracing::warn!(error = %err, "revoking a used wrapping token failed; it expires on its own");
        }
        let response = Wrapped::new(body, info.content_type.clone());
        Ok((response, info))
    }

    /// Discards what the tokens with `accessors` wrap: called as they are
    /// revoked, before they go.
    pub async fn discard(&self, accessors: &[String]) -> Result<usize, WrappingError> {
        let _one_at_a_time = self.taking.lock().await;
        let mut ops = Vec::new();
        for accessor in accessors {
            let key = format!("{INFO}{accessor}");
            if self.barrier.get(&key).await?.is_some() {
                ops.push(BarrierOp::Delete(key));
                ops.push(BarrierOp::Delete(format!("{RESPONSE}{accessor}")));
            }
        }
        let discarded = ops.len() / 2;
        if !ops.is_empty() {
            self.barrier.batch(ops).await?;
        }
        Ok(discarded)
    }

    /// The entry of `token` if it is a live wrapping token.
    async fn wrapping_entry(&self, token: &Token) -> Result<TokenEntry, WrappingError> {
        let entry = self.tokens.lookup(token).await?;
        if !is_wrapping_token(&entry) {
            return Err(WrappingError::Invalid);
        }
        Ok(entry)
    }

    async fn info(&self, accessor: &str) -> Result<Option<WrapInfo>, WrappingError> {
        match self.barrier.get(&format!("{INFO}{accessor}")).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| WrappingError::Corrupt),
            None => Ok(None),
        }
    }
}
