//! Encryption at rest: every value the broker stores passes through the barrier.
//!
//! Three layers, as in Vault: values are sealed with the newest key of a
//! **keyring** (AES-256-GCM, see [`cipher`]); the keyring is sealed with a **root
//! key**; the root key is sealed with the **unseal key**, which exists only as
//! Shamir shares held by operators (or, the weaker choice, in an unseal key file).
//! While sealed, the broker knows none of these keys and every read or write fails
//! with [`BarrierError::Sealed`]. Rotation adds a keyring term online; values
//! written under older terms stay readable.

mod cipher;
mod keyring;
mod unseal;

pub use unseal::{UnsealKey, UnsealShare, combine, split};

use crate::clock::unix_now;
use crate::storage::{Storage, StorageError, StorageOp};
use keyring::Keyring;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

/// Storage keys the barrier keeps for itself.
const SEAL_CONFIG: &str = "core/seal-config";
const ROOT_KEY: &str = "core/root-key";
const KEYRING: &str = "core/keyring";
/// Keys under this prefix are the barrier's own, never reachable through it.
const RESERVED_PREFIX: &str = "core/";
/// The term recorded on values sealed by a key-encryption key, not the keyring.
const KEK_TERM: u32 = 0;

/// Why a barrier operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// The barrier is sealed: unseal first.
    #[error("the broker is sealed")]
    Sealed,
    /// `initialize` on storage that is already initialized.
    #[error("the broker is already initialized")]
    AlreadyInitialized,
    /// `unseal` before `initialize`.
    #[error("the broker is not initialized")]
    NotInitialized,
    /// The unseal key does not open the root key (wrong or mismatched shares).
    #[error("the unseal key is wrong: these shares do not belong together")]
    WrongUnsealKey,
    /// A stored value failed authentication: it was altered, or moved from
    /// another key. Never returned as data.
    #[error("stored value `{0}` failed its integrity check; the data directory was altered")]
    Tampered(String),
    /// A key in the reserved `core/` namespace was used.
    #[error("storage key `{0}` is reserved")]
    Reserved(String),
    /// The backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How the unseal key was split, stored in clear so `seal-status` can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    /// How many shares exist.
    pub secret_shares: u8,
    /// How many are needed to unseal.
    pub secret_threshold: u8,
}

/// The active keyring term, for `sys/key-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStatus {
    /// The term new writes use.
    pub term: u32,
    /// When it was installed (Unix seconds).
    pub installed_at: u64,
}

/// What an unsealed barrier holds in memory (wiped on seal and drop).
struct OpenKeys {
    root: cipher::Key,
    ring: Keyring,
}

/// The encrypting layer over a [`Storage`].
pub struct Barrier {
    storage: Arc<dyn Storage>,
    keyring: RwLock<Option<Arc<OpenKeys>>>,
    /// Serializes keyring changes (rotation) without blocking readers.
    rotating: tokio::sync::Mutex<()>,
}

impl Barrier {
    /// A sealed barrier over `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            keyring: RwLock::new(None),
            rotating: tokio::sync::Mutex::new(()),
        }
    }

    /// How the unseal key was split, once initialized.
    pub async fn seal_config(&self) -> Result<Option<SealConfig>, BarrierError> {
        let Some(bytes) = self.storage.get(SEAL_CONFIG).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| BarrierError::Tampered(SEAL_CONFIG.into()))
    }

    /// Whether `initialize` has run on this storage.
    pub async fn is_initialized(&self) -> Result<bool, BarrierError> {
        Ok(self.seal_config().await?.is_some())
    }

    /// Sets up fresh keys protected by `unseal_key`, and leaves the barrier
    /// unsealed.
    pub async fn initialize(
        &self,
        config: SealConfig,
        unseal_key: &UnsealKey,
    ) -> Result<(), BarrierError> {
        let _guard = self.rotating.lock().await;
        if self.is_initialized().await? {
            return Err(BarrierError::AlreadyInitialized);
        }
        let root = cipher::Key::generate();
        let keyring = Keyring::new(unix_now());
        let ops = vec![
            StorageOp::Put(
                ROOT_KEY.into(),
                cipher::seal(&unseal_key.0, KEK_TERM, ROOT_KEY, root.0.as_ref()),
            ),
            StorageOp::Put(
                KEYRING.into(),
                cipher::seal(&root, KEK_TERM, KEYRING, &keyring.to_bytes()),
            ),
            StorageOp::Put(
                SEAL_CONFIG.into(),
                serde_json::to_vec(&config).expect("seal config serializes"),
            ),
        ];
        self.storage.batch(ops).await?;
        self.open_with(root, keyring);
        Ok(())
    }

    /// Opens the root key and keyring with `unseal_key`.
    pub async fn unseal(&self, unseal_key: &UnsealKey) -> Result<(), BarrierError> {
        if !self.is_initialized().await? {
            return Err(BarrierError::NotInitialized);
        }
        let root = self.open_root(unseal_key).await?;
        let keyring = self.read_keyring(&root).await?;
        self.open_with(root, keyring);
        Ok(())
    }

    fn open_with(&self, root: cipher::Key, ring: Keyring) {
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::new(OpenKeys { root, ring }));
    }

    async fn open_root(&self, unseal_key: &UnsealKey) -> Result<cipher::Key, BarrierError> {
        let sealed = self
            .storage
            .get(ROOT_KEY)
            .await?
            .ok_or_else(|| BarrierError::Tampered(ROOT_KEY.into()))?;
        let bytes =
            cipher::open(&unseal_key.0, ROOT_KEY, &sealed).ok_or(BarrierError::WrongUnsealKey)?;
        cipher::Key::from_slice(&bytes).ok_or_else(|| BarrierError::Tampered(ROOT_KEY.into()))
    }

    async fn read_keyring(&self, root: &cipher::Key) -> Result<Keyring, BarrierError> {
        let tampered = || BarrierError::Tampered(KEYRING.into());
        let sealed = self.storage.get(KEYRING).await?.ok_or_else(tampered)?;
        let bytes = cipher::open(root, KEYRING, &sealed).ok_or_else(tampered)?;
        Keyring::from_bytes(&bytes).ok_or_else(tampered)
    }

    /// Forgets every key. Reads and writes fail until the next unseal.
    pub fn seal(&self) {
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether the barrier is sealed.
    pub fn is_sealed(&self) -> bool {
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn keys(&self) -> Result<Arc<OpenKeys>, BarrierError> {
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(BarrierError::Sealed)
    }

    fn check_key(key: &str) -> Result<(), BarrierError> {
        if key.starts_with(RESERVED_PREFIX) {
            return Err(BarrierError::Reserved(key.into()));
        }
        Ok(())
    }

    /// Reads and decrypts the value at `key`.
    pub async fn get(
        &self,
        key: &str,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, BarrierError> {
        Self::check_key(key)?;
        let keys = self.keys()?;
        let Some(sealed) = self.storage.get(key).await? else {
            return Ok(None);
        };
        let tampered = || BarrierError::Tampered(key.into());
        let term = cipher::term_of(&sealed).ok_or_else(tampered)?;
        let data_key = keys.ring.key(term).ok_or_else(tampered)?;
        cipher::open(data_key, key, &sealed)
            .map(Some)
            .ok_or_else(tampered)
    }

    /// Encrypts and writes `value` at `key`, durably.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), BarrierError> {
        self.batch(vec![BarrierOp::Put(key.into(), value.to_vec())])
            .await
    }

    /// Removes `key`, durably.
    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.batch(vec![BarrierOp::Delete(key.into())]).await
    }

    /// Applies every write or none, durably.
    pub async fn batch(&self, ops: Vec<BarrierOp>) -> Result<(), BarrierError> {
        let keys = self.keys()?;
        let (term, data_key, _) = keys.ring.active();
        let mut sealed = Vec::with_capacity(ops.len());
        for op in ops {
            sealed.push(match op {
                BarrierOp::Put(key, value) => {
                    Self::check_key(&key)?;
                    let value = cipher::seal(data_key, term, &key, &value);
                    StorageOp::Put(key, value)
                }
                BarrierOp::Delete(key) => {
                    Self::check_key(&key)?;
                    StorageOp::Delete(key)
                }
            });
        }
        Ok(self.storage.batch(sealed).await?)
    }

    /// Keys under `prefix`, in order. Keys are not secret; values are.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        Self::check_key(prefix)?;
        self.keys()?;
        Ok(self.storage.list(prefix).await?)
    }

    /// Up to `limit` keys under `prefix` after `after`, in order.
    pub async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, BarrierError> {
        Self::check_key(prefix)?;
        self.keys()?;
        Ok(self.storage.scan(prefix, after, limit).await?)
    }

    /// Installs a new data key for new writes; older values stay readable.
    pub async fn rotate(&self) -> Result<KeyStatus, BarrierError> {
        let _guard = self.rotating.lock().await;
        let current = self.keys()?;
        let rotated = current.ring.rotated(unix_now());
        self.storage
            .put(
                KEYRING,
                cipher::seal(&current.root, KEK_TERM, KEYRING, &rotated.to_bytes()),
            )
            .await?;
        let (term, _, installed_at) = rotated.active();
        self.open_with(current.root.clone(), rotated);
        Ok(KeyStatus { term, installed_at })
    }

    /// The active term, while unsealed.
    pub fn key_status(&self) -> Result<KeyStatus, BarrierError> {
        let keys = self.keys()?;
        let (term, _, installed_at) = keys.ring.active();
        Ok(KeyStatus { term, installed_at })
    }
}

/// One write of [`Barrier::batch`].
#[derive(Clone)]
pub enum BarrierOp {
    /// Encrypt and set.
    Put(String, Vec<u8>),
    /// Remove.
    Delete(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::RedbStorage;

    const CONFIG: SealConfig = SealConfig {
        secret_shares: 5,
        secret_threshold: 3,
    };

    fn open(dir: &std::path::Path) -> (Arc<RedbStorage>, Barrier) {
        let storage = Arc::new(RedbStorage::open(dir, 16 << 20).unwrap());
        (storage.clone(), Barrier::new(storage))
    }

    #[tokio::test]
    async fn values_are_encrypted_at_rest_and_survive_seal_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = UnsealKey::generate();
        {
            let (storage, barrier) = open(dir.path());
            assert!(!barrier.is_initialized().await.unwrap());
            barrier.initialize(CONFIG, &key).await.unwrap();
            barrier.put("secret/a", b"plain-value-123").await.unwrap();
            let raw = storage.get("secret/a").await.unwrap().unwrap();
            assert!(!raw.windows(15).any(|w| w == b"plain-value-123"));
            barrier.seal();
            assert!(matches!(
                barrier.get("secret/a").await,
                Err(BarrierError::Sealed)
            ));
            assert!(matches!(
                barrier.put("secret/b", b"x").await,
                Err(BarrierError::Sealed)
            ));
        }
        let (_, barrier) = open(dir.path());
        assert!(barrier.is_sealed());
        assert_eq!(barrier.seal_config().await.unwrap(), Some(CONFIG));
        barrier.unseal(&key).await.unwrap();
        assert_eq!(
            barrier.get("secret/a").await.unwrap().unwrap().as_slice(),
            b"plain-value-123"
        );
    }

    #[tokio::test]
    async fn a_wrong_key_does_not_unseal_and_init_happens_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_, barrier) = open(dir.path());
        assert!(matches!(
            barrier.unseal(&UnsealKey::generate()).await,
            Err(BarrierError::NotInitialized)
        ));
        barrier
            .initialize(CONFIG, &UnsealKey::generate())
            .await
            .unwrap();
        barrier.seal();
        assert!(matches!(
            barrier.unseal(&UnsealKey::generate()).await,
            Err(BarrierError::WrongUnsealKey)
        ));
        assert!(barrier.is_sealed());
        assert!(matches!(
            barrier.initialize(CONFIG, &UnsealKey::generate()).await,
            Err(BarrierError::AlreadyInitialized)
        ));
    }

    #[tokio::test]
    async fn tampered_and_moved_values_are_errors_not_data() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, barrier) = open(dir.path());
        barrier
            .initialize(CONFIG, &UnsealKey::generate())
            .await
            .unwrap();
        barrier.put("a", b"value a").await.unwrap();
        barrier.put("b", b"value b").await.unwrap();

        let mut flipped = storage.get("a").await.unwrap().unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        storage.put("a", flipped).await.unwrap();
        assert!(matches!(barrier.get("a").await, Err(BarrierError::Tampered(k)) if k == "a"));

        let b = storage.get("b").await.unwrap().unwrap();
        storage.put("c", b).await.unwrap();
        assert!(matches!(barrier.get("c").await, Err(BarrierError::Tampered(k)) if k == "c"));
        assert_eq!(
            barrier.get("b").await.unwrap().unwrap().as_slice(),
            b"value b"
        );
    }

    #[tokio::test]
    async fn rotation_is_online_and_old_values_stay_readable_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = UnsealKey::generate();
        {
            let (storage, barrier) = open(dir.path());
            barrier.initialize(CONFIG, &key).await.unwrap();
            barrier.put("old", b"before rotation").await.unwrap();
            let status = barrier.rotate().await.unwrap();
            assert_eq!(status.term, 2);
            barrier.put("new", b"after rotation").await.unwrap();
            assert_eq!(
                cipher::term_of(&storage.get("old").await.unwrap().unwrap()),
                Some(1)
            );
            assert_eq!(
                cipher::term_of(&storage.get("new").await.unwrap().unwrap()),
                Some(2)
            );
        }
        let (_, barrier) = open(dir.path());
        barrier.unseal(&key).await.unwrap();
        assert_eq!(barrier.key_status().unwrap().term, 2);
        assert_eq!(
            barrier.get("old").await.unwrap().unwrap().as_slice(),
            b"before rotation"
        );
        assert_eq!(
            barrier.get("new").await.unwrap().unwrap().as_slice(),
            b"after rotation"
        );
    }

    #[tokio::test]
    async fn the_barriers_own_keys_are_out_of_reach() {
        let dir = tempfile::tempdir().unwrap();
        let (_, barrier) = open(dir.path());
        barrier
            .initialize(CONFIG, &UnsealKey::generate())
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("core/keyring").await,
            Err(BarrierError::Reserved(_))
        ));
        assert!(matches!(
            barrier.put("core/root-key", b"x").await,
            Err(BarrierError::Reserved(_))
        ));
    }
}
