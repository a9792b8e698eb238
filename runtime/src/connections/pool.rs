//! Idle connections kept between calls, per connection config.
//!
//! A plugin hands a connection back with `keep` and a later call for the same
//! connection takes it with `take`, already authenticated. Entries are filed under
//! the connection (the broker's key for it), a digest of the plugin component and
//! the config the keeping call ran with, and the plugin's own key: a call with
//! another plugin version or a config that differs in any byte (a changed
//! password, a `rotate-root`) never sees them. [`ConnectionPools::forget`] closes
//! a connection's entries as soon as the broker changes it, and a call that
//! started before that cannot file its connections afterwards (each connection
//! has a generation, bumped by every forget). Each connection keeps at most as
//! many idle connections as calls may run on it at once, none longer than
//! [`IDLE_LIMIT`], and [`ConnectionPools::sweep`] closes the expired ones even
//! when no call comes.

use super::Connection;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a connection stays idle in a pool before it is closed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(300);

/// Where one call's kept connections go: its connection, what set them up, and
/// the connection's generation when the call began. No `Debug`: the digest is
/// of a config that holds a password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PoolKey {
    /// The broker's key for the connection (see `ConnectionLimit::key`).
    connection: String,
    /// SHA-256 over the plugin component's SHA-256 and the call's config.
    setup: [u8; 32],
    generation: u64,
}

struct Idle {
    setup: [u8; 32],
    key: String,
    connection: Connection,
    since: Instant,
}

#[derive(Default)]
struct State {
    /// By the broker's connection key.
    idle: HashMap<String, Vec<Idle>>,
    /// By the broker's connection key: bumped by every forget.
    generations: HashMap<String, u64>,
}

/// Every connection's idle connections. One per runtime.
#[derive(Default)]
pub(crate) struct ConnectionPools {
    state: Mutex<State>,
}

impl ConnectionPools {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of a call on `connection` by the component with `plugin_sha256`
    /// and `config`, as of now.
    pub(crate) fn key(&self, connection: &str, plugin_sha256: &str, config: &str) -> PoolKey {
        let mut digest = Sha256::new();
        digest.update(plugin_sha256.as_bytes());
        digest.update([0]);
        digest.update(config.as_bytes());
        let mut state = self.state();
        let generation = *state.generations.entry(connection.to_owned()).or_default();
        PoolKey {
            connection: connection.to_owned(),
            setup: digest.finalize().into(),
            generation,
        }
    }

    /// Takes the most recently kept idle connection of `pool` under `key`.
    /// The caller checks it is still open and granted before use.
    pub(crate) fn take(&self, pool: &PoolKey, key: &str) -> Option<Connection> {
        let mut state = self.state();
        let entries = state.idle.get_mut(&pool.connection)?;
        let position = entries.iter().rposition(|e| {
            e.setup == pool.setup && e.key == key && e.since.elapsed() < IDLE_LIMIT
        })?;
        Some(entries.remove(position).connection)
    }

    /// Files `connections` under `pool`, keeping at most `limit` idle for its
    /// connection; the oldest beyond that are closed. Connections of a call
    /// that began before the connection was forgotten are closed instead.
    pub(crate) fn put(&self, pool: &PoolKey, connections: Vec<(String, Connection)>, limit: usize) {
        if connections.is_empty() {
            return;
        }
        let closed = {
            let mut state = self.state();
            if state.generations.get(&pool.connection) != Some(&pool.generation) {
                return;
            }
            let entries = state.idle.entry(pool.connection.clone()).or_default();
            let now = Instant::now();
            entries.extend(connections.into_iter().map(|(key, connection)| Idle {
                setup: pool.setup,
                key,
                connection,
                since: now,
            }));
            // Connections of an older setup are of no use to anyone: they go first.
            entries.sort_by_key(|e| (e.setup == pool.setup, e.since));
            let excess = entries.len().saturating_sub(limit.max(1));
            entries.drain(..excess).collect::<Vec<_>>()
        };
        drop(closed);
    }

    /// Closes every idle connection of each connection whose key `matches`,
    /// and keeps calls on them that already began from filing any more.
    pub(crate) fn forget(&self, matches: impl Fn(&str) -> bool) {
        let closed: Vec<Vec<Idle>> = {
            let mut state = self.state();
            for (connection, generation) in state.generations.iter_mut() {
                if matches(connection) {
                    *generation += 1;
                }
            }
            let forgotten: Vec<String> = state
                .idle
                .keys()
                .filter(|connection| matches(connection))
                .cloned()
                .collect();
            forgotten
                .iter()
                .filter_map(|connection| state.idle.remove(connection))
                .collect()
        };
        drop(closed);
    }

    /// Closes connections idle for longer than [`IDLE_LIMIT`].
    pub(crate) fn sweep(&self) {
        let mut closed = Vec::new();
        {
            let mut state = self.state();
            state.idle.retain(|_, entries| {
                let (expired, kept): (Vec<Idle>, Vec<Idle>) = std::mem::take(entries)
                    .into_iter()
                    .partition(|e| e.since.elapsed() >= IDLE_LIMIT);
                closed.extend(expired);
                *entries = kept;
                !entries.is_empty()
            });
        }
        drop(closed);
    }
}
