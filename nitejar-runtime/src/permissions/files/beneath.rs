//! Opening a [`Located`] path beneath its root, with the kernel refusing to leave the root.
//!
//! The root directory is opened by name (`O_PATH | O_DIRECTORY`); everything below it is resolved
//! relative to that handle, never by name from `/`:
//!
//! - [`Resolver::Openat2`] (Linux 5.6 and later): `openat2(2)` with `RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS`. Symbolic links are followed while they stay beneath the root; one that
//!   leads out of it (absolute, or through `..`; dangling or not) makes the kernel refuse the open
//!   with `EXDEV`, and so does a component swapped for such a link while the call runs. The missing
//!   parent directories of a write are made one at a time with `mkdirat(2)` in their parent, itself
//!   opened beneath the root.
//! - [`Resolver::NoFollow`], where `openat2` is unavailable (`ENOSYS` before Linux 5.6, `ENOSYS` or
//!   `EPERM` from a container's seccomp profile): one `openat(2)` per component with `O_NOFOLLOW`, so
//!   no symbolic link below the root is followed at all; each one is refused.
//!
//! Which one applies is detected once, at the first file call, and logged. A refusal by the kernel
//! is a denial (a receipt); any other error (a missing file, a permission of the operating system)
//! is a failure, as before.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use nitejar_sdk::HostError;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use super::{Access, Located, Refusal};

/// How the path below a root is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::permissions) enum Resolver {
    /// One `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: links that stay beneath the
    /// root are followed, the kernel refuses the rest.
    Openat2,
    /// One `openat(2)` per component with `O_NOFOLLOW`: no link is followed.
    NoFollow,
}

/// Created files and directories: what `std::fs::write` and `create_dir_all` use, less the umask.
const FILE_MODE: u32 = 0o666;
const DIR_MODE: u32 = 0o777;
/// `openat2` answers `EAGAIN` when a rename raced with a `..` during a walk beneath a root; it asks
/// to be retried.
const RETRIES: usize = 16;

/// The resolver of this system, detected at the first call.
fn resolver() -> Resolver {
    static RESOLVER: OnceLock<Resolver> = OnceLock::new();
    *RESOLVER.get_or_init(|| match detect() {
        Ok(()) => {
            tracing::info!(
                "host file services: paths below an allowed root are resolved by the kernel \
                 beneath it (openat2 with RESOLVE_BENEATH)"
            );
            Resolver::Openat2
        }
        Err(e) => {
            tracing::warn!(
                "host file services: openat2(2) is unavailable ({}); paths below an allowed root \
                 are opened one component at a time and every symbolic link is refused",
                std::io::Error::from(e)
            );
            Resolver::NoFollow
        }
    })
}

/// Whether `openat2` is there: `ENOSYS` (an old kernel, or a seccomp profile that says so) or
/// `EPERM` (a seccomp profile's default answer) mean it is not. Any other answer came from the
/// system call itself.
fn detect() -> Result<(), Errno> {
    match openat2_beneath(CWD, Path::new("."), OFlags::PATH | OFlags::DIRECTORY, 0) {
        Err(e @ (Errno::NOSYS | Errno::PERM)) => Err(e),
        _ => Ok(()),
    }
}

/// Opens `located` for `access` with this system's resolver; see the module docs.
pub(in crate::permissions) fn open(located: &Located, access: Access) -> Result<File, Refusal> {
    open_with(resolver(), located, access)
}

/// [`open`] with a given resolver (the tests use both).
fn open_with(resolver: Resolver, located: &Located, access: Access) -> Result<File, Refusal> {
    let root_path = &located.root;
    if located.declared_entry.is_none() {
        std::fs::create_dir_all(root_path).map_err(|e| failed("create", root_path, e))?;
    }
    let root = rustix::fs::open(
        root_path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| failed("open", root_path, e.into()))?;
    let beneath = Beneath {
        resolver,
        root: root.as_fd(),
        located,
    };
    let fd = match access {
        Access::Read => beneath.file("read", OFlags::RDONLY, false),
        Access::Write => beneath.file(
            "write",
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
            true,
        ),
    }?;
    Ok(File::from(fd))
}

fn failed(verb: &str, path: &Path, e: std::io::Error) -> Refusal {
    Refusal::Failed(HostError::Failed(format!("{verb} {}: {e}", path.display())))
}

struct Beneath<'a> {
    resolver: Resolver,
    root: BorrowedFd<'a>,
    located: &'a Located,
}

impl Beneath<'_> {
    /// Opens the file with `flags`, after making its missing parent directories when
    /// `make_parents`.
    fn file(&self, verb: &str, flags: OFlags, make_parents: bool) -> Result<OwnedFd, Refusal> {
        let relative = &self.located.relative;
        let names: Vec<&OsStr> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name),
                _ => None,
            })
            .collect();
        let refused = |e| self.refusal(e, verb, &self.located.path());
        let Some((name, parents)) = names.split_last() else {
            // The root itself: a directory, which the kernel refuses to write (EISDIR) and which
            // reads as an error.
            return rustix::fs::openat(self.root, ".", flags | OFlags::CLOEXEC, Mode::empty())
                .map_err(refused);
        };
        match self.resolver {
            Resolver::Openat2 => {
                let open = || openat2_beneath(self.root, relative, flags, FILE_MODE);
                match open() {
                    Err(Errno::NOENT) if make_parents => {
                        self.directories(parents, true)?;
                        open()
                    }
                    opened => opened,
                }
                .map_err(refused)
            }
            Resolver::NoFollow => {
                let parent = self.directories(parents, make_parents)?;
                let parent = parent.as_ref().map_or(self.root, |d| d.as_fd());
                rustix::fs::openat(
                    parent,
                    *name,
                    flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(FILE_MODE),
                )
                .map_err(refused)
            }
        }
    }

    /// Opens the directories `names` below the root one at a time, making each missing one when
    /// `make`; returns the last (`None`: there were none, it is the root).
    fn directories(&self, names: &[&OsStr], make: bool) -> Result<Option<OwnedFd>, Refusal> {
        let mut dir: Option<OwnedFd> = None;
        let mut prefix = PathBuf::new();
        for name in names {
            prefix.push(name);
            let parent = dir.as_ref().map_or(self.root, |d| d.as_fd());
            let opened = match self.directory(parent, &prefix, name) {
                // mkdirat does not follow a link in its last component, and `parent` was itself
                // opened beneath the root.
                Err(Errno::NOENT) if make => {
                    match rustix::fs::mkdirat(parent, *name, Mode::from_raw_mode(DIR_MODE)) {
                        Ok(()) | Err(Errno::EXIST) => self.directory(parent, &prefix, name),
                        Err(e) => Err(e),
                    }
                }
                opened => opened,
            };
            let verb = if make { "create" } else { "open" };
            let at = self.located.root.join(&prefix);
            dir = Some(opened.map_err(|e| self.refusal(e, verb, &at))?);
        }
        Ok(dir)
    }

    /// Opens the directory `prefix` (relative to the root), whose last component `name` is in
    /// `parent`.
    fn directory(
        &self,
        parent: BorrowedFd<'_>,
        prefix: &Path,
        name: &OsStr,
    ) -> Result<OwnedFd, Errno> {
        match self.resolver {
            Resolver::Openat2 => {
                openat2_beneath(self.root, prefix, OFlags::PATH | OFlags::DIRECTORY, 0)
            }
            Resolver::NoFollow => {
                // With O_PATH, O_NOFOLLOW opens a link itself instead of failing; its type tells a
                // link (refused like O_NOFOLLOW refuses one: ELOOP) from a file in the way.
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                match FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) {
                    FileType::Directory => Ok(fd),
                    FileType::Symlink => Err(Errno::LOOP),
                    _ => Err(Errno::NOTDIR),
                }
            }
        }
    }

    /// What an error of the kernel means: a refusal to leave the root is a denial; anything else
    /// is a failure at `at`.
    fn refusal(&self, e: Errno, verb: &str, at: &Path) -> Refusal {
        let path = self.located.path();
        let (path, root) = (path.display(), self.located.root.display());
        let reason = match (e, self.resolver) {
            (Errno::XDEV, _) => format!("{path} leads outside {root} (a symbolic link)"),
            (Errno::LOOP, Resolver::Openat2) => format!(
                "{path} goes through a symbolic link the kernel refused to follow beneath {root} \
                 (a loop, or a link into /proc)"
            ),
            (Errno::LOOP, Resolver::NoFollow) => format!(
                "{path} goes through a symbolic link ({}); symbolic links below {root} are not \
                 followed because openat2(2) is unavailable on this system",
                at.display()
            ),
            _ => return failed(verb, at, e.into()),
        };
        Refusal::Denied { reason }
    }
}

/// `openat2(dir, path)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` and `O_CLOEXEC`, retried
/// while the kernel asks for it. `mode` applies only with `O_CREAT`.
fn openat2_beneath<Fd: AsFd>(
    dir: Fd,
    path: &Path,
    flags: OFlags,
    mode: u32,
) -> Result<OwnedFd, Errno> {
    // Unlike openat, openat2 refuses (EINVAL) a mode that will not be used.
    let mode = if flags.contains(OFlags::CREATE) {
        mode
    } else {
        0
    };
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            &dir,
            path,
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN | Errno::INTR) if tries < RETRIES => tries += 1,
            opened => return opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    use super::*;

    const BOTH: [Resolver; 2] = [Resolver::Openat2, Resolver::NoFollow];

    struct Tree {
        dir: tempfile::TempDir,
    }

    /// `<tmp>/root` (the allowed root, declared) and `<tmp>/outside` next to it.
    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("root/sub/in.txt"), "inside").unwrap();
        std::fs::write(dir.path().join("outside/secret.txt"), "secret").unwrap();
        Tree { dir }
    }

    impl Tree {
        fn root(&self) -> PathBuf {
            self.dir.path().join("root")
        }
        fn outside(&self) -> PathBuf {
            self.dir.path().join("outside")
        }
        fn at(&self, relative: &str) -> Located {
            Located {
                root: self.root(),
                relative: relative.into(),
                declared_entry: Some("fs.write:root".into()),
            }
        }
    }

    fn read(resolver: Resolver, located: &Located) -> Result<String, Refusal> {
        let mut text = String::new();
        open_with(resolver, located, Access::Read)?
            .read_to_string(&mut text)
            .unwrap();
        Ok(text)
    }

    fn write(resolver: Resolver, located: &Located, text: &str) -> Result<(), Refusal> {
        open_with(resolver, located, Access::Write)?
            .write_all(text.as_bytes())
            .unwrap();
        Ok(())
    }

    fn ok<T>(result: Result<T, Refusal>) -> T {
        match result {
            Ok(v) => v,
            Err(Refusal::Denied { reason }) => panic!("denied: {reason}"),
            Err(Refusal::Failed(e)) => panic!("failed: {e}"),
        }
    }

    fn denial<T>(result: Result<T, Refusal>) -> String {
        match result {
            Err(Refusal::Denied { reason }) => reason,
            Err(Refusal::Failed(e)) => panic!("failed, not denied: {e}"),
            Ok(_) => panic!("allowed"),
        }
    }

    #[test]
    fn this_kernel_has_openat2() {
        // The rest of these tests name their resolver; this says which one the gate uses here.
        assert_eq!(resolver(), Resolver::Openat2);
    }

    #[test]
    fn plain_paths_read_and_write_and_make_parents() {
        for resolver in BOTH {
            let t = tree();
            assert_eq!(ok(read(resolver, &t.at("sub/in.txt"))), "inside");
            ok(write(resolver, &t.at("new/deeper/out.txt"), "kept"));
            let written = t.root().join("new/deeper/out.txt");
            assert_eq!(std::fs::read_to_string(written).unwrap(), "kept");
            ok(write(resolver, &t.at("sub/in.txt"), "new"));
            assert_eq!(ok(read(resolver, &t.at("sub/in.txt"))), "new");
        }
    }

    #[test]
    fn a_dangling_link_out_of_the_root_is_not_written_through() {
        for resolver in BOTH {
            let t = tree();
            let target = t.outside().join("new.txt");
            symlink(&target, t.root().join("link")).unwrap();
            let reason = denial(write(resolver, &t.at("link"), "escaped"));
            assert!(reason.contains("symbolic link"), "{reason}");
            assert!(
                !target.exists(),
                "{resolver:?} created {}",
                target.display()
            );
        }
    }

    #[test]
    fn a_link_to_an_outside_directory_is_refused_mid_path() {
        for resolver in BOTH {
            let t = tree();
            symlink(t.outside(), t.root().join("up")).unwrap();
            let reason = denial(read(resolver, &t.at("up/secret.txt")));
            assert!(reason.contains(&t.root().display().to_string()), "{reason}");
            denial(write(resolver, &t.at("up/new.txt"), "escaped"));
            denial(write(resolver, &t.at("up/more/new.txt"), "escaped"));
            assert!(!t.outside().join("new.txt").exists());
            assert!(!t.outside().join("more").exists());
            // An absolute link to the file itself.
            symlink(t.outside().join("secret.txt"), t.root().join("s.txt")).unwrap();
            denial(read(resolver, &t.at("s.txt")));
            denial(write(resolver, &t.at("s.txt"), "overwritten"));
            let secret = std::fs::read_to_string(t.outside().join("secret.txt")).unwrap();
            assert_eq!(secret, "secret");
        }
    }

    #[test]
    fn links_that_stay_beneath_the_root_are_followed_by_openat2() {
        let t = tree();
        symlink("sub/in.txt", t.root().join("alias.txt")).unwrap();
        symlink("../sub", t.root().join("sub/again")).unwrap();
        let r = Resolver::Openat2;
        assert_eq!(ok(read(r, &t.at("alias.txt"))), "inside");
        assert_eq!(ok(read(r, &t.at("sub/again/in.txt"))), "inside");
        ok(write(r, &t.at("sub/again/made/x.txt"), "x"));
        assert!(t.root().join("sub/made/x.txt").exists());
        // `..` out of the root through a link is refused even though the target exists.
        symlink("../../outside", t.root().join("sub/out")).unwrap();
        denial(read(r, &t.at("sub/out/secret.txt")));
    }

    #[test]
    fn the_fallback_follows_no_link_at_all() {
        let t = tree();
        symlink("sub/in.txt", t.root().join("alias.txt")).unwrap();
        symlink("sub", t.root().join("dir")).unwrap();
        symlink("missing.txt", t.root().join("dangling.txt")).unwrap();
        let r = Resolver::NoFollow;
        for (path, refused_at) in [
            ("alias.txt", "alias.txt"),
            ("dir/in.txt", "dir"),
            ("dangling.txt", "dangling.txt"),
        ] {
            let reason = denial(read(r, &t.at(path)));
            assert!(reason.contains("openat2"), "{reason}");
            let link = format!("({})", t.root().join(refused_at).display());
            assert!(reason.contains(&link), "{reason}");
            denial(write(r, &t.at(path), "x"));
        }
        denial(write(r, &t.at("dir/new/x.txt"), "x"));
        assert!(!t.root().join("sub/new").exists());
        assert!(!t.root().join("missing.txt").exists());
    }

    #[test]
    fn other_errors_are_failures_naming_the_path() {
        for resolver in BOTH {
            let t = tree();
            match read(resolver, &t.at("sub/none.txt")) {
                Err(Refusal::Failed(HostError::Failed(m))) => {
                    assert!(m.contains("sub/none.txt"), "{m}");
                    assert!(m.contains("No such file"), "{m}");
                }
                _ => panic!("a missing file is a failure"),
            }
            // A file where a directory is needed.
            match write(resolver, &t.at("sub/in.txt/x"), "x") {
                Err(Refusal::Failed(HostError::Failed(m))) => assert!(m.contains("in.txt"), "{m}"),
                _ => panic!("a file in the way is a failure"),
            }
            assert!(matches!(
                write(resolver, &t.at(""), "x"),
                Err(Refusal::Failed(_))
            ));
        }
    }
}
