//! One writer thread per audit device: HMACs entries, chains them, appends
//! them to the file, makes them durable and checkpoints the chain.
//!
//! Requests hand their entries over and wait for the answer, so a response is
//! never sent before its entry is on disk; but the hashing, the write and the
//! fsync happen on this thread, not on the async workers. Entries that arrive
//! while the file is being synced are written together with one fsync (a group
//! commit), so a busy server does not pay one fsync per line. The chain's
//! checkpoint is recorded right after a batch is answered; if recording it
//! fails, the next batch records it first or fails (the broker fails closed).

use super::chain::{Checkpoint, PREV_FIELD, lines_from, link};
use super::device::hashed_entry;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Most entries written with one fsync.
const MAX_BATCH: usize = 256;

/// One entry to write, and who waits for it.
struct Job {
    entry: Arc<Map<String, Value>>,
    in_clear: &'static [&'static str],
    done: tokio::sync::oneshot::Sender<std::io::Result<()>>,
}

/// Records a checkpoint where only the broker can write (the barrier); an
/// error fails the batch's requests (the broker fails closed).
pub type CheckpointSink = Box<dyn Fn(&Checkpoint) -> std::io::Result<()> + Send>;

/// Opens an audit file to append to: never through a symlink, never a FIFO or
/// device (which could block the writer, or send the log elsewhere), created
/// 0600 if new.
pub fn open_for_append(file: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let handle = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(flags.bits() as i32)
        .open(file)?;
    if !handle.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(handle)
}

/// The handle requests write through; the thread ends when it is dropped.
pub struct Writer {
    jobs: Mutex<Sender<Job>>,
    checkpoint: Arc<Mutex<Checkpoint>>,
}

/// Keys of one device.
pub struct DeviceKeys {
    /// HMACs the entries' values.
    pub values: Zeroizing<Vec<u8>>,
    /// HMACs the chain.
    pub chain: Zeroizing<Vec<u8>>,
}

/// Where a device starts writing: from its checkpoint, moved forward over
/// lines written after it (by a process that stopped before recording them)
/// when those chain on correctly. A file changed while the broker was not
/// running is not followed: the chain goes on from the checkpoint, so
/// `audit verify` shows the change.
pub fn resume(file: &Path, chain_key: &[u8], stored: Option<Checkpoint>) -> Checkpoint {
    let length = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let Some(checkpoint) = stored else {
        // A new device: its lines start at the end of whatever the file holds.
        return Checkpoint {
            start: length,
            last_start: length,
            end: length,
            ..Checkpoint::default()
        };
    };
    let mut moved = checkpoint.clone();
    let tail_start = if checkpoint.lines == 0 {
        checkpoint.start
    } else {
        checkpoint.last_start
    };
    let Ok(lines) = lines_from(file, tail_start) else {
        return checkpoint;
    };
    let mut previous_link = String::new();
    for (index, line) in lines.enumerate() {
        let Ok(line) = line else { return checkpoint };
        let this_link = link(chain_key, &line.bytes);
        if index == 0 && checkpoint.lines > 0 {
            if this_link != checkpoint.head || line.end != checkpoint.end {
                return checkpoint;
            }
        } else {
            let claimed = super::chain::claimed_prev(&line.bytes);
            if claimed.as_deref() != Some(previous_link.as_str()) {
                return checkpoint;
            }
            moved.lines += 1;
            moved.last_start = line.start;
            moved.end = line.end;
            moved.head = this_link.clone();
        }
        previous_link = this_link;
    }
    moved
}

impl Writer {
    /// Starts the thread writing to `file` from `checkpoint`, recording each
    /// new checkpoint through `sink`.
    pub fn spawn(
        file: PathBuf,
        keys: DeviceKeys,
        checkpoint: Checkpoint,
        sink: CheckpointSink,
    ) -> std::io::Result<Self> {
        let (jobs, receiver) = std::sync::mpsc::channel();
        let shared = Arc::new(Mutex::new(checkpoint));
        let state = shared.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(&file, &keys, &state, &sink, &receiver))?;
        Ok(Self {
            jobs: Mutex::new(jobs),
            checkpoint: shared,
        })
    }

    /// Writes `entry` (in the clear: the thread HMACs it) and waits until it is
    /// durable.
    pub async fn write(
        &self,
        entry: Arc<Map<String, Value>>,
        in_clear: &'static [&'static str],
    ) -> std::io::Result<()> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            entry,
            in_clear,
            done,
        };
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| std::io::Error::other("the audit writer stopped"))?;
        answer
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the audit writer stopped")))
    }

    /// Where the chain stands now.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn run(
    file: &Path,
    keys: &DeviceKeys,
    state: &Mutex<Checkpoint>,
    sink: &CheckpointSink,
    jobs: &Receiver<Job>,
) {
    // Whether the checkpoint after the last batch is still to be recorded
    // (recording it failed): the next batch records it first, or fails.
    let mut unrecorded = false;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let current = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let result = if unrecorded {
            sink(&current).and_then(|()| {
                unrecorded = false;
                append(file, keys, &current, &batch)
            })
        } else {
            append(file, keys, &current, &batch)
        };
        let next = match result {
            Ok(next) => next,
            Err(err) => {
                answer(batch, &Err(err));
                continue;
            }
        };
        // The lines are on disk: the chain goes on from them, and their
        // requests are answered now. The checkpoint is recorded after, while
        // those requests go on (a storage commit of its own would otherwise be
        // in every request's path twice); a crash in between leaves lines
        // that `resume` adopts, as they continue the chain.
        *state.lock().unwrap_or_else(|e| e.into_inner()) = next.clone();
        answer(batch, &Ok(()));
        if sink(&next).is_err() {
            unrecorded = true;
        }
    }
}

fn answer(batch: Vec<Job>, outcome: &std::io::Result<()>) {
    for job in batch {
        let _ = job.done.send(match outcome {
            Ok(()) => Ok(()),
            Err(err) => Err(std::io::Error::new(err.kind(), err.to_string())),
        });
    }
}

/// Appends the batch's lines after `current` with one fsync; the checkpoint
/// after them.
fn append(
    file: &Path,
    keys: &DeviceKeys,
    current: &Checkpoint,
    batch: &[Job],
) -> std::io::Result<Checkpoint> {
    // Opened for each batch: a file removed or rotated away is created again,
    // and its first line still names the line before it.
    let mut handle = open_for_append(file)?;
    let mut offset = handle.metadata()?.len();
    // A line half-written when a write failed or the process died is cut, so
    // the next one starts on a line of its own. Whole lines after the last
    // checkpoint are someone else's: they stay, and verification shows them.
    if offset > current.end && !tail_has_newline(file, current.end)? {
        handle.set_len(current.end)?;
        offset = current.end;
    }
    let batch_start = offset;
    let mut next = current.clone();
    let mut text = Vec::new();
    for job in batch {
        let mut entry = hashed_entry(&keys.values, &job.entry, job.in_clear);
        entry.insert(PREV_FIELD.into(), Value::String(next.head.clone()));
        let line = serde_json::to_vec(&entry).expect("an audit entry serializes");
        next.head = link(&keys.chain, &line);
        next.lines += 1;
        next.last_start = offset;
        offset += line.len() as u64 + 1;
        next.end = offset;
        text.extend_from_slice(&line);
        text.push(b'\n');
    }
    let written = handle.write_all(&text).and_then(|()| handle.sync_data());
    if let Err(err) = written {
        // Nothing of a failed batch stays to break the chain.
        let _ = handle.set_len(batch_start);
        return Err(err);
    }
    Ok(next)
}

/// Whether the bytes of `file` from `offset` on hold a newline.
fn tail_has_newline(file: &Path, offset: u64) -> std::io::Result<bool> {
    use std::io::{Read, Seek};
    let mut handle = std::fs::File::open(file)?;
    handle.seek(std::io::SeekFrom::Start(offset))?;
    let mut buffer = [0u8; 8192];
    loop {
        match handle.read(&mut buffer)? {
            0 => return Ok(false),
            n if buffer[..n].contains(&b'\n') => return Ok(true),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::verify;

    fn keys() -> DeviceKeys {
        DeviceKeys {
            values: Zeroizing::new(b"values".to_vec()),
            chain: Zeroizing::new(b"chain".to_vec()),
        }
    }

    #[tokio::test]
    async fn concurrent_entries_chain_and_a_restart_resumes_only_an_intact_tail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        std::fs::write(&file, "a line from before\n").unwrap();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let sink_log = recorded.clone();
        let start = resume(&file, b"chain", None);
        let writer = Arc::new(
            Writer::spawn(
                file.clone(),
                keys(),
                start,
                Box::new(move |c| {
                    sink_log.lock().unwrap().push(c.clone());
                    Ok(())
                }),
            )
            .unwrap(),
        );
        let mut tasks = Vec::new();
        for n in 0..200 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let entry = serde_json::json!({"type": "request", "n": n, "secret": "s3cret"});
                let Value::Object(entry) = entry else {
                    unreachable!()
                };
                writer.write(Arc::new(entry), &[]).await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let checkpoint = writer.checkpoint();
        assert_eq!(checkpoint.lines, 200);
        assert_eq!(recorded.lock().unwrap().last(), Some(&checkpoint));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("s3cret"));
        assert_eq!(
            verify(b"chain", &file, &checkpoint).unwrap().lines,
            200,
            "{text}"
        );
        drop(writer);

        // The last checkpoint lost (a crash after the write): the tail chains
        // on, so a restart takes it.
        let older = recorded.lock().unwrap()[0].clone();
        assert_eq!(resume(&file, b"chain", Some(older.clone())), checkpoint);
        // A line half-written when the process died is cut before the next
        // write, so the chain goes on whole.
        let torn = resume(&file, b"chain", Some(checkpoint.clone()));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"{\"type\":\"requ")
            .unwrap();
        let writer = Writer::spawn(file.clone(), keys(), torn, Box::new(|_| Ok(()))).unwrap();
        let Value::Object(entry) = serde_json::json!({"type": "request"}) else {
            unreachable!()
        };
        writer.write(Arc::new(entry), &[]).await.unwrap();
        let checkpoint = writer.checkpoint();
        assert_eq!(verify(b"chain", &file, &checkpoint).unwrap().lines, 201);
        let text = std::fs::read_to_string(&file).unwrap();
        drop(writer);

        // The last line deleted while stopped: the restart keeps the
        // checkpoint, and verification reports the deletion.
        let cut = text.lines().take(201).collect::<Vec<_>>().join("\n") + "\n";
        std::fs::write(&file, cut).unwrap();
        assert_eq!(
            resume(&file, b"chain", Some(checkpoint.clone())),
            checkpoint
        );
        assert!(verify(b"chain", &file, &checkpoint).is_err());
    }
}
