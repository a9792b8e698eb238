//! The expiry worker: revokes what the due index says is due.
//!
//! It reads the front of the due index (a range read: cost grows with what is
//! due, not with what is held), starts up to `revocation_workers` revocations at
//! once, at most `revocations_per_connection` per connection, and sleeps until
//! the next slot, a second at most, or until woken by a new lease or a finished
//! revocation. One dead target holds only its own connection's permits.

use super::{Leases, Mode};
use crate::clock::unix_now;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How many due slots one pass reads. Beyond this many leases due at once on
/// saturated connections, others wait for those to be tried.
const PASS: usize = 4096;
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
    ///
    /// A lease starts only with both a permit of its connection and a worker
    /// slot, the connection's taken first: a slow or dead target fills its own
    /// permits, never the workers. Once a connection is full, the rest of its
    /// due leases are skipped for this pass.
    async fn pass(self: Arc<Self>) -> Result<Duration, super::LeaseError> {
        let now = unix_now();
        let mut saturated: HashSet<String> = HashSet::new();
        for (due_at, id) in self.store.due(PASS).await? {
            if due_at > now {
                return Ok(Duration::from_secs(due_at - now).min(IDLE));
            }
            // A lease already seen waiting on a full connection is skipped
            // without reading it again.
            if self
                .connection_hint(&id)
                .is_some_and(|key| saturated.contains(&key))
            {
                continue;
            }
            // Claimed here, not in the task, so the next pass cannot start it twice.
            if !self.try_hold(&id) {
                continue;
            }
            let entry = match self.store.get(&id).await {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    self.release(&id);
                    self.store.remove_due(due_at, &id).await?;
                    continue;
                }
                Err(err) => {
                    self.release(&id);
                    return Err(err.into());
                }
            };
            let connection_key = format!("{}/{}", entry.mount_uuid, entry.connection);
            if saturated.contains(&connection_key) {
                self.release(&id);
                self.remember_connection(&id, connection_key);
                continue;
            }
            let Ok(connection) = self.connection_limit(&entry).try_acquire_owned() else {
                self.release(&id);
                self.remember_connection(&id, connection_key.clone());
                saturated.insert(connection_key);
                continue;
            };
            let Ok(worker) = self.workers.clone().try_acquire_owned() else {
                self.release(&id);
                return Ok(MIN_PAUSE);
            };
            let leases = self.clone();
            tokio::spawn(async move {
                let _worker = worker;
                let due = Some((due_at, now));
                match leases
                    .revoke_claimed(&id, Mode::Normal, due, Some(connection))
                    .await
                {
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
