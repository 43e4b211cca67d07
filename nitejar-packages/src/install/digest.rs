//! The content digest of a package: what "the same package" means.
//!
//! The digest is `sha256:<hex>` of a canonical listing with one line per file, sorted by path
//! (bytewise, `/`-separated, relative to the package root):
//!
//! ```text
//! <kind> <size> <sha256 of the contents> <path>\n
//! ```
//!
//! `kind` is `x` for an executable file (any execute bit set), `-` for another regular file, `l`
//! for a symbolic link (size and hash of its target text). Directories are not listed (an empty
//! one changes nothing), nor is the package's signature, `nitejar.plugin.sig` at the root, which
//! signs the digest itself. Timestamps, owners and the order of an archive's entries do not count,
//! so the same files give the same digest whether they came from npm, git, an upload or a path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// The package's signature file, excluded from its digest.
pub const SIGNATURE_FILE: &str = "nitejar.plugin.sig";

/// What a listed file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file without execute bits.
    File,
    /// A regular file with an execute bit.
    Executable,
    /// A symbolic link (to somewhere inside the package).
    Symlink,
}

impl FileKind {
    fn mark(self) -> char {
        match self {
            FileKind::File => '-',
            FileKind::Executable => 'x',
            FileKind::Symlink => 'l',
        }
    }
}

/// One listed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFile {
    /// What it is.
    pub kind: FileKind,
    /// Its size (a link: the length of its target).
    pub size: u64,
    /// sha256 of its contents (a link: of its target), lower-case hex.
    pub sha256: String,
}

/// Every file of a package, by relative `/`-separated path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    files: BTreeMap<String, ListedFile>,
}

impl Listing {
    /// An empty listing.
    pub fn new() -> Listing {
        Listing::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: impl Into<String>, file: ListedFile) {
        self.files.insert(path.into(), file);
    }

    /// Removes a file.
    pub fn remove(&mut self, path: &str) -> Option<ListedFile> {
        self.files.remove(path)
    }

    /// The files, by path.
    pub fn files(&self) -> &BTreeMap<String, ListedFile> {
        &self.files
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total bytes of the files.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// The listing re-rooted at `prefix/` (files outside it are dropped).
    pub fn strip_prefix(&self, prefix: &str) -> Listing {
        let start = format!("{prefix}/");
        Listing {
            files: self
                .files
                .iter()
                .filter_map(|(p, f)| p.strip_prefix(&start).map(|p| (p.to_string(), f.clone())))
                .collect(),
        }
    }

    /// The canonical text described in the module docs.
    pub fn canonical_text(&self) -> String {
        let mut out = String::new();
        for (path, file) in &self.files {
            if path == SIGNATURE_FILE {
                continue;
            }
            let _ = writeln!(
                out,
                "{} {} {} {path}",
                file.kind.mark(),
                file.size,
                file.sha256
            );
        }
        out
    }

    /// The digest: `sha256:<hex>` of [`canonical_text`](Self::canonical_text).
    pub fn digest(&self) -> String {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(self.canonical_text()))
        )
    }
}

/// Hashes while reading.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read and their sha256 (hex).
    pub(crate) fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// sha256 (hex) of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lists a package directory as it is on disk now (what boot and `doctor` compare with the digest
/// recorded at install). Symbolic links are listed, not followed.
pub fn list_dir(root: &Path) -> io::Result<Listing> {
    let mut listing = Listing::new();
    walk(root, "", &mut listing)?;
    Ok(listing)
}

/// The digest of a package directory as it is on disk now.
pub fn digest_dir(root: &Path) -> io::Result<String> {
    Ok(list_dir(root)?.digest())
}

fn walk(dir: &Path, prefix: &str, listing: &mut Listing) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has a name that is not UTF-8", entry.path().display()),
            )
        })?;
        let relative = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &relative, listing)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            let text = target.to_string_lossy();
            listing.insert(
                relative,
                ListedFile {
                    kind: FileKind::Symlink,
                    size: text.len() as u64,
                    sha256: sha256_hex(text.as_bytes()),
                },
            );
        } else if kind.is_file() {
            let file = std::fs::File::open(entry.path())?;
            let executable = is_executable(&file.metadata()?);
            let mut reader = HashingReader::new(file);
            io::copy(&mut reader, &mut io::sink())?;
            let (size, sha256) = reader.finish();
            listing.insert(
                relative,
                ListedFile {
                    kind: if executable {
                        FileKind::Executable
                    } else {
                        FileKind::File
                    },
                    size,
                    sha256,
                },
            );
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is neither a file, a directory nor a link",
                    entry.path().display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(unix)]
pub(crate) fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
pub(crate) fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_order_and_the_signature_and_sees_every_byte_and_mode() {
        let file = |kind, bytes: &[u8]| ListedFile {
            kind,
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        };
        let mut a = Listing::new();
        a.insert("b.txt", file(FileKind::File, b"b"));
        a.insert("a/x.so", file(FileKind::Executable, b"elf"));
        let mut b = Listing::new();
        b.insert("a/x.so", file(FileKind::Executable, b"elf"));
        b.insert("b.txt", file(FileKind::File, b"b"));
        b.insert(SIGNATURE_FILE, file(FileKind::File, b"sig"));
        assert_eq!(a.digest(), b.digest());
        assert_eq!(
            a.canonical_text(),
            format!(
                "x 3 {} a/x.so\n- 1 {} b.txt\n",
                sha256_hex(b"elf"),
                sha256_hex(b"b")
            )
        );
        let mut c = a.clone();
        c.insert("a/x.so", file(FileKind::File, b"elf"));
        assert_ne!(a.digest(), c.digest());
        let mut d = a.clone();
        d.insert("b.txt", file(FileKind::File, b"B"));
        assert_ne!(a.digest(), d.digest());
    }

    #[test]
    fn a_directory_lists_like_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/x.so"), b"elf").unwrap();
        std::fs::write(dir.path().join("b.txt"), b"b").unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let listing = list_dir(dir.path()).unwrap();
        assert_eq!(
            listing.files().keys().collect::<Vec<_>>(),
            vec!["b.txt", "lib/x.so"]
        );
        assert!(digest_dir(dir.path()).unwrap().starts_with("sha256:"));
    }
}
