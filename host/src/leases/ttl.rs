//! Lease TTLs with Vault's rules: a role narrows its mount, a mount narrows the
//! system; a renewal counts from now and stops at issue time plus the max TTL.

/// The longest any lease lives: Vault's 768 hours.
pub const SYSTEM_MAX_TTL: u64 = 768 * 3600;

/// The TTL settings in force for a lease (0 means "inherit").
#[derive(Debug, Clone, Copy, Default)]
pub struct TtlSettings {
    /// The mount's `default_lease_ttl`.
    pub mount_default: u64,
    /// The mount's `max_lease_ttl`.
    pub mount_max: u64,
    /// The role's `default_ttl`.
    pub role_default: u64,
    /// The role's `max_ttl`.
    pub role_max: u64,
}

impl TtlSettings {
    /// The max TTL: the role's, bounded by the mount's, bounded by the system's.
    pub fn max(&self) -> u64 {
        let mount = nonzero_or(self.mount_max, SYSTEM_MAX_TTL).min(SYSTEM_MAX_TTL);
        nonzero_or(self.role_max, mount).min(mount)
    }

    /// The TTL an issue gets: the role's default, else the mount's, else the
    /// system's; never above the max.
    pub fn default_ttl(&self) -> u64 {
        let mount = nonzero_or(self.mount_default, SYSTEM_MAX_TTL);
        nonzero_or(self.role_default, mount).min(self.max())
    }
}

fn nonzero_or(value: u64, fallback: u64) -> u64 {
    if value == 0 { fallback } else { value }
}

/// The outcome of a renewal.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The new TTL, and a warning when it was capped.
    Renewed {
        /// Seconds from now.
        ttl: u64,
        /// Why it is less than asked.
        warning: Option<String>,
    },
    /// The lease is at its max TTL already.
    PastMax,
}

/// A renewal at `now` asking for `increment` seconds (0: the lease's default),
/// for a lease that may not live past `max_expire_at`.
pub fn renew(now: u64, increment: u64, default_ttl: u64, max_expire_at: u64) -> Renewal {
    if max_expire_at <= now {
        return Renewal::PastMax;
    }
    let wanted = nonzero_or(increment, default_ttl);
    let cap = max_expire_at - now;
    if wanted > cap {
        Renewal::Renewed {
            ttl: cap,
            warning: Some(format!(
                "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                humantime::format_duration(std::time::Duration::from_secs(wanted)),
                humantime::format_duration(std::time::Duration::from_secs(cap)),
            )),
        }
    } else {
        Renewal::Renewed {
            ttl: wanted,
            warning: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_narrow_mounts_which_narrow_the_system() {
        let none = TtlSettings::default();
        assert_eq!(
            (none.default_ttl(), none.max()),
            (SYSTEM_MAX_TTL, SYSTEM_MAX_TTL)
        );
        let mount = TtlSettings {
            mount_default: 3600,
            mount_max: 7200,
            ..none
        };
        assert_eq!((mount.default_ttl(), mount.max()), (3600, 7200));
        let role = TtlSettings {
            role_default: 60,
            role_max: 600,
            ..mount
        };
        assert_eq!((role.default_ttl(), role.max()), (60, 600));
        // A role cannot exceed its mount; a default cannot exceed the max.
        let greedy = TtlSettings {
            role_default: 99_999,
            role_max: 99_999,
            ..mount
        };
        assert_eq!((greedy.default_ttl(), greedy.max()), (7200, 7200));
    }

    #[test]
    fn renewals_count_from_now_and_stop_at_the_max() {
        assert_eq!(
            renew(1000, 50, 10, 2000),
            Renewal::Renewed {
                ttl: 50,
                warning: None
            }
        );
        assert_eq!(
            renew(1000, 0, 10, 2000),
            Renewal::Renewed {
                ttl: 10,
                warning: None
            }
        );
        match renew(1900, 500, 10, 2000) {
            Renewal::Renewed {
                ttl: 100,
                warning: Some(w),
            } => assert!(w.contains("capped")),
            other => panic!("{other:?}"),
        }
        assert_eq!(renew(2000, 10, 10, 2000), Renewal::PastMax);
    }
}
