//! A file audit device.

use super::chain::{Checkpoint, Verified, VerifyError, verify};
use super::writer::{CheckpointSink, DeviceKeys, Durability, Writer};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroizing;

/// A file device: entries HMAC'd under its key, chained under its chain key,
/// appended by its own writer thread.
pub struct AuditDevice {
    path: String,
    file_path: PathBuf,
    key: Zeroizing<Vec<u8>>,
    chain_key: Zeroizing<Vec<u8>>,
    writer: Writer,
    /// Disabled: its lines still go to the file, its checkpoints nowhere.
    retired: Arc<AtomicBool>,
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

/// `entry` as a device writes it: every string HMAC'd under `key` and the
/// entry bounded, except the broker's own words and the fields operators need
/// readable, which are put back as they were.
pub(super) fn hashed_entry(
    key: &[u8],
    entry: &Map<String, Value>,
    in_clear: &[&str],
) -> Map<String, Value> {
    let mut hashed = Value::Object(entry.clone());
    hmac_values(key, &mut hashed);
    let Value::Object(mut hashed) = hashed else {
        unreachable!("an object stays an object")
    };
    // `type`, `time` and `error` are the broker's own words, not data.
    for field in ["type", "time", "error"] {
        if let Some(value) = entry.get(field) {
            hashed.insert(field.into(), value.clone());
        }
    }
    restore_plain(entry, &mut hashed);
    restore_request_fields(entry, &mut hashed, in_clear);
    hashed
}

/// Fields that are never secret and that operators need readable: the request's
/// path, operation, id, origin and mount, the response's status; when and
/// where a wrapped response was wrapped (its token and accessors stay
/// HMAC'd); the caller's policies and display name.
fn restore_plain(entry: &Map<String, Value>, hashed: &mut Map<String, Value>) {
    for (section, fields) in [
        (
            &["request"][..],
            &[
                "id",
                "operation",
                "path",
                "remote_address",
                "mount_point",
                "mount_type",
                "mount_accessor",
            ][..],
        ),
        (
            &["response"][..],
            &["status", "mount_point", "mount_type", "mount_accessor"][..],
        ),
        (&["response", "secret"][..], &["lease_id"][..]),
        (
            &["response", "wrap_info"][..],
            &["creation_time", "creation_path"][..],
        ),
        (&["auth"][..], &["policies", "display_name"][..]),
    ] {
        let plain = section
            .iter()
            .try_fold(entry, |at, name| match at.get(*name) {
                Some(Value::Object(inner)) => Some(inner),
                _ => None,
            });
        let target = section
            .iter()
            .try_fold(&mut *hashed, |at, name| match at.get_mut(*name) {
                Some(Value::Object(inner)) => Some(inner),
                _ => None,
            });
        let (Some(plain), Some(target)) = (plain, target) else {
            continue;
        };
        for field in fields {
            if let Some(value) = plain.get(*field) {
                target.insert((*field).into(), value.clone());
            }
        }
    }
}

/// The longest value a route's in-clear request field is recorded with; a
/// longer one stays HMAC'd (and cut), so it cannot grow the log unbounded.
const MAX_IN_CLEAR_BYTES: usize = 4096;

/// Puts a route's in-clear request fields back as they were sent.
fn restore_request_fields(
    entry: &Map<String, Value>,
    hashed: &mut Map<String, Value>,
    in_clear: &[&str],
) {
    let Some(Value::Object(plain)) = entry.get("request").and_then(|r| r.get("data")) else {
        return;
    };
    let Some(Value::Object(target)) = hashed.get_mut("request").and_then(|r| r.get_mut("data"))
    else {
        return;
    };
    for field in in_clear {
        if let Some(value) = plain.get(*field)
            && value.to_string().len() <= MAX_IN_CLEAR_BYTES
        {
            target.insert((*field).into(), value.clone());
        }
    }
}

impl AuditDevice {
    /// A device at mount `path` writing to `file_path` from `checkpoint`,
    /// recording each new one through `sink`. Fails if the file cannot be
    /// opened for appending.
    pub(super) fn open(
        path: &str,
        file_path: &Path,
        keys: DeviceKeys,
        checkpoint: Checkpoint,
        sink: CheckpointSink,
        retired: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        super::writer::open_for_append(file_path)?;
        let values_key = keys.values.clone();
        let chain_key = keys.chain.clone();
        Ok(Self {
            path: path.to_owned(),
            file_path: file_path.to_owned(),
            key: values_key,
            chain_key,
            writer: Writer::spawn(file_path.to_owned(), keys, checkpoint, sink)?,
            retired,
        })
    }

    /// Whether its chain key is `hex_key`.
    pub(super) fn has_chain_key(&self, hex_key: &str) -> bool {
        hex::decode(hex_key).is_ok_and(|key| key == *self.chain_key)
    }

    /// Marks it disabled.
    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
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

    /// Writes `entry` (HMAC'd and chained by the device's writer), with the
    /// request fields `in_clear` as they are; returns once it is as durable as
    /// `durability` says.
    pub async fn record(
        &self,
        entry: Arc<Map<String, Value>>,
        in_clear: &'static [&'static str],
        durability: Durability,
    ) -> std::io::Result<()> {
        self.writer.write(entry, in_clear, durability).await
    }

    /// Checks the file's whole chain against where the broker's own record
    /// says it stands. Reads the file: call it off the async workers.
    pub fn verify(&self) -> Result<Verified, VerifyError> {
        verify(&self.chain_key, &self.file_path, &self.writer.checkpoint())
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
