//! The install pipeline: one path from any source to an immutable version directory.
//!
//! ```text
//! fetch ─► unpack into plugins/_staging/<random> ─► validate manifest (+ engine range)
//!       ─► content digest ─► (caller: trust policy, version rows, artifact) ─► rename into
//!          plugins/<id>/versions/<version>
//! ```
//!
//! [`Installer::stage`] does the part that needs no database: it fetches a source ([`InstallSource`]:
//! a local path, a `.tgz`, an upload (in memory or in a server-owned file), an npm package, a git
//! repository), unpacks or copies it into a staging directory under the package rules ([`Limits`];
//! see [`archive`] for what a hostile archive cannot do), finds the package root (the archive root,
//! or its single top directory such as npm's `package/`), validates `nitejar.plugin.json` for this
//! server, and computes the content digest ([`digest`]). The result, a [`StagedPackage`], is moved
//! into its version directory with [`StagedPackage::commit`], which never replaces an existing
//! version directory. Dropping a staged package removes its staging directory: a failed install
//! leaves nothing on disk.
//!
//! Everything here blocks (file I/O, libgit2, a blocking HTTP client): call it from a blocking
//! thread. The lifecycle (`nitejar_core::lifecycle`) does.

pub mod archive;
pub mod digest;
mod git;
pub mod layout;
pub mod npm;
pub mod source;
pub(crate) mod tree;

use std::io;
use std::path::{Path, PathBuf};

use nitejar_sdk::manifest::MANIFEST_FILE;

pub use digest::{digest_dir, Listing, SIGNATURE_FILE};
pub use layout::Layout;
pub use npm::NpmConfig;
pub use source::{GitSpec, InstallSource, NpmSpec};
pub use tree::{copy_tree, SKIPPED_DIRS};

use crate::manifest::{validate_package_dir, ManifestErrors, ValidateOptions, ValidatedManifest};

/// How big a package may be. Every limit is checked while streaming, before the bytes past it are
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of the package's files (`NITEJAR_PLUGIN_MAX_BYTES`, default 256 MiB).
    pub max_bytes: u64,
    /// Files, directories and links (`NITEJAR_PLUGIN_MAX_FILES`, default 10 000).
    pub max_files: u64,
    /// Size of the compressed archive (default: `max_bytes`).
    pub max_archive_bytes: u64,
    /// Inflated bytes per compressed byte, past which an archive is a decompression bomb
    /// (default 100).
    pub max_ratio: u64,
    /// Inflated bytes below which the ratio is not judged (default 16 MiB): small archives of text
    /// legitimately inflate far more than large ones.
    pub ratio_floor: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let max_bytes = 256 * 1024 * 1024;
        Limits {
            max_bytes,
            max_files: 10_000,
            max_archive_bytes: max_bytes,
            max_ratio: 100,
            ratio_floor: 16 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The cap on the inflated tar stream: the files plus generous room for tar headers.
    pub(crate) fn max_inflated_bytes(&self) -> u64 {
        self.max_bytes
            .saturating_add(self.max_files.saturating_mul(2048))
            .saturating_add(1024 * 1024)
    }
}

/// Why a package could not be installed. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The source text could not be understood, or names nothing.
    #[error("{0}")]
    Source(String),
    /// A file operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The archive is not a gzip-compressed tar.
    #[error("the package is not a readable .tgz archive ({0}); build one with `nitejar plugin pack <dir>`")]
    NotAnArchive(String),
    /// An entry breaks the package rules.
    #[error("the package is refused: `{entry}` {reason}")]
    Refused {
        /// The entry as the archive or directory names it.
        entry: String,
        /// What it does that a package may not.
        reason: String,
    },
    /// Past a size limit.
    #[error("the package is refused: {what} exceed the limit of {limit} bytes (NITEJAR_PLUGIN_MAX_BYTES)")]
    TooLarge {
        /// What was measured.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Past the file-count limit.
    #[error("the package is refused: it has more than {limit} files (NITEJAR_PLUGIN_MAX_FILES)")]
    TooManyFiles {
        /// The limit.
        limit: u64,
    },
    /// A decompression bomb.
    #[error("the package is refused: {compressed} compressed bytes inflated to more than {inflated} bytes, past the ratio of {max_ratio}:1 a real package stays under (a decompression bomb?)")]
    Bomb {
        /// Inflated bytes when it was stopped.
        inflated: u64,
        /// Compressed bytes read by then.
        compressed: u64,
        /// The limit.
        max_ratio: u64,
    },
    /// No manifest at the root or in a single top directory.
    #[error("there is no {MANIFEST_FILE} in the package (looked at its root and in its single top-level directory); a plugin package has its manifest at its root")]
    NoManifest,
    /// The manifest is not acceptable.
    #[error("{MANIFEST_FILE} has {} problem(s):\n{errors}", errors.len())]
    Manifest {
        /// Every problem.
        errors: ManifestErrors,
    },
    /// The npm registry does not know the package.
    #[error("`{name}` is not in the npm registry {registry}; check the name, or set NITEJAR_NPM_REGISTRY")]
    NpmNotFound {
        /// The package.
        name: String,
        /// The registry asked.
        registry: String,
    },
    /// No published version satisfies the request.
    #[error("no published version of `{name}` satisfies `{request}`")]
    NpmNoMatchingVersion {
        /// The package.
        name: String,
        /// The version, range or tag asked for.
        request: String,
    },
    /// The tarball is not the one the registry vouched for.
    #[error("the tarball of {package} does not match its dist.integrity (expected {expected}, got {actual}); it was changed in transit or in the registry — nothing was installed")]
    Integrity {
        /// `name@version`.
        package: String,
        /// The registry's integrity.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// Another npm problem.
    #[error("npm: {0}")]
    Npm(String),
    /// A git problem.
    #[error("git: {0}")]
    Git(String),
    /// The version directory exists with other contents.
    #[error("{id}@{version} is already installed with different contents (digest {existing}, this package {new}); versions are immutable — publish the change as a new version")]
    VersionExists {
        /// The plugin.
        id: String,
        /// The version.
        version: String,
        /// The installed digest.
        existing: String,
        /// The new package's digest.
        new: String,
    },
}

impl InstallError {
    pub(crate) fn io(
        action: &'static str,
        path: impl AsRef<Path>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        move |source| InstallError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn read(e: io::Error) -> Self {
        InstallError::NotAnArchive(e.to_string())
    }

    pub(crate) fn archive(e: io::Error) -> Self {
        InstallError::NotAnArchive(e.to_string())
    }

    /// Whether the package itself was refused (hostile or oversized), as opposed to a failure to
    /// reach or read it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            InstallError::Refused { .. }
                | InstallError::TooLarge { .. }
                | InstallError::TooManyFiles { .. }
                | InstallError::Bomb { .. }
        )
    }
}

/// Fetches, stages, validates and digests packages.
#[derive(Clone, Debug)]
pub struct Installer {
    layout: Layout,
    limits: Limits,
    npm: NpmConfig,
    validate: ValidateOptions,
}

impl Installer {
    /// An installer staging under `layout`'s `plugins/_staging`, with default limits and the public
    /// npm registry.
    pub fn new(layout: Layout) -> Self {
        Installer {
            layout,
            limits: Limits::default(),
            npm: NpmConfig::default(),
            validate: ValidateOptions::new(),
        }
    }

    /// Sets the package limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the npm registry.
    pub fn with_npm(mut self, npm: NpmConfig) -> Self {
        self.npm = npm;
        self
    }

    /// Validates manifests with these options (the package directory is always the staged one).
    pub fn with_validate_options(mut self, options: ValidateOptions) -> Self {
        self.validate = options;
        self
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Fetches `source` into a new staging directory and checks it (see the module docs). The
    /// source is taken by value so that uploaded bytes become the stored artifact without a copy.
    pub fn stage(&self, source: InstallSource) -> Result<StagedPackage, InstallError> {
        let source_kind = source.kind();
        let staging_root = self.layout.staging_dir();
        std::fs::create_dir_all(&staging_root)
            .map_err(InstallError::io("create", &staging_root))?;
        let staging = tempfile::Builder::new()
            .prefix("stage-")
            .tempdir_in(&staging_root)
            .map_err(InstallError::io(
                "create a staging directory in",
                &staging_root,
            ))?;
        let unpacked = staging.path().join("package");
        std::fs::create_dir(&unpacked).map_err(InstallError::io("create", &unpacked))?;
        let (listing, packed, source_ref) = match source {
            InstallSource::Path(dir) => {
                if !dir.is_dir() {
                    return Err(InstallError::Source(format!(
                        "{} is not a directory",
                        dir.display()
                    )));
                }
                let listing = tree::copy_tree(&dir, &unpacked, &self.limits)?;
                let shown = dir.canonicalize().unwrap_or(dir);
                (listing, Packed::Repack, shown.display().to_string())
            }
            InstallSource::Archive(file) => {
                // Read once and unpacked from memory: the file is the operator's, and the stored
                // artifact must be the very bytes that were validated even if it changes meanwhile.
                let bytes = std::fs::read(&file).map_err(InstallError::io("read", &file))?;
                let listing = archive::unpack_tgz(bytes.as_slice(), &unpacked, &self.limits)?;
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| file.display().to_string());
                (listing, Packed::Bytes(bytes), name)
            }
            InstallSource::Upload { name, bytes } => {
                let listing = archive::unpack_tgz(bytes.as_slice(), &unpacked, &self.limits)?;
                (listing, Packed::Bytes(bytes), name)
            }
            InstallSource::UploadFile { name, path } => {
                // Streamed from the file (unpack_tgz buffers its input itself): a garbage or
                // oversized upload is refused at its first bad byte without being read into memory.
                let file = std::fs::File::open(&path).map_err(InstallError::io("open", &path))?;
                let listing = archive::unpack_tgz(file, &unpacked, &self.limits)?;
                (listing, Packed::File(path), name)
            }
            InstallSource::Npm(spec) => {
                let tarball = npm::fetch(&spec, &self.npm, &self.limits)?;
                let listing =
                    archive::unpack_tgz(tarball.bytes.as_slice(), &unpacked, &self.limits)?;
                let reference =
                    format!("{}@{} ({})", spec.name, tarball.version, tarball.integrity);
                (listing, Packed::Bytes(tarball.bytes), reference)
            }
            InstallSource::Git(spec) => {
                let checkout =
                    git::fetch(&spec, &self.layout.cache_dir(), &unpacked, &self.limits)?;
                (
                    checkout.listing,
                    Packed::Repack,
                    format!("{}#{}", spec.url, checkout.commit),
                )
            }
        };
        let (root, listing) = package_root(&unpacked, listing)?;
        let manifest = validate_package_dir(&root, &self.validate)
            .map_err(|errors| InstallError::Manifest { errors })?;
        let digest = listing.digest();
        let signature = std::fs::read_to_string(root.join(SIGNATURE_FILE)).ok();
        let archive = match packed {
            Packed::Bytes(bytes) => bytes,
            // Read a second time, now that it is known to be a valid package: the one copy a valid
            // package costs (it is stored in `plugin_artifacts`). Safe because the file is the
            // server's own, in `plugins/_staging`: nobody can change it between the two reads.
            Packed::File(path) => std::fs::read(&path).map_err(InstallError::io("read", &path))?,
            Packed::Repack => {
                archive::tgz_of_dir(&root).map_err(InstallError::io("pack", &root))?
            }
        };
        Ok(StagedPackage {
            _staging: staging,
            root,
            manifest,
            digest,
            listing,
            source_kind,
            source_ref,
            archive,
            signature,
        })
    }

    /// Unpacks a stored artifact (from `plugin_artifacts`) into a new staging directory, for a
    /// machine that has not got the version on disk yet.
    pub fn stage_artifact(
        &self,
        bytes: Vec<u8>,
        name: &str,
    ) -> Result<StagedPackage, InstallError> {
        self.stage(InstallSource::Upload {
            name: name.to_string(),
            bytes,
        })
    }
}

/// Where the `.tgz` kept in `plugin_artifacts` comes from, decided while fetching and produced
/// only once the package is valid.
enum Packed {
    /// The fetched archive itself.
    Bytes(Vec<u8>),
    /// A server-owned archive file, read after validation.
    File(PathBuf),
    /// No archive was fetched (a directory, a git checkout): packed from the staged root.
    Repack,
}

/// The package root: the unpack directory when the manifest is there, or its single top-level
/// directory (npm's `package/`, a GitHub archive's `repo-<sha>/`).
fn package_root(unpacked: &Path, listing: Listing) -> Result<(PathBuf, Listing), InstallError> {
    if unpacked.join(MANIFEST_FILE).is_file() {
        return Ok((unpacked.to_path_buf(), listing));
    }
    let mut tops = std::collections::BTreeSet::new();
    for path in listing.files().keys() {
        tops.insert(path.split('/').next().unwrap_or(path).to_string());
    }
    let entries: Vec<_> = std::fs::read_dir(unpacked)
        .map_err(InstallError::io("read", unpacked))?
        .filter_map(|e| e.ok())
        .collect();
    if let [only] = entries.as_slice() {
        let is_dir = only.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let name = only.file_name().to_string_lossy().into_owned();
        if is_dir && only.path().join(MANIFEST_FILE).is_file() && tops.len() <= 1 {
            return Ok((only.path(), listing.strip_prefix(&name)));
        }
    }
    Err(InstallError::NoManifest)
}

/// A package fetched into staging, validated and digested, not yet installed. Dropping it removes
/// the staging directory.
#[derive(Debug)]
pub struct StagedPackage {
    // Held for its Drop: removing the staging directory is how a failed install leaves no trace.
    _staging: tempfile::TempDir,
    root: PathBuf,
    /// The validated manifest.
    pub manifest: ValidatedManifest,
    /// The content digest (`sha256:<hex>`).
    pub digest: String,
    /// Every file.
    pub listing: Listing,
    /// `local`, `upload`, `npm` or `git`.
    pub source_kind: &'static str,
    /// The path, file name, `name@version (integrity)` or `url#commit` it came from.
    pub source_ref: String,
    /// The package as a `.tgz`, to keep in `plugin_artifacts`.
    pub archive: Vec<u8>,
    /// The text of `nitejar.plugin.sig`, when the package has one.
    pub signature: Option<String>,
}

/// Where [`StagedPackage::commit`] put the package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Moved into a new version directory.
    New(PathBuf),
    /// The same version with the same digest was there already; it is kept as it is.
    Existing(PathBuf),
}

impl Committed {
    /// The version directory.
    pub fn dir(&self) -> &Path {
        match self {
            Committed::New(p) | Committed::Existing(p) => p,
        }
    }
}

impl StagedPackage {
    /// The staged package root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The plugin id.
    pub fn id(&self) -> &str {
        &self.manifest.manifest.id
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.manifest.manifest.version
    }

    /// What [`commit`](Self::commit) would find: `Ok(Some(dir))` when the version directory
    /// exists with the same digest, `Ok(None)` when it does not exist, and
    /// [`InstallError::VersionExists`] when it exists with other contents.
    pub fn existing(&self, layout: &Layout) -> Result<Option<PathBuf>, InstallError> {
        let target = layout.version_dir(self.id(), self.version());
        if std::fs::symlink_metadata(&target).is_err() {
            return Ok(None);
        }
        let existing = digest_dir(&target).unwrap_or_else(|e| format!("unreadable ({e})"));
        if existing == self.digest {
            Ok(Some(target))
        } else {
            Err(InstallError::VersionExists {
                id: self.id().to_string(),
                version: self.version().to_string(),
                existing,
                new: self.digest.clone(),
            })
        }
    }

    /// Moves the package into `plugins/<id>/versions/<version>` with one rename. An existing version
    /// directory is never replaced: with the same digest it is kept, with another the commit fails.
    pub fn commit(self, layout: &Layout) -> Result<Committed, InstallError> {
        if let Some(dir) = self.existing(layout)? {
            return Ok(Committed::Existing(dir));
        }
        let versions = layout.versions_dir(self.id());
        std::fs::create_dir_all(&versions).map_err(InstallError::io("create", &versions))?;
        let target = layout.version_dir(self.id(), self.version());
        std::fs::rename(&self.root, &target)
            .map_err(InstallError::io("move the package to", &target))?;
        Ok(Committed::New(target))
    }
}
