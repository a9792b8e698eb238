//! The keyed chain through an audit file, and its checkpoint in the barrier.
//!
//! Each line carries, in `prev_hash`, the HMAC of the line before it under the
//! device's chain key (kept in the barrier, never in the file), so a line cannot
//! be deleted, reordered or edited without breaking the chain, and the chain
//! cannot be recomputed by whoever can write the file. What a file alone cannot
//! show — its last lines cut off — the [`Checkpoint`] does: right after every
//! write the broker records in the barrier how many lines it wrote and the HMAC
//! of the last one. (Lines written just before a crash, whose checkpoint was not
//! yet recorded, continue the chain from the last one, and are adopted when the
//! device is opened again.)

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The field in every line that holds the chain value of the line before it.
pub const PREV_FIELD: &str = "prev_hash";

/// The chain value of `line` (its bytes without the newline), under `key`.
pub fn link(key: &[u8], line: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(line);
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

/// Where a device's chain stands, as the broker last recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Byte offset in the file where this device's first line begins (a file
    /// may hold lines from before it was enabled).
    pub start: u64,
    /// Lines this device has written.
    pub lines: u64,
    /// Byte offset where the last of them begins.
    pub last_start: u64,
    /// Byte offset just after it.
    pub end: u64,
    /// The chain value of that last line (empty before the first).
    pub head: String,
}

/// Where a file breaks the chain. Line numbers count from the file's start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The file cannot be read.
    #[error("the file cannot be read: {0}")]
    Unreadable(String),
    /// The file ends before the device's first line.
    #[error(
        "the file is shorter than where this device's lines begin: it was truncated or replaced"
    )]
    Truncated,
    /// A line is not a JSON object with a `prev_hash`.
    #[error("line {0} is not an audit entry")]
    NotAnEntry(u64),
    /// The device's first line claims a predecessor.
    #[error("line {0} claims a predecessor: the device's first lines were cut off")]
    StartCut(u64),
    /// A line's `prev_hash` is not the chain value of the line before it.
    #[error("line {0} does not follow line {prev}: a line was deleted, reordered or edited there", prev = .0 - 1)]
    Broken(u64),
    /// The line the broker last recorded is not the one in the file.
    #[error("line {0} is not the line the broker recorded there: it was edited or replaced")]
    Edited(u64),
    /// The file ends before the last line the broker wrote.
    #[error(
        "the file ends after line {last} but the broker wrote {missing} more: the last lines were deleted"
    )]
    Missing {
        /// The last line present.
        last: u64,
        /// Lines written but gone.
        missing: u64,
    },
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The device's lines in the file.
    pub lines: u64,
    /// Lines before the device's first (another device's, or older), not checked.
    pub before: u64,
}

/// One complete line of a file: its bytes (without the newline) and where it
/// begins and ends.
pub struct Line {
    /// The bytes, without the newline.
    pub bytes: Vec<u8>,
    /// Offset of its first byte.
    pub start: u64,
    /// Offset just after its newline.
    pub end: u64,
}

/// Longest line read back; a broker's entries are far shorter (they are
/// bounded), so a longer one is not an entry, and a file of no newlines (or
/// `/dev/zero`) cannot make the reader buffer without end.
const MAX_LINE: u64 = 4 << 20;

/// Complete lines from `offset` on; a last line without its newline (being
/// written right now) is left out.
pub fn lines_from(
    file: &Path,
    offset: u64,
) -> std::io::Result<impl Iterator<Item = std::io::Result<Line>>> {
    let mut file = std::fs::File::open(file)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut position = offset;
    Ok(std::iter::from_fn(move || {
        let mut bytes = Vec::new();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut bytes) {
            Ok(0) => None,
            Ok(read) if read as u64 == MAX_LINE && bytes.last() != Some(&b'\n') => Some(Err(
                std::io::Error::new(std::io::ErrorKind::InvalidData, "a line of over 4 MiB"),
            )),
            Ok(_) if bytes.last() != Some(&b'\n') => None,
            Ok(read) => {
                bytes.pop();
                let line = Line {
                    bytes,
                    start: position,
                    end: position + read as u64,
                };
                position = line.end;
                Some(Ok(line))
            }
            Err(err) => Some(Err(err)),
        }
    }))
}

/// The `prev_hash` a line claims, if it is an entry.
pub fn claimed_prev(line: &[u8]) -> Option<String> {
    let entry: serde_json::Value = serde_json::from_slice(line).ok()?;
    entry.get(PREV_FIELD)?.as_str().map(str::to_owned)
}

/// Checks a device's whole chain in `file` against its `checkpoint`.
pub fn verify(key: &[u8], file: &Path, checkpoint: &Checkpoint) -> Result<Verified, VerifyError> {
    let unreadable = |err: std::io::Error| VerifyError::Unreadable(err.to_string());
    let length = std::fs::metadata(file).map_err(unreadable)?.len();
    if length < checkpoint.start {
        return Err(VerifyError::Truncated);
    }
    // Lines before the device's own, counted so line numbers are the file's.
    let mut before = 0u64;
    let mut prefix =
        BufReader::new(std::fs::File::open(file).map_err(unreadable)?).take(checkpoint.start);
    let mut skipped = Vec::new();
    while prefix.read_until(b'\n', &mut skipped).map_err(unreadable)? > 0 {
        before += u64::from(skipped.last() == Some(&b'\n'));
        skipped.clear();
    }
    let mut previous: Option<Vec<u8>> = None;
    let mut count = 0u64;
    for line in lines_from(file, checkpoint.start).map_err(unreadable)? {
        let line = line.map_err(unreadable)?;
        count += 1;
        let number = before + count;
        let claimed = claimed_prev(&line.bytes).ok_or(VerifyError::NotAnEntry(number))?;
        match &previous {
            None if !claimed.is_empty() => return Err(VerifyError::StartCut(number)),
            Some(prev) if claimed != link(key, prev) => return Err(VerifyError::Broken(number)),
            _ => {}
        }
        if count == checkpoint.lines && link(key, &line.bytes) != checkpoint.head {
            return Err(VerifyError::Edited(number));
        }
        previous = Some(line.bytes);
    }
    if count < checkpoint.lines {
        return Err(VerifyError::Missing {
            last: before + count,
            missing: checkpoint.lines - count,
        });
    }
    Ok(Verified {
        lines: count,
        before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"chain key";

    /// A file of `count` chained lines after `preamble`, and its checkpoint.
    fn chained(file: &Path, preamble: &str, count: usize) -> (Vec<String>, Checkpoint) {
        let mut text = preamble.to_owned();
        let mut checkpoint = Checkpoint {
            start: preamble.len() as u64,
            ..Checkpoint::default()
        };
        let mut lines = Vec::new();
        for n in 0..count {
            let line = format!(r#"{{"n":{n},"{PREV_FIELD}":"{}"}}"#, checkpoint.head);
            checkpoint.last_start = text.len() as u64;
            text.push_str(&line);
            text.push('\n');
            checkpoint.end = text.len() as u64;
            checkpoint.head = link(KEY, line.as_bytes());
            checkpoint.lines += 1;
            lines.push(line);
        }
        std::fs::write(file, text).unwrap();
        (lines, checkpoint)
    }

    fn write(file: &Path, preamble: &str, lines: &[String]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(file, format!("{preamble}{text}")).unwrap();
    }

    #[test]
    fn every_kind_of_change_anywhere_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        let preamble = "older line\n";
        let (lines, checkpoint) = chained(&file, preamble, 6);
        assert_eq!(
            verify(KEY, &file, &checkpoint),
            Ok(Verified {
                lines: 6,
                before: 1
            })
        );
        // A line being written (no newline yet) is not counted.
        std::fs::write(
            &file,
            format!("{}{{\"partial", std::fs::read_to_string(&file).unwrap()),
        )
        .unwrap();
        assert!(verify(KEY, &file, &checkpoint).is_ok());

        let cases: Vec<(Vec<String>, VerifyError)> = vec![
            // Deleted: first, middle, last.
            (lines[1..].to_vec(), VerifyError::StartCut(2)),
            ([&lines[..2], &lines[3..]].concat(), VerifyError::Broken(4)),
            (
                lines[..5].to_vec(),
                VerifyError::Missing {
                    last: 6,
                    missing: 1,
                },
            ),
            // Reordered.
            (
                [
                    &lines[..2],
                    &[lines[3].clone(), lines[2].clone()],
                    &lines[4..],
                ]
                .concat(),
                VerifyError::Broken(4),
            ),
            // Edited: a middle line, the last line.
            (
                {
                    let mut edited = lines.clone();
                    edited[2] = edited[2].replace("\"n\":2", "\"n\":9");
                    edited
                },
                VerifyError::Broken(5),
            ),
            (
                {
                    let mut edited = lines.clone();
                    edited[5] = edited[5].replace("\"n\":5", "\"n\":9");
                    edited
                },
                VerifyError::Edited(7),
            ),
            // Truncated to nothing.
            (
                Vec::new(),
                VerifyError::Missing {
                    last: 1,
                    missing: 6,
                },
            ),
        ];
        for (tampered, expected) in cases {
            write(&file, preamble, &tampered);
            assert_eq!(verify(KEY, &file, &checkpoint), Err(expected));
        }
        // A chain recomputed without the key does not verify.
        let forged: Vec<String> = lines
            .iter()
            .map(|l| l.replace("hmac-sha256:", "hmac-sha256:0"))
            .collect();
        write(&file, preamble, &forged);
        assert!(verify(KEY, &file, &checkpoint).is_err());
        std::fs::write(&file, "x").unwrap();
        assert_eq!(verify(KEY, &file, &checkpoint), Err(VerifyError::Truncated));
    }
}
