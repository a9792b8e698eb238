//! Who may start a plugin call now: fair shares of the instance pool, so one
//! slow target, one busy mount or a flood of expiries cannot take the broker.
//!
//! Every call passes, in this order:
//! 1. its **connection's breaker**: a connection whose calls keep timing out is
//!    refused at once ([`PluginError::CircuitOpen`], answered 503 with
//!    `Retry-After`) until a single probe call gets through again;
//! 2. its **connection's turn**: at most `max_parallel` calls run on one
//!    connection (Vault's `max_open_connections`); the target decides how much
//!    concurrency it takes, and calls beyond that wait their turn instead of
//!    failing each other;
//! 3. its **mount's share**: at most `max_calls_per_mount` calls of one mount run
//!    at once, so a mount with many connections cannot fill the pool either;
//! 4. a **pool slot**: revocations have slots of their own
//!    (`reserved_for_revocation`), so issuing at full load never stops expired
//!    credentials from being removed, and the two shares together never exceed
//!    the wasmtime pool.
//!
//! Waiting (steps 2 to 4) is bounded by `queue_timeout` for calls a client waits
//! on; past it the call is refused as [`PluginError::Busy`] (429 with
//! `Retry-After`). Revocations wait as long as it takes: they have nobody to
//! answer and are only ever delayed.

use super::PluginError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Consecutive timeouts that open a connection's breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// How long a breaker stays open the first time; it doubles while probes fail.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(5);
/// The longest a breaker stays open before the next probe.
const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(60);

/// Which share of the pool a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A call someone waits for: create, renew, validate, rotate-root, info.
    Foreground,
    /// Removing a credential.
    Revocation,
}

/// The connection a call is for, and how many calls it takes at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// Unique per connection: the mount's id and the connection's name.
    pub key: String,
    /// Calls that may run on it at once (at least 1).
    pub max_parallel: u32,
}

/// How a finished call went, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The target answered (successfully or not).
    Answered,
    /// The call ran out of time: the target may be hanging.
    TimedOut,
}

/// Sizes of the shares.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Calls that may run at once in all (the wasmtime pool holds a few more,
    /// for loading plugins).
    pub max_instances: u32,
    /// Of those, slots only revocations use.
    pub reserved_for_revocation: u32,
    /// Calls one mount may run at once.
    pub max_calls_per_mount: u32,
    /// How long a foreground call waits for its turn.
    pub queue_timeout: Duration,
}

/// Instances kept for reading a freshly loaded plugin's `info`, outside every
/// share, so loading a plugin never waits behind (or fails because of) calls.
pub const LOAD_SLOTS: u32 = 2;

/// A connection's turn-taking and breaker. One per connection for the life of
/// the process: a new `max_parallel` replaces only the semaphore.
struct Gate {
    turns: Mutex<(Arc<Semaphore>, u32)>,
    breaker: Mutex<Breaker>,
}

impl Gate {
    fn turns(&self, size: u32) -> Arc<Semaphore> {
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        if turns.1 != size {
            // Calls already admitted finish on the old semaphore; new ones take
            // turns on the new size.
            *turns = (Arc::new(Semaphore::new(size as usize)), size);
        }
        turns.0.clone()
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct Breaker {
    consecutive_timeouts: u32,
    /// While set and in the future, calls are refused.
    open_until: Option<Instant>,
    cooldown: Duration,
    /// A probe is out; other calls wait for its verdict.
    probing: bool,
}

impl Breaker {
    /// Whether a call may go now; `Ok(true)` if it is the probe.
    fn admit(&mut self, now: Instant) -> Result<bool, Duration> {
        match self.open_until {
            None => Ok(false),
            Some(until) if now < until => Err(until - now),
            Some(_) if self.probing => Err(Duration::from_secs(1)),
            Some(_) => {
                self.probing = true;
                Ok(true)
            }
        }
    }

    fn record(&mut self, outcome: Outcome, probe: bool, now: Instant) {
        match outcome {
            Outcome::Answered => *self = Breaker::default(),
            Outcome::TimedOut => {
                self.consecutive_timeouts += 1;
                if probe {
                    self.probing = false;
                }
                let opened = self.open_until.is_some();
                if probe || (!opened && self.consecutive_timeouts >= BREAKER_THRESHOLD) {
                    self.cooldown = if self.cooldown.is_zero() {
                        BREAKER_COOLDOWN
                    } else {
                        (self.cooldown * 2).min(BREAKER_MAX_COOLDOWN)
                    };
                    self.open_until = Some(now + self.cooldown);
                }
            }
        }
    }
}

/// Every share, for one runtime.
pub struct Admission {
    config: AdmissionConfig,
    foreground: Arc<Semaphore>,
    revocation: Arc<Semaphore>,
    loads: Arc<Semaphore>,
    mounts: Mutex<HashMap<String, Arc<Semaphore>>>,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

/// What a running call holds; dropped when it ends.
pub struct Admitted {
    gate: Option<Arc<Gate>>,
    /// This call is the breaker's probe and has not reported yet.
    probe: bool,
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Admitted {
    /// Tells the connection's breaker how the call went.
    pub fn finish(mut self, outcome: Outcome) {
        if let Some(gate) = &self.gate {
            gate.breaker().record(outcome, self.probe, Instant::now());
            if outcome == Outcome::TimedOut {
                metrics::counter!("leasehold_connection_timeouts_total").increment(1);
            }
        }
        self.probe = false;
    }
}

impl Drop for Admitted {
    /// A probe that never reported (its caller went away) must not leave the
    /// breaker waiting for a verdict forever.
    fn drop(&mut self) {
        if let (true, Some(gate)) = (self.probe, &self.gate) {
            gate.breaker().probing = false;
        }
    }
}

/// Whether a call heeds its connection's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaking {
    /// Refused while the breaker is open.
    Heed,
    /// Goes anyway (a forced revocation makes one real attempt), still taking
    /// its turn; its outcome still counts.
    Ignore,
}

impl Admission {
    /// Shares for `config`. The revocation reserve is at most half the pool.
    pub fn new(config: AdmissionConfig) -> Self {
        let pool = config.max_instances.max(2);
        let reserved = config.reserved_for_revocation.clamp(1, pool / 2);
        Self {
            foreground: Arc::new(Semaphore::new((pool - reserved) as usize)),
            revocation: Arc::new(Semaphore::new(reserved as usize)),
            loads: Arc::new(Semaphore::new(LOAD_SLOTS as usize)),
            mounts: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            config,
        }
    }

    fn gate(&self, key: &str) -> Arc<Gate> {
        self.gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Gate {
                    turns: Mutex::new((Arc::new(Semaphore::new(0)), 0)),
                    breaker: Mutex::new(Breaker::default()),
                })
            })
            .clone()
    }

    /// Forgets what was learnt about a connection (its config changed: another
    /// host, a fixed password): its breaker closes.
    pub fn forget(&self, key: &str) {
        if let Some(gate) = self
            .gates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            // A probe still out reports to the closed breaker, harmlessly.
            *gate.breaker() = Breaker::default();
        }
    }

    fn mount(&self, mount: &str) -> Arc<Semaphore> {
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(mount.to_owned())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.max_calls_per_mount.max(1) as usize
                ))
            })
            .clone()
    }

    /// A slot for reading a newly loaded plugin's `info`.
    pub async fn enter_load(&self) -> OwnedSemaphorePermit {
        acquire(&self.loads).await
    }

    /// Waits for a call's turn, within the limits above.
    pub async fn enter(
        &self,
        kind: CallKind,
        mount: &str,
        connection: Option<&ConnectionLimit>,
        breaking: Breaking,
    ) -> Result<Admitted, PluginError> {
        let gate = connection.map(|limit| self.gate(&limit.key));
        let refused = |retry_after| {
            metrics::counter!("leasehold_plugin_calls_refused_total", "reason" => "circuit_open")
                .increment(1);
            PluginError::CircuitOpen { retry_after }
        };
        if let (Some(gate), Breaking::Heed) = (&gate, breaking) {
            // Refused before waiting: a dead target's callers fail fast.
            let now = Instant::now();
            if let Some(until) = gate.breaker().open_until.filter(|until| now < *until) {
                return Err(refused(until - now));
            }
        }
        let mut needed = Vec::with_capacity(3);
        if let (Some(gate), Some(limit)) = (&gate, connection) {
            needed.push(gate.turns(limit.max_parallel.max(1)));
        }
        if kind == CallKind::Foreground && !mount.is_empty() {
            needed.push(self.mount(mount));
        }
        needed.push(match kind {
            CallKind::Foreground => self.foreground.clone(),
            CallKind::Revocation => self.revocation.clone(),
        });
        let permits = match kind {
            CallKind::Revocation => acquire_all(&needed).await,
            CallKind::Foreground => tokio::time::timeout(self.config.queue_timeout, acquire_all(&needed))
                .await
                .map_err(|_| {
                    metrics::counter!("leasehold_plugin_calls_refused_total", "reason" => "busy")
                        .increment(1);
                    PluginError::Busy {
                        what: match connection {
                            Some(_) => "the connection's calls (max_parallel), the mount's share or the instances are taken",
                            None => "the mount's share or the instances are taken",
                        },
                        retry_after: Duration::from_secs(1),
                    }
                })?,
        };
        // Checked again after waiting: the breaker may have opened meanwhile.
        let probe = match (&gate, breaking) {
            (Some(gate), Breaking::Heed) => {
                gate.breaker().admit(Instant::now()).map_err(refused)?
            }
            _ => false,
        };
        Ok(Admitted {
            gate,
            probe,
            _permits: permits,
        })
    }
}

async fn acquire(semaphore: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    semaphore
        .clone()
        .acquire_owned()
        .await
        .expect("admission semaphores are never closed")
}

/// One permit of each semaphore, never holding one while waiting for another:
/// a call that waits for a pool slot must not keep its connection's turn
/// meanwhile (another call on that connection could have used both). Waits for
/// whichever was missing, then tries the rest at once, until all are there.
async fn acquire_all(semaphores: &[Arc<Semaphore>]) -> Vec<OwnedSemaphorePermit> {
    let mut waiting_on = 0;
    loop {
        let first = acquire(&semaphores[waiting_on]).await;
        let mut held = Vec::with_capacity(semaphores.len());
        let mut missing = None;
        for (i, semaphore) in semaphores.iter().enumerate() {
            if i == waiting_on {
                continue;
            }
            match semaphore.clone().try_acquire_owned() {
                Ok(permit) => held.push(permit),
                Err(_) => {
                    missing = Some(i);
                    break;
                }
            }
        }
        match missing {
            None => {
                held.push(first);
                return held;
            }
            Some(i) => waiting_on = i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallKind::{Foreground, Revocation};

    fn admission() -> Admission {
        Admission::new(AdmissionConfig {
            max_instances: 8,
            reserved_for_revocation: 2,
            max_calls_per_mount: 4,
            queue_timeout: Duration::from_millis(200),
        })
    }

    const DB: &str = "mount-uuid/db";

    /// A call on connection `db` of mount `db`, which takes `max_parallel`.
    async fn on_db(
        admission: &Admission,
        kind: CallKind,
        max_parallel: u32,
        breaking: Breaking,
    ) -> Result<Admitted, PluginError> {
        let limit = ConnectionLimit {
            key: DB.into(),
            max_parallel,
        };
        admission.enter(kind, "db", Some(&limit), breaking).await
    }

    /// A call on `mount`, on no connection.
    async fn on_mount(
        admission: &Admission,
        kind: CallKind,
        mount: &str,
    ) -> Result<Admitted, PluginError> {
        admission.enter(kind, mount, None, Breaking::Heed).await
    }

    /// Opens the breaker of `db` with consecutive timeouts.
    async fn time_out(admission: &Admission, kind: CallKind, max_parallel: u32) {
        for _ in 0..BREAKER_THRESHOLD {
            on_db(admission, kind, max_parallel, Breaking::Heed)
                .await
                .unwrap()
                .finish(Outcome::TimedOut);
        }
    }

    #[tokio::test]
    async fn a_connection_takes_turns_and_a_waiter_past_the_queue_timeout_is_busy() {
        let admission = admission();
        let first = on_db(&admission, Foreground, 1, Breaking::Heed)
            .await
            .unwrap();
        let refused = on_db(&admission, Foreground, 1, Breaking::Heed)
            .await
            .err()
            .unwrap();
        assert!(matches!(refused, PluginError::Busy { .. }), "{refused}");
        first.finish(Outcome::Answered);
        on_db(&admission, Foreground, 1, Breaking::Heed)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn revocations_have_slots_that_foreground_calls_cannot_take() {
        let admission = admission();
        let mut held = Vec::new();
        for mount in ["a", "b"] {
            for _ in 0..3 {
                held.push(on_mount(&admission, Foreground, mount).await.unwrap());
            }
        }
        assert!(on_mount(&admission, Foreground, "c").await.is_err());
        for _ in 0..2 {
            held.push(on_mount(&admission, Revocation, "c").await.unwrap());
        }
    }

    #[tokio::test]
    async fn one_mount_cannot_take_more_than_its_share() {
        let admission = admission();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(on_mount(&admission, Foreground, "busy").await.unwrap());
        }
        assert!(on_mount(&admission, Foreground, "busy").await.is_err());
        on_mount(&admission, Foreground, "other").await.unwrap();
    }

    #[tokio::test]
    async fn timeouts_open_the_breaker_and_one_probe_closes_it() {
        let admission = admission();
        time_out(&admission, Foreground, 4).await;
        let refused = on_db(&admission, Revocation, 4, Breaking::Heed)
            .await
            .err()
            .unwrap();
        let PluginError::CircuitOpen { retry_after } = refused else {
            panic!("expected an open circuit, got {refused}");
        };
        assert!(retry_after <= BREAKER_COOLDOWN);

        // Past the cooldown, one probe goes; others are still refused meanwhile.
        admission.gate(DB).breaker().open_until = Some(Instant::now());
        let probe = on_db(&admission, Foreground, 4, Breaking::Heed)
            .await
            .unwrap();
        assert!(
            on_db(&admission, Foreground, 4, Breaking::Heed)
                .await
                .is_err()
        );
        probe.finish(Outcome::Answered);
        on_db(&admission, Foreground, 4, Breaking::Heed)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_new_max_parallel_keeps_the_breaker_and_never_jams_it() {
        let admission = admission();
        time_out(&admission, Foreground, 4).await;
        admission.gate(DB).breaker().open_until = Some(Instant::now());
        let probe = on_db(&admission, Foreground, 4, Breaking::Heed)
            .await
            .unwrap();
        // The operator changes max_parallel while the probe is out.
        assert!(
            on_db(&admission, Foreground, 8, Breaking::Heed)
                .await
                .is_err()
        );
        probe.finish(Outcome::Answered);
        // Up to the mount's share (4 here), every call gets a turn.
        let calls = futures::future::join_all(
            (0..4).map(|_| on_db(&admission, Foreground, 8, Breaking::Heed)),
        )
        .await;
        assert!(calls.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_forced_call_goes_through_an_open_breaker_and_forget_closes_it() {
        let admission = admission();
        time_out(&admission, Revocation, 2).await;
        assert!(
            on_db(&admission, Revocation, 2, Breaking::Heed)
                .await
                .is_err()
        );
        on_db(&admission, Revocation, 2, Breaking::Ignore)
            .await
            .unwrap();
        admission.forget(DB);
        on_db(&admission, Revocation, 2, Breaking::Heed)
            .await
            .unwrap();
    }
}
