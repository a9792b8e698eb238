//! The connection URL, and role names from a template.

use leasehold_sdk::{Error, Lease, Result};
use sha2::{Digest, Sha256};

/// Host, port and database of a Vault-style `connection_url`
/// (`postgresql://{{username}}:{{password}}@host:port/database`). A password
/// written into the URL itself is refused: the URL is not secret, `password` is.
pub fn parse_url(template: &str) -> Result<(String, u16, String)> {
    let filled = template
        .replace("{{username}}", "placeholder-user")
        .replace("{{password}}", "placeholder-password");
    let url = url::Url::parse(&filled)
        .map_err(|err| Error::invalid_config(format!("connection_url: {err}")))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(Error::invalid_config(
            "connection_url must start with postgresql://",
        ));
    }
    if url.password().is_some_and(|p| p != "placeholder-password") {
        return Err(Error::invalid_config(
            "connection_url holds a password: write {{password}} there and the password in `password`",
        ));
    }
    for (key, value) in url.query_pairs() {
        if key == "sslmode" && matches!(value.as_ref(), "require" | "verify-ca" | "verify-full") {
            return Err(Error::invalid_config(
                "TLS to PostgreSQL is not supported yet: use sslmode=disable",
            ));
        }
    }
    let host = url
        .host_str()
        .ok_or_else(|| Error::invalid_config("connection_url has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let database = match url.path().trim_start_matches('/') {
        "" => "postgres".to_owned(),
        name => name.to_owned(),
    };
    Ok((host, url.port().unwrap_or(5432), database))
}

/// A role name from `template`, a subset of Vault's username templates:
/// `{{.DisplayName}}`, `{{.RoleName}}`, `{{unix_time}}` and `{{random N}}`. The
/// "random" part is the lease id's SHA-256 in hex, so the name can be computed
/// again at revoke time from the lease alone. Cut to `max` bytes.
pub fn from_template(template: &str, lease: &Lease, max: usize) -> Result<String> {
    let digest = hex::encode(Sha256::digest(lease.id().as_bytes()));
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .map(|e| start + e)
            .ok_or_else(|| Error::invalid_config("username_template has `{{` without `}}`"))?;
        let token = rest[start + 2..end].trim();
        let words: Vec<&str> = token.split_whitespace().collect();
        match words.as_slice() {
            [".DisplayName"] => out.push_str(lease.requester()),
            [".RoleName"] => out.push_str(lease.role()),
            ["unix_time"] => out.push_str(&lease.issued_at().to_string()),
            ["random", n] => {
                let n: usize = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| Error::invalid_config("{{random N}} takes N from 1 to 64"))?;
                out.push_str(&digest[..n]);
            }
            _ => {
                return Err(Error::invalid_config(format!(
                    "username_template: unknown {{{{{token}}}}}; use .DisplayName, .RoleName, unix_time or random N"
                )));
            }
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    let mut name: String = out
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(max);
    if name.is_empty() {
        return Err(Error::invalid_config(
            "username_template makes an empty name",
        ));
    }
    Ok(name)
}

/// Checks a template with a sample lease.
pub fn check_template(template: &str) -> Result<()> {
    let lease = Lease::new(
        leasehold_sdk::bindings::leasehold::provider::types::LeaseInfo {
            lease_id: "db/creds/r/x".into(),
            mount: "db".into(),
            role: "r".into(),
            requester: "token".into(),
            issued_at: 0,
            ttl_seconds: 0,
            expires_at: 0,
        },
    );
    from_template(template, &lease, 63).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_vaults_shape() {
        assert_eq!(
            parse_url("postgresql://{{username}}:{{password}}@10.0.0.5:5433/app").unwrap(),
            ("10.0.0.5".to_owned(), 5433, "app".to_owned())
        );
        assert_eq!(
            parse_url("postgres://{{username}}:{{password}}@db.internal/").unwrap(),
            ("db.internal".to_owned(), 5432, "postgres".to_owned())
        );
        assert!(parse_url("postgresql://admin:hunter2@h/db").is_err());
        assert!(parse_url("mysql://h/db").is_err());
        assert!(parse_url("postgresql://{{username}}:{{password}}@h/db?sslmode=require").is_err());
    }
}
