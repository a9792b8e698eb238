//! The broker's background workers: started once with the process, and idle
//! while sealed rather than stopped, so no seal or unseal has to wait for a
//! worker to wind down or start up.
//!
//! | worker | does | while sealed |
//! |---|---|---|
//! | lease expiry ([`Leases::run_worker`]) | revokes leases as they fall due | idles: leases are closed ([`Leases::is_active`]) |
//! | token expiry ([`run_token_expiry`]) | revokes tokens (with children, leases and wrapped responses) as they expire | idles, on the same gate |
//! | quota sweep | forgets rate-limit buckets of quiet clients, once a minute | runs: it touches memory only |
//!
//! The gate the first two wait on is opened and closed by
//! [`super::Lifecycle`], after an unseal and before a seal.

use crate::barrier::Barrier;
use crate::quotas::Quotas;
use crate::revocation::{Revoker, run_token_expiry};
use std::sync::Arc;
use std::time::Duration;

/// How often idle rate-limit buckets are forgotten.
const QUOTA_SWEEP: Duration = Duration::from_secs(60);

/// Spawns every worker on the current tokio runtime.
pub fn spawn(barrier: Arc<Barrier>, revoker: Revoker, quotas: Arc<Quotas>) {
    tokio::spawn(revoker.leases.clone().run_worker());
    tokio::spawn(run_token_expiry(barrier, revoker));
    tokio::spawn(sweep_quotas(quotas));
}

/// Forgets idle rate-limit buckets now and then, off the request path.
async fn sweep_quotas(quotas: Arc<Quotas>) {
    loop {
        tokio::time::sleep(QUOTA_SWEEP).await;
        let quotas = quotas.clone();
        let _ = tokio::task::spawn_blocking(move || quotas.sweep()).await;
    }
}
