//! Paths a manifest names: files inside the package (`entry`, `icon`, skills) and the paths of the
//! filesystem permissions.
//!
//! A package is unpacked into an immutable version directory, and everything it names must stay in
//! that directory: a manifest that could point the loader at `../../other-plugin/lib.so` or `/usr/lib`
//! would let one package load another's code. Paths are therefore checked as text (no absolute path,
//! no `..` climbing above the root) and, when the package is on disk, once more after symbolic links
//! are resolved.

use std::io;
use std::path::{Path, PathBuf};

use super::shown;

/// The normalised components of a package-relative path (`./lib/../lib/x.so` → `lib`, `x.so`), or
/// what is wrong with it, as a sentence fragment that follows the JSON path.
pub(super) fn package_relative(path: &str) -> Result<Vec<&str>, String> {
    common_problems(path, "is empty; write a path relative to the package root")?;
    if path.starts_with('/') || has_drive_letter(path) {
        return Err(format!(
            "{} is absolute; write it relative to the package root, e.g. `lib/libplugin.so`",
            shown(path)
        ));
    }
    let mut components: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if components.pop().is_none() {
                    return Err(format!(
                        "{} leaves the package through `..`; it must name something inside the package",
                        shown(path)
                    ));
                }
            }
            other => components.push(other),
        }
    }
    Ok(components)
}

/// A path of the `filesystemRead` / `filesystemWrite` permissions: absolute, or relative to the
/// package root without leaving it.
pub(super) fn permission_path(path: &str) -> Result<(), String> {
    common_problems(
        path,
        "is empty; write an absolute path or one relative to the package root",
    )?;
    if path.starts_with('/') {
        if path.split('/').any(|part| part == "..") {
            return Err(format!(
                "{} contains `..`; write the absolute path it stands for, so the operator sees what is granted",
                shown(path)
            ));
        }
        return Ok(());
    }
    if has_drive_letter(path) {
        return Err(format!(
            "{} is a Windows path; write an absolute path starting with `/` or a path relative to the package root",
            shown(path)
        ));
    }
    package_relative(path).map(|_| ())
}

fn common_problems(path: &str, if_empty: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err(if_empty.to_string());
    }
    if path.contains('\0') {
        return Err("contains a NUL character".to_string());
    }
    if path.contains('\\') {
        return Err(format!(
            "{} uses `\\`; separate path parts with `/`",
            shown(path)
        ));
    }
    if path == "~" || path.starts_with("~/") {
        return Err(format!(
            "{} starts with `~`, which is not expanded; write the absolute path",
            shown(path)
        ));
    }
    Ok(())
}

fn has_drive_letter(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Checks that `components` (from [`package_relative`]) name a file inside `package_dir`, following
/// symbolic links. `what` names the thing for the message (`the entry library`).
pub(super) fn file_in_package(
    package_dir: &Path,
    components: &[&str],
    written: &str,
    what: &str,
) -> Result<PathBuf, String> {
    if components.is_empty() {
        return Err(format!(
            "{} names the package root; it must name {what}",
            shown(written)
        ));
    }
    let path: PathBuf = components
        .iter()
        .fold(package_dir.to_path_buf(), |p, c| p.join(c));
    let resolved = match path.canonicalize() {
        Ok(resolved) => resolved,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "{} does not exist in the package; ship {what} at that path or correct it",
                shown(written)
            ))
        }
        Err(e) => return Err(format!("{} cannot be read: {e}", shown(written))),
    };
    let root = package_dir
        .canonicalize()
        .map_err(|e| format!("the package directory cannot be read: {e}"))?;
    if !resolved.starts_with(&root) {
        return Err(format!(
            "{} resolves outside the package through a symbolic link; ship the file itself",
            shown(written)
        ));
    }
    if !resolved.is_file() {
        return Err(format!(
            "{} is not a file; it must name {what}",
            shown(written)
        ));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_relative_paths_stay_inside() {
        assert_eq!(package_relative("lib/x.so").unwrap(), vec!["lib", "x.so"]);
        assert_eq!(
            package_relative("./lib/../lib/x.so").unwrap(),
            vec!["lib", "x.so"]
        );
        assert_eq!(package_relative(".").unwrap(), Vec::<&str>::new());
        assert!(package_relative("../x.so")
            .unwrap_err()
            .contains("leaves the package"));
        assert!(package_relative("lib/../../x.so")
            .unwrap_err()
            .contains("leaves the package"));
        assert!(package_relative("/usr/lib/x.so")
            .unwrap_err()
            .contains("is absolute"));
        assert!(package_relative("C:/x.dll")
            .unwrap_err()
            .contains("is absolute"));
        assert!(package_relative("lib\\x.dll").unwrap_err().contains("`\\`"));
        assert!(package_relative("").unwrap_err().contains("is empty"));
        assert!(package_relative("~/x.so").unwrap_err().contains("`~`"));
    }

    #[test]
    fn permission_paths_are_absolute_or_package_relative() {
        assert!(permission_path("/var/lib/nitejar").is_ok());
        assert!(permission_path("data/cache").is_ok());
        assert!(permission_path("/var/../etc")
            .unwrap_err()
            .contains("contains `..`"));
        assert!(permission_path("../data")
            .unwrap_err()
            .contains("leaves the package"));
        assert!(permission_path("C:/data")
            .unwrap_err()
            .contains("Windows path"));
    }
}
