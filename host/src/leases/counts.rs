//! How many leases each mount has in each state, for the metrics gauges.
//!
//! Counted once from the index keys when the barrier is unsealed (keys only, no
//! decryption), then kept up to date at every state change.

use super::entry::{LeaseEntry, LeaseState};
use super::store::LeaseStore;
use crate::barrier::BarrierError;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Lease counts by mount and state.
#[derive(Default)]
pub struct LeaseCounts {
    counts: Mutex<BTreeMap<(String, LeaseState), i64>>,
}

impl LeaseCounts {
    /// Moves one lease of `mount` from state `from` to `to` (`None`: not a lease).
    pub fn shift(&self, mount: &str, from: Option<LeaseState>, to: Option<LeaseState>) {
        if from == to {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(from) = from {
            *counts.entry((mount.to_owned(), from)).or_default() -= 1;
        }
        if let Some(to) = to {
            *counts.entry((mount.to_owned(), to)).or_default() += 1;
        }
    }

    /// Every (mount, state, count), zeros included so a gauge drops to 0.
    pub fn snapshot(&self) -> Vec<(String, LeaseState, i64)> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((mount, state), n)| (mount.clone(), *state, (*n).max(0)))
            .collect()
    }

    /// Recounts from storage.
    pub async fn load(&self, store: &LeaseStore) -> Result<(), BarrierError> {
        let mut counts: BTreeMap<(String, LeaseState), i64> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let ids = store.scan_ids(after.as_deref(), 1000).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            for id in &ids {
                let mount = LeaseEntry::mount_of(id).to_owned();
                *counts.entry((mount, LeaseState::Active)).or_default() += 1;
            }
            after = Some(last);
        }
        for (state, ids) in [
            (LeaseState::Pending, store.pending().await?),
            (LeaseState::Irrevocable, store.irrevocable().await?),
        ] {
            for id in ids {
                let mount = LeaseEntry::mount_of(&id).to_owned();
                *counts
                    .entry((mount.clone(), LeaseState::Active))
                    .or_default() -= 1;
                *counts.entry((mount, state)).or_default() += 1;
            }
        }
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = counts;
        Ok(())
    }
}
