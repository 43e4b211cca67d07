//! The loader: plugin libraries in, [`ActivePlugin`]s out.
//!
//! A third-party plugin is a shared library exporting the root module of
//! [`nitejar_sdk::abi`]. The loader
//!
//! 1. opens the library with `abi_stable`'s `lib_header_from_path(..)?.init_root_module()` — never
//!    `RootModule::load_from_file`, which caches one library per type — so any number of plugins,
//!    and several versions of one plugin, live in one process;
//! 2. checks the SDK ABI major before anything else is touched, and reports a library whose layout
//!    does not match with the short `Error:` lines of abi_stable's report, not all of it;
//! 3. reads the manifest the library embeds and checks it names the same plugin and version as the
//!    package;
//! 4. instantiates the plugin with its config, asks it what it contributes (`describe`) and checks
//!    that against the manifest's `contributes`;
//! 5. returns an [`ActivePlugin`] (origin third-party, offloaded) whose integrations are proxies
//!    implementing [`nitejar_sdk::Integration`] and whose hook handlers are JSON handlers, both over
//!    the plugin object's `call`.
//!
//! Libraries are never unloaded: `dlclose` is unsound with `abi_stable` values, and a version
//! directory is immutable (overwriting a loaded library crashes the process). Disabling a plugin
//! stops dispatching to it; an upgrade loads the new version beside the old one. What stays mapped
//! is listed by [`loaded_libraries`] so that doctor and the admin can report it; a restart reclaims it.
//!
//! Loading runs plugin code (`instantiate`, `describe`): call it from a blocking thread, not from an
//! async worker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use nitejar_sdk::abi::{Description, PluginModRef, SDK_ABI_MAJOR};
use nitejar_sdk::{HookName, SkillContribution};
use serde::Serialize;
use serde_json::Value;

use crate::host::HostServices;
use crate::receipts::now_ms;
use crate::registry::{ActivePlugin, PluginMeta, PluginOrigin};

mod proxy;

pub use proxy::LibraryPlugin;

/// Why a plugin library could not be loaded. Messages are written for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    #[error("could not open plugin library {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// The library does not export a Nitejar plugin.
    #[error("{path} is not a Nitejar plugin library: {message}")]
    NotAPlugin { path: PathBuf, message: String },
    /// The library was built against another SDK ABI major.
    #[error("{path} was built against Nitejar plugin ABI {found}, but this server loads ABI {expected}; rebuild the plugin against a nitejar-sdk with plugin ABI {expected}")]
    AbiMajor {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    /// The library's types do not match this server's ABI.
    #[error("{path} is incompatible with this server's plugin ABI {expected}; rebuild it against a matching nitejar-sdk:\n{errors}")]
    Incompatible {
        path: PathBuf,
        expected: u32,
        /// The `Error:` lines of abi_stable's report, one per line.
        errors: String,
    },
    /// The manifest embedded in the library is not the package's.
    #[error("{path} embeds the manifest of `{embedded}`, but the package is `{package}`; the library belongs to another plugin or version")]
    ManifestMismatch {
        path: PathBuf,
        embedded: String,
        package: String,
    },
    /// The plugin refused to start (bad config, a panic, …).
    #[error("plugin `{plugin}` failed to start: {message}")]
    Instantiate { plugin: String, message: String },
    /// The plugin could not say what it contributes.
    #[error("plugin `{plugin}` could not describe its contributions: {message}")]
    Describe { plugin: String, message: String },
    /// What the library exports differs from the manifest's `contributes`.
    #[error("plugin `{plugin}` does not export what its manifest declares:\n{}", problems.join("\n"))]
    Contributes {
        plugin: String,
        problems: Vec<String>,
    },
}

/// A library the process has loaded. It stays mapped until the process exits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedLibrary {
    /// Where it was loaded from (canonical).
    pub path: PathBuf,
    /// Its size on disk: what a leaked version costs at least.
    pub size_bytes: u64,
    /// The plugin id and version of the manifest it embeds.
    pub plugin_id: String,
    pub version: String,
    /// When it was first loaded (Unix ms).
    pub loaded_at_ms: i64,
}

static LIBRARIES: Mutex<Vec<LoadedLibrary>> = Mutex::new(Vec::new());

fn libraries() -> MutexGuard<'static, Vec<LoadedLibrary>> {
    // Only whole entries are pushed under this lock.
    LIBRARIES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every plugin library loaded in this process, in load order (one entry per path).
pub fn loaded_libraries() -> Vec<LoadedLibrary> {
    libraries().clone()
}

/// What the manifest of a package declares its code contributes, as the loader checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeclaredContributes {
    pub integrations: Vec<String>,
    pub hooks: Vec<HookName>,
    pub skills: Vec<String>,
}

/// A plugin package to load: where it is, which library, who it claims to be, and its config.
#[derive(Clone, Debug)]
pub struct PluginPackage {
    /// The package's (immutable) version directory.
    pub dir: PathBuf,
    /// The shared library, usually inside `dir`.
    pub library: PathBuf,
    /// Id and version from the package manifest.
    pub id: String,
    pub version: String,
    /// The manifest's `contributes`.
    pub contributes: DeclaredContributes,
    /// The plugin's config (`null` for none).
    pub config: Value,
}

/// A library opened and checked: its root module and embedded manifest.
pub struct PluginLibrary {
    path: PathBuf,
    module: PluginModRef,
    manifest_json: String,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Opens a plugin library and checks its ABI. Opening the same path again returns the library
/// already loaded (the operating system hands back the same mapping); a copy at another path is a
/// separate library.
pub fn open(path: &Path) -> Result<PluginLibrary, LoadError> {
    let path = path.canonicalize().map_err(|e| LoadError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let header = lib_header_from_path(&path).map_err(|e| library_error(&path, e))?;
    let consts = header.root_mod_consts();
    if consts.name().as_str() != PluginModRef::NAME {
        return Err(LoadError::NotAPlugin {
            path,
            message: format!(
                "it exports the abi_stable root module `{}`, not `{}`",
                consts.name(),
                PluginModRef::NAME
            ),
        });
    }
    let version = consts.version_strings().version.as_str();
    let major = version.split('.').next().unwrap_or_default();
    if major.parse::<u32>().ok() != Some(SDK_ABI_MAJOR) {
        return Err(LoadError::AbiMajor {
            path,
            found: major.to_string(),
            expected: SDK_ABI_MAJOR,
        });
    }
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| library_error(&path, e))?;
    let found = (module.abi_major())();
    if found != SDK_ABI_MAJOR {
        return Err(LoadError::AbiMajor {
            path,
            found: found.to_string(),
            expected: SDK_ABI_MAJOR,
        });
    }
    let manifest_json = (module.manifest())().into_string();
    register(&path, &manifest_json);
    Ok(PluginLibrary {
        path,
        module,
        manifest_json,
    })
}

fn register(path: &Path, manifest_json: &str) {
    #[derive(serde::Deserialize, Default)]
    struct Identity {
        #[serde(default)]
        id: String,
        #[serde(default)]
        version: String,
    }
    let mut all = libraries();
    if all.iter().any(|l| l.path == path) {
        return;
    }
    let identity: Identity = serde_json::from_str(manifest_json).unwrap_or_default();
    all.push(LoadedLibrary {
        path: path.to_path_buf(),
        size_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        plugin_id: identity.id,
        version: identity.version,
        loaded_at_ms: now_ms(),
    });
}

/// Turns abi_stable's errors into ours; a layout report keeps only its `Error:` lines.
fn library_error(path: &Path, e: LibraryError) -> LoadError {
    let path = path.to_path_buf();
    match e {
        LibraryError::OpenError { err, .. } => LoadError::Open {
            path,
            message: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin {
            path,
            message: "it exports no abi_stable root module (was it built with `nitejar_sdk::export_plugin!`?)".into(),
        },
        LibraryError::InvalidAbiHeader(header) => LoadError::Incompatible {
            path,
            expected: SDK_ABI_MAJOR,
            errors: format!("Error: built with an incompatible abi_stable ({header:?})"),
        },
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => LoadError::AbiMajor {
            path,
            found: actual_version.major.to_string(),
            expected: SDK_ABI_MAJOR,
        },
        LibraryError::RootModule { err, .. } => LoadError::NotAPlugin {
            path,
            message: format!("its root module failed to initialise: {err}"),
        },
        other => LoadError::Incompatible {
            path,
            expected: SDK_ABI_MAJOR,
            errors: error_lines(&other.to_string()),
        },
    }
}

/// The lines of an abi_stable report that start with `Error:` (at most ten), or its first line.
pub(crate) fn error_lines(report: &str) -> String {
    let lines: Vec<&str> = report
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Error:"))
        .collect();
    let mut kept: Vec<&str> = Vec::new();
    for line in lines {
        if !kept.contains(&line) {
            kept.push(line);
        }
    }
    if kept.is_empty() {
        return report.lines().next().unwrap_or("unknown error").to_string();
    }
    let more = kept.len().saturating_sub(10);
    kept.truncate(10);
    let mut text = kept.join("\n");
    if more > 0 {
        text.push_str(&format!("\n(and {more} more)"));
    }
    text
}

impl PluginLibrary {
    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `nitejar.plugin.json` the library was built with.
    pub fn manifest_json(&self) -> &str {
        &self.manifest_json
    }

    /// Creates a plugin instance with `config`, routing its host calls to `services`, and asks it
    /// what it contributes.
    pub fn instantiate(
        &self,
        meta: Arc<PluginMeta>,
        config: &Value,
        services: Arc<dyn HostServices>,
    ) -> Result<LibraryPlugin, LoadError> {
        LibraryPlugin::instantiate(&self.module, meta, config, services)
    }
}

/// Loads a package: opens its library, checks the embedded manifest, the ABI and `contributes`,
/// instantiates the plugin with its config, and returns it ready to activate.
pub fn load(
    package: &PluginPackage,
    services: Arc<dyn HostServices>,
) -> Result<ActivePlugin, LoadError> {
    let library = open(&package.library)?;
    check_identity(&library, package)?;
    let meta = PluginMeta::new(&package.id, &package.version, PluginOrigin::ThirdParty);
    let plugin = library.instantiate(meta, &package.config, services)?;
    let file_skills = check_contributes(plugin.description(), package)?;
    Ok(plugin.into_active(file_skills))
}

fn check_identity(library: &PluginLibrary, package: &PluginPackage) -> Result<(), LoadError> {
    #[derive(serde::Deserialize)]
    struct Identity {
        id: String,
        version: String,
    }
    let embedded: Identity =
        serde_json::from_str(library.manifest_json()).map_err(|e| LoadError::NotAPlugin {
            path: library.path.clone(),
            message: format!("its embedded manifest cannot be read: {e}"),
        })?;
    if embedded.id != package.id || embedded.version != package.version {
        return Err(LoadError::ManifestMismatch {
            path: library.path.clone(),
            embedded: format!("{}@{}", embedded.id, embedded.version),
            package: format!("{}@{}", package.id, package.version),
        });
    }
    Ok(())
}

/// Compares what the plugin exports with the manifest. Skills the manifest declares that the code
/// does not provide must be files `skills/<id>/SKILL.md` in the package; they are returned as file
/// skills.
pub fn check_contributes(
    described: &Description,
    package: &PluginPackage,
) -> Result<Vec<SkillContribution>, LoadError> {
    let mut problems = Vec::new();
    let code: BTreeSet<&str> = described
        .integrations
        .iter()
        .map(|d| d.kind.as_str())
        .collect();
    let declared: BTreeSet<&str> = package
        .contributes
        .integrations
        .iter()
        .map(String::as_str)
        .collect();
    for kind in declared.difference(&code) {
        problems.push(format!(
            "contributes.integrations declares `{kind}`, but the library provides no such integration"
        ));
    }
    for kind in code.difference(&declared) {
        problems.push(format!(
            "the library provides integration `{kind}`, which contributes.integrations does not declare"
        ));
    }
    let code: BTreeSet<HookName> = described.hooks.iter().map(|h| h.hook).collect();
    let declared: BTreeSet<HookName> = package.contributes.hooks.iter().copied().collect();
    for hook in declared.difference(&code) {
        problems.push(format!(
            "contributes.hooks declares `{hook}`, but the library registers no handler for it"
        ));
    }
    for hook in code.difference(&declared) {
        problems.push(format!(
            "the library registers a `{hook}` handler, which contributes.hooks does not declare"
        ));
    }
    let code: BTreeSet<&str> = described.skills.iter().map(|s| s.id.as_str()).collect();
    let declared: BTreeSet<&str> = package
        .contributes
        .skills
        .iter()
        .map(String::as_str)
        .collect();
    for skill in code.difference(&declared) {
        problems.push(format!(
            "the library provides skill `{skill}`, which contributes.skills does not declare"
        ));
    }
    let mut file_skills = Vec::new();
    for skill in declared.difference(&code) {
        let relative = format!("skills/{skill}/SKILL.md");
        if package.dir.join(&relative).is_file() {
            file_skills.push(SkillContribution::file(*skill, *skill, relative));
        } else {
            problems.push(format!(
                "contributes.skills declares `{skill}`, but neither the library nor the package (`{relative}`) provides it"
            ));
        }
    }
    if problems.is_empty() {
        Ok(file_skills)
    } else {
        Err(LoadError::Contributes {
            plugin: package.id.clone(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_error_lines_of_a_layout_report_are_kept() {
        let report = "Error: the root module changed\n   a long\n   dump\n Error: field `x` missing\nError: the root module changed\n";
        assert_eq!(
            error_lines(report),
            "Error: the root module changed\nError: field `x` missing"
        );
        assert_eq!(error_lines("something else\nmore"), "something else");
    }
}
