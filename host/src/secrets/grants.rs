//! What a mount's plugin may reach, decided by the operator.
//!
//! A sudo holder sets a mount's grants (`sys/grants/<mount>`): TCP hosts, HTTP
//! origins and at most one directory. A directory must lie within the
//! `[grants] directories` of `leasehold.toml` and never be `/` or hold, or lie
//! inside, a directory the broker itself depends on (data, plugins, the plugin
//! cache, the config, TLS and unseal files): a plugin that could write there
//! could rewrite the broker. A connection may name grants too, but only to
//! narrow its mount's; whoever writes a connection never widens what the
//! operator granted.

use crate::plugin::{GrantError, Grants};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A mount's grants, as the operator wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountGrants {
    /// `host:port` pairs the plugin may connect to over TCP.
    pub allowed_hosts: Vec<String>,
    /// HTTP origins the plugin may call.
    pub allowed_origins: Vec<String>,
    /// A host directory the plugin sees as `/`.
    pub directory: Option<String>,
}

impl MountGrants {
    /// The grants these stand for, each checked.
    pub fn grants(&self) -> Result<Grants, GrantError> {
        grants_of(
            &self.allowed_hosts,
            &self.allowed_origins,
            self.directory.as_deref(),
        )
    }
}

/// Grants from their written form.
pub fn grants_of(
    hosts: &[String],
    origins: &[String],
    directory: Option<&str>,
) -> Result<Grants, GrantError> {
    let mut grants = Grants::none();
    for host in hosts {
        grants = grants.allow_tcp(host)?;
    }
    for origin in origins {
        grants = grants.allow_http(origin)?;
    }
    if let Some(dir) = directory {
        grants = grants.directory(dir)?;
    }
    Ok(grants)
}

/// Where a directory grant may point.
#[derive(Debug, Clone, Default)]
pub struct GrantLimits {
    /// A granted directory is one of these or inside one.
    roots: Vec<PathBuf>,
    /// Never granted, nor anything holding them or inside them; with what
    /// they are, for the refusal.
    reserved: Vec<(PathBuf, &'static str)>,
}

/// The path as the kernel resolves it, or as written when it does not exist
/// (yet): a reserved directory created later must still be refused.
fn resolved(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

impl GrantLimits {
    /// Directory grants within `roots`, never touching `reserved`.
    pub fn new(roots: &[PathBuf], reserved: Vec<(PathBuf, &'static str)>) -> Self {
        Self {
            roots: roots.iter().map(|r| resolved(r)).collect(),
            reserved: reserved
                .into_iter()
                .map(|(path, what)| (resolved(&path), what))
                .collect(),
        }
    }

    /// Checks a directory grant; the message says which limit it breaks.
    pub fn check_directory(&self, directory: &Path) -> Result<(), String> {
        self.check_directory_besides(directory, &[])
    }

    /// Like [`Self::check_directory`], with `files` of the broker's that a
    /// grant may not hold either (the audit logs, which change at run time).
    pub fn check_directory_besides(
        &self,
        directory: &Path,
        files: &[(PathBuf, &'static str)],
    ) -> Result<(), String> {
        let dir = directory.canonicalize().map_err(|_| {
            format!(
                "directory `{}` is not an existing directory",
                directory.display()
            )
        })?;
        if dir.parent().is_none() {
            return Err("`/` is never granted".to_owned());
        }
        let files = files
            .iter()
            .map(|(file, what)| (resolved(file), *what))
            .collect::<Vec<_>>();
        for (reserved, what) in self.reserved.iter().chain(&files) {
            if dir.starts_with(reserved) || reserved.starts_with(&dir) {
                return Err(format!(
                    "directory `{}` overlaps the broker's {what} ({}); it is never granted",
                    dir.display(),
                    reserved.display()
                ));
            }
        }
        if !self.roots.iter().any(|root| dir.starts_with(root)) {
            let roots = if self.roots.is_empty() {
                "none are configured".to_owned()
            } else {
                self.roots
                    .iter()
                    .map(|r| format!("`{}`", r.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "directory `{}` is outside the directories leasehold.toml allows in [grants] directories ({roots})",
                dir.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_stay_within_the_roots_and_off_the_brokers_own() {
        let root = tempfile::tempdir().unwrap();
        let site = root.path().join("site");
        let data = root.path().join("data");
        std::fs::create_dir_all(site.join("inner")).unwrap();
        std::fs::create_dir_all(data.join("cache")).unwrap();
        let limits = GrantLimits::new(&[root.path().to_owned()], vec![(data.clone(), "data")]);
        limits.check_directory(&site).unwrap();
        limits.check_directory(&site.join("inner")).unwrap();
        // Holding the data directory, being it, being inside it.
        for refused in [root.path().to_owned(), data.clone(), data.join("cache")] {
            let err = limits.check_directory(&refused).unwrap_err();
            assert!(err.contains("data"), "{err}");
        }
        // The same directory spelled through a symlink is the same directory.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        assert!(limits.check_directory(&link).is_err());
        assert!(limits.check_directory(Path::new("/")).is_err());
        assert!(limits.check_directory(Path::new("/etc")).is_err());
        assert!(
            limits
                .check_directory(&root.path().join("missing"))
                .is_err()
        );
        let none = GrantLimits::new(&[], Vec::new());
        assert!(
            none.check_directory(&site)
                .unwrap_err()
                .contains("none are configured")
        );
    }
}
