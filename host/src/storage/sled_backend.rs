//! The embedded default backend: sled in a data directory.

use super::{Storage, StorageError, StorageOp};
use async_trait::async_trait;
use std::ops::Bound;
use std::path::Path;

/// Storage in a sled database.
#[derive(Clone)]
pub struct SledStorage {
    db: sled::Db,
}

fn failed(what: &str, err: impl std::fmt::Display) -> StorageError {
    StorageError(format!("sled {what} failed: {err}"))
}

impl SledStorage {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        // sled's background flusher can hold the directory's lock for a moment
        // after the previous handle is dropped (a reopen in the same process);
        // wait for it briefly rather than fail.
        let mut attempts = 0;
        loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => return Ok(Self { db }),
                Err(sled::Error::Io(io))
                    if io.to_string().contains("could not acquire lock") && attempts < 50 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(40));
                }
                Err(err) => return Err(failed(&format!("open of {}", dir.display()), err)),
            }
        }
    }

    async fn flush(&self) -> Result<(), StorageError> {
        self.db
            .flush_async()
            .await
            .map_err(|err| failed("flush", err))?;
        Ok(())
    }
}

#[async_trait]
impl Storage for SledStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.db.get(key).map_err(|err| failed("get", err))?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.db
            .insert(key, value)
            .map_err(|err| failed("put", err))?;
        self.flush().await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.db.remove(key).map_err(|err| failed("delete", err))?;
        self.flush().await
    }

    async fn batch(&self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                StorageOp::Put(key, value) => batch.insert(key.as_bytes(), value),
                StorageOp::Delete(key) => batch.remove(key.as_bytes()),
            }
        }
        self.db
            .apply_batch(batch)
            .map_err(|err| failed("batch", err))?;
        self.flush().await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let start = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                Bound::Excluded(after.as_bytes().to_vec())
            }
            _ => Bound::Included(prefix.as_bytes().to_vec()),
        };
        let mut keys = Vec::new();
        for entry in self.db.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (key, _) = entry.map_err(|err| failed("scan", err))?;
            if !key.starts_with(prefix.as_bytes()) || keys.len() >= limit {
                break;
            }
            let key = String::from_utf8(key.to_vec())
                .map_err(|_| StorageError("sled holds a key that is not UTF-8".into()))?;
            keys.push(key);
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_read_back_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = SledStorage::open(dir.path()).unwrap();
            storage.put("a/1", b"one".to_vec()).await.unwrap();
            storage.put("a/2", b"two".to_vec()).await.unwrap();
            storage.delete("a/2").await.unwrap();
            storage.delete("never-there").await.unwrap();
        }
        let storage = SledStorage::open(dir.path()).unwrap();
        assert_eq!(storage.get("a/1").await.unwrap(), Some(b"one".to_vec()));
        assert_eq!(storage.get("a/2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn scans_are_ordered_bounded_and_stay_in_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SledStorage::open(dir.path()).unwrap();
        storage
            .batch(
                ["idx/003", "idx/001", "idx/002", "idy/000", "ida/9"]
                    .into_iter()
                    .map(|k| StorageOp::Put(k.into(), vec![]))
                    .collect(),
            )
            .await
            .unwrap();
        assert_eq!(
            storage.list("idx/").await.unwrap(),
            ["idx/001", "idx/002", "idx/003"]
        );
        assert_eq!(
            storage.scan("idx/", None, 2).await.unwrap(),
            ["idx/001", "idx/002"]
        );
        assert_eq!(
            storage.scan("idx/", Some("idx/001"), 10).await.unwrap(),
            ["idx/002", "idx/003"]
        );
        assert!(
            storage
                .scan("idx/", Some("idx/003"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        storage
            .batch(vec![
                StorageOp::Delete("idx/002".into()),
                StorageOp::Put("idx/004".into(), vec![1]),
            ])
            .await
            .unwrap();
        assert_eq!(
            storage.list("idx/").await.unwrap(),
            ["idx/001", "idx/003", "idx/004"]
        );
    }
}
