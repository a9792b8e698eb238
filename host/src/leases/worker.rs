//! The expiry worker: revokes what the due index says is due.
//!
//! It reads the front of the due index (a range read: cost grows with what is
//! due, not with what is held), starts up to `revocation_workers` revocations at
//! once, and sleeps until the next slot, a second at most, or until woken by a
//! new lease or a finished revocation. Per-connection limits inside each
//! revocation keep one dead target from holding up the others.

use super::{Leases, Mode};
use crate::clock::unix_now;
use std::sync::Arc;
use std::time::Duration;

/// How many due slots one pass reads.
const PASS: usize = 512;
/// Longest sleep between passes.
const IDLE: Duration = Duration::from_secs(1);
/// Shortest pause between passes, so leases waiting on a busy connection do not
/// spin the loop.
const MIN_PAUSE: Duration = Duration::from_millis(100);

impl Leases {
    /// Runs forever; idles while sealed.
    pub async fn run_worker(self: Arc<Self>) {
        loop {
            let pause = if self.sealed() {
                IDLE
            } else {
                match self.clone().pass().await {
                    Ok(pause) => pause,
                    Err(err) => {
                        tracing::error!(error = %err, "expiry worker pass failed");
                        IDLE
                    }
                }
            };
            let woken = self.wake.notified();
            let _ = tokio::time::timeout(pause, woken).await;
            tokio::time::sleep(MIN_PAUSE).await;
        }
    }

    /// Starts revocations for what is due; returns how long to sleep.
    async fn pass(self: Arc<Self>) -> Result<Duration, super::LeaseError> {
        let now = unix_now();
        for (due_at, id) in self.store.due(PASS).await? {
            if due_at > now {
                return Ok(Duration::from_secs(due_at - now).min(IDLE));
            }
            let Ok(permit) = self.workers.clone().try_acquire_owned() else {
                return Ok(MIN_PAUSE);
            };
            // Claimed here, not in the task, so the next pass cannot start it twice.
            if !self.try_hold(&id) {
                continue;
            }
            let leases = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match leases.revoke_claimed(&id, Mode::Normal, Some(now)).await {
                    Ok(true) => tracing::info!(lease_id = %id, "lease expired and was revoked"),
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(lease_id = %id, error = %err, "revoking an expired lease failed")
                    }
                }
                leases.release(&id);
                leases.wake.notify_one();
            });
        }
        Ok(IDLE)
    }
}
