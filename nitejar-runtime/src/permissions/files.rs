//! A plugin's file path: which allowed root it falls under, then opening it beneath that root.
//!
//! Two steps, kept apart on purpose:
//!
//! - [`locate`] decides, from the grant alone and without touching the file system, which root (a
//!   declared entry or the plugin's data directory) a request falls under and the path relative to
//!   it. Nothing it returns has been checked against the disk.
//! - [`open`] (module [`beneath`]) opens that root directory and then the relative path *relative
//!   to the root's handle*, with the kernel refusing to resolve anything outside it. There is no
//!   check-then-open-by-name: a symbolic link, dangling or not, or a directory swapped for a link
//!   while the call runs, cannot lead the open out of the root.

use std::path::{Component, Path, PathBuf};

use nitejar_sdk::HostError;

use super::Grant;

mod beneath;

pub(super) use beneath::open;

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

    fn field(self) -> &'static str {
        match self {
            Access::Read => "permissions.filesystemRead",
            Access::Write => "permissions.filesystemWrite",
        }
    }
}

/// Where a request falls: an allowed root and the path below it. Only [`open`] touches the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Located {
    /// The allowed root: a declared entry (absolute, or joined to the package directory) or the
    /// plugin's data directory. The operator or the host chose it, so the root itself is opened by
    /// name; everything below it is resolved beneath it.
    pub(super) root: PathBuf,
    /// The rest of the request below `root`: plain names only (no `..`, no root, no `.`); empty
    /// when the request is the root itself.
    pub(super) relative: PathBuf,
    /// The acknowledgement string of the declared entry that allows it; `None` for the plugin's own
    /// data directory, which needs no declaration.
    pub(super) declared_entry: Option<String>,
}

impl Located {
    /// The request as one path, for messages.
    pub(super) fn path(&self) -> PathBuf {
        self.root.join(&self.relative)
    }
}

pub(super) enum Refusal {
    /// Not allowed: a receipt is written.
    Denied { reason: String },
    /// Allowed, but the file system said no (missing file, I/O error).
    Failed(HostError),
}

/// Finds the root `request` falls under for `access`; see the module docs of [`super`] for the
/// rules. Pure: the file system is not consulted.
pub(super) fn locate(
    grant: &Grant,
    data_dir: &Path,
    request: &str,
    access: Access,
) -> Result<Located, Refusal> {
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
    let outside = || Refusal::Denied {
        reason: format!(
            "{} is outside the plugin's data directory and every path in {}",
            candidate.display(),
            access.field()
        ),
    };
    let Some((root, entry)) = roots
        .iter()
        .filter(|(root, _)| candidate.starts_with(root))
        .max_by_key(|(root, _)| root.components().count())
    else {
        return Err(outside());
    };
    let Ok(relative) = candidate.strip_prefix(root) else {
        return Err(outside());
    };
    // `Path::components` drops `.` and repeated separators inside a path; what is left below a
    // root must be plain names, which is what the opening step walks.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(Refusal::Denied {
            reason: format!("{} is not a plain path below {}", request, root.display()),
        });
    }
    Ok(Located {
        root: root.clone(),
        relative: relative.components().collect(),
        declared_entry: entry.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::PermissionSet;

    fn grant() -> Grant {
        Grant::new(
            PermissionSet::new()
                .filesystem_read(["assets", "/srv/shared", "/srv/shared/deep"])
                .filesystem_write(["/srv/shared"]),
            "/pkg",
        )
    }

    fn located(request: &str, access: Access) -> Located {
        match locate(&grant(), Path::new("/data/p"), request, access) {
            Ok(l) => l,
            Err(Refusal::Denied { reason }) => panic!("{request}: denied: {reason}"),
            Err(Refusal::Failed(e)) => panic!("{request}: {e}"),
        }
    }

    fn denied(request: &str, access: Access) -> String {
        match locate(&grant(), Path::new("/data/p"), request, access) {
            Err(Refusal::Denied { reason }) => reason,
            Ok(l) => panic!("{request}: located {l:?}"),
            Err(Refusal::Failed(e)) => panic!("{request}: {e}"),
        }
    }

    #[test]
    fn package_relative_entries_and_the_data_dir() {
        let asset = located("assets/img/a.png", Access::Read);
        assert_eq!(asset.root, Path::new("/pkg/assets"));
        assert_eq!(asset.relative, Path::new("img/a.png"));
        assert_eq!(asset.declared_entry.as_deref(), Some("fs.read:assets"));

        let own = located("notes/./today.txt", Access::Write);
        assert_eq!(own.root, Path::new("/data/p"));
        assert_eq!(own.relative, Path::new("notes/today.txt"));
        assert_eq!(own.declared_entry, None);
        // Not declared for writing: a relative `assets/…` write lands in the data directory.
        assert_eq!(
            located("assets/x", Access::Write).path(),
            Path::new("/data/p/assets/x")
        );
    }

    #[test]
    fn the_longest_declared_root_wins() {
        let deep = located("/srv/shared/deep/x", Access::Read);
        assert_eq!(deep.root, Path::new("/srv/shared/deep"));
        assert_eq!(
            deep.declared_entry.as_deref(),
            Some("fs.read:/srv/shared/deep")
        );
        let root_itself = located("/srv/shared", Access::Write);
        assert_eq!(root_itself.relative, Path::new(""));
    }

    #[test]
    fn outside_and_parent_paths_are_refused() {
        assert!(denied("/srv/sharedx/a", Access::Read).contains("permissions.filesystemRead"));
        assert!(denied("/etc/passwd", Access::Write).contains("permissions.filesystemWrite"));
        assert!(denied("../secret.txt", Access::Read).contains("`..`"));
        assert!(denied("/srv/shared/../../etc", Access::Read).contains("`..`"));
        assert_eq!(denied("", Access::Read), "an empty path");
    }
}
