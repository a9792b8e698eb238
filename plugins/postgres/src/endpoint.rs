//! Where the server is and how the session is encrypted: a Vault-style
//! `connection_url` or the separate fields, and libpq's `sslmode`.

use leasehold_sdk::connection::{Tls, TlsMode};
use leasehold_sdk::{Error, Result};

/// libpq's `sslmode`, without `allow` (which only matters to servers that
/// require TLS and would pick clear text first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server accepts, without checking its certificate; clear
    /// text otherwise. libpq's and Vault's default.
    Prefer,
    /// Encrypt, without checking the certificate; fail if the server refuses.
    Require,
    /// Encrypt; the certificate must chain to a trusted CA.
    VerifyCa,
    /// Encrypt; the certificate must chain to a trusted CA and name the host.
    VerifyFull,
}

impl SslMode {
    pub fn parse(mode: &str) -> Result<Self> {
        Ok(match mode {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(Error::invalid_config(format!(
                    "sslmode `{other}`: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }

    /// The TLS the host does for this mode, `None` for `disable`; `ca_pem`
    /// replaces the system's roots.
    pub fn tls(self, ca_pem: Option<&str>) -> Option<Tls> {
        let mode = match self {
            Self::Disable => return None,
            Self::Prefer | Self::Require => TlsMode::Require,
            Self::VerifyCa => TlsMode::VerifyCa,
            Self::VerifyFull => TlsMode::VerifyFull,
        };
        let tls = Tls::new(mode);
        Some(match ca_pem {
            Some(pem) => tls.ca_pem(pem),
            None => tls,
        })
    }
}

/// Host, port, database and `sslmode` of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub sslmode: SslMode,
}

/// The endpoint of a Vault-style `connection_url`
/// (`postgresql://{{username}}:{{password}}@host:port/database?sslmode=...`). A
/// password written into the URL itself is refused: the URL is not secret,
/// `password` is.
pub fn parse_url(template: &str) -> Result<Endpoint> {
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
    let mut sslmode = SslMode::Prefer;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => sslmode = SslMode::parse(&value)?,
            // Settings the plugin fixes itself, or that have no meaning here.
            "application_name" | "connect_timeout" => {}
            other => {
                return Err(Error::invalid_config(format!(
                    "connection_url: parameter `{other}` is not supported (the CA goes in `tls_ca`)"
                )));
            }
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
    Ok(Endpoint {
        host,
        port: url.port().unwrap_or(5432),
        database,
        sslmode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str, port: u16, database: &str, sslmode: SslMode) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            database: database.into(),
            sslmode,
        }
    }

    #[test]
    fn urls_in_vaults_shape() {
        assert_eq!(
            parse_url("postgresql://{{username}}:{{password}}@10.0.0.5:5433/app").unwrap(),
            endpoint("10.0.0.5", 5433, "app", SslMode::Prefer)
        );
        assert_eq!(
            parse_url("postgres://{{username}}:{{password}}@db.internal/?sslmode=verify-full")
                .unwrap(),
            endpoint("db.internal", 5432, "postgres", SslMode::VerifyFull)
        );
        assert!(parse_url("postgresql://admin:hunter2@h/db").is_err());
        assert!(parse_url("mysql://h/db").is_err());
        let err =
            parse_url("postgresql://{{username}}:{{password}}@h/db?sslmode=maybe").unwrap_err();
        assert!(err.message().contains("verify-full"), "{err}");
        assert!(parse_url("postgresql://u@h/db?sslrootcert=/etc/ca.pem").is_err());
    }

    #[test]
    fn modes_map_to_the_hosts_tls() {
        assert_eq!(SslMode::Disable.tls(None), None);
        assert_eq!(SslMode::Prefer.tls(None), Some(Tls::new(TlsMode::Require)));
        assert_eq!(
            SslMode::VerifyCa.tls(Some("PEM")),
            Some(Tls::new(TlsMode::VerifyCa).ca_pem("PEM"))
        );
    }
}
