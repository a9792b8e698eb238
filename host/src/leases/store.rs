//! Leases in the barrier, with the indexes that keep start-up and expiry cheap.
//!
//! - `sys/expire/id/<lease_id>`: the entry (encrypted);
//! - `sys/expire/due/<due_at, 20 digits>/<lease_id>`: when the worker looks at
//!   it next, so "what is due" is a range read, whatever the number of leases;
//! - `sys/expire/pending/<lease_id>`: leases whose `create` has not finished;
//! - `sys/expire/irrevocable/<lease_id>`: leases past their retry budget;
//! - `sys/expire/token/<accessor>/<lease_id>`: leases of a token;
//! - `sys/expire/conn/<mount uuid>/<connection>/<lease_id>`: leases of a
//!   connection, so it cannot be deleted from under them.
//!
//! Every change to an entry and its index keys is one atomic batch.

use super::entry::{LeaseEntry, LeaseState};
use crate::barrier::{Barrier, BarrierError, BarrierOp};
use std::sync::Arc;

const ID: &str = "sys/expire/id/";
const DUE: &str = "sys/expire/due/";
const PENDING: &str = "sys/expire/pending/";
const IRREVOCABLE: &str = "sys/expire/irrevocable/";
const TOKEN: &str = "sys/expire/token/";
const CONN: &str = "sys/expire/conn/";

fn due_key(due_at: u64, lease_id: &str) -> String {
    format!("{DUE}{due_at:020}/{lease_id}")
}

fn conn_key(entry: &LeaseEntry) -> String {
    format!(
        "{CONN}{}/{}/{}",
        entry.mount_uuid, entry.connection, entry.lease_id
    )
}

/// Leases and their indexes.
#[derive(Clone)]
pub struct LeaseStore {
    barrier: Arc<Barrier>,
}

impl LeaseStore {
    /// Leases kept in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self { barrier }
    }

    fn entry_ops(entry: &LeaseEntry) -> Vec<BarrierOp> {
        let json = serde_json::to_vec(entry).expect("a lease entry serializes");
        let mut ops = vec![BarrierOp::Put(format!("{ID}{}", entry.lease_id), json)];
        let marker = |prefix: &str| format!("{prefix}{}", entry.lease_id);
        match entry.state {
            LeaseState::Pending => ops.push(BarrierOp::Put(marker(PENDING), Vec::new())),
            _ => ops.push(BarrierOp::Delete(marker(PENDING))),
        }
        match entry.state {
            LeaseState::Irrevocable => ops.push(BarrierOp::Put(marker(IRREVOCABLE), Vec::new())),
            _ => ops.push(BarrierOp::Delete(marker(IRREVOCABLE))),
        }
        ops
    }

    /// Writes a new pending lease with its token and connection index keys. It is
    /// not in the due index: recovery handles pending leases.
    pub async fn insert_pending(&self, entry: &LeaseEntry) -> Result<(), BarrierError> {
        let mut ops = Self::entry_ops(entry);
        if !entry.token_accessor.is_empty() {
            ops.push(BarrierOp::Put(
                format!("{TOKEN}{}/{}", entry.token_accessor, entry.lease_id),
                Vec::new(),
            ));
        }
        ops.push(BarrierOp::Put(conn_key(entry), Vec::new()));
        self.barrier.batch(ops).await
    }

    /// Stores `entry` and moves its due slot from `previous_due` (if it had one)
    /// to `entry.due_at`.
    pub async fn update(
        &self,
        entry: &LeaseEntry,
        previous_due: Option<u64>,
    ) -> Result<(), BarrierError> {
        self.barrier
            .batch(Self::update_ops(entry, previous_due))
            .await
    }

    fn update_ops(entry: &LeaseEntry, previous_due: Option<u64>) -> Vec<BarrierOp> {
        let mut ops = Self::entry_ops(entry);
        if let Some(previous) = previous_due
            && previous != entry.due_at
        {
            ops.push(BarrierOp::Delete(due_key(previous, &entry.lease_id)));
        }
        ops.push(BarrierOp::Put(
            due_key(entry.due_at, &entry.lease_id),
            Vec::new(),
        ));
        ops
    }

    /// Stores each entry and moves its due slot, as [`Self::update`] does,
    /// in one atomic batch.
    pub async fn update_many(&self, entries: &[(LeaseEntry, u64)]) -> Result<(), BarrierError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut ops = Vec::new();
        for (entry, previous_due) in entries {
            ops.extend(Self::update_ops(entry, Some(*previous_due)));
        }
        self.barrier.batch(ops).await
    }

    /// Removes the lease and every index key of it.
    pub async fn remove(&self, entry: &LeaseEntry) -> Result<(), BarrierError> {
        let id = &entry.lease_id;
        self.barrier
            .batch(vec![
                BarrierOp::Delete(format!("{ID}{id}")),
                BarrierOp::Delete(due_key(entry.due_at, id)),
                BarrierOp::Delete(format!("{PENDING}{id}")),
                BarrierOp::Delete(format!("{IRREVOCABLE}{id}")),
                BarrierOp::Delete(format!("{TOKEN}{}/{id}", entry.token_accessor)),
                BarrierOp::Delete(conn_key(entry)),
            ])
            .await
    }

    /// Clears a due slot whose lease is gone.
    pub async fn remove_due(&self, due_at: u64, lease_id: &str) -> Result<(), BarrierError> {
        self.barrier.delete(&due_key(due_at, lease_id)).await
    }

    /// The lease `lease_id`, if it exists.
    pub async fn get(&self, lease_id: &str) -> Result<Option<LeaseEntry>, BarrierError> {
        if lease_id.is_empty() {
            return Ok(None);
        }
        let key = format!("{ID}{lease_id}");
        match self.barrier.get(&key).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| BarrierError::Tampered(key)),
            None => Ok(None),
        }
    }

    /// Lease ids starting with `prefix`.
    pub async fn ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        Ok(strip(
            ID,
            self.barrier.list(&format!("{ID}{prefix}")).await?,
        ))
    }

    /// Up to `limit` due slots after the slot key `after` (or from the
    /// earliest), in order: `(slot key, due_at, lease_id)`.
    pub async fn due_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64, String)>, BarrierError> {
        let keys = self.barrier.scan(DUE, after, limit).await?;
        Ok(keys
            .into_iter()
            .filter_map(|key| {
                let (time, id) = key[DUE.len()..].split_once('/')?;
                let (due_at, id) = (time.parse().ok()?, id.to_owned());
                Some((key, due_at, id))
            })
            .collect())
    }

    /// Leases whose `create` never finished.
    pub async fn pending(&self) -> Result<Vec<String>, BarrierError> {
        Ok(strip(PENDING, self.barrier.list(PENDING).await?))
    }

    /// Leases past their retry budget.
    pub async fn irrevocable(&self) -> Result<Vec<String>, BarrierError> {
        Ok(strip(IRREVOCABLE, self.barrier.list(IRREVOCABLE).await?))
    }

    /// Leases of the token with `accessor`.
    pub async fn of_token(&self, accessor: &str) -> Result<Vec<String>, BarrierError> {
        let prefix = format!("{TOKEN}{accessor}/");
        Ok(strip(&prefix, self.barrier.list(&prefix).await?))
    }

    /// Whether any lease was issued on this connection.
    pub async fn connection_in_use(
        &self,
        mount_uuid: &str,
        connection: &str,
    ) -> Result<bool, BarrierError> {
        let prefix = format!("{CONN}{mount_uuid}/{connection}/");
        Ok(!self.barrier.scan(&prefix, None, 1).await?.is_empty())
    }

    /// Every lease id, `batch` at a time after the index key `after`, with the
    /// index key to continue from: for counting at start-up without holding
    /// them all. Read from the connection index, whose keys are the whole
    /// record (one per lease, values empty), so a million leases are a few
    /// dozen MiB of keys to read rather than every encrypted entry.
    pub async fn scan_ids(
        &self,
        after: Option<&str>,
        batch: usize,
    ) -> Result<(Vec<String>, Option<String>), BarrierError> {
        let keys = self.barrier.scan(CONN, after, batch).await?;
        let last = keys.last().cloned();
        let ids = keys
            .into_iter()
            .filter_map(|key| {
                // `<mount uuid>/<connection>/<lease id>`: the first two are
                // plain names, the lease id has slashes of its own.
                let mut parts = key[CONN.len()..].splitn(3, '/');
                parts.nth(2).map(str::to_owned)
            })
            .collect();
        Ok((ids, last))
    }
}

fn strip(prefix: &str, keys: Vec<String>) -> Vec<String> {
    keys.into_iter()
        .map(|key| key[prefix.len()..].to_owned())
        .collect()
}
