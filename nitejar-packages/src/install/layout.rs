//! Where plugins live on disk.
//!
//! ```text
//! $NITEJAR_DATA_DIR
//!   plugins/_staging/<random>/          an install in progress (removed when it ends, either way)
//!   plugins/_staging/upload-<random>    an uploaded package the server is receiving or installing
//!   plugins/_cache/                     git clones and downloads in progress
//!   plugins/_runtime/libraries.json     what the running server has loaded (for `doctor`)
//!   plugins/<id>/current -> versions/<version>
//!   plugins/<id>/versions/<version>/    one immutable directory per installed version
//!   plugins/<id>/data/                  the plugin's own files (see `permissions`)
//!   plugins/<id>/.activating            present only while this machine activates the plugin
//!   logs/plugins/<id>.log
//! ```
//!
//! A version directory is written once, by a rename from staging, and never rewritten: a loaded
//! library that is overwritten crashes the process, and the same path loaded twice returns the
//! library already mapped. Plugins are always loaded from `versions/<version>`, never through
//! `current`, so that switching versions never reuses a path.

use std::io;
use std::path::{Path, PathBuf};

/// The plugin directories under a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    data_dir: PathBuf,
    plugins_dir: PathBuf,
}

/// Names under `plugins/` that are not plugin ids.
pub const RESERVED_DIRS: [&str; 3] = ["_staging", "_cache", "_runtime"];

impl Layout {
    /// The layout of `data_dir`, with plugins in `<data_dir>/plugins`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Layout {
        let data_dir = data_dir.into();
        let plugins_dir = data_dir.join("plugins");
        Layout {
            data_dir,
            plugins_dir,
        }
    }

    /// Puts the plugin packages in `dir` instead (`NITEJAR_PLUGINS_DIR`). Plugin data directories
    /// stay where the permission gate puts them, under `<data_dir>/plugins/<id>/data`.
    pub fn with_plugins_dir(mut self, dir: impl Into<PathBuf>) -> Layout {
        self.plugins_dir = dir.into();
        self
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `plugins/`.
    pub fn plugins_dir(&self) -> &Path {
        &self.plugins_dir
    }

    /// `plugins/_staging`.
    pub fn staging_dir(&self) -> PathBuf {
        self.plugins_dir.join("_staging")
    }

    /// `plugins/_cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.plugins_dir.join("_cache")
    }

    /// `plugins/_runtime/inflight`: each process's in-flight marks (see
    /// `nitejar_core::host::inflight`).
    pub fn inflight_dir(&self) -> PathBuf {
        self.plugins_dir.join("_runtime").join("inflight")
    }

    /// `plugins/_runtime/libraries.json`: the libraries a running server has loaded.
    pub fn loaded_libraries_file(&self) -> PathBuf {
        self.plugins_dir.join("_runtime").join("libraries.json")
    }

    /// `plugins/<id>`.
    pub fn plugin_dir(&self, id: &str) -> PathBuf {
        self.plugins_dir.join(id)
    }

    /// `plugins/<id>/versions`.
    pub fn versions_dir(&self, id: &str) -> PathBuf {
        self.plugin_dir(id).join("versions")
    }

    /// `plugins/<id>/versions/<version>`.
    pub fn version_dir(&self, id: &str, version: &str) -> PathBuf {
        self.versions_dir(id).join(version)
    }

    /// `plugins/<id>/current`.
    pub fn current_link(&self, id: &str) -> PathBuf {
        self.plugin_dir(id).join("current")
    }

    /// `plugins/<id>/.activating`.
    pub fn activation_marker(&self, id: &str) -> PathBuf {
        self.plugin_dir(id).join(".activating")
    }

    /// `<data_dir>/plugins/<id>/data`: the plugin's own files.
    pub fn plugin_data_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("plugins").join(id).join("data")
    }

    /// `<data_dir>/logs/plugins`.
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs").join("plugins")
    }

    /// `<data_dir>/logs/plugins/<id>.log`.
    pub fn log_file(&self, id: &str) -> PathBuf {
        self.logs_dir().join(format!("{id}.log"))
    }

    /// The version `current` points at, if it is a link into `versions/`.
    pub fn current_version(&self, id: &str) -> Option<String> {
        let target = std::fs::read_link(self.current_link(id)).ok()?;
        let mut parts = target.components();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(first), Some(version), None) if first.as_os_str() == "versions" => {
                Some(version.as_os_str().to_string_lossy().into_owned())
            }
            _ => None,
        }
    }

    /// Points `current` at `versions/<version>` atomically: a new link is made beside it and
    /// renamed over the old one, so a reader sees the old target or the new one, never neither.
    pub fn set_current(&self, id: &str, version: &str) -> io::Result<()> {
        let dir = self.plugin_dir(id);
        std::fs::create_dir_all(&dir)?;
        let temp = dir.join(format!(".current-{}", uuid::Uuid::now_v7().simple()));
        symlink(&Path::new("versions").join(version), &temp)?;
        std::fs::rename(&temp, self.current_link(id)).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    }

    /// Removes `current` (no error when it is not there).
    pub fn remove_current(&self, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.current_link(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_flips_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert_eq!(layout.current_version("a.b"), None);
        layout.set_current("a.b", "1.0.0").unwrap();
        assert_eq!(layout.current_version("a.b").as_deref(), Some("1.0.0"));
        layout.set_current("a.b", "2.0.0").unwrap();
        assert_eq!(layout.current_version("a.b").as_deref(), Some("2.0.0"));
        let leftovers: Vec<_> = std::fs::read_dir(layout.plugin_dir("a.b"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".current-"))
            .collect();
        assert!(leftovers.is_empty());
        layout.remove_current("a.b").unwrap();
        layout.remove_current("a.b").unwrap();
        assert_eq!(layout.current_version("a.b"), None);
    }
}
