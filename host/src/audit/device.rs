//! A file audit device.

use super::chain::{PREV_FIELD, link};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Appends audit lines to a file, chaining each to the one before.
pub struct AuditDevice {
    path: String,
    file_path: PathBuf,
    key: Zeroizing<Vec<u8>>,
    /// The last line written, for the next line's `prev_hash`; the lock also
    /// keeps lines whole when requests run concurrently.
    last_line: Mutex<Option<String>>,
}

impl std::fmt::Debug for AuditDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditDevice")
            .field("path", &self.path)
            .field("file_path", &self.file_path)
            .finish_non_exhaustive()
    }
}

/// Most items of one array or object an entry keeps; the rest are cut.
const MAX_ITEMS: usize = 64;
/// Most values one entry keeps in all.
const MAX_VALUES: usize = 2048;
/// Deepest nesting kept.
const MAX_DEPTH: usize = 16;

/// Replaces every string in `value` by its HMAC under `key`, in place, and
/// bounds it: arrays and objects keep their first [`MAX_ITEMS`] items, the
/// entry its first [`MAX_VALUES`] values and [`MAX_DEPTH`] levels, and what is
/// cut is replaced by a plain marker saying how much. A body of a million
/// empty strings thus costs the log a few kilobytes, not fifty megabytes.
pub fn hmac_values(key: &[u8], value: &mut Value) {
    let mut budget = MAX_VALUES;
    hmac_bounded(key, value, 0, &mut budget);
}

/// Longest object key kept, in bytes.
const MAX_KEY: usize = 128;

fn cut_key(mut name: String) -> String {
    if name.len() > MAX_KEY {
        name.truncate(name.floor_char_boundary(MAX_KEY));
        name.push_str("[audit: cut]");
    }
    name
}

fn cut(count: usize) -> Value {
    Value::String(format!("[audit: {count} more cut]"))
}

fn hmac_bounded(key: &[u8], value: &mut Value, depth: usize, budget: &mut usize) {
    *budget = budget.saturating_sub(1);
    match value {
        Value::String(text) => *text = hmac_of(key, text),
        Value::Array(items) if depth >= MAX_DEPTH => *value = cut(items.len()),
        Value::Object(map) if depth >= MAX_DEPTH => *value = cut(map.len()),
        Value::Array(items) => {
            let keep = items.len().min(MAX_ITEMS).min(*budget);
            let dropped = items.len() - keep;
            items.truncate(keep);
            for item in items.iter_mut() {
                hmac_bounded(key, item, depth + 1, budget);
            }
            if dropped > 0 {
                items.push(cut(dropped));
            }
        }
        Value::Object(map) => {
            let keep = map.len().min(MAX_ITEMS).min(*budget);
            let dropped = map.len() - keep;
            let kept: Vec<String> = map.keys().take(keep).cloned().collect();
            let mut bounded = serde_json::Map::new();
            for (name, mut item) in std::mem::take(map) {
                if !kept.contains(&name) {
                    continue;
                }
                hmac_bounded(key, &mut item, depth + 1, budget);
                // A key is the client's text too: a long one is cut.
                bounded.insert(cut_key(name), item);
            }
            *map = bounded;
            if dropped > 0 {
                map.insert("[audit: cut]".into(), cut(dropped));
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn hmac_of(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

/// The last line of an existing file, so a restarted device continues its chain.
fn last_line_of(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().last().map(str::to_owned)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

impl AuditDevice {
    /// A device at mount `path` writing to `file_path`, with HMAC `key`. Fails if
    /// the file cannot be opened for appending.
    pub fn open(path: &str, file_path: &Path, key: Zeroizing<Vec<u8>>) -> std::io::Result<Self> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file_path)?;
        Ok(Self {
            path: path.to_owned(),
            file_path: file_path.to_owned(),
            key,
            last_line: Mutex::new(last_line_of(file_path)?),
        })
    }

    /// The device's mount path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file written to.
    pub fn file_path(&self) -> &Path {
        &self.file_path
    }

    /// The HMAC of `input` under this device's key (`sys/audit-hash`).
    pub fn hash(&self, input: &str) -> String {
        hmac_of(&self.key, input)
    }

    /// HMACs every string inside `value`.
    pub fn hmac(&self, value: &mut Value) {
        hmac_values(&self.key, value);
    }

    /// Appends `entry` (already HMAC'd) as one chained line, durably.
    pub fn write(&self, mut entry: serde_json::Map<String, Value>) -> std::io::Result<()> {
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        let prev = last.as_deref().map(link).unwrap_or_default();
        entry.insert(PREV_FIELD.into(), Value::String(prev));
        let line = serde_json::to_string(&entry).expect("an audit entry serializes");
        // A deleted file is created again; its first line still names the line
        // before it, so `verify` reports the cut.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file_path)?;
        file.write_all(format!("{line}\n").as_bytes())?;
        file.sync_data()?;
        *last = Some(line);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_body_becomes_a_bounded_entry() {
        let long_key = "k".repeat(1 << 20);
        let mut flood = serde_json::json!({ long_key: 1, "a": vec![""; 300_000], "b": {"c": [[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]} });
        hmac_values(b"key", &mut flood);
        let line = serde_json::to_string(&flood).unwrap();
        assert!(line.len() < 16 << 10, "{} bytes", line.len());
        assert_eq!(flood["a"][64], "[audit: 299936 more cut]");
        assert!(line.contains("[audit: 1 more cut]"), "{line}");
        assert!(flood["a"][0].as_str().unwrap().starts_with("hmac-sha256:"));
    }
}
