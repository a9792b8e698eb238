//! One writer thread per audit device: HMACs entries, chains them, appends
//! them to the file, makes them durable and checkpoints the chain.
//!
//! Requests hand their entries over and wait for the answer, so a response is
//! never sent before its entries are on disk; but the hashing, the write and
//! the fsync happen on this thread, not on the async workers. Entries that
//! arrive while the file is being synced are written together with one fsync
//! (a group commit), so a busy server does not pay one fsync per line.
//!
//! Two kinds of entry ([`Durability`]): a request line is written to the file
//! (the kernel has it: a crash of the broker cannot lose it) and answered
//! without an fsync of its own; the response line of the same request is
//! fsynced, which makes every line before it durable too. So the request still
//! waits for its line to be written before it runs, its response is still sent
//! only once both lines are on disk, and it costs one fsync, not two. What
//! this gives up: a crash of the machine (power, kernel; not of the broker)
//! after the request's own storage commits and before its response line's
//! fsync can lose the request line while what the request did stays (its
//! lease, for one, is in storage and handled as any other). The response,
//! with any secret, was never sent. A written line that no synced line
//! follows (the client went away mid-request) is synced on its own after
//! [`MAX_UNSYNCED`].
//!
//! The chain's checkpoint is recorded in the barrier by a thread of its own
//! after each fsynced batch (never for lines that may not be on disk yet, so a
//! lost unsynced tail is not mistaken for tampering: `resume` adopts what
//! chains on after the checkpoint). Requests do not wait for it; if recording
//! fails, or a checkpoint has waited more than [`MAX_CHECKPOINT_LAG`], the
//! next batch records it first or fails (the broker fails closed).

use super::chain::{Checkpoint, PREV_FIELD, lines_from, link};
use super::device::hashed_entry;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use zeroize::Zeroizing;

/// Most entries written with one fsync.
const MAX_BATCH: usize = 256;

/// Longest a written line waits for an fsync when no synced line follows it
/// (its response never came: the client went away mid-request).
const MAX_UNSYNCED: std::time::Duration = std::time::Duration::from_millis(100);

/// Longest the writer waits for a checkpoint it must record first.
const MAX_RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest a checkpoint may wait to be recorded before writing stops for it.
const MAX_CHECKPOINT_LAG: std::time::Duration = std::time::Duration::from_secs(1);

/// When an entry counts as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// In the file; made durable by the next synced entry.
    Written,
    /// In the file and fsynced, with every line before it.
    Synced,
}

/// One entry to write, and who waits for it.
struct Job {
    entry: Arc<Map<String, Value>>,
    in_clear: &'static [&'static str],
    durability: Durability,
    done: tokio::sync::oneshot::Sender<std::io::Result<()>>,
}

/// Records a checkpoint where only the broker can write (the barrier); an
/// error fails the next batch's requests unless it is recorded by then (the
/// broker fails closed). Called from the device's checkpoint thread.
pub type CheckpointSink = Box<dyn Fn(&Checkpoint) -> std::io::Result<()> + Send>;

/// The checkpoint thread's in-box: only the latest checkpoint is recorded.
#[derive(Default)]
struct Recorder {
    slot: Mutex<RecorderSlot>,
    /// Signalled when there is a checkpoint to record or the writer stopped.
    wanted: Condvar,
    /// Signalled when a recording finished.
    finished: Condvar,
}

#[derive(Default)]
struct RecorderSlot {
    latest: Option<Checkpoint>,
    /// Checkpoints handed over, and how many of them are settled.
    submitted: u64,
    settled: u64,
    /// Whether the last recording failed.
    failed: bool,
    /// Since when a handed-over checkpoint has been waiting to be settled.
    waiting_since: Option<std::time::Instant>,
    closed: bool,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderSlot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `checkpoint` over; an older one not yet recorded is dropped.
    fn submit(&self, checkpoint: Checkpoint) -> u64 {
        let mut slot = self.lock();
        slot.latest = Some(checkpoint);
        slot.submitted += 1;
        slot.waiting_since
            .get_or_insert_with(std::time::Instant::now);
        self.wanted.notify_one();
        slot.submitted
    }

    /// Waits until the checkpoint numbered `ticket` (or a later one) is
    /// settled; whether it was recorded (not, if it takes longer than
    /// [`MAX_RECORD_WAIT`]: the writer fails the batch rather than hang).
    fn wait(&self, ticket: u64) -> bool {
        let deadline = std::time::Instant::now() + MAX_RECORD_WAIT;
        let mut slot = self.lock();
        while slot.settled < ticket {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            slot = self
                .finished
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        !slot.failed
    }

    /// Whether the writer must record a checkpoint before it writes more:
    /// the last recording failed, or one has been waiting longer than
    /// [`MAX_CHECKPOINT_LAG`] (a stuck store must not let lines run on
    /// unrecorded without bound). Waits for the waiting one first.
    fn behind(&self) -> bool {
        let ticket = {
            let slot = self.lock();
            match slot.waiting_since {
                Some(since) if since.elapsed() > MAX_CHECKPOINT_LAG => slot.submitted,
                _ => return slot.failed,
            }
        };
        !self.wait(ticket)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wanted.notify_one();
    }

    /// The thread's loop: records the latest checkpoint until closed, the
    /// last one included.
    fn run(&self, sink: &CheckpointSink) {
        loop {
            let (checkpoint, ticket) = {
                let mut slot = self.lock();
                while slot.latest.is_none() && !slot.closed {
                    slot = self.wanted.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
                match slot.latest.take() {
                    Some(checkpoint) => (checkpoint, slot.submitted),
                    None => return,
                }
            };
            // A panicking sink is a failed recording, not a dead thread the
            // writer would wait on forever.
            let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sink(&checkpoint).is_ok()
            }))
            .unwrap_or(false);
            let mut slot = self.lock();
            slot.settled = ticket;
            slot.failed = !recorded;
            if slot.settled >= slot.submitted {
                slot.waiting_since = None;
            }
            self.finished.notify_all();
        }
    }
}

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

/// Closes the recorder when the writer thread ends.
struct CloseOnDrop(Arc<Recorder>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
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
        let recorder = Arc::new(Recorder::default());
        let recording = recorder.clone();
        let checkpoints = std::thread::Builder::new()
            .name("audit-checkpoint".into())
            .spawn(move || recording.run(&sink))?;
        let closing = CloseOnDrop(recorder.clone());
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                // Closed however the loop ends, a panic included, so the
                // checkpoint thread records the last checkpoint and stops.
                let closing = closing;
                run(&file, &keys, &state, &recorder, &receiver);
                drop(closing);
                let _ = checkpoints.join();
            })?;
        Ok(Self {
            jobs: Mutex::new(jobs),
            checkpoint: shared,
        })
    }

    /// Writes `entry` (in the clear: the thread HMACs it) and waits until it is
    /// as durable as `durability` says.
    pub async fn write(
        &self,
        entry: Arc<Map<String, Value>>,
        in_clear: &'static [&'static str],
        durability: Durability,
    ) -> std::io::Result<()> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            entry,
            in_clear,
            durability,
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
    recorder: &Recorder,
    jobs: &Receiver<Job>,
) {
    // What the last fsynced batch left: the checkpoint that may be recorded.
    let mut synced: Option<Checkpoint> = None;
    // Whether lines were written after it without an fsync.
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            match jobs.recv_timeout(MAX_UNSYNCED) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    // No response line came to sync them: sync them alone.
                    let current = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if open_for_append(file).and_then(|f| f.sync_data()).is_ok() {
                        recorder.submit(current.clone());
                        synced = Some(current);
                        unsynced = false;
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        // A checkpoint that could not be recorded (or waits too long) is
        // recorded before anything more is written, or nothing is.
        if recorder.behind() {
            let recorded = synced
                .clone()
                .is_some_and(|checkpoint| recorder.wait(recorder.submit(checkpoint)));
            if !recorded {
                answer(
                    batch,
                    &Err(std::io::Error::other(
                        "the audit checkpoint could not be recorded",
                    )),
                );
                continue;
            }
        }
        let current = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let next = match append(file, keys, &current, &batch) {
            Ok(next) => next,
            Err(err) => {
                answer(batch, &Err(err));
                continue;
            }
        };
        *state.lock().unwrap_or_else(|e| e.into_inner()) = next.checkpoint.clone();
        answer(batch, &Ok(()));
        if next.synced {
            recorder.submit(next.checkpoint.clone());
            synced = Some(next.checkpoint);
            unsynced = false;
        } else {
            unsynced = true;
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

/// Where a batch left the chain.
struct Appended {
    checkpoint: Checkpoint,
    /// Whether the file was fsynced after the batch.
    synced: bool,
}

/// Appends the batch's lines after `current`, with one fsync if any of them
/// asks for it; the checkpoint after them.
fn append(
    file: &Path,
    keys: &DeviceKeys,
    current: &Checkpoint,
    batch: &[Job],
) -> std::io::Result<Appended> {
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
    let sync = batch.iter().any(|job| job.durability == Durability::Synced);
    let written = handle
        .write_all(&text)
        .and_then(|()| if sync { handle.sync_data() } else { Ok(()) });
    if let Err(err) = written {
        // Nothing of a failed batch stays to break the chain.
        let _ = handle.set_len(batch_start);
        return Err(err);
    }
    Ok(Appended {
        checkpoint: next,
        synced: sync,
    })
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

    fn entry(value: Value) -> Arc<Map<String, Value>> {
        let Value::Object(entry) = value else {
            unreachable!()
        };
        Arc::new(entry)
    }

    /// A sink keeping every checkpoint it records.
    fn recording_sink() -> (CheckpointSink, Arc<Mutex<Vec<Checkpoint>>>) {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let log = recorded.clone();
        let sink: CheckpointSink = Box::new(move |c| {
            log.lock().unwrap().push(c.clone());
            Ok(())
        });
        (sink, recorded)
    }

    /// Waits (generously) until the sink has recorded `checkpoint`.
    async fn recorded_eventually(recorded: &Mutex<Vec<Checkpoint>>, checkpoint: &Checkpoint) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while recorded.lock().unwrap().last() != Some(checkpoint) {
            assert!(
                std::time::Instant::now() < deadline,
                "checkpoint never recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_entries_chain_and_a_restart_resumes_only_an_intact_tail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        std::fs::write(&file, "a line from before\n").unwrap();
        let (sink, recorded) = recording_sink();
        let start = resume(&file, b"chain", None);
        let writer = Arc::new(Writer::spawn(file.clone(), keys(), start.clone(), sink).unwrap());
        let mut tasks = Vec::new();
        for n in 0..200 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let entry =
                    entry(serde_json::json!({"type": "request", "n": n, "secret": "s3cret"}));
                writer.write(entry, &[], Durability::Synced).await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let checkpoint = writer.checkpoint();
        assert_eq!(checkpoint.lines, 200);
        recorded_eventually(&recorded, &checkpoint).await;
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("s3cret"));
        assert_eq!(
            verify(b"chain", &file, &checkpoint).unwrap().lines,
            200,
            "{text}"
        );
        drop(writer);

        // The checkpoints after the start lost (a crash after the writes): the
        // tail chains on, so a restart takes it.
        assert_eq!(resume(&file, b"chain", Some(start)), checkpoint);
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
        writer
            .write(
                entry(serde_json::json!({"type": "request"})),
                &[],
                Durability::Synced,
            )
            .await
            .unwrap();
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

    /// A writer on a new file in a temporary directory (kept alive by the
    /// returned guard), recording checkpoints through `sink`.
    fn new_writer(sink: CheckpointSink) -> (tempfile::TempDir, PathBuf, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.log");
        let writer =
            Writer::spawn(file.clone(), keys(), resume(&file, b"chain", None), sink).unwrap();
        (dir, file, writer)
    }

    async fn write_line(writer: &Writer, kind: &str, durability: Durability) {
        writer
            .write(entry(serde_json::json!({"type": kind})), &[], durability)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_written_line_is_answered_in_the_file_and_synced_by_the_next_synced_one() {
        let (sink, recorded) = recording_sink();
        let (_dir, file, writer) = new_writer(sink);
        write_line(&writer, "request", Durability::Written).await;
        // Answered once in the file: a crash of the process cannot lose it.
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);
        assert_eq!(writer.checkpoint().lines, 1);
        write_line(&writer, "response", Durability::Synced).await;
        let synced = writer.checkpoint();
        assert_eq!(synced.lines, 2);
        recorded_eventually(&recorded, &synced).await;
        assert_eq!(verify(b"chain", &file, &synced).unwrap().lines, 2);
    }

    #[tokio::test]
    async fn a_written_line_no_synced_line_follows_is_synced_and_checkpointed_alone() {
        let (sink, recorded) = recording_sink();
        let (_dir, file, writer) = new_writer(sink);
        // A request line whose response never comes (the client went away).
        write_line(&writer, "request", Durability::Written).await;
        let written = writer.checkpoint();
        recorded_eventually(&recorded, &written).await;
        assert_eq!(verify(b"chain", &file, &written).unwrap().lines, 1);
    }

    #[tokio::test]
    async fn a_panicking_checkpoint_store_fails_batches_instead_of_hanging_them() {
        let sink: CheckpointSink = Box::new(|_| panic!("the store panicked"));
        let (_dir, _file, writer) = new_writer(sink);
        let line = || entry(serde_json::json!({"type": "response"}));
        writer.write(line(), &[], Durability::Synced).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while writer.write(line(), &[], Durability::Synced).await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "never failed closed");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_checkpoint_that_cannot_be_recorded_fails_the_next_batch() {
        let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let failing = broken.clone();
        let sink: CheckpointSink = Box::new(move |_| {
            if failing.load(std::sync::atomic::Ordering::SeqCst) {
                Err(std::io::Error::other("storage is gone"))
            } else {
                Ok(())
            }
        });
        let (_dir, file, writer) = new_writer(sink);
        let line = || entry(serde_json::json!({"type": "response"}));
        // Answered: its line is on disk; recording the checkpoint fails after.
        writer.write(line(), &[], Durability::Synced).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // Until the failure is known a batch may still pass; once it is,
            // every batch fails and writes nothing.
            let before = std::fs::read_to_string(&file).unwrap();
            if writer.write(line(), &[], Durability::Synced).await.is_err() {
                assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never failed closed");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Storage back: the checkpoint is recorded first, and writing goes on.
        broken.store(false, std::sync::atomic::Ordering::SeqCst);
        writer.write(line(), &[], Durability::Synced).await.unwrap();
    }
}
