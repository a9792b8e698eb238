//! Where the broker keeps its state: an ordered key-value store behind a trait.
//!
//! Keys are `/`-separated strings, ordered bytewise, so a prefix is a subtree and a
//! scan from a key walks an index in order (the lease expiry index relies on it).
//! Values are opaque bytes; everything sensitive arrives here already encrypted by
//! the [`crate::barrier`]. Every write is durable when its future completes, so the
//! API can acknowledge it.
//!
//! The default backend is [`RedbStorage`], embedded, nothing to install: one
//! writer thread group-commits every write, and reads never block an async
//! worker thread.

mod data_dir;
mod redb_backend;
mod sled_import;

pub use redb_backend::{FILE_NAME, RedbStorage};

use async_trait::async_trait;

/// A storage backend failed. The message names the backend and the operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// One write of a [`Storage::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOp {
    /// Sets `key` to the value.
    Put(String, Vec<u8>),
    /// Removes `key` (no error if absent).
    Delete(String),
}

/// An ordered key-value store.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The value at `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Sets `key`, durably.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError>;

    /// Removes `key`, durably. Removing an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Applies every write or none, durably.
    async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), StorageError>;

    /// Up to `limit` keys starting with `prefix` and ordered after `after` (or from
    /// the start of the prefix), in order.
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError>;

    /// Every key starting with `prefix`, in order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.scan(prefix, None, usize::MAX).await
    }
}
