//! Paths inside a skill: checked, then opened without following links.
//!
//! A path given by a plugin, an operator or an import document is relative, `/`-separated, without
//! `.` or `..` components, at most 256 characters ([`check_relative_path`]). Opening walks it one
//! component at a time below the canonical root and refuses any symbolic link on the way
//! ([`open_under`]): checking only the final canonical path would still read through a link that
//! happens to point back inside the root, and a link is never part of a reviewed package or skill.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::index::SkillFile;
use super::{SkillError, SkillLimits, SKILL_FILE};

/// The longest relative path, in characters.
pub const MAX_PATH_CHARS: usize = 256;

/// How deep supporting files may be nested below a skill directory.
const MAX_DEPTH: usize = 8;

fn refused(path: &str, reason: impl Into<String>) -> SkillError {
    SkillError::UnsafePath {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Checks a relative path inside a skill and returns it normalised (`/`-separated).
///
/// ```
/// use nitejar_agent::skills::check_relative_path;
/// assert_eq!(check_relative_path("refs/api.md").unwrap(), "refs/api.md");
/// assert!(check_relative_path("../secrets").is_err());
/// assert!(check_relative_path("/etc/passwd").is_err());
/// ```
pub fn check_relative_path(path: &str) -> Result<String, SkillError> {
    if path.is_empty() {
        return Err(refused(path, "the path is empty"));
    }
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(refused(
            path,
            format!("it is longer than {MAX_PATH_CHARS} characters"),
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(refused(path, "it contains a control character"));
    }
    if path.contains('\\') {
        return Err(refused(path, "use `/` to separate directories, not `\\`"));
    }
    if path.starts_with('/') || Path::new(path).is_absolute() {
        return Err(refused(
            path,
            "it is absolute; give a path relative to the skill directory",
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" => {
                return Err(refused(
                    path,
                    "it has an empty component (`//` or a trailing `/`)",
                ))
            }
            "." => return Err(refused(path, "it has a `.` component")),
            ".." => return Err(refused(path, "it contains `..`")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The canonical path of `relative` below `root`, refusing `..`, absolute paths and any symbolic
/// link between the root and the file (the root itself may be a link: it is the operator's setting).
/// The path must exist.
pub fn open_under(root: &Path, relative: &str) -> Result<PathBuf, SkillError> {
    let relative = check_relative_path(relative)?;
    let base = root.canonicalize().map_err(|e| SkillError::Io {
        path: root.to_path_buf(),
        message: format!("cannot open the directory: {e}"),
    })?;
    let mut current = base.clone();
    for part in relative.split('/') {
        current.push(part);
        let meta = std::fs::symlink_metadata(&current).map_err(|e| SkillError::Io {
            path: current.clone(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".into()
            } else {
                e.to_string()
            },
        })?;
        if meta.file_type().is_symlink() {
            return Err(refused(&relative, "it goes through a symbolic link"));
        }
    }
    // Belt and braces: with no link on the way the canonical path is `current` itself.
    let canonical = current.canonicalize().map_err(|e| SkillError::Io {
        path: current.clone(),
        message: e.to_string(),
    })?;
    if !canonical.starts_with(&base) {
        return Err(refused(&relative, "it leaves the skill directory"));
    }
    Ok(canonical)
}

/// Reads a regular file below `root` (see [`open_under`]), refusing one over the per-file limit.
pub(crate) fn read_under(
    root: &Path,
    relative: &str,
    limits: &SkillLimits,
) -> Result<Vec<u8>, SkillError> {
    let path = open_under(root, relative)?;
    read_limited(&path, relative, limits.max_file_bytes)
}

/// Reads a regular file (not through a link) of at most `limit` bytes.
pub(crate) fn read_limited(path: &Path, label: &str, limit: u64) -> Result<Vec<u8>, SkillError> {
    let io = |e: std::io::Error| SkillError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if meta.file_type().is_symlink() {
        return Err(refused(label, "it is a symbolic link"));
    }
    if !meta.is_file() {
        return Err(refused(label, "it is not a regular file"));
    }
    if meta.len() > limit {
        return Err(SkillError::TooLarge {
            what: format!("file `{label}`"),
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the size check and the read: read one byte past the limit at most.
    std::fs::File::open(path)
        .map_err(io)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(SkillError::TooLarge {
            what: format!("file `{label}`"),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// The supporting files of the skill directory `dir` (every regular file below it but its top-level
/// `SKILL.md` and hidden entries), sorted by path. A symbolic link, a special file, a file over the
/// per-file limit or more than `max_files` files refuse the skill.
pub(crate) fn list_supporting_files(
    dir: &Path,
    limits: &SkillLimits,
) -> Result<Vec<SkillFile>, SkillError> {
    let mut files = Vec::new();
    walk(dir, "", 0, limits, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    limits: &SkillLimits,
    out: &mut Vec<SkillFile>,
) -> Result<(), SkillError> {
    let io = |path: &Path, e: std::io::Error| SkillError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(refused(
                &format!("{prefix}{}", name.to_string_lossy()),
                "the file name is not UTF-8",
            ));
        };
        if name.starts_with('.') || (depth == 0 && name == SKILL_FILE) {
            continue;
        }
        let relative = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(entry.path()).map_err(|e| io(&entry.path(), e))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(refused(&relative, "it is a symbolic link"));
        }
        if kind.is_dir() {
            if depth + 1 >= MAX_DEPTH {
                return Err(refused(
                    &relative,
                    format!("supporting files are nested more than {MAX_DEPTH} levels deep"),
                ));
            }
            walk(
                &entry.path(),
                &format!("{relative}/"),
                depth + 1,
                limits,
                out,
            )?;
            continue;
        }
        if !kind.is_file() {
            return Err(refused(&relative, "it is not a regular file"));
        }
        check_relative_path(&relative)?;
        if meta.len() > limits.max_file_bytes {
            return Err(SkillError::TooLarge {
                what: format!("file `{relative}`"),
                size: meta.len(),
                limit: limits.max_file_bytes,
            });
        }
        out.push(SkillFile {
            path: relative,
            size_bytes: meta.len(),
        });
        if out.len() > limits.max_files {
            return Err(SkillError::TooManyFiles {
                what: "the skill".into(),
                limit: limits.max_files,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        for bad in [
            "", "/abs", "../x", "a/../b", "a/..", "./a", "a//b", "a/", "a\\b", "a\nb",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_relative_path(&"a".repeat(257)).is_err());
        assert_eq!(check_relative_path("a/b.c/d..e").unwrap(), "a/b.c/d..e");
    }
}
