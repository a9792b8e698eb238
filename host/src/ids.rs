//! Identifiers: random ones (request ids, nonces, accessors, token bodies),
//! and the rule for names operators give things.

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Whether `name` is a plain name for a connection, role or quota: 1 to 128
/// letters, digits, `-`, `_` and `.`, so it is safe in a storage key and a path.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A random UUID-shaped (version 4 layout) identifier.
pub fn uuid() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `len` random letters and digits (about 5.95 bits each), uniformly drawn.
pub fn random_text(len: usize) -> String {
    let zone = 256 - 256 % ALPHABET.len();
    let mut text = String::with_capacity(len);
    while text.len() < len {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes).expect("the OS random source failed");
        text.extend(
            bytes
                .iter()
                .map(|b| usize::from(*b))
                .filter(|b| *b < zone)
                .map(|b| ALPHABET[b % ALPHABET.len()] as char)
                .take(len - text.len()),
        );
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_their_shape_and_differ() {
        let id = super::uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(super::uuid(), id);
        let text = super::random_text(24);
        assert_eq!(text.len(), 24);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(super::random_text(24), text);
    }
}
