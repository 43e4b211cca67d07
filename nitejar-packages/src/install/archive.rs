//! Package archives (`.tgz`): unpacked under the package rules, and written deterministically.
//!
//! Unpacking streams: the gzip input is counted as it is read, the tar stream as it is inflated,
//! and each file is hashed as it is written, so a hostile archive is stopped at the first byte
//! past a limit and the content digest costs no second pass. Refused, with the entry named:
//! absolute paths, `..`, links that go up or out of the tree, hard links, device files, FIFOs,
//! sparse files, more files or bytes than the limits allow, and an inflation ratio past the limit
//! (a decompression bomb).

use std::cell::{Cell, RefCell};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::rc::Rc;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use tar::EntryType;

use super::digest::{FileKind, Listing};
use super::tree::{
    link_target, make_dir, package_path, prepare_target, write_file, write_link, Budget,
};
use super::{InstallError, Limits};

/// Why the byte streams below stopped an unpack.
#[derive(Clone, Debug)]
enum Trip {
    ArchiveTooLarge(u64),
    Bomb { inflated: u64, compressed: u64 },
    Inflated(u64),
}

struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    limit: u64,
    trip: Rc<RefCell<Option<Trip>>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.get() + n as u64;
        self.count.set(total);
        if total > self.limit {
            *self.trip.borrow_mut() = Some(Trip::ArchiveTooLarge(self.limit));
            return Err(io::Error::other("archive too large"));
        }
        Ok(n)
    }
}

/// Watches the inflated stream: an absolute cap, and the ratio to the compressed bytes read so far
/// once past `ratio_floor` (small archives of text legitimately inflate a lot).
struct Inflated<R> {
    inner: R,
    compressed: Rc<Cell<u64>>,
    inflated: u64,
    limits: Limits,
    trip: Rc<RefCell<Option<Trip>>>,
}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inflated += n as u64;
        let cap = self.limits.max_inflated_bytes();
        if self.inflated > cap {
            *self.trip.borrow_mut() = Some(Trip::Inflated(cap));
            return Err(io::Error::other("inflated too far"));
        }
        let compressed = self.compressed.get().max(1);
        if self.inflated > self.limits.ratio_floor
            && self.inflated / compressed > self.limits.max_ratio
        {
            *self.trip.borrow_mut() = Some(Trip::Bomb {
                inflated: self.inflated,
                compressed,
            });
            return Err(io::Error::other("decompression bomb"));
        }
        Ok(n)
    }
}

/// Unpacks the gzip-compressed tar read from `input` into `dest` (an existing, empty directory)
/// and lists what it wrote.
pub(crate) fn unpack_tgz(
    input: impl Read,
    dest: &Path,
    limits: &Limits,
) -> Result<Listing, InstallError> {
    let trip = Rc::new(RefCell::new(None));
    let compressed = Rc::new(Cell::new(0));
    let counting = Counting {
        inner: input,
        count: compressed.clone(),
        limit: limits.max_archive_bytes,
        trip: trip.clone(),
    };
    let inflated = Inflated {
        inner: GzDecoder::new(BufReader::with_capacity(128 * 1024, counting)),
        compressed,
        inflated: 0,
        limits: limits.clone(),
        trip: trip.clone(),
    };
    let result = unpack_entries(tar::Archive::new(inflated), dest, limits);
    let tripped = trip.borrow_mut().take();
    match (result, tripped) {
        (Ok(listing), _) => Ok(listing),
        (Err(_), Some(Trip::ArchiveTooLarge(limit))) => Err(InstallError::TooLarge {
            what: "the archive",
            limit,
        }),
        (Err(_), Some(Trip::Inflated(limit))) => Err(InstallError::TooLarge {
            what: "the unpacked archive",
            limit,
        }),
        (
            Err(_),
            Some(Trip::Bomb {
                inflated,
                compressed,
            }),
        ) => Err(InstallError::Bomb {
            inflated,
            compressed,
            max_ratio: limits.max_ratio,
        }),
        (Err(e), None) => Err(e),
    }
}

fn unpack_entries<R: Read>(
    mut archive: tar::Archive<R>,
    dest: &Path,
    limits: &Limits,
) -> Result<Listing, InstallError> {
    let canonical_dest = dest
        .canonicalize()
        .map_err(InstallError::io("inspect", dest))?;
    let mut listing = Listing::new();
    let mut budget = Budget::new(limits);
    let entries = archive.entries().map_err(InstallError::archive)?;
    for entry in entries {
        let mut entry = entry.map_err(InstallError::archive)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        let raw = entry.path().map_err(InstallError::archive)?.into_owned();
        let refuse = |reason: String| InstallError::Refused {
            entry: raw.display().to_string(),
            reason,
        };
        let path = match package_path(&raw) {
            Ok(path) => path,
            // The archive's own root (`./` or `package/.`), which some tools write.
            Err(_)
                if kind == EntryType::Directory
                    && raw.components().all(|c| c.as_os_str() == ".") =>
            {
                continue
            }
            Err(reason) => return Err(refuse(reason)),
        };
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let size = entry.header().size().map_err(InstallError::archive)?;
                budget.take(size)?;
                let mode = entry.header().mode().unwrap_or(0o644);
                let target = prepare_target(dest, &canonical_dest, &path)?;
                let listed = write_file(&target, &mut entry, mode & 0o111 != 0)?;
                listing.insert(path, listed);
            }
            EntryType::Directory => {
                budget.take(0)?;
                make_dir(dest, &canonical_dest, &path)?;
            }
            EntryType::Symlink => {
                let link_to = entry
                    .link_name()
                    .map_err(InstallError::archive)?
                    .ok_or_else(|| refuse("is a link without a target".into()))?
                    .into_owned();
                link_target(&link_to).map_err(refuse)?;
                budget.take(0)?;
                let target = prepare_target(dest, &canonical_dest, &path)?;
                listing.insert(path, write_link(&target, &link_to)?);
            }
            EntryType::Link => {
                return Err(refuse(
                    "is a hard link; a package holds only files, directories and symbolic links"
                        .into(),
                ))
            }
            EntryType::Char | EntryType::Block => {
                return Err(refuse(
                    "is a device file; a package holds only files, directories and links".into(),
                ))
            }
            EntryType::Fifo => {
                return Err(refuse(
                    "is a FIFO; a package holds only files, directories and links".into(),
                ))
            }
            other => {
                return Err(refuse(format!(
                    "is a tar entry of type {other:?}, which a package may not hold"
                )))
            }
        }
    }
    Ok(listing)
}

/// A file to put in an archive.
#[derive(Clone, Debug)]
pub struct ArchiveFile {
    /// The path inside the package (`/`-separated).
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Its contents (a link: its target).
    pub contents: Vec<u8>,
}

/// Writes a package as a gzip-compressed tar with every path under `package/` (as npm does),
/// sorted, with fixed times, owners and modes (`0755` executables, `0644` the rest), so the same
/// files give the same bytes.
pub fn write_tgz(files: &[ArchiveFile], level: u32, out: impl Write) -> io::Result<()> {
    let mut sorted: Vec<&ArchiveFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(GzEncoder::new(out, Compression::new(level)));
    for file in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let path = format!("package/{}", file.path);
        match file.kind {
            FileKind::Symlink => {
                header.set_entry_type(EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                let target = String::from_utf8_lossy(&file.contents).into_owned();
                builder.append_link(&mut header, &path, target)?;
            }
            kind => {
                header.set_entry_type(EntryType::Regular);
                header.set_mode(if kind == FileKind::Executable {
                    0o755
                } else {
                    0o644
                });
                header.set_size(file.contents.len() as u64);
                builder.append_data(&mut header, &path, file.contents.as_slice())?;
            }
        }
    }
    builder.into_inner()?.finish()?.flush()
}

/// Reads the files of a package directory for [`write_tgz`] (links are kept as links).
pub fn read_dir_files(root: &Path) -> io::Result<Vec<ArchiveFile>> {
    let listing = super::digest::list_dir(root)?;
    let mut files = Vec::with_capacity(listing.len());
    for (path, listed) in listing.files() {
        let full = root.join(path);
        let contents = match listed.kind {
            FileKind::Symlink => std::fs::read_link(&full)?
                .to_string_lossy()
                .into_owned()
                .into_bytes(),
            _ => std::fs::read(&full)?,
        };
        files.push(ArchiveFile {
            path: path.clone(),
            kind: listed.kind,
            contents,
        });
    }
    Ok(files)
}

/// The `.tgz` of a package directory (fast compression: this is the copy kept in the database).
pub fn tgz_of_dir(root: &Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_tgz(&read_dir_files(root)?, 1, &mut out)?;
    Ok(out)
}
