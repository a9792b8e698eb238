//! Resource quotas, as Vault Enterprise has them and leasehold ships by default:
//! **rate limits** (requests per interval under a path prefix, counted per
//! client token) and **lease counts** (active leases under a path prefix).
//!
//! Quotas live in the barrier (`sys/quotas/<kind>/<name>`) and are cached in
//! memory, reloaded after every change, so a request costs a map lookup, not a
//! decryption. Where several quotas of a kind match a path, the most specific
//! (longest path) applies, as in Vault. Rate limiting is GCRA (the `governor`
//! crate): `rate` requests per `interval`, a burst of `rate`, one bucket per
//! client; with a `block_interval`, a client that goes over is refused for that
//! long. Clients are told apart as Vault's `group_by` says; by default by token
//! (the accessor of a token already checked, so made-up tokens make no
//! buckets), and by address for requests without one. A quota's buckets
//! survive changes to other quotas.

use crate::barrier::{Barrier, BarrierError};
use crate::path_prefix::covers;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as Gcra};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const RATE_PREFIX: &str = "sys/quotas/rate-limit/";
const LEASE_PREFIX: &str = "sys/quotas/lease-count/";

/// Paths no rate limit applies to (Vault's default exempt list): an operator
/// who set a quota too low can still see the server and unseal it.
const EXEMPT: &[&str] = &["sys/health", "sys/seal-status", "sys/unseal", "sys/init"];

/// Why a quota operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

/// How a rate limit tells clients apart (Vault's `group_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// By client address.
    Ip,
    /// All clients share one bucket.
    None,
    /// By token; by address for requests without one.
    #[default]
    EntityThenIp,
    /// By token; requests without one share one bucket.
    EntityThenNone,
}

impl GroupBy {
    /// Vault's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ip" => Self::Ip,
            "none" => Self::None,
            "entity_then_ip" => Self::EntityThenIp,
            "entity_then_none" => Self::EntityThenNone,
            _ => return None,
        })
    }

    /// Vault's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::None => "none",
            Self::EntityThenIp => "entity_then_ip",
            Self::EntityThenNone => "entity_then_none",
        }
    }
}

/// Who sent a request, as far as rate limits care.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The accessor of its (checked) token.
    pub accessor: Option<String>,
    /// Its address.
    pub address: Option<std::net::IpAddr>,
}

impl Client {
    fn key(&self, group_by: GroupBy) -> String {
        let address = || {
            self.address
                .map_or_else(|| "address:unknown".to_owned(), |a| format!("address:{a}"))
        };
        match (group_by, &self.accessor) {
            (GroupBy::None, _) => String::new(),
            (GroupBy::Ip, _) => address(),
            (GroupBy::EntityThenIp | GroupBy::EntityThenNone, Some(accessor)) => {
                format!("token:{accessor}")
            }
            (GroupBy::EntityThenIp, None) => address(),
            (GroupBy::EntityThenNone, None) => "token:none".to_owned(),
        }
    }
}

/// A rate-limit quota as stored and read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Its name.
    pub name: String,
    /// The path prefix it covers (`""`: everything).
    pub path: String,
    /// Requests allowed per `interval`, per client.
    pub rate: f64,
    /// The interval, in seconds.
    pub interval: u64,
    /// How long a client that went over is refused, in seconds (0: only until
    /// its bucket refills).
    pub block_interval: u64,
    /// How clients are told apart.
    #[serde(default)]
    pub group_by: GroupBy,
}

/// A lease-count quota as stored and read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCount {
    /// Its name.
    pub name: String,
    /// The path prefix it covers: `""`, a mount (`db/`) or a role's
    /// credentials (`db/creds/ro`).
    pub path: String,
    /// Leases allowed under it at once.
    pub max_leases: u64,
}

/// A request refused by a rate limit.
#[derive(Debug)]
pub struct Limited {
    /// The quota.
    pub quota: String,
    /// When the client may try again.
    pub retry_after: Duration,
}

/// One rate limit in force.
struct Limiter {
    quota: RateLimit,
    buckets: DefaultKeyedRateLimiter<String>,
    blocked: Mutex<HashMap<String, Instant>>,
}

#[derive(Default)]
struct Loaded {
    rate: Vec<Arc<Limiter>>,
    lease: Vec<LeaseCount>,
}

/// The quotas of a server.
pub struct Quotas {
    barrier: Arc<Barrier>,
    loaded: RwLock<Option<Arc<Loaded>>>,
    /// Bumped by every change, so a load that raced one is not cached.
    generation: AtomicU64,
    /// Every rate limiter by quota name, kept across reloads while its quota
    /// is unchanged, so its clients' buckets (and blocks) carry over.
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
}

/// The most specific of `items` whose path covers `path`.
fn most_specific<'a, T>(
    items: impl Iterator<Item = &'a T>,
    path: &str,
    path_of: impl Fn(&T) -> &str,
) -> Option<&'a T> {
    items
        .filter(|item| covers(path_of(item), path))
        .max_by_key(|item| path_of(item).len())
}

fn check_name(name: &str) -> Result<(), QuotaError> {
    if crate::ids::is_plain_name(name) {
        Ok(())
    } else {
        Err(QuotaError::Invalid(format!(
            "quota name `{name}`: use letters, digits, `-`, `_` and `.` (at most 128)"
        )))
    }
}

fn check_path(path: &str) -> Result<(), QuotaError> {
    let clean = path.split('/').enumerate().all(|(i, segment)| {
        // A trailing slash (a mount) leaves one empty last segment.
        (!segment.is_empty() || i == path.split('/').count() - 1)
            && segment != "."
            && segment != ".."
            && !segment.contains('*')
    });
    if path.len() <= 512 && !path.starts_with('/') && (path.is_empty() || clean) {
        Ok(())
    } else {
        Err(QuotaError::Invalid(format!(
            "quota path `{path}`: give a path prefix such as `db/` or `db/creds/ro` (no leading `/`, no `*`), or nothing for every path"
        )))
    }
}

impl Limiter {
    fn new(quota: RateLimit) -> Self {
        let burst = NonZeroU32::new(quota.rate.ceil().clamp(1.0, u32::MAX as f64) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs_f64(quota.interval as f64 / quota.rate)
            .max(Duration::from_nanos(1));
        let gcra = Gcra::with_period(period)
            .expect("the period is not zero")
            .allow_burst(burst);
        Self {
            quota,
            buckets: DefaultKeyedRateLimiter::keyed(gcra),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, client: &str) -> Result<(), Limited> {
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = blocked.get(client) {
            if now < *until {
                return Err(self.limited(*until - now));
            }
            blocked.remove(client);
        }
        match self.buckets.check_key(&client.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                if self.quota.block_interval > 0 {
                    let block = Duration::from_secs(self.quota.block_interval);
                    blocked.insert(client.to_owned(), now + block);
                    Err(self.limited(block))
                } else {
                    Err(self.limited(wait))
                }
            }
        }
    }

    fn limited(&self, retry_after: Duration) -> Limited {
        metrics::counter!("leasehold_quota_rate_limited_total", "quota" => self.quota.name.clone())
            .increment(1);
        Limited {
            quota: self.quota.name.clone(),
            retry_after,
        }
    }

    fn sweep(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
        let now = Instant::now();
        self.blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }
}

impl Quotas {
    /// Quotas kept in `barrier`.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            loaded: RwLock::new(None),
            generation: AtomicU64::new(0),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Drops the cache; the next check reads the barrier again (after an
    /// unseal, or a change).
    pub fn forget(&self) {
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        *loaded = None;
    }

    async fn loaded(&self) -> Result<Arc<Loaded>, QuotaError> {
        if let Some(loaded) = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(loaded);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let mut fresh = Loaded::default();
        let mut rates = Vec::new();
        for name in self.names(RATE_PREFIX).await? {
            if let Some(quota) = self.read::<RateLimit>(RATE_PREFIX, &name).await? {
                rates.push(quota);
            }
        }
        {
            let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
            limiters.retain(|name, _| rates.iter().any(|q| &q.name == name));
            for quota in rates {
                let limiter = limiters
                    .entry(quota.name.clone())
                    .and_modify(|kept| {
                        if kept.quota != quota {
                            *kept = Arc::new(Limiter::new(quota.clone()));
                        }
                    })
                    .or_insert_with(|| Arc::new(Limiter::new(quota)))
                    .clone();
                fresh.rate.push(limiter);
            }
        }
        for name in self.names(LEASE_PREFIX).await? {
            if let Some(quota) = self.read::<LeaseCount>(LEASE_PREFIX, &name).await? {
                fresh.lease.push(quota);
            }
        }
        let fresh = Arc::new(fresh);
        let mut slot = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            // Changed while this read: use what was read, cache nothing.
            return Ok(fresh);
        }
        Ok(slot.get_or_insert(fresh).clone())
    }

    async fn names(&self, prefix: &str) -> Result<Vec<String>, QuotaError> {
        Ok(self
            .barrier
            .list(prefix)
            .await?
            .into_iter()
            .map(|key| key[prefix.len()..].to_owned())
            .collect())
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        name: &str,
    ) -> Result<Option<T>, QuotaError> {
        let key = format!("{prefix}{name}");
        match self.barrier.get(&key).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| QuotaError::Barrier(BarrierError::Tampered(key))),
            None => Ok(None),
        }
    }

    /// Checks a request on `path` by `client` against the rate limits. While
    /// sealed there are no quotas to read, and nothing but the lifecycle
    /// endpoints answers anyway.
    pub async fn check_rate(
        &self,
        path: &str,
        client: &Client,
    ) -> Result<Result<(), Limited>, QuotaError> {
        if self.barrier.is_sealed() || EXEMPT.contains(&path) {
            return Ok(Ok(()));
        }
        let loaded = self.loaded().await?;
        let Some(limiter) = most_specific(loaded.rate.iter(), path, |l| &l.quota.path) else {
            return Ok(Ok(()));
        };
        Ok(limiter.check(&client.key(limiter.quota.group_by)))
    }

    /// Forgets the buckets of clients that have been quiet long enough to be
    /// full again, and blocks that ended; run now and then, off the requests.
    pub fn sweep(&self) {
        let limiters: Vec<Arc<Limiter>> = self
            .limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for limiter in limiters {
            limiter.sweep();
        }
    }

    /// The lease-count quota that applies to leases issued under `lease_path`
    /// (`<mount>creds/<role>`), if any.
    pub async fn lease_count_for(
        &self,
        lease_path: &str,
    ) -> Result<Option<LeaseCount>, QuotaError> {
        let loaded = self.loaded().await?;
        Ok(most_specific(loaded.lease.iter(), lease_path, |q| &q.path).cloned())
    }

    /// Every lease-count quota, for the metrics.
    pub async fn lease_counts(&self) -> Result<Vec<LeaseCount>, QuotaError> {
        Ok(self.loaded().await?.lease.clone())
    }

    /// Writes a rate-limit quota.
    pub async fn put_rate_limit(&self, quota: RateLimit) -> Result<(), QuotaError> {
        check_name(&quota.name)?;
        check_path(&quota.path)?;
        if !(quota.rate.is_finite() && quota.rate > 0.0 && quota.rate <= 1e9) {
            return Err(QuotaError::Invalid(
                "rate must be a number of requests greater than 0".into(),
            ));
        }
        if quota.interval == 0 {
            return Err(QuotaError::Invalid("interval must be at least 1s".into()));
        }
        self.put(RATE_PREFIX, &quota.name, &quota).await
    }

    /// Writes a lease-count quota.
    pub async fn put_lease_count(&self, quota: LeaseCount) -> Result<(), QuotaError> {
        check_name(&quota.name)?;
        check_path(&quota.path)?;
        if quota.max_leases == 0 {
            return Err(QuotaError::Invalid("max_leases must be at least 1".into()));
        }
        self.put(LEASE_PREFIX, &quota.name, &quota).await
    }

    async fn put<T: Serialize>(
        &self,
        prefix: &str,
        name: &str,
        quota: &T,
    ) -> Result<(), QuotaError> {
        let bytes = serde_json::to_vec(quota).expect("a quota serializes");
        self.barrier.put(&format!("{prefix}{name}"), &bytes).await?;
        self.forget();
        Ok(())
    }

    /// A rate-limit quota.
    pub async fn rate_limit(&self, name: &str) -> Result<Option<RateLimit>, QuotaError> {
        check_name(name)?;
        self.read(RATE_PREFIX, name).await
    }

    /// A lease-count quota.
    pub async fn lease_count(&self, name: &str) -> Result<Option<LeaseCount>, QuotaError> {
        check_name(name)?;
        self.read(LEASE_PREFIX, name).await
    }

    /// Names of the rate-limit quotas.
    pub async fn rate_limit_names(&self) -> Result<Vec<String>, QuotaError> {
        self.names(RATE_PREFIX).await
    }

    /// Names of the lease-count quotas.
    pub async fn lease_count_names(&self) -> Result<Vec<String>, QuotaError> {
        self.names(LEASE_PREFIX).await
    }

    /// Deletes a rate-limit quota (no error if absent).
    pub async fn delete_rate_limit(&self, name: &str) -> Result<(), QuotaError> {
        check_name(name)?;
        self.barrier.delete(&format!("{RATE_PREFIX}{name}")).await?;
        self.forget();
        Ok(())
    }

    /// Deletes a lease-count quota (no error if absent).
    pub async fn delete_lease_count(&self, name: &str) -> Result<(), QuotaError> {
        check_name(name)?;
        self.barrier
            .delete(&format!("{LEASE_PREFIX}{name}"))
            .await?;
        self.forget();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_covering_path_wins() {
        let quotas = ["", "db/", "db/creds/ro"];
        assert_eq!(
            most_specific(quotas.iter(), "db/creds/ro", |q| q),
            Some(&"db/creds/ro")
        );
        assert_eq!(
            most_specific(quotas.iter(), "db/config/x", |q| q),
            Some(&"db/")
        );
        assert_eq!(most_specific(quotas.iter(), "sys/mounts", |q| q), Some(&""));
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        assert!(check_name("ok-name_1.2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        for good in ["", "db/", "db/creds/ro", "sys/mounts"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["/db", "db//x", "db/../sys", "db/*", "./db"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_over_its_rate_is_refused_and_others_are_not() {
        let limiter = Limiter::new(RateLimit {
            name: "q".into(),
            path: String::new(),
            rate: 3.0,
            interval: 3600,
            block_interval: 0,
            group_by: GroupBy::EntityThenIp,
        });
        for _ in 0..3 {
            limiter.check("a").unwrap();
        }
        let refused = limiter.check("a").unwrap_err();
        assert!(refused.retry_after > Duration::from_secs(60));
        limiter.check("b").unwrap();
    }

    #[test]
    fn a_block_interval_holds_the_client_off() {
        let limiter = Limiter::new(RateLimit {
            name: "q".into(),
            path: String::new(),
            rate: 1.0,
            interval: 1,
            block_interval: 600,
            group_by: GroupBy::EntityThenIp,
        });
        limiter.check("a").unwrap();
        let refused = limiter.check("a").unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(600));
        assert!(limiter.check("a").unwrap_err().retry_after > Duration::from_secs(590));
    }
}
