//! The unseal key file: shares kept on disk for unattended restarts, one per
//! line (hex or base64).
//!
//! Weaker than shares held by people: whoever reads the file can unseal. So a
//! file that others may read or write is refused before any line is read, and
//! no error names a share.

use crate::barrier::UnsealShare;
use std::path::{Path, PathBuf};

/// Why the unseal key file did not unseal.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("reading unseal key file {}: {error}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// Others may read or write it.
    #[error(
        "unseal key file {} may be read or written by others (mode {mode:o}); it unseals everything: chmod 600 it",
        path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not a share.
    #[error("unseal key file {} line {line}: not an unseal key share", path.display())]
    NotAShare {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// Every share was taken and the barrier is still sealed.
    #[error("unseal key file {} does not hold enough shares to unseal", path.display())]
    TooFewShares {
        /// The file.
        path: PathBuf,
    },
}

/// The shares in the file at `path`, once it is known to be the broker's alone.
pub fn read_shares(path: &Path) -> Result<Vec<UnsealShare>, KeyFileError> {
    let unreadable = |error| KeyFileError::Unreadable {
        path: path.to_owned(),
        error,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(unreadable)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Exposed {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(unreadable)?);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(number, line)| {
            UnsealShare::parse(line).ok_or_else(|| KeyFileError::NotAShare {
                path: path.to_owned(),
                line: number + 1,
            })
        })
        .collect()
}
