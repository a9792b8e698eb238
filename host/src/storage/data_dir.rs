//! The data directory on disk: created for its owner alone.
//!
//! Everything in it is either encrypted by the barrier or key names, but key
//! names (lease ids, mount paths) and the sealed keyring are still nobody
//! else's business: the directory is `0700` when the broker creates it and the
//! database file `0600`.

use super::StorageError;
use std::path::Path;

/// Creates `dir` (and its parents) if missing; a directory this creates is
/// readable by its owner only.
pub fn create_private(dir: &Path) -> Result<(), StorageError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|err| {
        StorageError(format!(
            "creating the data directory {}: {err}",
            dir.display()
        ))
    })
}

/// Makes `file` readable and writable by its owner only.
pub fn restrict_file(file: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(|err| {
            StorageError(format!(
                "restricting {} to its owner: {err}",
                file.display()
            ))
        })?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}
