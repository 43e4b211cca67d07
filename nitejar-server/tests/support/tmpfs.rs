//! A filesystem of a test's own, to fill up: a tmpfs mounted over a data directory in a mount
//! namespace (`unshare`, which works unprivileged too), kept by a holder process for as long as the
//! test needs it, with servers started inside it (`nsenter`).
//!
//! The test writes into the namespace through `/proc/<holder>/root/...`. It must not open a SQLite
//! database that way: SQLite resolves symbolic links in a database's path, and `/proc/<pid>/root` is
//! one, so it would open (and create) the file outside the namespace. [`TmpfsNamespace::copy_out`]
//! copies files out instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DataDir, Server};

/// A mount namespace in which `data`'s directory is a tmpfs of a fixed size.
pub struct TmpfsNamespace {
    holder: Child,
}

impl TmpfsNamespace {
    /// Mounts a `size_mib` tmpfs over `data`'s directory in a new namespace.
    pub fn new(data: &DataDir, size_mib: u32) -> TmpfsNamespace {
        let ready = data.path.with_extension("mounted");
        let holder = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={size_mib}m tmpfs \"$0\" && touch \"$1\" && exec sleep 100000"
            ))
            .arg(&data.path)
            .arg(&ready)
            .stdout(Stdio::null())
            .spawn()
            .expect("run unshare (util-linux) to make a mount namespace");
        let ns = TmpfsNamespace { holder };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(
                Instant::now() < deadline,
                "the tmpfs namespace did not come up (unshare --user --mount must be allowed)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ns
    }

    /// `path` as the namespace sees it.
    pub fn path(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(relative)
    }

    /// Starts `nitejar serve` inside the namespace (its data directory on the tmpfs).
    pub fn start_server(&self, data: &DataDir, env: &[(&str, String)]) -> Server {
        let holder = self.holder.id();
        let command = move || {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--target={holder}"))
                .args(["--user", "--mount", "--preserve-credentials", "--"])
                .arg(env!("CARGO_BIN_EXE_nitejar"))
                .arg("serve");
            cmd
        };
        Server::start_command(command, data, env)
    }

    /// Copies the files of `from` (a directory in the namespace) whose names start with `prefix`
    /// into `to`.
    pub fn copy_out(&self, from: &Path, prefix: &str, to: &Path) {
        for entry in std::fs::read_dir(self.path(from))
            .expect("read the directory")
            .flatten()
        {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(prefix) {
                std::fs::copy(entry.path(), to.join(&name)).expect("copy out");
            }
        }
    }
}

impl Drop for TmpfsNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
