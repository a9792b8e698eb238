//! The unseal key and its Shamir shares.
//!
//! At init the unseal key is split into `secret_shares` shares of which any
//! `secret_threshold` rebuild it (GF(256) Shamir, the `blahaj` crate). Shares and
//! the key are secrets: redacted in `Debug`, wiped on drop.

use super::cipher::Key;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use blahaj::{Share, Sharks};
use zeroize::Zeroizing;

/// The key that opens the root key.
#[derive(Debug, Clone)]
pub struct UnsealKey(pub(crate) Key);

impl UnsealKey {
    /// A fresh random unseal key.
    pub fn generate() -> Self {
        Self(Key::generate())
    }

    /// The key from its 32 raw bytes (an unseal key file, say).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Key::from_slice(bytes).map(Self)
    }

    /// The raw bytes, to write an unseal key file.
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.0.as_ref()
    }
}

/// One Shamir share of the unseal key.
#[derive(Clone)]
pub struct UnsealShare(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for UnsealShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsealShare(<redacted>)")
    }
}

impl UnsealShare {
    /// The share as hex (Vault's `keys`).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_slice()))
    }

    /// The share as base64 (Vault's `keys_base64`).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_slice()))
    }

    /// Parses a share given as hex or base64, as Vault's `unseal` accepts.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| STANDARD.decode(text).ok())?;
        // A share is one x-coordinate byte plus one byte per key byte.
        (bytes.len() == 33).then(|| Self(Zeroizing::new(bytes)))
    }
}

/// Splits `key` into `shares` shares, any `threshold` of which rebuild it.
pub fn split(key: &UnsealKey, shares: u8, threshold: u8) -> Vec<UnsealShare> {
    Sharks(threshold)
        .dealer(key.expose_bytes())
        .take(usize::from(shares))
        .map(|share| UnsealShare(Zeroizing::new(Vec::from(&share))))
        .collect()
}

/// Rebuilds the unseal key from `threshold` shares. Shares that do not belong
/// together still give *a* key; the barrier finds out when it fails to open the
/// root key with it.
pub fn combine(shares: &[UnsealShare], threshold: u8) -> Option<UnsealKey> {
    let parsed: Vec<Share> = shares
        .iter()
        .map(|s| Share::try_from(s.0.as_slice()).ok())
        .collect::<Option<_>>()?;
    let secret = Zeroizing::new(Sharks(threshold).recover(parsed.as_slice()).ok()?);
    UnsealKey::from_bytes(&secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_of_the_shares_rebuild_the_key() {
        let key = UnsealKey::generate();
        let shares = split(&key, 5, 3);
        assert_eq!(shares.len(), 5);
        for picked in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let chosen: Vec<_> = picked.iter().map(|&i| shares[i].clone()).collect();
            let rebuilt = combine(&chosen, 3).unwrap();
            assert_eq!(rebuilt.expose_bytes(), key.expose_bytes());
        }
        // Two shares are not enough.
        assert!(combine(&shares[..2], 3).is_none());
    }

    #[test]
    fn shares_parse_from_hex_and_base64_and_never_print() {
        let shares = split(&UnsealKey::generate(), 3, 2);
        let hex = shares[0].to_hex();
        let b64 = shares[0].to_base64();
        assert_eq!(UnsealShare::parse(&hex).unwrap().to_hex(), hex);
        assert_eq!(UnsealShare::parse(&b64).unwrap().to_hex(), hex);
        assert!(UnsealShare::parse("not a share").is_none());
        assert!(!format!("{:?}", shares[0]).contains(hex.as_str()));
    }
}
