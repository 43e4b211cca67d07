//! The read-only roots a process needs to load a plugin library: where its own shared libraries
//! came from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The dynamic loader's cache of library locations, read by `dlopen` for a library it has not
/// loaded yet.
const LOADER_CACHE: &str = "/etc/ld.so.cache";

/// The directories holding the shared libraries this process has mapped (the dynamic loader, libc,
/// libgcc_s, libm, ...: what `ldd` shows for the binary, found in `/proc/self/maps` instead of by
/// running `ldd`), plus `/etc/ld.so.cache`.
///
/// That is the minimal set for loading a plugin library built against the same system: its
/// dependencies are either already loaded (found by name, no file access) or sit beside them
/// (Debian keeps every system library in `/usr/lib/<triple>`). A plugin that needs a library from
/// elsewhere fails to load until that directory is added to
/// [`SandboxPolicy::read_only`](super::SandboxPolicy::read_only). The executable's own directory is
/// not included: it is already mapped and nothing needs to read it again.
pub fn runtime_library_roots() -> std::io::Result<Vec<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let exe = std::fs::read_link("/proc/self/exe").ok();
    let mut roots = library_dirs(&maps, exe.as_deref());
    if Path::new(LOADER_CACHE).is_file() {
        roots.push(PathBuf::from(LOADER_CACHE));
    }
    Ok(roots)
}

/// The parent directories of the shared objects mapped in `maps` (the format of
/// `/proc/<pid>/maps`) other than `exe`, each once, sorted.
pub(super) fn library_dirs(maps: &str, exe: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    for line in maps.lines() {
        // address perms offset dev inode [path]; the path is the rest of the line and may hold
        // spaces, so split off the five fields before it.
        let mut fields = line.splitn(6, ' ');
        let (Some(_), Some(_), Some(_), Some(_), Some(inode), Some(rest)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let path = rest.trim_start();
        if inode == "0" || !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let path = Path::new(path);
        // Shared objects only (`libc.so.6`, `ld-linux-x86-64.so.2`): not the executable, nor a
        // data file the process happens to map (a locale archive, a database).
        let shared_object = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".so") || n.contains(".so."));
        if Some(path) == exe || !shared_object {
            continue;
        }
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    dirs.into_iter().collect()
}
