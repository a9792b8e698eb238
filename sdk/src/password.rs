//! Strong random passwords from the host's secure random source (`wasi:random`).

/// Characters a generated password is drawn from: letters, digits and `-`, which no
/// common target treats specially in a password or a connection string.
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const SYMBOLS: &[u8] = b"-";

/// Shortest password [`generate_password`] makes: one of each class plus enough
/// random characters for over 100 bits.
pub const MIN_PASSWORD_LENGTH: usize = 20;

/// Generates a password of `len` characters (at least [`MIN_PASSWORD_LENGTH`]) with
/// at least one lower-case letter, upper-case letter, digit and `-`, like Vault's
/// default password policy.
///
/// # Panics
///
/// If the host's random source fails, which the host treats as a plugin crash:
/// issuing a credential with a weak password would be worse.
pub fn generate_password(len: usize) -> String {
    let len = len.max(MIN_PASSWORD_LENGTH);
    let classes = [LOWER, UPPER, DIGITS, SYMBOLS];
    let all: Vec<u8> = classes.concat();
    let mut random = RandomBytes::default();
    loop {
        let candidate: String = (0..len)
            .map(|_| all[random.below(all.len())] as char)
            .collect();
        let has_every_class = classes
            .iter()
            .all(|class| candidate.bytes().any(|c| class.contains(&c)));
        if has_every_class {
            return candidate;
        }
    }
}

/// Random bytes fetched from the host a block at a time: each fetch is a call out
/// of the sandbox, so one per block rather than one per character.
#[derive(Default)]
struct RandomBytes {
    block: [u8; 32],
    used: usize,
}

impl RandomBytes {
    fn byte(&mut self) -> u8 {
        if self.used == 0 || self.used == self.block.len() {
            getrandom::fill(&mut self.block).expect("the host's random source failed");
            self.used = 0;
        }
        self.used += 1;
        self.block[self.used - 1]
    }

    /// A uniformly random number below `bound` (at most 256), by rejection
    /// sampling so there is no modulo bias.
    fn below(&mut self, bound: usize) -> usize {
        debug_assert!(bound > 0 && bound <= 256);
        let zone = 256 - 256 % bound;
        loop {
            let value = usize::from(self.byte());
            if value < zone {
                return value % bound;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_every_class_and_the_asked_length() {
        for len in [20, 24, 64] {
            let password = generate_password(len);
            assert_eq!(password.len(), len);
            assert!(password.bytes().any(|c| c.is_ascii_lowercase()));
            assert!(password.bytes().any(|c| c.is_ascii_uppercase()));
            assert!(password.bytes().any(|c| c.is_ascii_digit()));
            assert!(password.contains('-'));
        }
    }

    #[test]
    fn short_lengths_are_raised_to_the_minimum() {
        assert_eq!(generate_password(4).len(), MIN_PASSWORD_LENGTH);
    }

    #[test]
    fn passwords_differ() {
        assert_ne!(generate_password(24), generate_password(24));
    }
}
