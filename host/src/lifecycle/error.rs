//! Why a lifecycle operation failed.

use super::key_file::KeyFileError;
use crate::auth::TokenError;
use crate::barrier::BarrierError;
use std::path::PathBuf;

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Bad parameters; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// `init` twice.
    #[error("the broker is already initialized")]
    AlreadyInitialized,
    /// `unseal` before `init`.
    #[error("the broker is not initialized")]
    NotInitialized,
    /// The submitted shares rebuilt a key that does not open the barrier.
    #[error("unseal failed: the submitted shares do not belong together; progress was reset")]
    WrongShares,
    /// The barrier or storage failed.
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    /// Creating the root token failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The unseal key file cannot be used.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The unseal key file's shares were refused.
    #[error("unsealing with {}: {error}", path.display())]
    UnsealingWithKeyFile {
        /// The file.
        path: PathBuf,
        /// Why its shares did not unseal.
        error: Box<LifecycleError>,
    },
}
