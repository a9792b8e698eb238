//! The Shamir seal over the barrier: its keys, and the shares that rebuild them.
//!
//! `init` creates the keys and the root token, splits the unseal key into Shamir
//! shares, and leaves the broker sealed, as Vault does. Operators then submit shares
//! one by one; when `threshold` have arrived, the key is rebuilt and the barrier
//! opened. A wrong combination resets the progress.
//!
//! This file opens and closes the barrier and nothing else: what must follow an
//! opening or precede a closing is [`super::Lifecycle`]'s to run, which is why
//! [`Seal::submit`] says whether this very call opened it.

use super::error::LifecycleError;
use crate::auth::{Token, TokenStore};
use crate::barrier::{Barrier, BarrierError, SealConfig, UnsealKey, UnsealShare, combine, split};
use std::sync::Arc;
use tokio::sync::Mutex;

/// What `init` hands out, once.
#[derive(Debug)]
pub struct Initialized {
    /// The unseal key's shares.
    pub shares: Vec<UnsealShare>,
    /// The root token.
    pub root_token: Token,
}

/// The answer of `seal-status` and `unseal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealStatus {
    /// Whether `init` has run.
    pub initialized: bool,
    /// Whether the barrier is sealed.
    pub sealed: bool,
    /// Shares needed.
    pub threshold: u8,
    /// Shares made.
    pub shares: u8,
    /// Shares submitted so far.
    pub progress: u8,
    /// Identifies the current unseal attempt; empty when none is in progress.
    pub nonce: String,
}

/// Shares submitted towards the next unseal.
#[derive(Default)]
struct Progress {
    shares: Vec<UnsealShare>,
    nonce: String,
}

/// What a submitted share did.
pub struct Submitted {
    /// Where unsealing stands now.
    pub status: SealStatus,
    /// Whether this submission opened the barrier (and so the steps that follow
    /// an unseal are due).
    pub opened: bool,
}

/// The barrier's seal: init, share progress, status.
pub struct Seal {
    barrier: Arc<Barrier>,
    tokens: TokenStore,
    progress: Mutex<Progress>,
}

impl Seal {
    /// The seal of `barrier`; `tokens` gets the root token at init.
    pub fn new(barrier: Arc<Barrier>, tokens: TokenStore) -> Self {
        Self {
            barrier,
            tokens,
            progress: Mutex::default(),
        }
    }

    /// Initializes: keys, root token, shares. Leaves the broker sealed.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<Initialized, LifecycleError> {
        if shares == 0 || threshold == 0 {
            return Err(LifecycleError::Invalid(
                "secret_shares and secret_threshold must be at least 1".into(),
            ));
        }
        if threshold > shares {
            return Err(LifecycleError::Invalid(format!(
                "secret_threshold ({threshold}) cannot be larger than secret_shares ({shares})"
            )));
        }
        if shares > 1 && threshold == 1 {
            return Err(LifecycleError::Invalid(
                "secret_threshold must be at least 2 when there is more than one share".into(),
            ));
        }
        let key = UnsealKey::generate();
        let config = SealConfig {
            secret_shares: shares,
            secret_threshold: threshold,
        };
        match self.barrier.initialize(config, &key).await {
            Err(BarrierError::AlreadyInitialized) => {
                return Err(LifecycleError::AlreadyInitialized);
            }
            other => other?,
        }
        let created = self.tokens.create_root().await;
        self.barrier.seal();
        let (root_token, _) = created?;
        Ok(Initialized {
            shares: split(&key, shares, threshold),
            root_token,
        })
    }

    /// Submits one share (or resets the attempt) and reports where unsealing
    /// stands. A share submitted while unsealed is ignored.
    pub async fn submit(
        &self,
        share: Option<UnsealShare>,
        reset: bool,
    ) -> Result<Submitted, LifecycleError> {
        let config = self
            .barrier
            .seal_config()
            .await?
            .ok_or(LifecycleError::NotInitialized)?;
        let mut progress = self.progress.lock().await;
        if reset {
            *progress = Progress::default();
        }
        let mut opened = false;
        if let Some(share) = share
            && self.barrier.is_sealed()
        {
            let duplicate = progress
                .shares
                .iter()
                .any(|s| s.to_hex().as_str() == share.to_hex().as_str());
            if !duplicate {
                if progress.shares.is_empty() {
                    progress.nonce = crate::ids::uuid();
                }
                progress.shares.push(share);
            }
            if progress.shares.len() >= usize::from(config.secret_threshold) {
                let submitted = std::mem::take(&mut *progress);
                let key = combine(&submitted.shares, config.secret_threshold)
                    .ok_or(LifecycleError::WrongShares)?;
                match self.barrier.unseal(&key).await {
                    Err(BarrierError::WrongUnsealKey) => return Err(LifecycleError::WrongShares),
                    other => other?,
                }
                opened = true;
            }
        }
        Ok(Submitted {
            status: self.status_with(Some(config), &progress),
            opened,
        })
    }

    /// Closes the barrier: forgets the keys (and any half-done unseal) until
    /// the next unseal.
    pub async fn close(&self) {
        *self.progress.lock().await = Progress::default();
        self.barrier.seal();
    }

    /// Where the broker stands.
    pub async fn status(&self) -> Result<SealStatus, LifecycleError> {
        let config = self.barrier.seal_config().await?;
        let progress = self.progress.lock().await;
        Ok(self.status_with(config, &progress))
    }

    fn status_with(&self, config: Option<SealConfig>, progress: &Progress) -> SealStatus {
        SealStatus {
            initialized: config.is_some(),
            sealed: self.barrier.is_sealed(),
            threshold: config.map_or(0, |c| c.secret_threshold),
            shares: config.map_or(0, |c| c.secret_shares),
            progress: u8::try_from(progress.shares.len()).unwrap_or(u8::MAX),
            nonce: progress.nonce.clone(),
        }
    }
}
