//! The lease a call is made for, and the usernames derived from it.

use crate::bindings::leasehold::provider::types::LeaseInfo;
use sha2::{Digest, Sha256};

/// The lease a call is made for.
///
/// The host passes the same values to every call for one lease, including a
/// `revoke` made after a crash, so [`Lease::username`] gives the same name in
/// `create` and in a `revoke` that has no handle.
#[derive(Debug, Clone)]
pub struct Lease {
    info: LeaseInfo,
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
    /// Wraps the record the host passed.
    pub fn new(info: LeaseInfo) -> Self {
        Self { info }
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

    /// A username for this lease in Vault's default shape,
    /// `v-<requester:8>-<role:8>-<random:20>-<issued-at>`, at most `max_len` bytes.
    ///
    /// The "random" part is the first 20 hex digits of the SHA-256 of the lease id,
    /// and the time is the lease's issue time, so the name can be computed again from
    /// the lease alone. When the full name is too long, the time goes first, then
    /// the requester and role are shortened, then dropped; the hash part keeps its
    /// 20 digits (80 bits) for any `max_len` of 22 or more.
    pub fn username(&self, max_len: usize) -> String {
        let digest = hex::encode(Sha256::digest(self.id().as_bytes()));
        let hash = &digest[..20];
        let (requester, role) = (&self.info.requester, &self.info.role);
        let candidates = [
            format!(
                "v-{}-{}-{hash}-{}",
                sanitized(requester, 8),
                sanitized(role, 8),
                self.info.issued_at
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, requester: &str, role: &str) -> Lease {
        Lease::new(LeaseInfo {
            lease_id: id.into(),
            mount: "web".into(),
            role: role.into(),
            requester: requester.into(),
            issued_at: 1_700_000_000,
            ttl_seconds: 3600,
            expires_at: 1_700_003_600,
        })
    }

    #[test]
    fn full_shape_when_it_fits() {
        let name = lease("web/creds/reader/abc", "token-ci-runner", "reader").username(100);
        assert_eq!(
            name,
            format!(
                "v-token-ci-reader-{}-1700000000",
                &hex::encode(Sha256::digest(b"web/creds/reader/abc"))[..20]
            )
        );
    }

    #[test]
    fn same_lease_same_name_other_lease_other_name() {
        let a = lease("web/creds/reader/abc", "root", "reader");
        assert_eq!(a.username(63), a.clone().username(63));
        assert_ne!(
            a.username(63),
            lease("web/creds/reader/abd", "root", "reader").username(63)
        );
    }

    #[test]
    fn shortened_names_fit_and_keep_the_hash() {
        let l = lease(
            "m/creds/r/x",
            "a-very-long-display-name",
            "a-very-long-role",
        );
        let hash = &hex::encode(Sha256::digest(b"m/creds/r/x"))[..20];
        for max in [22, 30, 32, 40, 63] {
            let name = l.username(max);
            assert!(name.len() <= max, "{name} is longer than {max}");
            assert!(name.contains(hash), "{name} lost its hash");
        }
        assert_eq!(l.username(10).len(), 10);
    }

    #[test]
    fn unsafe_characters_are_replaced() {
        let name = lease("m/creds/r/x", "a:b c", "r@le").username(100);
        assert!(name.starts_with("v-a_b_c-r_le-"), "{name}");
    }
}
