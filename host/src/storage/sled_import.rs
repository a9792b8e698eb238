//! One-time import of a data directory written by the sled backend, which
//! leasehold used before redb.
//!
//! Leases live in storage, and a lease lost in an upgrade is a credential left
//! on a target for good; so a data directory that still holds a sled database
//! is copied, key by key and in one transaction, into the new redb file the
//! first time the broker opens it. The sled files then move to
//! `sled-imported/` (kept, not deleted, until the operator removes them).

use super::{StorageError, StorageOp};
use std::path::Path;

/// The files a sled 0.34 database always has.
const SLED_MARKERS: [&str; 2] = ["conf", "db"];

fn failed(dir: &Path, what: &str, err: &dyn std::fmt::Display) -> StorageError {
    StorageError(format!(
        "importing the sled database in {}: {what}: {err}",
        dir.display()
    ))
}

/// Every key and value of the sled database in `dir`, if there is one.
pub fn read(dir: &Path) -> Result<Option<Vec<StorageOp>>, StorageError> {
    if !SLED_MARKERS.iter().all(|name| dir.join(name).is_file()) {
        return Ok(None);
    }
    let sled = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|e| failed(dir, "open", &e))?;
    let mut ops = Vec::new();
    for entry in sled.iter() {
        let (key, value) = entry.map_err(|e| failed(dir, "read", &e))?;
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| failed(dir, "read", &"a key is not UTF-8"))?;
        ops.push(StorageOp::Put(key, value.to_vec()));
    }
    Ok(Some(ops))
}

/// Moves the imported sled files to `sled-imported/`.
pub fn set_aside(dir: &Path) -> Result<(), StorageError> {
    let moved = dir.join("sled-imported");
    let keep = |e: &dyn std::fmt::Display| failed(dir, "keeping the old files", e);
    std::fs::create_dir_all(&moved).map_err(|e| keep(&e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| keep(&e))? {
        let name = entry.map_err(|e| keep(&e))?.file_name();
        let is_sled = SLED_MARKERS.iter().any(|m| name == *m)
            || name.to_string_lossy().starts_with("snap.")
            || name == "blobs";
        if is_sled {
            std::fs::rename(dir.join(&name), moved.join(&name)).map_err(|e| keep(&e))?;
        }
    }
    tracing::info!(kept_in = %moved.display(), "imported the data directory's sled database into redb");
    Ok(())
}
