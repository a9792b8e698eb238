//! Whether a path prefix covers a path, the way Vault's quotas and
//! `revoke-prefix` read prefixes: whole segments only (`db/creds/ro` covers
//! `db/creds/ro/x` but not `db/creds/ro2`), a trailing `/` covers everything
//! below it, and the empty prefix covers everything.

/// Whether `prefix` covers `path`.
pub fn covers(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix.trim_end_matches('/')
        || (prefix.ends_with('/') && path.starts_with(prefix))
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn prefixes_cover_whole_segments() {
        assert!(covers("", "anything/at/all"));
        assert!(covers("db/", "db/creds/ro"));
        assert!(covers("db/", "db"));
        assert!(covers("db/creds/ro", "db/creds/ro"));
        assert!(covers("db/creds/ro", "db/creds/ro/x"));
        assert!(!covers("db/creds/ro", "db/creds/ro2"));
        assert!(!covers("db/", "dbx/creds/ro"));
    }
}
