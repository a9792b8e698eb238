//! The expiry worker: revokes what the due index says is due, connection by
//! connection, so no target can hold up another's leases.
//!
//! Two parts:
//! - the **dispatcher** walks the due index in order (a range read: its cost
//!   grows with what is due, not with what is held) and hands each due lease
//!   to its connection's lane, skipping leases whose lane is full or paused.
//!   It keeps its place between rounds, so leases behind thousands of overdue
//!   ones on a dead target are still reached within a round or two;
//! - each connection's **lane** holds a queue and runs up to
//!   `revocations_per_connection` revocations at once. A lane pulls its next
//!   lease the moment one finishes, so throughput is bounded by the target and
//!   the CPU, not by pauses between passes. A queued lease is not claimed: a
//!   client may still renew or revoke it, and the runner that reaches it reads
//!   it again (and skips it if it is gone or no longer due). A lane whose target
//!   is paused (its breaker is open) drops its queue and takes nothing until the
//!   pause ends; the leases are queued for when it does.
//!
//! Each round walks every due key (keys only, and a lease's connection is
//! remembered after its first read), handing each lane up to its queue's size:
//! the cost of a round grows with what is due, and a lane with many due leases
//! needs about one round per queue-full of them.
//!
//! Plugin instances, the connection's own `max_parallel` and the breaker are the
//! plugin runtime's admission (`plugin::admission`); the lanes only decide order.

use super::{LeaseError, Leases, Mode};
use crate::clock::unix_now;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Due slots read at once.
const PAGE: usize = 1024;
/// Pages one round reads before yielding to the rest of the server.
const PAGES_PER_ROUND: usize = 8;
/// Leases a lane queues at most, beyond those running.
const LANE_QUEUE: usize = 512;
/// Longest sleep between rounds.
const IDLE: Duration = Duration::from_secs(1);
/// Pause after a failed round (storage trouble).
const AFTER_ERROR: Duration = Duration::from_secs(1);

/// Every connection's lane, by `<mount uuid>/<connection>`.
#[derive(Default)]
pub(super) struct Lanes {
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    /// Every lease in some lane's queue, so a round does not queue it twice.
    queued: Mutex<HashSet<String>>,
}

/// One connection's queue of due leases.
struct Lane {
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    /// Claimed leases waiting for a free runner: `(due slot, lease id)`.
    queue: VecDeque<(u64, String)>,
    /// Runners working on this lane.
    running: usize,
    /// While set and in the future, the lane takes nothing.
    paused_until: Option<Instant>,
}

impl Lanes {
    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &str) -> Arc<Lane> {
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Lane {
                    state: Mutex::new(LaneState::default()),
                })
            })
            .clone()
    }
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the dispatcher does after a round.
enum Next {
    /// More of the due index to read: go on after yielding.
    Continue,
    /// Everything due was offered: sleep this long or until woken.
    Sleep(Duration),
}

impl Leases {
    /// Runs forever; idles while sealed.
    pub async fn run_worker(self: Arc<Self>) {
        let mut cursor: Option<String> = None;
        loop {
            if !self.is_active() {
                cursor = None;
                tokio::time::sleep(IDLE).await;
                continue;
            }
            // Registered before the round, so a wake during it is not lost.
            let woken = self.wake.notified();
            match self.clone().dispatch(&mut cursor).await {
                Ok(Next::Continue) => tokio::task::yield_now().await,
                Ok(Next::Sleep(pause)) => {
                    let _ = tokio::time::timeout(pause, woken).await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "expiry worker round failed");
                    cursor = None;
                    tokio::time::sleep(AFTER_ERROR).await;
                }
            }
        }
    }

    /// Reads the due index from `cursor` and offers what is due to the lanes.
    async fn dispatch(self: Arc<Self>, cursor: &mut Option<String>) -> Result<Next, LeaseError> {
        let now = unix_now();
        for _ in 0..PAGES_PER_ROUND {
            let page = self.store.due_after(cursor.as_deref(), PAGE).await?;
            let complete = page.len() < PAGE;
            for (key, due_at, id) in page {
                if due_at > now {
                    *cursor = None;
                    return Ok(Next::Sleep(Duration::from_secs(due_at - now).min(IDLE)));
                }
                *cursor = Some(key);
                self.offer(due_at, id, now).await?;
            }
            if complete {
                *cursor = None;
                return Ok(Next::Sleep(IDLE));
            }
        }
        Ok(Next::Continue)
    }

    /// Hands one due lease to its connection's lane, if the lane has room.
    async fn offer(self: &Arc<Self>, due_at: u64, id: String, now: u64) -> Result<(), LeaseError> {
        let connection = match self.connection_hint(&id) {
            Some(connection) => connection,
            None => match self.store.get(&id).await? {
                Some(entry) => {
                    let connection = entry.lane();
                    self.remember_connection(&id, connection.clone());
                    connection
                }
                None => {
                    if self.try_hold(&id) {
                        let cleared = self.store.remove_due(due_at, &id).await;
                        self.release(&id);
                        cleared?;
                    }
                    return Ok(());
                }
            },
        };
        let lane = self.lanes.get(&connection);
        {
            let mut state = lane.lock();
            if state
                .paused_until
                .is_some_and(|until| Instant::now() < until)
            {
                return Ok(());
            }
            state.paused_until = None;
            if state.queue.len() >= LANE_QUEUE || !self.lanes.queued().insert(id.clone()) {
                return Ok(());
            }
            state.queue.push_back((due_at, id));
        }
        self.start_runners(&lane, now);
        Ok(())
    }

    /// Starts runners on `lane` up to `revocations_per_connection`.
    fn start_runners(self: &Arc<Self>, lane: &Arc<Lane>, now: u64) {
        let width = self.settings.revocations_per_connection.max(1);
        loop {
            let next = {
                let mut state = lane.lock();
                if state.running >= width {
                    None
                } else {
                    let next = state.queue.pop_front();
                    if next.is_some() {
                        state.running += 1;
                    }
                    next
                }
            };
            let Some(first) = next else { break };
            let (leases, lane) = (self.clone(), lane.clone());
            tokio::spawn(async move { leases.run_lane(lane, first, now).await });
        }
    }

    /// One runner: revokes leases from its lane until the queue is empty.
    async fn run_lane(self: Arc<Self>, lane: Arc<Lane>, first: (u64, String), now: u64) {
        let mut item = first;
        loop {
            let (due_at, id) = item;
            self.lanes.queued().remove(&id);
            // Claimed only now: a lease someone else holds (being created,
            // renewed or revoked) is theirs, and offered again if still due.
            let result = if self.try_hold(&id) {
                self.revoke_then_remove(&id, (due_at, now.max(unix_now())))
                    .await
            } else {
                Ok(false)
            };
            match result {
                Ok(true) => tracing::info!(lease_id = %id, "lease expired and was revoked"),
                Ok(false) => {}
                Err(LeaseError::Deferred(refused)) => {
                    let pause = refused.retry_after().unwrap_or(Duration::from_secs(1));
                    tracing::debug!(lease_id = %id, error = %refused, "revocation deferred; the lane pauses");
                    self.pause_lane(&lane, pause);
                }
                Err(err) => {
                    tracing::warn!(lease_id = %id, error = %err, "revoking an expired lease failed")
                }
            }
            let next = {
                let mut state = lane.lock();
                let next = state.queue.pop_front();
                if next.is_none() {
                    state.running -= 1;
                }
                next
            };
            match next {
                Some(next) => item = next,
                None => {
                    // The lane has room again: there may be more of its leases due.
                    self.wake.notify_one();
                    return;
                }
            }
        }
    }

    /// Revokes the held lease `id` on its target, then commits its removal in
    /// the background (still holding it) while the runner goes on to the next:
    /// the lane's width bounds the calls to the target, not the commits, so
    /// revocations share fsyncs instead of waiting for one each.
    async fn revoke_then_remove(
        self: &Arc<Self>,
        id: &str,
        due: (u64, u64),
    ) -> Result<bool, LeaseError> {
        let started = Instant::now();
        let entry = match self.revoke_on_target(id, Mode::Normal, Some(due)).await {
            Ok(Some(entry)) => entry,
            other => {
                self.release(id);
                return other.map(|_| false);
            }
        };
        let Ok(room) = self.removals.clone().acquire_owned().await else {
            // Never closed; were it, the removal happens here instead.
            let removed = self.forget_revoked(&entry, started).await;
            self.release(id);
            return removed.map(|()| true);
        };
        let leases = self.clone();
        tokio::spawn(async move {
            if let Err(err) = leases.forget_revoked(&entry, started).await {
                tracing::warn!(lease_id = %entry.lease_id, error = %err, "removing a revoked lease failed; it is revoked again and removed later");
            }
            leases.release(&entry.lease_id);
            drop(room);
        });
        Ok(true)
    }

    /// Stops `lane` taking leases for `pause`, and lets go of its queue (those
    /// leases stay due and are offered again afterwards).
    fn pause_lane(&self, lane: &Lane, pause: Duration) {
        let dropped: Vec<(u64, String)> = {
            let mut state = lane.lock();
            state.paused_until = Some(Instant::now() + pause);
            state.queue.drain(..).collect()
        };
        let mut queued = self.lanes.queued();
        for (_, id) in dropped {
            queued.remove(&id);
        }
    }
}
