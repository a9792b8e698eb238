//! Revoking a token the way Vault does: the leases of the token and of every
//! descendant first, and what they wrap (response wrapping), then the tokens.
//! One place for the API's revoke calls and for tokens that expire on their
//! own.

use crate::auth::{TokenError, TokenStore};
use crate::barrier::Barrier;
use crate::clock::unix_now;
use crate::leases::{LeaseError, Leases};
use crate::wrapping::{Wrapping, WrappingError};
use std::sync::Arc;
use std::time::Duration;

/// Why a token revocation failed.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The token store failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Listing or revoking leases failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// Discarding wrapped responses failed.
    #[error(transparent)]
    Wrapping(#[from] WrappingError),
}

/// What a token's revocation reaches besides the token store.
#[derive(Clone)]
pub struct Revoker {
    /// Tokens.
    pub tokens: TokenStore,
    /// Their leases.
    pub leases: Arc<Leases>,
    /// What they wrap.
    pub wrapping: Wrapping,
}

/// What happens to the leases of a token being revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseHandling {
    /// Revoked before the call returns (an operator's request).
    RevokeNow,
    /// Queued for the expiry worker, due now (a token that expired: one dead
    /// target must not hold up the expiry of every other token).
    Queue,
}

/// Revokes the token with `accessor`, its non-orphan descendants, every
/// lease they hold and every response they wrap. Leases whose revocation
/// fails stay queued for retry; the tokens go regardless.
pub async fn revoke_token_tree(
    revoker: &Revoker,
    accessor: &str,
    handling: LeaseHandling,
) -> Result<(), RevocationError> {
    let family = revoker.tokens.family(accessor).await?;
    match handling {
        LeaseHandling::RevokeNow => revoker.leases.revoke_for_tokens(&family).await?,
        LeaseHandling::Queue => revoker.leases.queue_for_tokens(&family).await?,
    };
    revoker.wrapping.discard(&family).await?;
    revoker.tokens.revoke_accessor(accessor).await?;
    Ok(())
}

/// How many expired tokens one pass handles.
const PASS: usize = 256;

/// Revokes tokens as they expire (with their children, leases and wrapped
/// responses), so an expired parent does not leave live children behind and
/// expired entries do not stay in storage. Idles while sealed.
pub async fn run_token_expiry(barrier: Arc<Barrier>, revoker: Revoker) {
    let (tokens, leases) = (&revoker.tokens, &revoker.leases);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if barrier.is_sealed() || !leases.is_active() {
            continue;
        }
        let expired = match tokens.expired(unix_now(), PASS).await {
            Ok(expired) => expired,
            Err(err) => {
                tracing::error!(error = %err, "listing expired tokens failed");
                continue;
            }
        };
        for (expire_time, accessor) in expired {
            let outcome = match tokens.still_expired(&accessor, expire_time).await {
                // Renewed since, or already gone: only the slot is stale.
                Ok(false) => Ok(false),
                Ok(true) => revoke_token_tree(&revoker, &accessor, LeaseHandling::Queue)
                    .await
                    .map(|()| true),
                Err(err) => Err(err.into()),
            };
            match outcome {
                Ok(revoked) => {
                    if revoked {
                        tracing::info!(%accessor, "token expired and was revoked");
                    }
                    if let Err(err) = tokens.clear_expiry(expire_time, &accessor).await {
                        tracing::error!(error = %err, "clearing a token's expiry slot failed");
                    }
                }
                Err(err) => {
                    tracing::warn!(%accessor, error = %err, "revoking an expired token failed")
                }
            }
        }
    }
}
