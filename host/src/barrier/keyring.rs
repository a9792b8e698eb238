//! The data keys, by term. New values are sealed with the newest term; every older
//! term stays so that values written before a rotation remain readable.

use super::cipher::Key;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// All data keys.
#[derive(Debug, Clone)]
pub(crate) struct Keyring {
    keys: BTreeMap<u32, (Key, u64)>,
}

/// The keyring as stored (encrypted by the root key).
#[derive(Serialize, Deserialize)]
struct Stored {
    terms: Vec<StoredTerm>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    key: String,
    installed_at: u64,
}

impl Keyring {
    /// A keyring with one fresh key, term 1.
    pub(crate) fn new(now: u64) -> Self {
        Self {
            keys: BTreeMap::from([(1, (Key::generate(), now))]),
        }
    }

    /// The term new values are written with, and when it was installed.
    pub(crate) fn active(&self) -> (u32, &Key, u64) {
        let (term, (key, at)) = self.keys.last_key_value().expect("a keyring has a key");
        (*term, key, *at)
    }

    pub(crate) fn key(&self, term: u32) -> Option<&Key> {
        self.keys.get(&term).map(|(key, _)| key)
    }

    /// A keyring with one more, newer key.
    pub(crate) fn rotated(&self, now: u64) -> Self {
        let mut keys = self.keys.clone();
        let next = self.active().0 + 1;
        keys.insert(next, (Key::generate(), now));
        Self { keys }
    }

    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let stored = Stored {
            terms: self
                .keys
                .iter()
                .map(|(term, (key, at))| StoredTerm {
                    term: *term,
                    key: STANDARD.encode(key.0.as_ref()),
                    installed_at: *at,
                })
                .collect(),
        };
        Zeroizing::new(serde_json::to_vec(&stored).expect("a keyring serializes"))
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let stored: Stored = serde_json::from_slice(bytes).ok()?;
        let mut keys = BTreeMap::new();
        for term in stored.terms {
            let raw = Zeroizing::new(STANDARD.decode(term.key.as_bytes()).ok()?);
            keys.insert(term.term, (Key::from_slice(&raw)?, term.installed_at));
        }
        (!keys.is_empty()).then_some(Self { keys })
    }
}
