//! The lease a call is made for, and the username derived from it.
//!
//! A plugin declares the longest username its target takes once, as
//! [`crate::Provider::MAX_USERNAME_LENGTH`]; every [`Lease`] the SDK hands it
//! carries that length, so [`Lease::username`] gives one name in `create`,
//! `renew` and a `revoke` that has no handle. A length written at each call site
//! could differ between them, and a revoke after a crash would then look for a
//! user that was never made.

use crate::bindings::leasehold::provider::types::LeaseInfo;
use crate::provider::Provider;
use sha2::{Digest, Sha256};

/// The username length of a [`Lease`] made with [`Lease::new`]: the default of
/// [`Provider::MAX_USERNAME_LENGTH`].
pub const DEFAULT_MAX_USERNAME_LENGTH: u32 = 64;

/// The lease a call is made for.
///
/// The host passes the same values to every call for one lease, including a
/// `revoke` made after a crash, and the SDK makes every lease of a plugin with the
/// plugin's [`Provider::MAX_USERNAME_LENGTH`], so [`Lease::username`] gives the
/// same name in `create` and in a `revoke` that has no handle.
#[derive(Debug, Clone)]
pub struct Lease {
    info: LeaseInfo,
    max_username_length: u32,
}

/// Characters a username part keeps as they are; every other one becomes `_`, so a
/// name is safe in an htpasswd line, a Redis ACL rule or a quoted SQL identifier.
fn sanitized(part: &str, max_chars: usize) -> String {
    part.chars()
        .take(max_chars)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Lease {
    /// Wraps the record the host passed, as the SDK does for provider `P`: its
    /// usernames are at most `P::MAX_USERNAME_LENGTH` bytes. Use this in a
    /// plugin's unit tests to get the names the plugin will really use.
    pub fn for_provider<P: Provider>(info: LeaseInfo) -> Self {
        Self {
            info,
            max_username_length: P::MAX_USERNAME_LENGTH,
        }
    }

    /// Wraps the record the host passed, with usernames of at most
    /// [`DEFAULT_MAX_USERNAME_LENGTH`] bytes (a provider that keeps the default
    /// length gets the same names from [`Lease::for_provider`]).
    pub fn new(info: LeaseInfo) -> Self {
        Self {
            info,
            max_username_length: DEFAULT_MAX_USERNAME_LENGTH,
        }
    }

    /// The lease id, `<mount>/creds/<role>/<random>`.
    pub fn id(&self) -> &str {
        &self.info.lease_id
    }

    /// The mount path.
    pub fn mount(&self) -> &str {
        &self.info.mount
    }

    /// The role name.
    pub fn role(&self) -> &str {
        &self.info.role
    }

    /// The display name of the requesting token.
    pub fn requester(&self) -> &str {
        &self.info.requester
    }

    /// When the lease was first written (Unix seconds).
    pub fn issued_at(&self) -> u64 {
        self.info.issued_at
    }

    /// The lease's TTL in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        self.info.ttl_seconds
    }

    /// When the lease expires unless renewed (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.info.expires_at
    }

    /// The longest username [`Lease::username`] gives, in bytes: the plugin's
    /// [`Provider::MAX_USERNAME_LENGTH`].
    pub fn max_username_length(&self) -> usize {
        self.max_username_length as usize
    }

    /// The username of this lease, in Vault's default shape
    /// `v-<requester:8>-<role:8>-<random:20>-<issued-at>`, at most
    /// [`Lease::max_username_length`] bytes, made of ASCII letters, digits, `_`
    /// and `-`.
    ///
    /// The "random" part is the first 20 hex digits of the SHA-256 of the lease
    /// id, and the time is the lease's issue time, so the name is computed again,
    /// the same, from the lease alone. When the full name is too long, the time
    /// goes first, then the requester and role are shortened, then dropped; the
    /// hash part keeps its 20 digits (80 bits) for any length of 22 or more.
    pub fn username(&self) -> String {
        derive_username(&self.info, self.max_username_length())
    }

    /// The credential a `revoke` or `renew` is about: the handle `create`
    /// returned when the broker has it, else [`Lease::username`] (a revoke after
    /// a crash). For plugins whose handle is the username.
    pub fn handle_or_username(&self, handle: Option<&str>) -> String {
        handle.map_or_else(|| self.username(), str::to_owned)
    }
}

/// The name [`Lease::username`] gives for `info` within `max_len` bytes. The
/// same lease and length must give the same name in every release of the SDK:
/// leases issued by an older plugin are revoked by a newer one.
fn derive_username(info: &LeaseInfo, max_len: usize) -> String {
    let digest = hex::encode(Sha256::digest(info.lease_id.as_bytes()));
    let hash = &digest[..20];
    let (requester, role) = (&info.requester, &info.role);
    let candidates = [
        format!(
            "v-{}-{}-{hash}-{}",
            sanitized(requester, 8),
            sanitized(role, 8),
            info.issued_at
        ),
        format!(
            "v-{}-{}-{hash}",
            sanitized(requester, 8),
            sanitized(role, 8)
        ),
        format!(
            "v-{}-{}-{hash}",
            sanitized(requester, 4),
            sanitized(role, 4)
        ),
        format!("v-{hash}"),
    ];
    candidates
        .into_iter()
        .find(|name| name.len() <= max_len)
        .unwrap_or_else(|| format!("v-{}", &digest[..max_len.saturating_sub(2)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Issued, Result};

    fn info(id: &str, requester: &str, role: &str) -> LeaseInfo {
        LeaseInfo {
            lease_id: id.into(),
            mount: "web".into(),
            role: role.into(),
            requester: requester.into(),
            issued_at: 1_700_000_000,
            ttl_seconds: 3600,
            expires_at: 1_700_003_600,
        }
    }

    /// A provider whose target takes names of 32 bytes at most.
    struct Short;

    impl Provider for Short {
        const NAME: &'static str = "short";
        const DESCRIPTION: &'static str = "names of 32 bytes";
        const MAX_USERNAME_LENGTH: u32 = 32;
        type Config = ();
        type Role = ();

        fn create(_: &(), _: &(), lease: &Lease) -> Result<Issued> {
            Ok(Issued::new(lease.username()))
        }

        fn revoke(_: &(), _: &(), _: Option<&str>, _: &Lease) -> Result<()> {
            Ok(())
        }
    }

    /// Names leases were issued under by earlier releases: a newer SDK must give
    /// exactly these again, or a handle-less revoke of an old lease misses.
    #[test]
    fn names_are_those_earlier_releases_gave() {
        let old = LeaseInfo {
            issued_at: 1_795_356_935,
            ..info("web/creds/reader/01HZX3", "token-ci-runner", "reader")
        };
        for (max, name) in [
            (10, "v-c391b51e"),
            (22, "v-c391b51e13721fde0052"),
            (32, "v-toke-read-c391b51e13721fde0052"),
            (40, "v-token-ci-reader-c391b51e13721fde0052"),
            (63, "v-token-ci-reader-c391b51e13721fde0052-1795356935"),
            (64, "v-token-ci-reader-c391b51e13721fde0052-1795356935"),
        ] {
            assert_eq!(derive_username(&old, max), name, "{max}");
        }
        assert_eq!(
            Lease::for_provider::<Short>(old.clone()).username(),
            "v-toke-read-c391b51e13721fde0052"
        );
        assert_eq!(
            Lease::new(old).username(),
            "v-token-ci-reader-c391b51e13721fde0052-1795356935"
        );
    }

    #[test]
    fn full_shape_when_it_fits() {
        let name = Lease::new(info("web/creds/reader/abc", "token-ci-runner", "reader")).username();
        assert_eq!(
            name,
            format!(
                "v-token-ci-reader-{}-1700000000",
                &hex::encode(Sha256::digest(b"web/creds/reader/abc"))[..20]
            )
        );
    }

    #[test]
    fn create_and_a_revoke_without_handle_derive_one_name() {
        let lease = info("web/creds/reader/abc", "a-long-requester", "a-long-role");
        // Each call gets its own `Lease`, made from the same record.
        let created = Short::create(&(), &(), &Lease::for_provider::<Short>(lease.clone()))
            .unwrap()
            .handle()
            .to_owned();
        let revoking = Lease::for_provider::<Short>(lease);
        assert_eq!(revoking.handle_or_username(None), created);
        assert_eq!(revoking.max_username_length(), 32);
        assert!(created.len() <= 32, "{created}");
        // The handle, when the broker has it, wins.
        assert_eq!(
            revoking.handle_or_username(Some("made-by-create")),
            "made-by-create"
        );
        // Another lease, another name.
        assert_ne!(
            Lease::for_provider::<Short>(info(
                "web/creds/reader/abd",
                "a-long-requester",
                "a-long-role"
            ))
            .username(),
            created
        );
    }

    #[test]
    fn shortened_names_fit_and_keep_the_hash() {
        let long = info(
            "m/creds/r/x",
            "a-very-long-display-name",
            "a-very-long-role",
        );
        let hash = &hex::encode(Sha256::digest(b"m/creds/r/x"))[..20];
        for max in [22, 30, 32, 40, 63, 64, 100] {
            let name = derive_username(&long, max);
            assert!(name.len() <= max, "{name} is longer than {max}");
            assert!(name.contains(hash), "{name} lost its hash");
            assert_eq!(name, derive_username(&long, max), "not deterministic");
        }
        for max in [0, 2, 3, 10, 21] {
            assert_eq!(derive_username(&long, max).len(), max.max(2));
        }
    }

    #[test]
    fn unsafe_characters_are_replaced() {
        let name = Lease::new(info("m/creds/r/x", "a:b c", "r@le")).username();
        assert!(name.starts_with("v-a_b_c-r_le-"), "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{name}"
        );
    }
}
