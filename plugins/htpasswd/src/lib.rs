//! The `htpasswd` plugin: users in an Apache/nginx htpasswd file.
//!
//! The file lives inside the one directory the mount grants (the plugin sees it as
//! `/`). Each credential is a `user:bcrypt-hash` line; `create` adds one and
//! `revoke` removes it. Writers take a lock file, write a temporary file in the same
//! directory and rename it over the original, so a reader (nginx reads the file on
//! every request) always sees a whole file, and concurrent writers never lose each
//! other's lines. WASI cannot set a file's mode or owner; the host gives the new
//! file those of the file it replaces, and refuses the rename if it cannot.

mod lock;

use leasehold_sdk::prelude::*;
use lock::FileLock;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// bcrypt's cost when the config does not say; about 50 ms a hash in the sandbox.
const DEFAULT_COST: u32 = 10;
/// Longest username this plugin makes.
const MAX_USERNAME: u32 = 64;

/// Where the users file is.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The htpasswd file's name in the granted directory (for example
    /// `htpasswd`): a plain file name, without `/`, `\`, `..` or a `.lock` or
    /// `.tmp` ending. Created on the first issue if missing.
    file: String,
    /// bcrypt cost factor, 4 to 14 (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4, max = 14))]
    bcrypt_cost: Option<u32>,
}

/// htpasswd users have no attributes: a role only names a lease's purpose.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Role {}

impl Config {
    /// Checks the file name: one plain name in the granted directory, so the
    /// plugin never writes outside it or into a subdirectory, and never over its
    /// own lock or temporary file.
    fn path(&self) -> Result<&Path> {
        let name = self.file.as_str();
        let plain = !matches!(name, "" | "." | "..")
            && !name.contains(['/', '\\'])
            && !name.ends_with(".lock")
            && !name.ends_with(".tmp");
        if !plain {
            return Err(Error::invalid_config(format!(
                "file `{}` must be a plain file name in the granted directory \
                 (no `/`, `\\`, `..`, and not ending in `.lock` or `.tmp`)",
                name.escape_debug()
            )));
        }
        Ok(Path::new(name))
    }

    fn cost(&self) -> Result<u32> {
        match self.bcrypt_cost.unwrap_or(DEFAULT_COST) {
            cost @ 4..=14 => Ok(cost),
            other => Err(Error::invalid_config(format!(
                "bcrypt_cost {other} is outside 4..=14"
            ))),
        }
    }
}

/// The file's lines, or none when it does not exist yet.
fn read_lines(path: &Path) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(Error::from(err)),
    }
}

fn user_of(line: &str) -> Option<&str> {
    line.split_once(':').map(|(user, _)| user)
}

/// Replaces the file with `lines` in one rename, so readers never see half a file.
fn write_atomically(path: &Path, lines: &[String]) -> Result<()> {
    // `<file>.tmp`, like the lock's `<file>.lock`: two files in one directory
    // never share a temporary file.
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    let mut file = std::fs::File::create(&temp)?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    Ok(())
}

struct Htpasswd;

impl Provider for Htpasswd {
    const NAME: &'static str = "htpasswd";
    const DESCRIPTION: &'static str = "Users in an Apache/nginx htpasswd file (bcrypt)";
    const MAX_USERNAME_LENGTH: u32 = MAX_USERNAME;
    /// The file is rewritten whole under a lock file: a second writer would only
    /// wait on the lock, so the host runs one call at a time instead.
    const MAX_PARALLEL: u32 = 1;

    type Config = Config;
    type Role = Role;

    fn validate(config: &Config, _: Option<&Role>) -> Result<()> {
        let path = config.path()?;
        config.cost()?;
        // Taking the lock proves the directory is granted and writable.
        let _lock = FileLock::acquire(path)?;
        for (number, line) in read_lines(path)?.iter().enumerate() {
            if !line.is_empty() && user_of(line).is_none() {
                return Err(Error::invalid_config(format!(
                    "{} line {} is not `user:hash`",
                    config.file,
                    number + 1
                )));
            }
        }
        Ok(())
    }

    fn create(config: &Config, _: &Role, lease: &Lease) -> Result<Issued> {
        let path = config.path()?;
        let user = lease.username();
        let password = generate_password(24);
        let hash = bcrypt::hash_with_result(&password, config.cost()?)
            .map_err(|err| Error::internal(format!("bcrypt failed: {err}")))?
            .format_for_version(bcrypt::Version::TwoY);

        let _lock = FileLock::acquire(path)?;
        let mut lines = read_lines(path)?;
        // A retried create for the same lease replaces its own line.
        lines.retain(|line| user_of(line) != Some(user.as_str()));
        lines.push(format!("{user}:{hash}"));
        write_atomically(path, &lines)?;
        leasehold_sdk::log::info(format!("added user {user} to {}", config.file));

        Ok(Issued::new(&user)
            .field("username", &user)
            .secret("password", password))
    }

    fn revoke(config: &Config, _: &Role, handle: Option<&str>, lease: &Lease) -> Result<()> {
        let path = config.path()?;
        let user = lease.handle_or_username(handle);
        let user = user.as_str();

        let _lock = FileLock::acquire(path)?;
        let mut lines = read_lines(path)?;
        let before = lines.len();
        lines.retain(|line| user_of(line) != Some(user));
        if lines.len() != before {
            write_atomically(path, &lines)?;
            leasehold_sdk::log::info(format!("removed user {user} from {}", config.file));
        }
        Ok(())
    }
}

export_provider!(Htpasswd);
