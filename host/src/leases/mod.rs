//! Leases: issue, renew, revoke, expire, recover, without ever losing one.
//!
//! The order that keeps targets clean: a lease is written durably as `pending`
//! before the plugin's `create`; it becomes `active`, with the plugin's handle,
//! after. A pending lease found at start-up is revoked through the plugin without
//! a handle. Expiry and failed revocations go through one due index, worked off
//! by [`worker`] with bounded concurrency and per-connection limits; failures back
//! off exponentially until the retry budget is spent, then the lease is
//! irrevocable: still retried, rarely, listed, and removable only by force.

mod backoff;
mod counts;
mod entry;
mod store;
pub mod ttl;
mod worker;

pub use counts::LeaseLimit;
pub use entry::{LeaseEntry, LeaseState};
pub use ttl::{SYSTEM_MAX_TTL, TtlSettings};

use crate::barrier::{Barrier, BarrierError};
use crate::clock::unix_now;
use crate::config::LeaseSettings;
use crate::plugin::{CallScope, Credential, Plugin, PluginError};
use counts::LeaseCounts;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use store::LeaseStore;
use tokio::sync::Notify;
use ttl::Renewal;

/// Leases a queued prefix revocation marks due in one storage batch.
const MARK_CHUNK: usize = 256;

/// Revocations by the worker whose target part is done and whose removal is
/// still being committed, at most (each holds its lease until committed).
const REMOVALS_IN_FLIGHT: usize = 512;

/// Longest revocation error kept on a lease (Vault's limit).
const MAX_ERROR_LEN: usize = 240;

/// What a plugin call for a lease needs: the plugin, its grants, its config.
/// The call holds `plugin` to its end, so a reload or a version change while
/// it runs leaves it on the component it started with.
pub struct Target {
    /// The compiled plugin.
    pub plugin: Arc<Plugin>,
    /// Its catalog version.
    pub plugin_version: String,
    /// Mount and grants.
    pub scope: CallScope,
    /// The connection config (JSON).
    pub config: SecretString,
}

/// Finds the target of a stored lease (its mount's connection) at revoke or
/// renew time, so a rotated root credential is used.
#[async_trait::async_trait]
pub trait Targets: Send + Sync {
    /// The target of `lease`, or why there is none.
    async fn target(&self, lease: &LeaseEntry) -> Result<Target, String>;
}

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// No such lease.
    #[error("lease not found")]
    NotFound,
    /// A renewal of a lease at its max TTL.
    #[error("past the max TTL, cannot renew")]
    PastMax,
    /// A renewal of a lease that is not active.
    #[error("lease is not renewable: {0}")]
    NotRenewable(&'static str),
    /// A lease-count quota is full.
    #[error("lease count quota `{0}` exceeded: revoke leases under its path first")]
    QuotaExceeded(String),
    /// The token expires before any lease could live.
    #[error("the requesting token expires now; no lease can be issued")]
    TokenExpiring,
    /// The plugin failed.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// The lease's target could not be found.
    #[error("{0}")]
    Target(String),
    /// Revocation failed; the lease stays and is retried.
    #[error("revocation failed and will be retried: {0}")]
    RevokeFailed(String),
    /// The revocation did not run: its target is paused. It is queued for the
    /// worker (due when the pause ends); no failure is recorded against it.
    #[error("the revocation is queued: {0}")]
    Deferred(PluginError),
    /// Storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// A request for a new lease.
pub struct IssueRequest {
    /// The mount's path with its trailing slash.
    pub mount_path: String,
    /// The mount's id.
    pub mount_uuid: String,
    /// The role.
    pub role: String,
    /// The role's plugin fields (JSON).
    pub role_fields: String,
    /// The connection's name.
    pub connection: String,
    /// Where the plugin runs.
    pub target: Target,
    /// TTL settings of mount and role.
    pub ttl: TtlSettings,
    /// The requesting token's accessor (empty for none).
    pub token_accessor: String,
    /// Its display name.
    pub requester: String,
    /// When it expires, if it does: no lease outlives its token.
    pub token_expire_at: Option<u64>,
    /// The lease-count quota over this role's leases, if one applies.
    pub lease_limit: Option<LeaseLimit>,
}

/// A lease just issued, with the credential the consumer gets once.
pub struct IssuedLease {
    /// The stored lease.
    pub entry: LeaseEntry,
    /// The credential.
    pub credential: Credential,
}

/// Why a plugin `revoke` did not succeed.
enum RevokeCall {
    /// It ran (or its target could not be found) and failed.
    Failed(String),
    /// It was refused before it ran: the connection is paused or busy.
    NotRun(PluginError),
}

impl std::fmt::Display for RevokeCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(message) => f.write_str(message),
            Self::NotRun(err) => write!(f, "{err}"),
        }
    }
}

/// How a revocation treats a failing plugin.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Failures keep the lease and schedule a retry.
    Normal,
    /// Failures are logged and the lease is removed anyway.
    Force,
}

/// The lease manager.
pub struct Leases {
    store: LeaseStore,
    barrier: Arc<Barrier>,
    targets: Arc<dyn Targets>,
    settings: LeaseSettings,
    counts: LeaseCounts,
    /// Leases someone is working on (a create or a revocation): one at a time.
    busy: Mutex<HashSet<String>>,
    released: Notify,
    /// Wakes the worker when something became due.
    wake: Notify,
    /// The expiry worker's queues, one per connection.
    lanes: worker::Lanes,
    /// Set once the counts are loaded after an unseal; until then the worker
    /// idles and the API answers as if sealed, so no change can race the count.
    active: std::sync::atomic::AtomicBool,
    /// The connection of leases the worker found waiting on a full lane, so
    /// later scans skip them without reading them (forgotten once revoked or
    /// rescheduled).
    waiting_on: Mutex<HashMap<String, String>>,
    /// Room for the worker's removals still being committed.
    removals: Arc<tokio::sync::Semaphore>,
}

/// Holds a lease id in [`Leases::busy`] until dropped.
struct Claim<'a> {
    leases: &'a Leases,
    id: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.leases.release(&self.id);
    }
}

/// Makes `entry` due for the worker at `due_at` and expired as of now (so a
/// renewal cannot bring it back first); returns its previous due slot.
fn mark_due(entry: &mut LeaseEntry, due_at: u64) -> u64 {
    let previous = entry.due_at;
    entry.due_at = due_at;
    entry.expire_at = entry.expire_at.min(unix_now());
    previous
}

fn truncated(message: &str) -> String {
    let mut end = message.len().min(MAX_ERROR_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

impl Leases {
    /// A lease manager over `barrier`, finding targets with `targets`.
    pub fn new(barrier: Arc<Barrier>, targets: Arc<dyn Targets>, settings: LeaseSettings) -> Self {
        Self {
            store: LeaseStore::new(barrier.clone()),
            barrier,
            targets,
            settings,
            counts: LeaseCounts::default(),
            busy: Mutex::new(HashSet::new()),
            released: Notify::new(),
            wake: Notify::new(),
            lanes: worker::Lanes::default(),
            active: std::sync::atomic::AtomicBool::new(false),
            waiting_on: Mutex::new(HashMap::new()),
            removals: Arc::new(tokio::sync::Semaphore::new(REMOVALS_IN_FLIGHT)),
        }
    }

    /// Waits until no one else works on `id`, then holds it.
    async fn claim(&self, id: &str) -> Claim<'_> {
        loop {
            let released = self.released.notified();
            if self
                .busy
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.to_owned())
            {
                return Claim {
                    leases: self,
                    id: id.to_owned(),
                };
            }
            // A missed wake-up costs at most this long.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), released).await;
        }
    }

    /// Claims `id` if no one holds it; the caller must [`Self::release`] it.
    fn try_hold(&self, id: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned())
    }

    fn release(&self, id: &str) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.released.notify_waiters();
    }

    /// Leases under a path prefix (`""`, a mount, or `<mount>creds/<role>`), in
    /// every state.
    pub fn count_under(&self, path: &str) -> u64 {
        self.counts.under(path)
    }

    /// Lease counts by mount and state.
    pub fn counts(&self) -> Vec<(String, LeaseState, i64)> {
        self.counts.snapshot()
    }

    /// Issues a lease: pending first, then the plugin's `create`, then active.
    pub async fn issue(&self, request: IssueRequest) -> Result<IssuedLease, LeaseError> {
        let started = Instant::now();
        let now = unix_now();
        let mut ttl = request.ttl.default_ttl();
        let mut max_expire_at = now + request.ttl.max();
        if let Some(token_expiry) = request.token_expire_at {
            ttl = ttl.min(token_expiry.saturating_sub(now));
            max_expire_at = max_expire_at.min(token_expiry);
        }
        if ttl == 0 {
            return Err(LeaseError::TokenExpiring);
        }
        let lease_id = format!(
            "{}creds/{}/{}",
            request.mount_path,
            request.role,
            crate::ids::random_text(24)
        );
        let mut entry = LeaseEntry {
            lease_id: lease_id.clone(),
            state: LeaseState::Pending,
            mount_path: request.mount_path.clone(),
            mount_uuid: request.mount_uuid,
            role: request.role,
            role_fields: request.role_fields,
            connection: request.connection,
            plugin_sha256: request.target.plugin.sha256().to_owned(),
            plugin_version: Some(request.target.plugin_version.clone()),
            token_accessor: request.token_accessor,
            requester: request.requester,
            issued_at: now,
            ttl,
            expire_at: now + ttl,
            max_expire_at,
            default_ttl: request.ttl.default_ttl(),
            last_renewal: None,
            due_at: now + ttl,
            handle: None,
            revoke_attempts: 0,
            first_failure_at: None,
            last_error: None,
        };
        let claim = self.claim(&lease_id).await;
        self.counts
            .admit(&lease_id, request.lease_limit.as_ref())
            .map_err(LeaseError::QuotaExceeded)?;
        if let Err(err) = self.store.insert_pending(&entry).await {
            self.counts
                .shift(&lease_id, Some(LeaseState::Pending), None);
            return Err(err.into());
        }

        let target = &request.target;
        let created = target
            .plugin
            .create(
                &target.scope,
                &target.config,
                &entry.role_fields,
                &entry.info(),
            )
            .await;
        let issued = match created {
            Ok(issued) => issued,
            Err(err) => {
                // Still claimed: nothing else can touch the lease meanwhile.
                self.abandon(&entry, &err).await;
                drop(claim);
                metrics::counter!("leasehold_lease_issue_failures_total", "mount" => entry.mount_path.clone(), "kind" => err.kind()).increment(1);
                return Err(err.into());
            }
        };
        entry.state = LeaseState::Active;
        entry.handle = Some(issued.handle.expose_secret().to_owned());
        if let Err(err) = self.store.update(&entry, None).await {
            // The credential exists but the lease could not be completed: take it
            // back now (the pending lease covers a crash from here on).
            if let Err(revoke_err) = self
                .revoke_claimed(&entry.lease_id, Mode::Normal, None)
                .await
            {
                tracing::error!(lease_id = %entry.lease_id, error = %revoke_err, "revoking a credential whose lease could not be stored");
            }
            drop(claim);
            return Err(err.into());
        }
        drop(claim);
        self.counts.shift(
            &entry.lease_id,
            Some(LeaseState::Pending),
            Some(LeaseState::Active),
        );
        metrics::counter!("leasehold_leases_issued_total", "mount" => entry.mount_path.clone())
            .increment(1);
        metrics::histogram!("leasehold_lease_issue_seconds", "mount" => entry.mount_path.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(IssuedLease {
            entry,
            credential: issued.credential,
        })
    }

    /// After a failed `create`, with the lease still claimed. A plugin that
    /// reported a definite failure made nothing (its contract says it undoes its
    /// own partial work), so the lease goes; so does a call refused before it
    /// ran. After `internal` (the plugin cannot tell what the target did) or a
    /// call stopped midway (timeout, crash, memory, a refused capability, a
    /// result too large), something may exist: the lease is due at once, and the
    /// worker revokes it without a handle, retrying like any revocation.
    async fn abandon(&self, entry: &LeaseEntry, err: &PluginError) {
        use crate::plugin::Failure;
        let clean = matches!(
            err,
            PluginError::Failed(
                Failure::InvalidConfig(_)
                    | Failure::InvalidRequest(_)
                    | Failure::Unavailable(_)
                    | Failure::Denied(_)
            ) | PluginError::Busy { .. }
                | PluginError::CircuitOpen { .. }
                | PluginError::Sandbox(_)
        );
        if clean {
            match self.store.remove(entry).await {
                Ok(()) => self
                    .counts
                    .shift(&entry.lease_id, Some(LeaseState::Pending), None),
                Err(error) => {
                    tracing::warn!(lease_id = %entry.lease_id, %error, "removing the lease of a failed create; recovery revokes it at the next unseal");
                }
            }
            return;
        }
        // Due now: the worker revokes it without a handle, with its retries,
        // while the client gets its answer without waiting for that.
        if let Err(error) = self.queue_revocation(&mut entry.clone(), unix_now()).await {
            tracing::warn!(lease_id = %entry.lease_id, %error, "scheduling the revocation of a failed create; recovery revokes it at the next unseal");
        }
    }

    /// The lease `id`.
    pub async fn lookup(&self, id: &str) -> Result<LeaseEntry, LeaseError> {
        self.store.get(id).await?.ok_or(LeaseError::NotFound)
    }

    /// Lease ids under `prefix`.
    pub async fn ids(&self, prefix: &str) -> Result<Vec<String>, LeaseError> {
        Ok(self.store.ids_with_prefix(prefix).await?)
    }

    /// Irrevocable leases.
    pub async fn irrevocable(&self) -> Result<Vec<LeaseEntry>, LeaseError> {
        let mut entries = Vec::new();
        for id in self.store.irrevocable().await? {
            if let Some(entry) = self.store.get(&id).await? {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// Whether a lease was issued on a connection and is still held.
    pub async fn connection_in_use(
        &self,
        mount_uuid: &str,
        name: &str,
    ) -> Result<bool, LeaseError> {
        Ok(self.store.connection_in_use(mount_uuid, name).await?)
    }

    /// Renews `id` by `increment` seconds from now (0: its default TTL). Returns
    /// the lease and a warning when the TTL was capped.
    pub async fn renew(
        &self,
        id: &str,
        increment: u64,
    ) -> Result<(LeaseEntry, Option<String>), LeaseError> {
        let started = Instant::now();
        let _claim = self.claim(id).await;
        let mut entry = self.lookup(id).await?;
        let now = unix_now();
        if entry.state != LeaseState::Active || entry.revoke_attempts > 0 || entry.expire_at <= now
        {
            return Err(LeaseError::NotRenewable(
                "it has expired or is being revoked",
            ));
        }
        let (ttl, warning) =
            match ttl::renew(now, increment, entry.default_ttl, entry.max_expire_at) {
                Renewal::PastMax => return Err(LeaseError::PastMax),
                Renewal::Renewed { ttl, warning } => (ttl, warning),
            };
        let previous_due = entry.due_at;
        entry.ttl = ttl;
        entry.expire_at = now + ttl;
        entry.due_at = now + ttl;
        entry.last_renewal = Some(now);
        let target = self
            .targets
            .target(&entry)
            .await
            .map_err(LeaseError::Target)?;
        if target.plugin.info().can_renew {
            let handle = SecretString::from(entry.handle.clone().unwrap_or_default());
            target
                .plugin
                .renew(
                    &target.scope,
                    &target.config,
                    &entry.role_fields,
                    &handle,
                    &entry.info(),
                )
                .await?;
        }
        self.store.update(&entry, Some(previous_due)).await?;
        metrics::counter!("leasehold_leases_renewed_total", "mount" => entry.mount_path.clone())
            .increment(1);
        metrics::histogram!("leasehold_lease_renew_seconds", "mount" => entry.mount_path.clone())
            .record(started.elapsed().as_secs_f64());
        Ok((entry, warning))
    }

    /// Revokes `id` now; `Ok(false)` if there was no such lease. A failure keeps
    /// the lease and schedules a retry.
    pub async fn revoke(&self, id: &str) -> Result<bool, LeaseError> {
        self.revoke_entry(id, Mode::Normal).await
    }

    /// Queues `id` for the worker to revoke as soon as it can.
    pub async fn revoke_later(&self, id: &str) -> Result<bool, LeaseError> {
        let _claim = self.claim(id).await;
        let Some(mut entry) = self.store.get(id).await? else {
            return Ok(false);
        };
        if entry.state != LeaseState::Pending {
            self.queue_revocation(&mut entry, unix_now()).await?;
        }
        Ok(true)
    }

    /// Revokes every lease under `prefix` (a mount, a role, or one lease id),
    /// `revocation_workers` at a time. Returns how many were revoked and the
    /// failures, which stay and are retried (a revocation deferred because its
    /// target is paused is queued for the worker).
    ///
    /// The failures come as errors, so a caller can tell deferrals apart.
    pub async fn revoke_prefix(
        &self,
        prefix: &str,
        force: bool,
    ) -> Result<(usize, Vec<(String, LeaseError)>), LeaseError> {
        let ids = self.ids_under(prefix).await?;
        let mode = if force { Mode::Force } else { Mode::Normal };
        Ok(self.revoke_all(ids, mode).await)
    }

    /// Revokes `ids`, `revocation_workers` at a time: how many were revoked,
    /// and the failures.
    async fn revoke_all(&self, ids: Vec<String>, mode: Mode) -> (usize, Vec<(String, LeaseError)>) {
        use futures::StreamExt;
        let width = self.settings.revocation_workers.max(1);
        let mut results = futures::stream::iter(ids)
            .map(|id| async move {
                let result = self.revoke_entry(&id, mode).await;
                (id, result)
            })
            .buffer_unordered(width);
        let mut revoked = 0;
        let mut failed = Vec::new();
        while let Some((id, result)) = results.next().await {
            match result {
                Ok(true) => revoked += 1,
                Ok(false) => {}
                Err(err) => failed.push((id, err)),
            }
        }
        (revoked, failed)
    }

    /// Queues every lease under `prefix` for the worker, due now, and returns
    /// how many there are. The marking runs in the background, so a caller with
    /// ten thousand leases gets its answer at once; each marked lease is then as
    /// durable as any expired one.
    pub async fn revoke_prefix_later(self: &Arc<Self>, prefix: &str) -> Result<usize, LeaseError> {
        let ids = self.ids_under(prefix).await?;
        let count = ids.len();
        let leases = self.clone();
        tokio::spawn(async move {
            // In chunks, each one storage batch: marking a hundred thousand
            // leases is then a few hundred commits, not a hundred thousand.
            for chunk in ids.chunks(MARK_CHUNK) {
                if let Err(err) = leases.revoke_many_later(chunk).await {
                    tracing::warn!(error = %err, leases = chunk.len(), "queueing leases for revocation failed; they stay until they expire");
                }
            }
        });
        Ok(count)
    }

    /// Makes every lease of `ids` that is not pending due now, in one batch.
    async fn revoke_many_later(&self, ids: &[String]) -> Result<(), LeaseError> {
        // Only leases no one holds go in the batch: waiting for one while
        // holding the others could deadlock with another batch. The rest are
        // queued one by one after.
        let mut claims = Vec::with_capacity(ids.len());
        let mut busy = Vec::new();
        for id in ids {
            if self.try_hold(id) {
                claims.push(Claim {
                    leases: self,
                    id: id.clone(),
                });
            } else {
                busy.push(id);
            }
        }
        let now = unix_now();
        let mut marked = Vec::new();
        for Claim { id, .. } in &claims {
            // One unreadable lease does not hold back the rest of the batch.
            let mut entry = match self.store.get(id).await {
                Ok(Some(entry)) => entry,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(lease_id = %id, error = %err, "queueing a lease for revocation failed");
                    continue;
                }
            };
            if entry.state == LeaseState::Pending {
                continue;
            }
            let previous_due = mark_due(&mut entry, now);
            marked.push((entry, previous_due));
        }
        self.store.update_many(&marked).await?;
        // The worker finds their lanes without reading them again.
        for (entry, _) in &marked {
            self.remember_connection(&entry.lease_id, entry.lane());
        }
        drop(claims);
        self.wake.notify_one();
        for id in busy {
            if let Err(err) = self.revoke_later(id).await {
                tracing::warn!(lease_id = %id, error = %err, "queueing a lease for revocation failed");
            }
        }
        Ok(())
    }

    /// Lease ids under a path prefix: whole segments only (`db/creds/ro` does not
    /// match `db/creds/ro2/...`), or the one lease named exactly.
    async fn ids_under(&self, prefix: &str) -> Result<Vec<String>, LeaseError> {
        let trimmed = prefix.trim_end_matches('/');
        let mut ids = if trimmed.is_empty() {
            self.store.ids_with_prefix("").await?
        } else {
            self.store.ids_with_prefix(&format!("{trimmed}/")).await?
        };
        if !trimmed.is_empty() && self.store.get(trimmed).await?.is_some() {
            ids.push(trimmed.to_owned());
        }
        Ok(ids)
    }

    /// Revokes every lease of the tokens with these accessors (a token being
    /// revoked and its descendants), `revocation_workers` at a time. Failures
    /// stay and are retried.
    pub async fn revoke_for_tokens(&self, accessors: &[String]) -> Result<usize, LeaseError> {
        let mut ids = Vec::new();
        for accessor in accessors {
            ids.extend(self.store.of_token(accessor).await?);
        }
        let (revoked, failed) = self.revoke_all(ids, Mode::Normal).await;
        for (id, err) in failed {
            tracing::warn!(lease_id = %id, error = %err, "revoking a lease of a revoked token; will retry");
        }
        Ok(revoked)
    }

    /// Queues every lease of these tokens for the worker, due now.
    pub async fn queue_for_tokens(&self, accessors: &[String]) -> Result<usize, LeaseError> {
        let mut queued = 0;
        for accessor in accessors {
            for id in self.store.of_token(accessor).await? {
                if self.revoke_later(&id).await? {
                    queued += 1;
                }
            }
        }
        Ok(queued)
    }

    /// Revokes the pending leases left by a process that died mid-create.
    pub async fn recover(&self) -> Result<usize, LeaseError> {
        let pending = self.store.pending().await?;
        let mut recovered = 0;
        for id in &pending {
            // Claimed without waiting: a lease someone holds is being created
            // by this process right now, not left over from a dead one.
            if !self.try_hold(id) {
                continue;
            }
            let still_pending = matches!(
                self.store.get(id).await,
                Ok(Some(entry)) if entry.state == LeaseState::Pending
            );
            let result = if still_pending {
                self.revoke_claimed(id, Mode::Normal, None).await
            } else {
                Ok(false)
            };
            self.release(id);
            match result {
                Ok(_) => recovered += 1,
                Err(err) => {
                    tracing::warn!(lease_id = %id, error = %err, "recovering a pending lease; will retry")
                }
            }
        }
        if !pending.is_empty() {
            tracing::info!(
                found = pending.len(),
                recovered,
                "pending leases from an earlier run revoked"
            );
        }
        Ok(recovered)
    }

    /// Counts leases; run once the barrier is unsealed.
    pub async fn load_counts(&self) -> Result<(), LeaseError> {
        Ok(self.counts.load(&self.store).await?)
    }

    /// The connection a due lease was last seen waiting on.
    fn connection_hint(&self, id: &str) -> Option<String> {
        self.waiting_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn remember_connection(&self, id: &str, connection_key: String) {
        self.waiting_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), connection_key);
    }

    fn forget_connection(&self, id: &str) {
        self.waiting_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Calls the plugin's `revoke` for `entry`; a forced revocation makes its
    /// attempt even while the connection's breaker is open.
    async fn call_revoke(&self, entry: &LeaseEntry, mode: Mode) -> Result<(), RevokeCall> {
        let mut target = self
            .targets
            .target(entry)
            .await
            .map_err(RevokeCall::Failed)?;
        if mode == Mode::Force {
            target.scope = target.scope.forced();
        }
        let handle = entry.handle.clone().map(SecretString::from);
        target
            .plugin
            .revoke(
                &target.scope,
                &target.config,
                &entry.role_fields,
                handle.as_ref(),
                &entry.info(),
            )
            .await
            .map_err(|err| {
                if matches!(err, PluginError::Busy { .. } | PluginError::CircuitOpen { .. }) {
                    return RevokeCall::NotRun(err);
                }
                metrics::counter!("leasehold_lease_revoke_failures_total", "mount" => entry.mount_path.clone(), "kind" => err.kind()).increment(1);
                RevokeCall::Failed(err.to_string())
            })
    }

    async fn revoke_entry(&self, id: &str, mode: Mode) -> Result<bool, LeaseError> {
        let _claim = self.claim(id).await;
        self.revoke_claimed(id, mode, None).await
    }

    /// Revokes `id`, which the caller has claimed. With `due`, the worker's
    /// `(slot, pass time)`: only a lease whose due slot is at or before the pass
    /// (a renewal may have moved it), and a slot whose lease is gone is cleared.
    async fn revoke_claimed(
        &self,
        id: &str,
        mode: Mode,
        due: Option<(u64, u64)>,
    ) -> Result<bool, LeaseError> {
        let started = Instant::now();
        match self.revoke_on_target(id, mode, due).await? {
            Some(entry) => {
                self.forget_revoked(&entry, started).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The first half of a revocation of a claimed lease: the plugin's
    /// `revoke` (or, forced, its attempt). Returns the entry to remove once
    /// the credential is gone from its target; `None` when there is nothing
    /// to revoke (gone, or not yet due for the worker).
    async fn revoke_on_target(
        &self,
        id: &str,
        mode: Mode,
        due: Option<(u64, u64)>,
    ) -> Result<Option<LeaseEntry>, LeaseError> {
        self.forget_connection(id);
        let Some(mut entry) = self.store.get(id).await? else {
            if let Some((slot, _)) = due {
                self.store.remove_due(slot, id).await?;
            }
            return Ok(None);
        };
        if due.is_some_and(|(_, now)| entry.due_at > now) {
            return Ok(None);
        }
        match self.call_revoke(&entry, mode).await {
            Ok(()) => {}
            Err(RevokeCall::NotRun(refused)) if mode == Mode::Normal => {
                self.defer(&mut entry, &refused).await?;
                return Err(LeaseError::Deferred(refused));
            }
            Err(error) if mode == Mode::Force => {
                tracing::warn!(lease_id = %id, error = %error, "forced revocation: the plugin failed and the lease is removed anyway");
            }
            Err(error) => {
                let error = error.to_string();
                self.record_failure(&mut entry, &error).await?;
                return Err(LeaseError::RevokeFailed(error));
            }
        }
        Ok(Some(entry))
    }

    /// The second half: removes a lease whose credential is gone. Until this
    /// is durable the lease stays as it was, so a crash in between revokes it
    /// again at the next start (revocation is idempotent).
    async fn forget_revoked(&self, entry: &LeaseEntry, started: Instant) -> Result<(), LeaseError> {
        self.store.remove(entry).await?;
        // The worker may have looked it up again while it was being removed.
        self.forget_connection(&entry.lease_id);
        self.counts.shift(&entry.lease_id, Some(entry.state), None);
        metrics::counter!("leasehold_leases_revoked_total", "mount" => entry.mount_path.clone())
            .increment(1);
        metrics::histogram!("leasehold_lease_revoke_seconds", "mount" => entry.mount_path.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Queues a revocation that was refused before it ran (its target is
    /// paused): due when the pause ends, expired now so it cannot be renewed
    /// back, and with nothing counted against its retry budget. A pending lease
    /// gets its first due slot here, so it is never stranded until an unseal.
    async fn defer(&self, entry: &mut LeaseEntry, refused: &PluginError) -> Result<(), LeaseError> {
        let pause = refused
            .retry_after()
            .map_or(1, |after| after.as_secs_f64().ceil() as u64)
            .max(1);
        Ok(self.queue_revocation(entry, unix_now() + pause).await?)
    }

    /// Makes `entry` due for the worker at `due_at`, and expired as of now, so a
    /// renewal cannot bring it back before the worker gets to it.
    async fn queue_revocation(
        &self,
        entry: &mut LeaseEntry,
        due_at: u64,
    ) -> Result<(), BarrierError> {
        let previous_due = mark_due(entry, due_at);
        self.store.update(entry, Some(previous_due)).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Schedules the next attempt after a failed revocation, or marks the lease
    /// irrevocable once the retry budget is spent.
    async fn record_failure(&self, entry: &mut LeaseEntry, error: &str) -> Result<(), LeaseError> {
        let now = unix_now();
        let previous_due = entry.due_at;
        entry.revoke_attempts += 1;
        let first = *entry.first_failure_at.get_or_insert(now);
        entry.last_error = Some(truncated(error));
        let before = entry.state;
        if now.saturating_sub(first) >= self.settings.retry_budget_seconds {
            entry.state = LeaseState::Irrevocable;
            entry.due_at = now + self.settings.irrevocable_retry_seconds.max(1);
            if before != LeaseState::Irrevocable {
                tracing::error!(lease_id = %entry.lease_id, error = %error, "lease is irrevocable: revocation kept failing for the whole retry budget");
            }
        } else {
            entry.due_at = now
                + backoff::delay(
                    entry.revoke_attempts,
                    self.settings.retry_base_seconds,
                    self.settings.retry_max_seconds,
                );
        }
        self.store.update(entry, Some(previous_due)).await?;
        self.counts
            .shift(&entry.lease_id, Some(before), Some(entry.state));
        Ok(())
    }

    /// Whether leases may change now: unsealed and counted.
    pub fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::SeqCst) && !self.barrier.is_sealed()
    }

    /// Opens (after an unseal, once counted) or closes (at seal) the leases.
    pub fn set_active(&self, active: bool) {
        self.active
            .store(active, std::sync::atomic::Ordering::SeqCst);
    }
}
