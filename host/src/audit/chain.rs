//! The hash chain through an audit file.

use sha2::{Digest, Sha256};

/// The field in every line that holds the hash of the line before it.
pub const PREV_FIELD: &str = "prev_hash";

/// The chain value for the line after `line`.
pub fn link(line: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(line.as_bytes())))
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A line is not a JSON object with a `prev_hash`.
    #[error("line {0} is not an audit entry")]
    NotAnEntry(usize),
    /// A line's `prev_hash` does not match the line before it.
    #[error("line {0} does not follow line {prev}: a line was deleted, reordered or edited there", prev = .0 - 1)]
    Broken(usize),
    /// The first line claims a predecessor.
    #[error("line 1 claims a predecessor: the start of the file was cut off")]
    Truncated,
}

/// Checks every link of an audit file's text; returns the number of entries.
pub fn verify(text: &str) -> Result<usize, VerifyError> {
    let mut previous: Option<&str> = None;
    let mut count = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let entry: serde_json::Value =
            serde_json::from_str(line).map_err(|_| VerifyError::NotAnEntry(number))?;
        let claimed = entry
            .get(PREV_FIELD)
            .and_then(|v| v.as_str())
            .ok_or(VerifyError::NotAnEntry(number))?;
        match previous {
            None if !claimed.is_empty() => return Err(VerifyError::Truncated),
            Some(prev) if claimed != link(prev) => return Err(VerifyError::Broken(number)),
            _ => {}
        }
        previous = Some(line);
        count += 1;
    }
    Ok(count)
}
