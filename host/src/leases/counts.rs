//! How many leases each role of each mount has in each state: for the metrics
//! gauges and for lease-count quotas.
//!
//! Counted once from the index keys when the barrier is unsealed (keys only, no
//! decryption), then kept up to date at every state change. A quota's check and
//! the new lease's count happen under one lock, so concurrent requests cannot
//! both take the last place.

use super::entry::{LeaseEntry, LeaseState};
use super::store::LeaseStore;
use crate::barrier::BarrierError;
use crate::path_prefix::covers;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// A limit on the leases under a path prefix (a lease-count quota).
#[derive(Debug, Clone)]
pub struct LeaseLimit {
    /// The quota's name, for the refusal.
    pub name: String,
    /// The path prefix it covers: `""`, `db/` or `db/creds/ro`.
    pub path: String,
    /// Leases allowed under it at once.
    pub max: u64,
}

/// Lease counts by `<mount>creds/<role>` and state.
#[derive(Default)]
pub struct LeaseCounts {
    counts: Mutex<BTreeMap<(String, LeaseState), i64>>,
}

/// The group a lease is counted in: its id without the random last segment.
fn group_of(lease_id: &str) -> &str {
    lease_id
        .rsplit_once('/')
        .map_or(lease_id, |(group, _)| group)
}

/// Leases in every state under the quota path `path`.
fn held_under(counts: &BTreeMap<(String, LeaseState), i64>, path: &str) -> u64 {
    counts
        .iter()
        .filter(|((group, _), _)| covers(path, group))
        .map(|(_, n)| (*n).max(0) as u64)
        .sum()
}

impl LeaseCounts {
    /// Moves lease `lease_id` from state `from` to `to` (`None`: not a lease).
    pub fn shift(&self, lease_id: &str, from: Option<LeaseState>, to: Option<LeaseState>) {
        if from == to {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let group = group_of(lease_id);
        if let Some(from) = from {
            *counts.entry((group.to_owned(), from)).or_default() -= 1;
        }
        if let Some(to) = to {
            *counts.entry((group.to_owned(), to)).or_default() += 1;
        }
    }

    /// Counts a new pending lease, unless `limit` (when it covers the lease) is
    /// already reached; returns the limit's name when it is.
    pub fn admit(&self, lease_id: &str, limit: Option<&LeaseLimit>) -> Result<(), String> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(limit) = limit.filter(|limit| covers(&limit.path, group_of(lease_id)))
            && held_under(&counts, &limit.path) >= limit.max
        {
            return Err(limit.name.clone());
        }
        *counts
            .entry((group_of(lease_id).to_owned(), LeaseState::Pending))
            .or_default() += 1;
        Ok(())
    }

    /// Leases under the quota path `path`, in every state.
    pub fn under(&self, path: &str) -> u64 {
        held_under(&self.counts.lock().unwrap_or_else(|e| e.into_inner()), path)
    }

    /// Every (mount, state, count), zeros included so a gauge drops to 0.
    pub fn snapshot(&self) -> Vec<(String, LeaseState, i64)> {
        let mut by_mount: BTreeMap<(String, LeaseState), i64> = BTreeMap::new();
        for ((group, state), n) in self.counts.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let mount = LeaseEntry::mount_of(group).to_owned();
            *by_mount.entry((mount, *state)).or_default() += (*n).max(0);
        }
        by_mount
            .into_iter()
            .map(|((mount, state), n)| (mount, state, n))
            .collect()
    }

    /// Recounts from storage.
    pub async fn load(&self, store: &LeaseStore) -> Result<(), BarrierError> {
        let mut counts: BTreeMap<(String, LeaseState), i64> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let (ids, last) = store.scan_ids(after.as_deref(), 50_000).await?;
            let Some(last) = last else {
                break;
            };
            let mut batch: HashMap<&str, i64> = HashMap::new();
            for id in &ids {
                *batch.entry(group_of(id)).or_default() += 1;
            }
            for (group, n) in batch {
                *counts
                    .entry((group.to_owned(), LeaseState::Active))
                    .or_default() += n;
            }
            after = Some(last);
        }
        for (state, ids) in [
            (LeaseState::Pending, store.pending().await?),
            (LeaseState::Irrevocable, store.irrevocable().await?),
        ] {
            for id in ids {
                let group = group_of(&id).to_owned();
                *counts
                    .entry((group.clone(), LeaseState::Active))
                    .or_default() -= 1;
                *counts.entry((group, state)).or_default() += 1;
            }
        }
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = counts;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_counts_every_lease_under_its_path_and_refuses_the_next() {
        let counts = LeaseCounts::default();
        let limit = LeaseLimit {
            name: "two".into(),
            path: "db/".into(),
            max: 2,
        };
        counts.admit("db/creds/ro/a", Some(&limit)).unwrap();
        counts.shift(
            "db/creds/ro/a",
            Some(LeaseState::Pending),
            Some(LeaseState::Active),
        );
        counts.admit("db/creds/rw/b", Some(&limit)).unwrap();
        assert_eq!(
            counts.admit("db/creds/ro/c", Some(&limit)),
            Err("two".into())
        );
        // Another mount is not under it.
        counts.admit("dbx/creds/ro/d", Some(&limit)).unwrap();
        assert_eq!(counts.under("db/"), 2);
        assert_eq!(counts.under("db/creds/ro"), 1);
        assert_eq!(counts.under(""), 3);
        counts.shift("db/creds/ro/a", Some(LeaseState::Active), None);
        counts.admit("db/creds/ro/c", Some(&limit)).unwrap();
    }
}
