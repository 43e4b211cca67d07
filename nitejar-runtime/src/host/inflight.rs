//! In-flight marks: which plugins had code running when this process died.
//!
//! A plugin library runs in the server's process: a plugin that calls `abort()`, dereferences a bad
//! pointer or is killed by the kernel for its memory takes the whole process down, and nothing in
//! the process survives to say which plugin it was. So before every call into a library the host
//! counts the call in a small file mapped into memory (`plugins/_runtime/inflight/<pid>.<n>`), and
//! counts it out afterwards — an atomic add to shared memory, no system call. Pages of a shared
//! file mapping belong to the kernel's page cache, not to the process: whatever was counted when
//! the process died is still there for the next one to read.
//!
//! While the plugin waits for a host service (HTTP, files, secrets), its call is counted out: a
//! crash in the host's own code is not the plugin's.
//!
//! On boot, [`InFlightMarks::claim_crashed`] reads the files of processes that are gone without
//! closing theirs (a clean exit removes it, and a process that is stopping marks it closed first, so
//! a call stuck at shutdown is not taken for a crash), claims each by renaming it (two processes
//! booting at once never both report one), and returns every plugin version with calls in
//! flight. Every such plugin was *running code* when the process died; it is not proof that it was
//! the cause (another plugin's call may have been the one that crashed), which is why the lifecycle
//! only disables a plugin after repeated strikes.
//!
//! What this cannot see: a machine that lost power (the page cache is gone; nothing crashed
//! anyway), a file another process of the same user truncates (that user can do anything to the
//! data directory), and more than [`SLOTS`] plugin versions loaded at once (the rest load without
//! marks, with a warning).
//!
//! # File layout (fixed size, [`FILE_LEN`] bytes, written in full when created so that a full
//! disk cannot fault a later store)
//!
//! - header, 64 bytes: magic `NJINFL01`; pid (u32); state (u32: 1 running, 2 closed); the
//!   process's start time in clock ticks since boot (u64, from `/proc/<pid>/stat`, so a reused pid
//!   is not taken for the writer); wall-clock start in Unix ms (i64);
//! - [`SLOTS`] slots of 256 bytes: calls in flight (u32); in use (u32); id length, version length
//!   (u16 each); the plugin id (≤ 128 bytes) and version (≤ 112 bytes).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How many plugin versions one process can mark at once.
pub const SLOTS: usize = 127;
const HEADER_LEN: usize = 64;
const SLOT_LEN: usize = 256;
/// The size of a marks file.
pub const FILE_LEN: usize = HEADER_LEN + SLOTS * SLOT_LEN;
const MAGIC: &[u8; 8] = b"NJINFL01";
const ID_MAX: usize = 128;
const VERSION_MAX: usize = SLOT_LEN - 16 - ID_MAX;

const STATE_RUNNING: u32 = 1;
const STATE_CLOSED: u32 = 2;

// Offsets in the header.
const PID_AT: usize = 8;
const STATE_AT: usize = 12;
const TICKS_AT: usize = 16;
const STARTED_AT: usize = 24;

// Offsets in a slot.
const CALLS_AT: usize = 0;
const USED_AT: usize = 4;
const ID_LEN_AT: usize = 8;
const VERSION_LEN_AT: usize = 10;
const ID_AT: usize = 16;
const VERSION_AT: usize = ID_AT + ID_MAX;

/// A plugin version that had calls in flight when its process died.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crashed {
    pub plugin_id: String,
    pub version: String,
    /// How many of its calls were in flight.
    pub calls: u32,
    /// The process that died.
    pub pid: u32,
    /// When that process started (Unix ms).
    pub process_started_ms: i64,
}

/// This process's marks file. See the module docs.
pub struct InFlightMarks {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InFlightMarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightMarks")
            .field("path", &self.shared.path)
            .finish()
    }
}

struct Shared {
    dir: PathBuf,
    path: PathBuf,
    map: NonNull<u8>,
    /// Which slots are leased, by plugin version. Only this process writes slot texts and `used`.
    leases: Mutex<Vec<Option<(String, String, usize)>>>,
}

// SAFETY: the mapping is shared memory read and written only through atomics (counters, state) or
// under `leases` (slot texts); the pointer stays valid until `Shared` is dropped.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn atomic(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % 4 == 0 && at + 4 <= FILE_LEN);
        // SAFETY: `at` is 4-aligned within the page-aligned mapping of FILE_LEN bytes, which lives
        // as long as `self`; every access to these words is atomic.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(at).cast::<u32>()) }
    }

    fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= FILE_LEN);
        // SAFETY: in bounds (checked above); slot texts are written only under `leases`, while
        // the slot is not in use, and never read by this process.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.as_ptr().add(at), bytes.len())
        }
    }

    fn leases(&self) -> MutexGuard<'_, Vec<Option<(String, String, usize)>>> {
        // Whole entries only.
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn calls(&self, slot: usize) -> &AtomicU32 {
        self.atomic(HEADER_LEN + slot * SLOT_LEN + CALLS_AT)
    }

    fn release(&self, slot: usize) {
        let mut leases = self.leases();
        if let Some(Some((_, _, holders))) = leases.get_mut(slot) {
            *holders -= 1;
            if *holders == 0 {
                leases[slot] = None;
                self.atomic(HEADER_LEN + slot * SLOT_LEN + USED_AT)
                    .store(0, Ordering::Relaxed);
            }
        }
    }

    fn close(&self) {
        self.atomic(STATE_AT).store(STATE_CLOSED, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.close();
        // SAFETY: the mapping was made with this length in `open` and nothing refers to it now.
        unsafe {
            let _ = rustix::mm::munmap(self.map.as_ptr().cast(), FILE_LEN);
        }
    }
}

impl InFlightMarks {
    /// Creates this process's marks file in `dir` (created 0700 if missing) and maps it.
    pub fn open(dir: &Path) -> io::Result<InFlightMarks> {
        create_private_dir(dir)?;
        let pid = std::process::id();
        // One file per manager: a process may run several over one data directory (tests do).
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = OPENED.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{pid}.{n}"));
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[PID_AT..PID_AT + 4].copy_from_slice(&pid.to_le_bytes());
        header[STATE_AT..STATE_AT + 4].copy_from_slice(&STATE_RUNNING.to_le_bytes());
        let ticks = start_ticks(pid).unwrap_or(0);
        header[TICKS_AT..TICKS_AT + 8].copy_from_slice(&ticks.to_le_bytes());
        header[STARTED_AT..STARTED_AT + 8]
            .copy_from_slice(&nitejar_store::receipts::now_ms().to_le_bytes());
        let mut contents = vec![0u8; FILE_LEN];
        contents[..HEADER_LEN].copy_from_slice(&header);
        // Written in full (not a sparse `set_len`): every page has its blocks before it is mapped.
        let mut file = private_file(&path)?;
        file.write_all(&contents)?;
        file.sync_data()?;
        let map = map_shared(&file)?;
        Ok(InFlightMarks {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                path,
                map,
                leases: Mutex::new(vec![None; SLOTS]),
            }),
        })
    }

    /// The marks of one plugin version, for its calls. `None` when every slot is taken or the id
    /// or version is too long to record (the plugin runs without marks; said in the log).
    pub fn mark(&self, plugin_id: &str, version: &str) -> Option<InFlight> {
        let shared = &self.shared;
        if plugin_id.len() > ID_MAX || version.len() > VERSION_MAX {
            tracing::warn!(
                plugin.id = %plugin_id,
                "the plugin's id or version is too long for its in-flight marks; a crash in its calls will not be attributed to it"
            );
            return None;
        }
        let mut leases = shared.leases();
        if let Some(slot) = leases
            .iter()
            .position(|l| matches!(l, Some((id, v, _)) if id == plugin_id && v == version))
        {
            if let Some((_, _, holders)) = &mut leases[slot] {
                *holders += 1;
            }
            return Some(InFlight::new(shared, slot));
        }
        let Some(slot) = leases.iter().position(Option::is_none) else {
            tracing::warn!(
                plugin.id = %plugin_id,
                "{SLOTS} plugin versions hold in-flight marks already; a crash in this plugin's calls will not be attributed to it"
            );
            return None;
        };
        let base = HEADER_LEN + slot * SLOT_LEN;
        shared.calls(slot).store(0, Ordering::Relaxed);
        shared.write(base + ID_LEN_AT, &(plugin_id.len() as u16).to_le_bytes());
        shared.write(base + VERSION_LEN_AT, &(version.len() as u16).to_le_bytes());
        shared.write(base + ID_AT, plugin_id.as_bytes());
        shared.write(base + VERSION_AT, version.as_bytes());
        shared.atomic(base + USED_AT).store(1, Ordering::Release);
        leases[slot] = Some((plugin_id.to_string(), version.to_string(), 1));
        Some(InFlight::new(shared, slot))
    }

    /// Marks this process as stopping: calls still in flight from now on are not a crash (a
    /// handler stuck at shutdown is abandoned, not crashed). The file goes when the marks do.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Claims the marks files of processes that died without closing theirs and returns the plugin
    /// versions that had calls in flight. Files of running processes are left alone; unreadable or
    /// foreign files are removed (they cannot name anything).
    pub fn claim_crashed(&self) -> Vec<Crashed> {
        claim_crashed_in(&self.shared.dir, &self.shared.path)
    }
}

/// [`InFlightMarks::claim_crashed`] for `dir`, skipping `own`.
fn claim_crashed_in(dir: &Path, own: &Path) -> Vec<Crashed> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut crashed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let marks_name = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if path == own || name.contains(".claimed-") || !marks_name {
            // Another process's claim in progress, or not ours to read.
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Some(header) = Header::read(&bytes) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if header.alive() {
            continue;
        }
        // Claimed by a rename: of two processes booting at once, one gets the file.
        let claimed = dir.join(format!("{name}.claimed-{me}"));
        if std::fs::rename(&path, &claimed).is_err() {
            continue;
        }
        let bytes = std::fs::read(&claimed).unwrap_or(bytes);
        let _ = std::fs::remove_file(&claimed);
        if header.state != STATE_RUNNING {
            continue;
        }
        crashed.extend(slots_in_flight(&bytes, &header));
    }
    crashed.sort_by(|a, b| (&a.plugin_id, &a.version).cmp(&(&b.plugin_id, &b.version)));
    crashed
}

struct Header {
    pid: u32,
    state: u32,
    ticks: u64,
    started_ms: i64,
}

impl Header {
    fn read(bytes: &[u8]) -> Option<Header> {
        if bytes.len() != FILE_LEN || &bytes[..8] != MAGIC {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        Some(Header {
            pid: u32_at(PID_AT),
            state: u32_at(STATE_AT),
            ticks: u64_at(TICKS_AT),
            started_ms: u64_at(STARTED_AT) as i64,
        })
    }

    /// Whether the process that wrote the file still runs (same pid, same start time).
    fn alive(&self) -> bool {
        match start_ticks(self.pid) {
            Some(ticks) => self.ticks == 0 || ticks == self.ticks,
            None => false,
        }
    }
}

fn slots_in_flight(bytes: &[u8], header: &Header) -> Vec<Crashed> {
    let mut found = Vec::new();
    for slot in 0..SLOTS {
        let base = HEADER_LEN + slot * SLOT_LEN;
        let word = |at: usize| {
            u32::from_le_bytes(bytes[base + at..base + at + 4].try_into().unwrap_or([0; 4]))
        };
        let half = |at: usize| {
            u16::from_le_bytes(bytes[base + at..base + at + 2].try_into().unwrap_or([0; 2]))
                as usize
        };
        let calls = word(CALLS_AT);
        if word(USED_AT) != 1 || calls == 0 {
            continue;
        }
        let (id_len, version_len) = (half(ID_LEN_AT), half(VERSION_LEN_AT));
        if id_len > ID_MAX || version_len > VERSION_MAX {
            continue;
        }
        let text = |at: usize, len: usize| {
            String::from_utf8_lossy(&bytes[base + at..base + at + len]).into_owned()
        };
        found.push(Crashed {
            plugin_id: text(ID_AT, id_len),
            version: text(VERSION_AT, version_len),
            calls,
            pid: header.pid,
            process_started_ms: header.started_ms,
        });
    }
    found
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`),
/// or `None` when no such process runs.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after it are counted
    // from its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn map_shared(file: &File) -> io::Result<NonNull<u8>> {
    use rustix::mm::{mmap, MapFlags, ProtFlags};
    // SAFETY: a fresh shared mapping of a file this process just wrote FILE_LEN bytes to; it is
    // unmapped only when `Shared` drops.
    let ptr = unsafe {
        mmap(
            std::ptr::null_mut(),
            FILE_LEN,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            file,
            0,
        )
    }
    .map_err(io::Error::from)?;
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// The in-flight marks of one plugin version. Cheap to clone; the slot is freed when the last
/// clone goes.
#[derive(Clone)]
pub struct InFlight {
    lease: Arc<Lease>,
}

struct Lease {
    shared: Arc<Shared>,
    slot: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.release(self.slot);
    }
}

impl InFlight {
    fn new(shared: &Arc<Shared>, slot: usize) -> InFlight {
        InFlight {
            lease: Arc::new(Lease {
                shared: shared.clone(),
                slot,
            }),
        }
    }

    fn calls(&self) -> &AtomicU32 {
        self.lease.shared.calls(self.lease.slot)
    }

    /// Counts a call into the plugin until the guard drops.
    pub fn enter(&self) -> Entered<'_> {
        self.calls().fetch_add(1, Ordering::Relaxed);
        Entered { marks: self }
    }

    /// Counts the current call out while the host serves it (the plugin's code is not running),
    /// and back in when the guard drops.
    pub fn step_out(&self) -> SteppedOut<'_> {
        self.calls().fetch_sub(1, Ordering::Relaxed);
        SteppedOut { marks: self }
    }

    /// The calls in flight now (for tests and diagnostics).
    pub fn in_flight(&self) -> u32 {
        self.calls().load(Ordering::Relaxed)
    }
}

/// A call counted in; see [`InFlight::enter`].
pub struct Entered<'a> {
    marks: &'a InFlight,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.marks.calls().fetch_sub(1, Ordering::Relaxed);
    }
}

/// A call counted out while the host works; see [`InFlight::step_out`].
pub struct SteppedOut<'a> {
    marks: &'a InFlight,
}

impl Drop for SteppedOut<'_> {
    fn drop(&mut self) {
        self.marks.calls().fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marks file as a process that died mid-call leaves it: `pid` gone, state running.
    fn dead_file(dir: &Path, pid: u32, marks: &[(&str, &str, u32)]) {
        let mut bytes = vec![0u8; FILE_LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[PID_AT..PID_AT + 4].copy_from_slice(&pid.to_le_bytes());
        bytes[STATE_AT..STATE_AT + 4].copy_from_slice(&STATE_RUNNING.to_le_bytes());
        bytes[TICKS_AT..TICKS_AT + 8].copy_from_slice(&1u64.to_le_bytes());
        bytes[STARTED_AT..STARTED_AT + 8].copy_from_slice(&1_700_000_000_000i64.to_le_bytes());
        for (slot, (id, version, calls)) in marks.iter().enumerate() {
            let base = HEADER_LEN + slot * SLOT_LEN;
            bytes[base..base + 4].copy_from_slice(&calls.to_le_bytes());
            bytes[base + USED_AT..base + USED_AT + 4].copy_from_slice(&1u32.to_le_bytes());
            bytes[base + ID_LEN_AT..base + ID_LEN_AT + 2]
                .copy_from_slice(&(id.len() as u16).to_le_bytes());
            bytes[base + VERSION_LEN_AT..base + VERSION_LEN_AT + 2]
                .copy_from_slice(&(version.len() as u16).to_le_bytes());
            bytes[base + ID_AT..base + ID_AT + id.len()].copy_from_slice(id.as_bytes());
            bytes[base + VERSION_AT..base + VERSION_AT + version.len()]
                .copy_from_slice(version.as_bytes());
        }
        std::fs::write(dir.join(pid.to_string()), bytes).unwrap();
    }

    /// A pid that no process has: one that just exited.
    fn gone_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn calls_are_counted_in_and_out_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let marks = InFlightMarks::open(dir.path()).unwrap();
        let a = marks.mark("com.acme.a", "1.0.0").unwrap();
        let file = marks.shared.path.clone();
        let read_calls = || {
            let bytes = std::fs::read(&file).unwrap();
            u32::from_le_bytes(bytes[HEADER_LEN..HEADER_LEN + 4].try_into().unwrap())
        };
        assert_eq!(read_calls(), 0);
        {
            let _in = a.enter();
            let _again = a.enter();
            // What another process reads from the file, while the calls run.
            assert_eq!(read_calls(), 2);
            {
                let _out = a.step_out();
                assert_eq!(read_calls(), 1);
            }
            assert_eq!(read_calls(), 2);
        }
        assert_eq!(read_calls(), 0);
        assert_eq!(a.in_flight(), 0);
    }

    #[test]
    fn one_slot_per_version_freed_with_its_last_holder() {
        let dir = tempfile::tempdir().unwrap();
        let marks = InFlightMarks::open(dir.path()).unwrap();
        let a1 = marks.mark("com.acme.a", "1.0.0").unwrap();
        let a1_again = marks.mark("com.acme.a", "1.0.0").unwrap();
        let a2 = marks.mark("com.acme.a", "2.0.0").unwrap();
        assert_eq!(a1.lease.slot, a1_again.lease.slot);
        assert_ne!(a1.lease.slot, a2.lease.slot);
        let slot = a1.lease.slot;
        drop(a1);
        assert!(marks.shared.leases()[slot].is_some(), "still held");
        drop(a1_again);
        assert!(marks.shared.leases()[slot].is_none());
        assert_eq!(marks.mark("com.acme.b", "1.0.0").unwrap().lease.slot, slot);
        assert!(marks.mark(&"x".repeat(ID_MAX + 1), "1.0.0").is_none());
    }

    #[test]
    fn slots_run_out_without_failing_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let marks = InFlightMarks::open(dir.path()).unwrap();
        let held: Vec<_> = (0..SLOTS)
            .map(|i| marks.mark(&format!("p{i}"), "1.0.0").unwrap())
            .collect();
        assert!(marks.mark("one.more", "1.0.0").is_none());
        drop(held);
        assert!(marks.mark("one.more", "1.0.0").is_some());
    }

    #[test]
    fn a_dead_process_with_calls_in_flight_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let pid = gone_pid();
        dead_file(
            dir.path(),
            pid,
            &[("com.acme.a", "1.0.0", 1), ("com.acme.b", "2.0.0", 0)],
        );
        let marks = InFlightMarks::open(dir.path()).unwrap();
        let crashed = marks.claim_crashed();
        assert_eq!(
            crashed,
            vec![Crashed {
                plugin_id: "com.acme.a".into(),
                version: "1.0.0".into(),
                calls: 1,
                pid,
                process_started_ms: 1_700_000_000_000,
            }]
        );
        assert!(!dir.path().join(pid.to_string()).exists());
        assert!(marks.claim_crashed().is_empty(), "claimed once");
    }

    #[test]
    fn live_closed_and_foreign_files_are_not_crashes() {
        let dir = tempfile::tempdir().unwrap();
        // A live process: this one, through another marks file of our own making.
        let live = InFlightMarks::open(&dir.path().join("live")).unwrap();
        let mark = live.mark("com.acme.live", "1.0.0").unwrap();
        let _in = mark.enter();
        let live_file = live.shared.path.clone();
        std::fs::copy(&live_file, dir.path().join(std::process::id().to_string())).unwrap();
        // A process that stopped cleanly but left a stuck call counted.
        let stopped = gone_pid();
        dead_file(dir.path(), stopped, &[("com.acme.stuck", "1.0.0", 1)]);
        let path = dir.path().join(stopped.to_string());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[STATE_AT..STATE_AT + 4].copy_from_slice(&STATE_CLOSED.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        // Something that is not a marks file.
        std::fs::write(dir.path().join("12345"), b"not marks").unwrap();

        let other = tempfile::tempdir().unwrap();
        let marks = InFlightMarks::open(other.path()).unwrap();
        assert!(claim_crashed_in(dir.path(), &marks.shared.path).is_empty());
        assert!(
            dir.path().join(std::process::id().to_string()).exists(),
            "a live process's file stays"
        );
        assert!(!path.exists(), "a closed file is cleaned up");
        assert!(!dir.path().join("12345").exists());
    }

    #[test]
    fn a_clean_close_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let marks = InFlightMarks::open(dir.path()).unwrap();
        let file = marks.shared.path.clone();
        assert!(file.exists());
        let a = marks.mark("com.acme.a", "1.0.0").unwrap();
        let _stuck = a.enter();
        marks.close();
        assert!(!file.exists());
    }
}
