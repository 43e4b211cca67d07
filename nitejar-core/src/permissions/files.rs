//! Resolving a plugin's file path against its declared paths and data directory.

use std::path::{Component, Path, PathBuf};

use nitejar_sdk::HostError;

use super::Grant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
}

impl Access {
    /// The prefix of this access's permission strings.
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Access::Read => "fs.read",
            Access::Write => "fs.write",
        }
    }
}

pub(super) struct Resolved {
    /// Where to read or write (canonical directory, file name appended).
    pub(super) path: PathBuf,
    /// The acknowledgement string of the declared entry that allows it; `None` for the plugin's own
    /// data directory, which needs no declaration.
    pub(super) declared_entry: Option<String>,
}

pub(super) enum Refusal {
    /// Not allowed: a receipt is written.
    Denied { reason: String },
    /// Allowed, but the file system said no (missing file, I/O error).
    Failed(HostError),
}

fn failed(what: &str, path: &Path, e: std::io::Error) -> Refusal {
    Refusal::Failed(HostError::Failed(format!("{what} {}: {e}", path.display())))
}

/// Resolves `request` for `access`; see the module docs of [`super`] for the rules.
pub(super) fn resolve(
    grant: &Grant,
    data_dir: &Path,
    request: &str,
    access: Access,
) -> Result<Resolved, Refusal> {
    let asked = Path::new(request);
    if request.is_empty() {
        return Err(Refusal::Denied {
            reason: "an empty path".into(),
        });
    }
    if asked
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(Refusal::Denied {
            reason: "`..` is not allowed in host file paths".into(),
        });
    }
    let declared = match access {
        Access::Read => &grant.permissions().filesystem_read,
        Access::Write => &grant.permissions().filesystem_write,
    };
    let package = grant.package_dir();
    let roots: Vec<(PathBuf, Option<String>)> = declared
        .iter()
        .map(|entry| {
            let p = Path::new(entry);
            let root = if p.is_absolute() {
                p.to_path_buf()
            } else {
                package.join(p)
            };
            (root, Some(format!("{}:{entry}", access.prefix())))
        })
        .chain(std::iter::once((data_dir.to_path_buf(), None)))
        .collect();
    let candidate = if asked.is_absolute() {
        asked.to_path_buf()
    } else if declared
        .iter()
        .any(|e| !Path::new(e).is_absolute() && asked.starts_with(e))
    {
        package.join(asked)
    } else {
        data_dir.join(asked)
    };
    let Some((root, entry)) = roots
        .iter()
        .filter(|(root, _)| candidate.starts_with(root))
        .max_by_key(|(root, _)| root.components().count())
    else {
        let field = match access {
            Access::Read => "permissions.filesystemRead",
            Access::Write => "permissions.filesystemWrite",
        };
        return Err(Refusal::Denied {
            reason: format!(
                "{} is outside the plugin's data directory and every path in {field}",
                candidate.display()
            ),
        });
    };
    if entry.is_none() {
        std::fs::create_dir_all(root).map_err(|e| failed("create", root, e))?;
    }
    let canonical_root = root
        .canonicalize()
        .map_err(|e| failed("resolve", root, e))?;
    let escape = |target: &Path| Refusal::Denied {
        reason: format!(
            "{} resolves to {}, outside {}",
            candidate.display(),
            target.display(),
            canonical_root.display()
        ),
    };
    let path = match access {
        Access::Read => {
            let target = candidate
                .canonicalize()
                .map_err(|e| failed("read", &candidate, e))?;
            if !target.starts_with(&canonical_root) {
                return Err(escape(&target));
            }
            target
        }
        Access::Write => {
            let (Some(parent), Some(name)) = (candidate.parent(), candidate.file_name()) else {
                return Err(Refusal::Denied {
                    reason: format!("{} is not a file path", candidate.display()),
                });
            };
            // The deepest directory that exists must already be inside the allowed tree, so that
            // creating the missing ones cannot follow a link out of it.
            let mut existing = parent;
            while !existing.exists() {
                match existing.parent() {
                    Some(p) => existing = p,
                    None => break,
                }
            }
            let existing = existing
                .canonicalize()
                .map_err(|e| failed("resolve", existing, e))?;
            if !existing.starts_with(&canonical_root) {
                return Err(escape(&existing));
            }
            std::fs::create_dir_all(parent).map_err(|e| failed("create", parent, e))?;
            let parent = parent
                .canonicalize()
                .map_err(|e| failed("resolve", parent, e))?;
            if !parent.starts_with(&canonical_root) {
                return Err(escape(&parent));
            }
            let target = parent.join(name);
            if target.exists() {
                let resolved = target
                    .canonicalize()
                    .map_err(|e| failed("resolve", &target, e))?;
                if !resolved.starts_with(&canonical_root) {
                    return Err(escape(&resolved));
                }
            }
            target
        }
    };
    Ok(Resolved {
        path,
        declared_entry: entry.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::PermissionSet;

    fn setup() -> (tempfile::TempDir, Grant, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("pkg");
        std::fs::create_dir_all(package.join("assets")).unwrap();
        std::fs::write(package.join("assets/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        let grant = Grant::new(
            PermissionSet::new()
                .filesystem_read(["assets".to_string(), shared.display().to_string()])
                .filesystem_write([shared.display().to_string()]),
            &package,
        );
        let data = dir.path().join("data");
        (dir, grant, data)
    }

    #[test]
    fn package_relative_and_data_dir_paths() {
        let (_dir, grant, data) = setup();
        let r = resolve(&grant, &data, "assets/a.txt", Access::Read)
            .ok()
            .unwrap();
        assert_eq!(std::fs::read_to_string(r.path).unwrap(), "a");
        assert_eq!(r.declared_entry.as_deref(), Some("fs.read:assets"));
        let w = resolve(&grant, &data, "notes/today.txt", Access::Write)
            .ok()
            .unwrap();
        assert!(w.path.starts_with(data.canonicalize().unwrap()));
        assert_eq!(w.declared_entry, None);
    }

    #[test]
    fn outside_parent_and_symlink_escapes_are_refused() {
        let (dir, grant, data) = setup();
        let outside = dir.path().join("secret.txt");
        let denied = |r: Result<Resolved, Refusal>| matches!(r, Err(Refusal::Denied { .. }));
        assert!(denied(resolve(
            &grant,
            &data,
            &outside.display().to_string(),
            Access::Read
        )));
        assert!(denied(resolve(
            &grant,
            &data,
            "../secret.txt",
            Access::Read
        )));
        let shared = dir.path().join("shared");
        std::os::unix::fs::symlink(&outside, shared.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), shared.join("up")).unwrap();
        let link = shared.join("link.txt").display().to_string();
        assert!(denied(resolve(&grant, &data, &link, Access::Read)));
        assert!(denied(resolve(&grant, &data, &link, Access::Write)));
        let through = shared.join("up/new.txt").display().to_string();
        assert!(denied(resolve(&grant, &data, &through, Access::Write)));
        let fine = shared.join("sub/ok.txt").display().to_string();
        assert!(resolve(&grant, &data, &fine, Access::Write).is_ok());
    }
}
