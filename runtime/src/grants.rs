//! Capability grants: the only doors out of a plugin's sandbox.
//!
//! A plugin starts with nothing, as in wasmtime's `WasiCtxBuilder`. Per mount the
//! operator grants exactly:
//! - TCP: a list of `host:port` the plugin may connect to;
//! - HTTP: a list of origins (`scheme://host:port`) it may send requests to;
//! - files: at most one directory, which the plugin sees as `/`.
//!
//! Grants are parsed and checked when configured, so a typo fails there rather than
//! on the first call. Names in grants are resolved by the host, never by the
//! plugin: a plugin may look up only the names it was granted, and gets the
//! addresses the host resolved. An address is granted in two ways: written as an
//! IP literal (exactly that address), or reached through a granted name, in which
//! case loopback, link-local (cloud metadata at `169.254.169.254` among them),
//! unspecified and multicast addresses are never granted, whatever the name
//! resolves to.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// An invalid grant, found when it was configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// A TCP grant is not `host:port`.
    #[error("TCP grant `{0}` is not of the form host:port (IPv6 as [addr]:port)")]
    BadHostPort(String),
    /// An HTTP grant is not an origin.
    #[error("HTTP grant `{0}` is not an origin of the form http(s)://host[:port] with no path")]
    BadOrigin(String),
    /// The directory grant does not name an existing directory.
    #[error("directory grant `{0}` is not an existing directory")]
    BadDirectory(String),
}

/// The host part of a grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum GrantedHost {
    /// An IP literal: grants exactly this address.
    Ip(IpAddr),
    /// A DNS name: grants the public and private addresses it resolves to.
    Name(String),
}

impl GrantedHost {
    fn parse(host: &str) -> Option<Self> {
        let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Some(v6) = unbracketed {
            return v6
                .parse::<Ipv6Addr>()
                .ok()
                .map(|ip| Self::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Some(Self::Ip(IpAddr::V4(ip)));
        }
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        valid_name.then(|| Self::Name(host.to_ascii_lowercase()))
    }
}

impl fmt::Display for GrantedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// An HTTP origin a plugin may send requests to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Origin {
    https: bool,
    host: GrantedHost,
    port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// What one mount's plugin may reach. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    tcp: BTreeSet<(GrantedHost, u16)>,
    http: BTreeSet<Origin>,
    directory: Option<PathBuf>,
}

/// `mine` narrowed by `theirs`: all of `mine` if `theirs` names nothing.
fn narrowed<T: Ord + Clone>(mine: &BTreeSet<T>, theirs: &BTreeSet<T>) -> BTreeSet<T> {
    if theirs.is_empty() {
        mine.clone()
    } else {
        mine.intersection(theirs).cloned().collect()
    }
}

/// Splits `host:port`, with IPv6 hosts in brackets.
fn split_host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    if host.contains(':') && !host.starts_with('[') {
        return None;
    }
    Some((host, port.parse().ok().filter(|p| *p != 0)?))
}

impl Grants {
    /// No capabilities at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Also allows TCP connections to `host:port`.
    pub fn allow_tcp(mut self, host_port: &str) -> Result<Self, GrantError> {
        let bad = || GrantError::BadHostPort(host_port.to_owned());
        let (host, port) = split_host_port(host_port).ok_or_else(bad)?;
        let host = GrantedHost::parse(host).ok_or_else(bad)?;
        self.tcp.insert((host, port));
        Ok(self)
    }

    /// Also allows HTTP requests to `origin` (`http://host[:port]` or
    /// `https://host[:port]`; the default port is the scheme's).
    pub fn allow_http(mut self, origin: &str) -> Result<Self, GrantError> {
        let bad = || GrantError::BadOrigin(origin.to_owned());
        let (https, rest) = if let Some(rest) = origin.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = origin.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match split_host_port(rest) {
            Some((host, port)) => (host, port),
            None if !rest.contains(':') || rest.ends_with(']') => (rest, default_port),
            None => return Err(bad()),
        };
        let host = GrantedHost::parse(host).ok_or_else(bad)?;
        self.http.insert(Origin { https, host, port });
        Ok(self)
    }

    /// Grants read-write access to `dir`, which the plugin sees as `/`. Replaces
    /// any earlier directory: a plugin gets at most one.
    pub fn directory(mut self, dir: impl AsRef<Path>) -> Result<Self, GrantError> {
        let dir = dir.as_ref();
        let canonical = dir
            .canonicalize()
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| GrantError::BadDirectory(dir.display().to_string()))?;
        self.directory = Some(canonical);
        Ok(self)
    }

    /// Whether any TCP connection is granted.
    pub fn grants_tcp(&self) -> bool {
        !self.tcp.is_empty()
    }

    /// The granted directory, if any.
    pub fn granted_directory(&self) -> Option<&Path> {
        self.directory.as_deref()
    }

    /// Whether nothing at all is granted.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.http.is_empty() && self.directory.is_none()
    }

    /// The grants in `narrower` that `self` also grants, kind by kind; a kind
    /// `narrower` leaves empty is `self`'s whole. So a connection that names no
    /// hosts gets its mount's hosts, and one that names hosts gets only those
    /// of them its mount grants. A directory is kept if it is `self`'s or below it.
    pub fn narrowed_by(&self, narrower: &Grants) -> Grants {
        let directory = match (&self.directory, &narrower.directory) {
            (mine, None) => mine.clone(),
            (Some(mine), Some(theirs)) if theirs.starts_with(mine) => Some(theirs.clone()),
            (_, Some(_)) => None,
        };
        Grants {
            tcp: narrowed(&self.tcp, &narrower.tcp),
            http: narrowed(&self.http, &narrower.http),
            directory,
        }
    }

    /// What `narrower` grants that `self` does not, each as written in a grant;
    /// empty when `narrower` only narrows.
    pub fn widened_by(&self, narrower: &Grants) -> Vec<String> {
        let mut wider: Vec<String> = narrower
            .tcp
            .difference(&self.tcp)
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        wider.extend(narrower.http.difference(&self.http).map(Origin::to_string));
        if let Some(theirs) = &narrower.directory
            && !self
                .directory
                .as_ref()
                .is_some_and(|mine| theirs.starts_with(mine))
        {
            wider.push(theirs.display().to_string());
        }
        wider
    }

    /// Resolves every granted name now, for one call. The plugin then sees exactly
    /// these addresses for the whole call, so a name cannot be rebound between the
    /// plugin's lookup and its connect.
    pub(crate) async fn resolve(&self) -> ResolvedGrants {
        let mut resolved = ResolvedGrants::default();
        for (host, port) in &self.tcp {
            for ip in addresses_of(host).await {
                resolved.tcp.insert(SocketAddr::new(ip, *port));
                if let GrantedHost::Name(name) = host {
                    resolved.names.entry(name.clone()).or_default().insert(ip);
                }
            }
        }
        for origin in &self.http {
            let ips = addresses_of(&origin.host).await;
            if let GrantedHost::Name(name) = &origin.host {
                resolved.names.entry(name.clone()).or_default().extend(&ips);
            }
            resolved.http.insert(origin.to_string(), ips);
        }
        resolved
    }
}

/// The addresses a grant's host stands for; for a name, only those a name may grant.
async fn addresses_of(host: &GrantedHost) -> Vec<IpAddr> {
    match host {
        GrantedHost::Ip(ip) => vec![*ip],
        GrantedHost::Name(name) => match tokio::net::lookup_host((name.as_str(), 0)).await {
            Ok(addrs) => addrs
                .map(|a| a.ip())
                .filter(|ip| !is_never_granted_by_name(*ip))
                .collect(),
            Err(err) => {
                tracing::warn!(name, error = %err, "a granted name did not resolve");
                Vec::new()
            }
        },
    }
}

/// Addresses that a granted *name* never grants: the broker's own host, link-local
/// (where cloud metadata services live), the unspecified address and multicast.
/// An operator who means one of these writes it as an IP literal.
pub fn is_never_granted_by_name(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_never_granted_by_name(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                // AWS's IPv6 instance metadata endpoint.
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// The grants of one call, with names resolved. Every network decision for the
/// call is made here.
#[derive(Debug, Default)]
pub(crate) struct ResolvedGrants {
    tcp: BTreeSet<SocketAddr>,
    /// Origin (`scheme://host:port`) to the addresses it may be reached at.
    http: BTreeMap<String, Vec<IpAddr>>,
    /// Granted names and what they resolved to, answered to the plugin's lookups.
    names: BTreeMap<String, BTreeSet<IpAddr>>,
}

/// The one decision on a socket address the plugin wants to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketDecision {
    Allow,
    Deny,
}

impl ResolvedGrants {
    /// Decides a TCP connect.
    pub(crate) fn tcp_connect(&self, addr: SocketAddr) -> SocketDecision {
        if self.tcp.contains(&addr) {
            SocketDecision::Allow
        } else {
            SocketDecision::Deny
        }
    }

    /// Decides a TCP bind. A guest's `connect` first binds the wildcard address
    /// with port 0 (measured with wasmtime 48); exactly that is allowed, so the
    /// connect can go on to its own check. Any other bind would be a listener.
    pub(crate) fn tcp_bind(&self, addr: SocketAddr) -> SocketDecision {
        if addr.port() == 0 && addr.ip().is_unspecified() {
            SocketDecision::Allow
        } else {
            SocketDecision::Deny
        }
    }

    /// The addresses a granted name resolves to, or `None` for a name that was not
    /// granted.
    pub(crate) fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names
            .get(&name)
            .map(|ips| ips.iter().copied().collect())
    }

    /// The addresses an HTTP request to `scheme://host:port` may connect to, or
    /// `None` when the origin is not granted.
    pub(crate) fn http_origin(&self, https: bool, host: &str, port: u16) -> Option<&[IpAddr]> {
        let host = GrantedHost::parse(host)?;
        let origin = Origin { https, host, port }.to_string();
        self.http.get(&origin).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_grants_parse_or_fail_clearly() {
        assert!(Grants::none().allow_tcp("127.0.0.1:5432").is_ok());
        assert!(Grants::none().allow_tcp("[::1]:6379").is_ok());
        assert!(Grants::none().allow_tcp("db.internal:5432").is_ok());
        for bad in [
            "127.0.0.1",
            "host:",
            "host:0",
            "host:99999",
            ":80",
            "a b:1",
            "::1:80",
        ] {
            assert_eq!(
                Grants::none().allow_tcp(bad),
                Err(GrantError::BadHostPort(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn http_grants_parse_or_fail_clearly() {
        for good in [
            "http://127.0.0.1:8080",
            "https://api.internal",
            "http://[::1]:80/",
        ] {
            assert!(Grants::none().allow_http(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "http://x/path",
            "http://user@x",
            "127.0.0.1:80",
            "http://",
        ] {
            assert_eq!(
                Grants::none().allow_http(bad),
                Err(GrantError::BadOrigin(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn directory_must_exist() {
        assert!(matches!(
            Grants::none().directory("/definitely/not/here"),
            Err(GrantError::BadDirectory(_))
        ));
    }

    #[tokio::test]
    async fn literal_grants_allow_exactly_their_address() {
        let grants = Grants::none().allow_tcp("127.0.0.1:5432").unwrap();
        let resolved = grants.resolve().await;
        assert_eq!(
            resolved.tcp_connect("127.0.0.1:5432".parse().unwrap()),
            SocketDecision::Allow
        );
        assert_eq!(
            resolved.tcp_connect("127.0.0.1:5433".parse().unwrap()),
            SocketDecision::Deny
        );
        assert_eq!(
            resolved.tcp_connect("127.0.0.2:5432".parse().unwrap()),
            SocketDecision::Deny
        );
        assert_eq!(
            resolved.tcp_bind("0.0.0.0:0".parse().unwrap()),
            SocketDecision::Allow
        );
        assert_eq!(
            resolved.tcp_bind("0.0.0.0:8080".parse().unwrap()),
            SocketDecision::Deny
        );
        assert_eq!(
            resolved.tcp_bind("127.0.0.1:0".parse().unwrap()),
            SocketDecision::Deny
        );
    }

    #[tokio::test]
    async fn a_name_never_grants_loopback_or_metadata() {
        // `localhost` resolves to loopback only, so granting it by name grants nothing.
        let grants = Grants::none()
            .allow_tcp("localhost:5432")
            .unwrap()
            .allow_http("http://localhost:8080")
            .unwrap();
        let resolved = grants.resolve().await;
        assert_eq!(
            resolved.tcp_connect("127.0.0.1:5432".parse().unwrap()),
            SocketDecision::Deny
        );
        assert_eq!(resolved.lookup("localhost"), Some(vec![]));
        assert_eq!(resolved.lookup("example.org"), None);
        assert_eq!(
            resolved.http_origin(false, "localhost", 8080),
            Some(&[][..])
        );
        assert_eq!(resolved.http_origin(false, "localhost", 8081), None);
        assert_eq!(resolved.http_origin(true, "localhost", 8080), None);
    }

    #[test]
    fn a_narrower_takes_only_what_the_wider_grants() {
        let root = tempfile::tempdir().unwrap();
        let inner = root.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        let mount = Grants::none()
            .allow_tcp("db:5432")
            .unwrap()
            .allow_tcp("10.0.0.1:5432")
            .unwrap()
            .directory(root.path())
            .unwrap();
        // Nothing named: everything of the mount.
        assert_eq!(mount.narrowed_by(&Grants::none()), mount);
        assert!(mount.widened_by(&Grants::none()).is_empty());
        let narrower = Grants::none()
            .allow_tcp("DB:5432")
            .unwrap()
            .directory(&inner)
            .unwrap();
        assert!(mount.widened_by(&narrower).is_empty());
        let narrowed = mount.narrowed_by(&narrower);
        assert!(narrowed.tcp.len() == 1 && narrowed.http.is_empty());
        assert_eq!(
            narrowed.granted_directory(),
            Some(inner.canonicalize().unwrap().as_path())
        );
        let wider = Grants::none()
            .allow_tcp("db:5433")
            .unwrap()
            .allow_http("https://api.example")
            .unwrap()
            .directory(std::env::temp_dir())
            .unwrap();
        assert_eq!(
            mount.widened_by(&wider).len(),
            3,
            "{:?}",
            mount.widened_by(&wider)
        );
        let narrowed = mount.narrowed_by(&wider);
        assert!(narrowed.is_empty(), "{narrowed:?}");
    }

    #[test]
    fn special_addresses_are_never_granted_by_name() {
        for ip in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
            "224.0.0.1",
        ] {
            assert!(is_never_granted_by_name(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.5", "192.168.1.1", "93.184.216.34", "2001:db8::1"] {
            assert!(!is_never_granted_by_name(ip.parse().unwrap()), "{ip}");
        }
    }
}
