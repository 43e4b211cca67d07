//! Package file trees: the rules every path and link of a package obeys, the budget of bytes and
//! files, and copying a directory (a local path, a git checkout) into staging under those rules.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use super::digest::{is_executable, sha256_hex, FileKind, HashingReader, ListedFile, Listing};
use super::{InstallError, Limits};

/// Checks a path inside a package and returns it `/`-separated without `.` components. Absolute
/// paths, `..`, empty names and control characters are refused with the reason.
pub(crate) fn package_path(raw: &Path) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => {
                let name = name
                    .to_str()
                    .ok_or_else(|| "has a name that is not UTF-8".to_string())?;
                if name.chars().any(|c| c.is_control() || c == '\\') {
                    return Err("has a control character or a backslash in its name".into());
                }
                parts.push(name);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("leaves the package through `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path".into()),
        }
    }
    if parts.is_empty() {
        return Err("has an empty path".into());
    }
    let joined = parts.join("/");
    if joined.len() > 1024 {
        return Err("has a path longer than 1024 bytes".into());
    }
    Ok(joined)
}

/// Checks the target of a symbolic link. Only relative targets that go *down* from the link's
/// directory are allowed (no `..`, not absolute): a chain of such links can never leave the tree,
/// however the links are combined, which a check of each target on its own could not promise once
/// `..` is allowed.
pub(crate) fn link_target(target: &Path) -> Result<(), String> {
    if target.as_os_str().is_empty() {
        return Err("is a link with an empty target".into());
    }
    for component in target.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "is a link to `{}`, which goes up through `..`; links may only point below their own directory",
                    target.display()
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "is a link to the absolute path `{}`, outside the package",
                    target.display()
                ))
            }
        }
    }
    Ok(())
}

/// Counts files and bytes against the limits.
pub(crate) struct Budget<'a> {
    limits: &'a Limits,
    files: u64,
    bytes: u64,
}

impl<'a> Budget<'a> {
    pub(crate) fn new(limits: &'a Limits) -> Self {
        Budget {
            limits,
            files: 0,
            bytes: 0,
        }
    }

    /// One more file (or directory, or link) of `size` bytes.
    pub(crate) fn take(&mut self, size: u64) -> Result<(), InstallError> {
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(InstallError::TooManyFiles {
                limit: self.limits.max_files,
            });
        }
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_bytes {
            return Err(InstallError::TooLarge {
                what: "its files",
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }
}

/// Where a file of the package goes: `root/<path>`, with its parent directories created, and a
/// check that the parent really is inside `root` (links are already restricted; this is the
/// second lock on the door).
pub(crate) fn prepare_target(
    root: &Path,
    canonical_root: &Path,
    path: &str,
) -> Result<PathBuf, InstallError> {
    let target = root.join(path);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(InstallError::io("create", parent))?;
        let real = parent
            .canonicalize()
            .map_err(InstallError::io("inspect", parent))?;
        if !real.starts_with(canonical_root) {
            return Err(InstallError::Refused {
                entry: path.to_string(),
                reason: "would be written outside the package through a link".into(),
            });
        }
    }
    // A later entry replaces an earlier one (as tar does); never write *through* an existing link.
    if let Ok(meta) = std::fs::symlink_metadata(&target) {
        if meta.is_dir() {
            return Err(InstallError::Refused {
                entry: path.to_string(),
                reason: "is a file where the package already has a directory".into(),
            });
        }
        std::fs::remove_file(&target).map_err(InstallError::io("replace", &target))?;
    }
    Ok(target)
}

/// Creates the directory `root/<path>` and checks it really is inside `root`.
pub(crate) fn make_dir(root: &Path, canonical_root: &Path, path: &str) -> Result<(), InstallError> {
    let target = root.join(path);
    std::fs::create_dir_all(&target).map_err(InstallError::io("create", &target))?;
    let real = target
        .canonicalize()
        .map_err(InstallError::io("inspect", &target))?;
    if !real.starts_with(canonical_root) {
        return Err(InstallError::Refused {
            entry: path.to_string(),
            reason: "would be created outside the package through a link".into(),
        });
    }
    Ok(())
}

/// Writes one regular file from `source`, hashing it on the way. At most `size` bytes are written
/// (the declared size); a source with more is refused.
pub(crate) fn write_file(
    target: &Path,
    source: &mut dyn Read,
    executable: bool,
) -> Result<ListedFile, InstallError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if executable { 0o755 } else { 0o644 });
    }
    let mut out = options
        .open(target)
        .map_err(InstallError::io("create", target))?;
    let mut reader = HashingReader::new(source);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(InstallError::read(e)),
        };
        out.write_all(&buf[..n])
            .map_err(InstallError::io("write", target))?;
    }
    let (size, sha256) = reader.finish();
    Ok(ListedFile {
        kind: if executable {
            FileKind::Executable
        } else {
            FileKind::File
        },
        size,
        sha256,
    })
}

/// Makes a symbolic link (its target already checked with [`link_target`]).
pub(crate) fn write_link(target: &Path, link_to: &Path) -> Result<ListedFile, InstallError> {
    #[cfg(unix)]
    std::os::unix::fs::symlink(link_to, target).map_err(InstallError::io("link", target))?;
    #[cfg(not(unix))]
    return Err(InstallError::Refused {
        entry: target.display().to_string(),
        reason: "is a link, which this platform does not install".into(),
    });
    let text = link_to.to_string_lossy();
    Ok(ListedFile {
        kind: FileKind::Symlink,
        size: text.len() as u64,
        sha256: sha256_hex(text.as_bytes()),
    })
}

/// Directory names a copy of a local directory or a git checkout leaves out, at any depth:
/// version control data and build output are not part of a package.
pub const SKIPPED_DIRS: [&str; 3] = [".git", "target", "node_modules"];

/// Copies the tree at `source` into the empty directory `dest` under the package rules (no links
/// that go up or out, no devices, sockets or FIFOs, the limits) and lists what was copied.
pub fn copy_tree(source: &Path, dest: &Path, limits: &Limits) -> Result<Listing, InstallError> {
    let canonical_dest = dest
        .canonicalize()
        .map_err(InstallError::io("inspect", dest))?;
    let mut listing = Listing::new();
    let mut budget = Budget::new(limits);
    copy_dir(source, "", dest, &canonical_dest, &mut budget, &mut listing)?;
    Ok(listing)
}

fn copy_dir(
    dir: &Path,
    prefix: &str,
    dest: &Path,
    canonical_dest: &Path,
    budget: &mut Budget<'_>,
    listing: &mut Listing,
) -> Result<(), InstallError> {
    let entries = std::fs::read_dir(dir).map_err(InstallError::io("read", dir))?;
    for entry in entries {
        let entry = entry.map_err(InstallError::io("read", dir))?;
        let name = entry.file_name();
        if SKIPPED_DIRS.iter().any(|s| name == *s) {
            continue;
        }
        let raw = Path::new(prefix).join(&name);
        let path = package_path(&raw).map_err(|reason| InstallError::Refused {
            entry: raw.display().to_string(),
            reason,
        })?;
        let kind = entry
            .file_type()
            .map_err(InstallError::io("inspect", entry.path()))?;
        if kind.is_dir() {
            budget.take(0)?;
            copy_dir(&entry.path(), &path, dest, canonical_dest, budget, listing)?;
        } else if kind.is_symlink() {
            let link_to =
                std::fs::read_link(entry.path()).map_err(InstallError::io("read", entry.path()))?;
            link_target(&link_to).map_err(|reason| InstallError::Refused {
                entry: path.clone(),
                reason,
            })?;
            budget.take(0)?;
            let target = prepare_target(dest, canonical_dest, &path)?;
            listing.insert(path, write_link(&target, &link_to)?);
        } else if kind.is_file() {
            let mut file =
                File::open(entry.path()).map_err(InstallError::io("open", entry.path()))?;
            let meta = file
                .metadata()
                .map_err(InstallError::io("inspect", entry.path()))?;
            budget.take(meta.len())?;
            let target = prepare_target(dest, canonical_dest, &path)?;
            let listed = write_file(&target, &mut file, is_executable(&meta))?;
            listing.insert(path, listed);
        } else {
            return Err(InstallError::Refused {
                entry: path,
                reason:
                    "is a device, socket or FIFO; a package holds only files, directories and links"
                        .into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(package_path(Path::new("./a/./b")).unwrap(), "a/b");
        assert!(package_path(Path::new("/etc/passwd"))
            .unwrap_err()
            .contains("absolute"));
        assert!(package_path(Path::new("a/../../b"))
            .unwrap_err()
            .contains(".."));
        assert!(package_path(Path::new(".")).is_err());
        assert!(package_path(Path::new("a\nb")).is_err());
    }

    #[test]
    fn links_only_go_down() {
        assert!(link_target(Path::new("lib/x.so")).is_ok());
        assert!(link_target(Path::new("./x")).is_ok());
        assert!(link_target(Path::new("../x")).is_err());
        assert!(link_target(Path::new("a/../../x")).is_err());
        assert!(link_target(Path::new("/etc/passwd")).is_err());
        assert!(link_target(Path::new("")).is_err());
    }
}
