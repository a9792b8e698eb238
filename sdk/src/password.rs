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
    generate_from(
        len.max(MIN_PASSWORD_LENGTH),
        &[LOWER, UPPER, DIGITS, SYMBOLS],
    )
}

/// `len` characters with at least one from each class.
fn generate_from(len: usize, classes: &[&[u8]]) -> String {
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

/// What a generated password is made of, for plugins whose config lets an
/// operator choose (a target with its own password rules).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Length, 20 to 128 (default 24).
    pub length: usize,
    /// Whether it has lower-case letters (default true).
    pub lowercase: bool,
    /// Whether it has upper-case letters (default true).
    pub uppercase: bool,
    /// Whether it has digits (default true).
    pub digits: bool,
    /// Symbols it has, printable ASCII without spaces (default `-`; empty for none).
    pub symbols: String,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            length: 24,
            lowercase: true,
            uppercase: true,
            digits: true,
            symbols: "-".into(),
        }
    }
}

impl PasswordPolicy {
    /// A password with at least one character of every class the policy has.
    pub fn generate(&self) -> crate::Result<String> {
        if !(MIN_PASSWORD_LENGTH..=128).contains(&self.length) {
            return Err(crate::Error::invalid_config(format!(
                "password_policy.length must be {MIN_PASSWORD_LENGTH} to 128"
            )));
        }
        if !self.symbols.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::Error::invalid_config(
                "password_policy.symbols must be printable ASCII without spaces",
            ));
        }
        let symbols = self.symbols.as_bytes();
        let classes: Vec<&[u8]> = [
            (self.lowercase, LOWER),
            (self.uppercase, UPPER),
            (self.digits, DIGITS),
            (!symbols.is_empty(), symbols),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, class)| class)
        .collect();
        if classes.is_empty() {
            return Err(crate::Error::invalid_config(
                "password_policy allows no characters",
            ));
        }
        Ok(generate_from(self.length, &classes))
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
    fn policies_decide_length_and_classes() {
        let digits_only = PasswordPolicy {
            length: 30,
            lowercase: false,
            uppercase: false,
            symbols: String::new(),
            ..PasswordPolicy::default()
        };
        let password = digits_only.generate().unwrap();
        assert_eq!(password.len(), 30);
        assert!(password.bytes().all(|b| b.is_ascii_digit()));
        let symbols = PasswordPolicy {
            symbols: "!@#".into(),
            ..PasswordPolicy::default()
        };
        assert!(
            symbols
                .generate()
                .unwrap()
                .bytes()
                .any(|b| b"!@#".contains(&b))
        );
        for bad in [
            PasswordPolicy {
                length: 8,
                ..PasswordPolicy::default()
            },
            PasswordPolicy {
                symbols: "a b".into(),
                ..PasswordPolicy::default()
            },
            PasswordPolicy {
                lowercase: false,
                uppercase: false,
                digits: false,
                symbols: String::new(),
                ..PasswordPolicy::default()
            },
        ] {
            assert!(bad.generate().is_err(), "{bad:?}");
        }
    }

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
