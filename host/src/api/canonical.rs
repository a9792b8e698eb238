//! The one spelling of a request's path.
//!
//! A path reaches the ACL, the audit log and the handler as one string, made
//! here once: percent-decoded exactly once, then checked. Anything with two
//! plausible meanings is refused rather than guessed at, so no later step can
//! read the same request as a different path than the ACL did:
//!
//! - an empty segment (`a//b`) or a `.` / `..` segment;
//! - an encoded `/` (`%2F`), which would decode into a segment boundary the
//!   router and the ACL never saw;
//! - NUL, control characters and `\`;
//! - text that decodes differently a second time (`%2570` → `%70` → `p`);
//! - bytes that are not UTF-8 once decoded.
//!
//! One trailing `/` is dropped (Vault clients add one to list prefixes). Where
//! Vault compares names without case (ACL policy names), the name is lower-cased
//! here and nowhere else.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Paths whose last segment is a name Vault compares without case.
const CASE_INSENSITIVE: &[&str] = &["sys/policies/acl/", "sys/policy/"];

/// What a path may not contain, in the client's words.
#[derive(Debug, PartialEq, Eq)]
pub struct PathRefused(pub &'static str);

impl std::fmt::Display for PathRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid request path: {}", self.0)
    }
}

/// The canonical form of `path` (the part after `/v1/`, as sent on the wire).
pub fn canonical(path: &str) -> Result<String, PathRefused> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(PathRefused("an encoded `/` or `\\` is not allowed"));
    }
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| PathRefused("the path is not UTF-8 once decoded"))?;
    if percent_decode_str(&decoded).decode_utf8().ok().as_deref() != Some(&*decoded) {
        return Err(PathRefused(
            "the path decodes differently a second time (encoded `%`)",
        ));
    }
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathRefused(
            "control characters, NUL and `\\` are not allowed",
        ));
    }
    let trimmed = decoded.strip_suffix('/').unwrap_or(&decoded);
    for segment in trimmed.split('/') {
        match segment {
            "" if !trimmed.is_empty() => {
                return Err(PathRefused("empty segments (`//`) are not allowed"));
            }
            "." | ".." => return Err(PathRefused("`.` and `..` segments are not allowed")),
            _ => {}
        }
    }
    let mut canonical = trimmed.to_owned();
    if let Some(prefix) = CASE_INSENSITIVE.iter().find(|p| canonical.starts_with(*p)) {
        // ASCII, as the policy store folds names (which are ASCII only).
        let name = canonical[prefix.len()..].to_ascii_lowercase();
        canonical.truncate(prefix.len());
        canonical.push_str(&name);
    }
    Ok(canonical)
}

/// Characters kept as they are when the canonical path goes back into a URI:
/// the unreserved ones and `/`. Everything else is escaped, so the router's own
/// decoding of a segment gives back exactly the canonical segment.
const KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `canonical` as a URI path, `/v1/` included.
pub fn to_uri_path(canonical: &str) -> String {
    format!("/v1/{}", utf8_percent_encode(canonical, KEPT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_path() {
        assert_eq!(canonical("sys/mounts/prod").unwrap(), "sys/mounts/prod");
        assert_eq!(canonical("sys/mounts/%70rod").unwrap(), "sys/mounts/prod");
        assert_eq!(
            canonical("sys/leases/lookup/db/").unwrap(),
            "sys/leases/lookup/db"
        );
        assert_eq!(
            canonical("sys/policies/acl/ADMIN").unwrap(),
            "sys/policies/acl/admin"
        );
        assert_eq!(canonical("sys/policy/Ad%4Din").unwrap(), "sys/policy/admin");
        assert_eq!(canonical("DB/creds/RO").unwrap(), "DB/creds/RO");
        assert_eq!(canonical("").unwrap(), "");
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for path in [
            "sys//mounts/prod",
            "sys/mounts//",
            "/sys/mounts",
            "sys/./mounts/prod",
            "sys/mounts/x/../prod",
            "sys/mounts/%2e%2e/prod",
            "sys/mounts/a%2Fb",
            "sys/mounts/a%2fb",
            "sys/mounts/%2570rod",
            "sys/mounts/pro%00d",
            "sys/mounts/pro%0Ad",
            "sys/mounts/a%5Cb",
            "sys/mounts/%ff",
        ] {
            assert!(canonical(path).is_err(), "{path} was accepted");
        }
    }

    #[test]
    fn the_uri_form_decodes_back() {
        let path = "db/creds/ro le?#%";
        let uri = to_uri_path(path);
        assert_eq!(uri, "/v1/db/creds/ro%20le%3F%23%25");
        assert_eq!(percent_decode_str(&uri[4..]).decode_utf8().unwrap(), path);
    }
}
