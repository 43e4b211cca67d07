//! One server per data directory: a lock held for the life of the process, and the id this server
//! claims runs as.
//!
//! The lock (`flock` on `<data dir>/server.lock`) ends with the process, however it ends (`kill -9`
//! included), so it never needs cleaning up. It is what lets a server starting on SQLite take back
//! every run lease at once: no other server can be running them. The id (`<data dir>/server-id`,
//! made once) stays the same across restarts, so a restarted server on Postgres takes back its own
//! runs at once instead of waiting for their leases to expire.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context as _};
use rustix::fs::{flock, FlockOperation};

/// Held while the server runs.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the data directory's lock, or says which process holds it.
pub fn lock(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = data_dir.join("server.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("could not open {}", path.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        bail!(
            "another nitejar server is running on the data directory {} ({}); stop it first, or \
             give this one its own NITEJAR_DATA_DIR",
            data_dir.display(),
            if holder.is_empty() {
                "its pid is not recorded".to_owned()
            } else {
                format!("pid {holder}")
            }
        );
    }
    // The holder's pid, for the message above (advisory: the lock is what counts).
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(DataDirLock { _file: file })
}

/// The id of the server of this data directory, made on first start.
pub fn server_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    }
    let id = nitejar_core::store::new_id();
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_data_directory_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = lock(dir.path()).expect("first lock");
        let refused = lock(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("another nitejar server")
                && refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(held);
        assert!(lock(dir.path()).is_ok(), "free again once released");
    }

    #[test]
    fn the_server_id_is_made_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = server_id(dir.path()).expect("id");
        assert_eq!(server_id(dir.path()).expect("id again"), first);
        assert_eq!(first.len(), 36);
    }
}
