//! A lock file beside the htpasswd file, since WASI has no `flock`.
//!
//! Creating `<file>.lock` with `create_new` succeeds for exactly one writer. A lock
//! left behind by a plugin the host stopped mid-write (its deadline passed) is
//! taken over once it is older than [`STALE_AFTER`], which is longer than any call
//! may run.

use leasehold_sdk::{Error, Result};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long to wait for another writer before giving up (retryable).
const WAIT: Duration = Duration::from_secs(5);
/// Age after which a lock is considered abandoned.
const STALE_AFTER: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(5);

/// Held while a writer reads, changes and replaces the file.
pub struct FileLock {
    path: PathBuf,
}

impl FileLock {
    pub fn acquire(file: &Path) -> Result<Self> {
        let mut name = file.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let started = SystemTime::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(Self { path }),
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                    if is_stale(&path) {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed().unwrap_or_default() > WAIT {
                        return Err(Error::unavailable(format!(
                            "{} is locked by another writer",
                            file.display()
                        )));
                    }
                    std::thread::sleep(POLL);
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

fn is_stale(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER)
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
