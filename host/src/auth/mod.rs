//! Who is asking: tokens.
//!
//! A token is a bearer secret (`hvs.` and 24 random characters, Vault's shape). The
//! broker stores only its SHA-256, under the barrier, with the entry that says
//! what the token may do; the token itself exists only with its holder.

mod token;

pub use token::{MAX_TTL, NewToken, Token, TokenEntry, TokenError, TokenStore};
