//! The broker's lifecycle, owned in one place: init, unseal and seal, and every
//! step that must follow an unseal or precede a seal.
//!
//! [`Lifecycle`] is the only door. The HTTP handlers call it for `sys/init`,
//! `sys/unseal` and `sys/seal`; the server calls it to start the workers and to
//! unseal at start (`--dev`, an unseal key file). It holds what those steps
//! touch and is called from above, never calling up: nothing here knows HTTP
//! or the server.
//!
//! After the barrier opens, in this order:
//! 1. leases closed: nothing issues, renews or revokes a lease, the workers
//!    idle, and every path but the lifecycle's answers 503. A start and a seal
//!    leave them closed already; closing them here keeps the steps below in
//!    this order whatever came before;
//! 2. the bundled plugins registered in the catalog (compiled the first time
//!    only);
//! 3. the mount table read afresh from the barrier;
//! 4. the lease counts loaded, so lease-count quotas and metrics start right;
//! 5. leases opened: the API serves and the workers run;
//! 6. pending leases of a process that died mid-create revoked, in the
//!    background: a dead target must not hold up the unseal.
//!
//! A failure in 2 or 4 is logged, not fatal: a broker that looks sealed helps
//! no one, and counts that did not load keep what was last counted (nothing,
//! at a first start). Step 6 runs whatever failed: pending leases are not in
//! the due index, so nothing else would ever revoke their credentials.
//!
//! At a seal, in this order:
//! 1. leases closed, as above, while the keys are still there;
//! 2. the barrier sealed: the keys and any half-done unseal forgotten;
//! 3. what was read from the barrier dropped: the mount table, the open audit
//!    devices, the quotas. After the seal, so that no request still running can
//!    read them back in. The seal's own response is still recorded: the audit
//!    log took its devices before the handler ran.
//!
//! Unseal and seal take turns, one at a time: a seal cannot land in the middle
//! of the steps after an unseal, and those steps run once per opening however
//! many requests submit the last share together.
//!
//! Policies, tokens and wrapped responses are read from the barrier at each
//! request: there is nothing of theirs to load or drop. Compiled plugins stay in memory across a
//! seal, as they stay in the on-disk artifact cache: they are code, reached
//! only through the catalog in the barrier.

mod error;
mod key_file;
mod seal;
mod workers;

pub use error::LifecycleError;
pub use key_file::KeyFileError;
pub use seal::{Initialized, SealStatus};

use crate::audit::AuditRegistry;
use crate::auth::TokenStore;
use crate::barrier::{Barrier, UnsealShare};
use crate::quotas::Quotas;
use crate::revocation::Revoker;
use crate::secrets::Secrets;
use crate::wrapping::Wrapping;
use seal::Seal;
use std::path::Path;
use std::sync::{Arc, Once};
use tokio::sync::Mutex;

/// The broker's lifecycle: the seal, and what lives on the open barrier.
pub struct Lifecycle {
    seal: Seal,
    barrier: Arc<Barrier>,
    tokens: TokenStore,
    secrets: Arc<Secrets>,
    wrapping: Wrapping,
    audit: Arc<AuditRegistry>,
    quotas: Arc<Quotas>,
    /// Held through an unseal and the steps after it, and through a seal.
    transition: Mutex<()>,
    workers: Once,
}

impl Lifecycle {
    /// The lifecycle of the broker over `barrier`, preparing and dropping the
    /// given stores as it unseals and seals.
    pub fn new(
        barrier: Arc<Barrier>,
        tokens: TokenStore,
        secrets: Arc<Secrets>,
        wrapping: Wrapping,
        audit: Arc<AuditRegistry>,
        quotas: Arc<Quotas>,
    ) -> Self {
        Self {
            seal: Seal::new(barrier.clone(), tokens.clone()),
            barrier,
            tokens,
            secrets,
            wrapping,
            audit,
            quotas,
            transition: Mutex::new(()),
            workers: Once::new(),
        }
    }

    /// Starts the background workers, once however often it is called. They
    /// idle while sealed (see `workers.rs`).
    pub fn spawn_workers(&self) {
        self.workers.call_once(|| {
            workers::spawn(
                self.barrier.clone(),
                Revoker {
                    tokens: self.tokens.clone(),
                    leases: self.secrets.leases.clone(),
                    wrapping: self.wrapping.clone(),
                },
                self.quotas.clone(),
            )
        });
    }

    /// Initializes: keys, root token, shares. Leaves the broker sealed.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<Initialized, LifecycleError> {
        self.seal.init(shares, threshold).await
    }

    /// Where the broker stands.
    pub async fn status(&self) -> Result<SealStatus, LifecycleError> {
        self.seal.status().await
    }

    /// Submits one share (or resets the attempt). When the share opens the
    /// barrier, runs the steps after an unseal before answering.
    pub async fn unseal(
        &self,
        share: Option<UnsealShare>,
        reset: bool,
    ) -> Result<SealStatus, LifecycleError> {
        let _turn = self.transition.lock().await;
        let submitted = self.seal.submit(share, reset).await?;
        if submitted.opened {
            self.after_unseal().await;
        }
        Ok(submitted.status)
    }

    /// Seals, with the steps around it, in the order the module documents.
    pub async fn seal(&self) {
        let _turn = self.transition.lock().await;
        self.secrets.leases.set_active(false);
        self.seal.close().await;
        // Only now: until the keys were gone, a request could read these back.
        self.secrets.mounts.forget();
        self.audit.forget();
        self.quotas.forget();
    }

    /// `--dev`: initializes with one share and unseals with it.
    pub async fn start_dev(&self) -> Result<Initialized, LifecycleError> {
        let initialized = self.init(1, 1).await?;
        self.unseal(Some(initialized.shares[0].clone()), false)
            .await?;
        Ok(initialized)
    }

    /// Unseals with the shares in the unseal key file at `path`, for unattended
    /// restarts.
    pub async fn unseal_from_file(&self, path: &Path) -> Result<(), LifecycleError> {
        let mut sealed = true;
        for share in key_file::read_shares(path)? {
            let status = self.unseal(Some(share), false).await.map_err(|error| {
                LifecycleError::UnsealingWithKeyFile {
                    path: path.to_owned(),
                    error: Box::new(error),
                }
            })?;
            sealed = status.sealed;
        }
        if sealed {
            return Err(KeyFileError::TooFewShares {
                path: path.to_owned(),
            }
            .into());
        }
        tracing::info!("unsealed with the unseal key file");
        Ok(())
    }

    /// The steps after the barrier opened, in the order the module documents.
    async fn after_unseal(&self) {
        let leases = &self.secrets.leases;
        leases.set_active(false);
        let registered = self.secrets.catalog.register_bundled().await;
        self.secrets.mounts.forget();
        let counted = leases.load_counts().await;
        leases.set_active(true);
        if let Err(err) = registered {
            tracing::error!(error = %err, "after unseal: registering the bundled plugins failed");
        }
        if let Err(err) = counted {
            tracing::error!(error = %err, "after unseal: counting leases failed; the last counts stand");
        }
        // Whatever failed above, the leases a dead process left pending are
        // revoked: otherwise their credentials would stay on their targets
        // until the next unseal. In the background, so a dead target does
        // not hold up the unseal; what fails is retried by the worker.
        let leases = leases.clone();
        tokio::spawn(async move {
            if let Err(err) = leases.recover().await {
                tracing::error!(error = %err, "recovering pending leases failed");
            }
        });
    }
}
