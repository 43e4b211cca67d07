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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use nitejar_sdk::abi::{Description, PluginModRef, SDK_ABI_MAJOR};
use nitejar_sdk::manifest::Manifest;
use nitejar_sdk::{Contributions, HookName, SkillContribution};
use serde::Serialize;
use serde_json::Value;

use crate::host::inflight::InFlightMarks;
use crate::host::HostServices;
use crate::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use isolated::Isolation;
use nitejar_packages::manifest::{check_contributions, current_target_triple};
use nitejar_store::receipts::now_ms;

pub mod isolated;
mod proxy;

pub use proxy::LibraryPlugin;

/// Why a plugin library could not be loaded. Messages are written for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    #[error("could not open plugin library {path}: {message}")]
    Open { path: PathBuf, message: String },
    /// The package has no library for this server.
    #[error("plugin `{plugin}` cannot be loaded: {message}")]
    NoLibrary { plugin: String, message: String },
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
    /// What the library exports differs from the manifest's `contributes`. Each problem reads
    /// `<JSON pointer>: <message>`.
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

/// A plugin package to load: its (immutable) version directory, its manifest and its config.
#[derive(Clone, Debug)]
pub struct PluginPackage {
    /// The package's version directory.
    pub dir: PathBuf,
    /// The package's manifest (validated by the caller, see [`nitejar_packages::manifest`]).
    pub manifest: Manifest,
    /// The plugin's config (`null` for none).
    pub config: Value,
    /// Where its calls are marked in flight (see [`crate::host::inflight`]); none: unmarked.
    pub marks: Option<Arc<InFlightMarks>>,
    /// Run it in a process of its own (see [`isolated`]); none: in this process.
    pub isolation: Option<Isolation>,
}

impl PluginPackage {
    /// A package with no config.
    pub fn new(dir: impl Into<PathBuf>, manifest: Manifest) -> Self {
        PluginPackage {
            dir: dir.into(),
            manifest,
            config: Value::Null,
            marks: None,
            isolation: None,
        }
    }

    /// Runs the plugin in a process of its own.
    pub fn isolated(mut self, isolation: Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Marks the plugin's calls in flight in `marks`, so that a crash in them is attributed.
    pub fn with_marks(mut self, marks: Arc<InFlightMarks>) -> Self {
        self.marks = Some(marks);
        self
    }

    /// Sets the plugin's config.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// The library `entry` names for the running target, inside the package directory.
    pub fn library_path(&self) -> Result<PathBuf, LoadError> {
        let target = current_target_triple();
        let entry = self
            .manifest
            .entry
            .as_ref()
            .ok_or_else(|| LoadError::NoLibrary {
                plugin: self.manifest.id.clone(),
                message: "the manifest has no `entry`: a declarative plugin has no code to load"
                    .into(),
            })?;
        let relative = entry
            .for_target(&target)
            .ok_or_else(|| LoadError::NoLibrary {
                plugin: self.manifest.id.clone(),
                message: format!("`entry` names no library for this server's target `{target}`"),
            })?;
        Ok(self.dir.join(relative))
    }
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
        LibraryPlugin::instantiate(&self.module, meta, config, services, None)
    }
}

/// Loads a package: opens its library, checks the ABI and the embedded manifest, instantiates the
/// plugin with its config, checks what it exports against `contributes`, and returns it ready to
/// activate.
pub fn load(
    package: &PluginPackage,
    services: Arc<dyn HostServices>,
) -> Result<ActivePlugin, LoadError> {
    if let Some(isolation) = &package.isolation {
        return load_isolated(package, isolation, services);
    }
    let library = open(&package.library_path()?)?;
    check_identity(&library, package)?;
    let manifest = &package.manifest;
    let meta = PluginMeta::new(&manifest.id, &manifest.version, PluginOrigin::ThirdParty);
    let marks = package
        .marks
        .as_ref()
        .and_then(|m| m.mark(&manifest.id, &manifest.version));
    let plugin =
        LibraryPlugin::instantiate(&library.module, meta, &package.config, services, marks)?;
    let file_skills = check_contributes(plugin.description(), package)?;
    Ok(plugin
        .into_active(file_skills)
        .with_package_dir(&package.dir))
}

/// [`load`] in a process of its own: this process never opens the library (opening it runs its
/// code); the plugin's process checks its ABI and identity and says why it could not load.
fn load_isolated(
    package: &PluginPackage,
    isolation: &Isolation,
    services: Arc<dyn HostServices>,
) -> Result<ActivePlugin, LoadError> {
    let manifest = &package.manifest;
    let meta = PluginMeta::with_execution(
        &manifest.id,
        &manifest.version,
        PluginOrigin::ThirdParty,
        nitejar_store::receipts::ExecutionMode::Isolated,
    );
    let request = isolated::LoadRequest {
        library: package.library_path()?,
        dir: package.dir.clone(),
        plugin_id: manifest.id.clone(),
        version: manifest.version.clone(),
        config: serde_json::to_string(&package.config).unwrap_or_else(|_| "null".into()),
        data_dir: isolation.data_dir.clone(),
        limits: isolation.limits,
    };
    std::fs::create_dir_all(&isolation.data_dir).map_err(|e| LoadError::Instantiate {
        plugin: format!("{}@{}", manifest.id, manifest.version),
        message: format!(
            "could not create its data directory {}: {e}",
            isolation.data_dir.display()
        ),
    })?;
    let plugin = LibraryPlugin::spawn_isolated(meta, &request, isolation, services)?;
    let file_skills = check_contributes(plugin.description(), package)?;
    Ok(plugin
        .into_active(file_skills)
        .with_package_dir(&package.dir))
}

/// In the plugin's process: opens the library the request names, checks it is that plugin, and
/// instantiates it with `host`.
pub(crate) fn instantiate_in_child(
    request: &isolated::LoadRequest,
    host: nitejar_sdk::abi::HostBox,
) -> Result<nitejar_sdk::abi::PluginBox, String> {
    #[derive(serde::Deserialize)]
    struct Identity {
        id: String,
        version: String,
    }
    let library = open(&request.library).map_err(|e| e.to_string())?;
    let identity: Identity = serde_json::from_str(&library.manifest_json)
        .map_err(|e| format!("the library's embedded manifest is unreadable: {e}"))?;
    if identity.id != request.plugin_id || identity.version != request.version {
        return Err(format!(
            "the library is {}@{}, not {}@{} as its package says",
            identity.id, identity.version, request.plugin_id, request.version
        ));
    }
    (library.module.instantiate())(
        host,
        abi_stable::std_types::RStr::from(request.config.as_str()),
    )
    .into_result()
    .map_err(|e| format!("the plugin failed to start: {e}"))
}

/// Whether a library built as `embedded` is the code of package version `package`: the same
/// version, or one that differs only in build metadata — `1.2.0+edit.1` is `1.2.0` with other
/// files than the code edited (see `nitejar_core::lifecycle::agent_ops`), whose library is `1.2.0`'s.
fn same_build(embedded: &str, package: &str) -> bool {
    match (
        semver::Version::parse(embedded),
        semver::Version::parse(package),
    ) {
        (Ok(mut e), Ok(mut p)) => {
            e.build = semver::BuildMetadata::EMPTY;
            p.build = semver::BuildMetadata::EMPTY;
            e == p
        }
        _ => embedded == package,
    }
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
    let manifest = &package.manifest;
    if embedded.id != manifest.id || !same_build(&embedded.version, &manifest.version) {
        return Err(LoadError::ManifestMismatch {
            path: library.path.clone(),
            embedded: format!("{}@{}", embedded.id, embedded.version),
            package: format!("{}@{}", manifest.id, manifest.version),
        });
    }
    Ok(())
}

/// Compares what the plugin exports with the manifest's `contributes` (see
/// [`nitejar_packages::manifest::check_contributions`]). A skill the manifest declares that the code does not
/// provide must be the file `skills/<id>/SKILL.md` in the package; such skills are returned as file
/// skills.
pub fn check_contributes(
    described: &Description,
    package: &PluginPackage,
) -> Result<Vec<SkillContribution>, LoadError> {
    let mut hooks: Vec<HookName> = described.hooks.iter().map(|h| h.hook).collect();
    hooks.sort();
    hooks.dedup();
    let actual = Contributions::new(
        described
            .integrations
            .iter()
            .map(|d| d.kind.clone())
            .collect(),
        hooks,
        described.skills.iter().map(|s| s.id.clone()).collect(),
    );
    let manifest = &package.manifest;
    let mut problems: Vec<String> = match check_contributions(manifest, &actual) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.errors().iter().map(ToString::to_string).collect(),
    };
    let mut file_skills = Vec::new();
    for (i, skill) in manifest.contributes.skills.iter().enumerate() {
        if actual.skills.contains(skill) {
            continue;
        }
        let relative = format!("skills/{skill}/SKILL.md");
        if package.dir.join(&relative).is_file() {
            file_skills.push(SkillContribution::file(skill, skill, relative));
        } else {
            problems.push(format!(
                "/contributes/skills/{i}: neither the plugin library nor the package provides the skill `{skill}`; add {relative} or remove it from the manifest"
            ));
        }
    }
    if problems.is_empty() {
        Ok(file_skills)
    } else {
        Err(LoadError::Contributes {
            plugin: manifest.id.clone(),
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

    #[test]
    fn a_library_serves_its_version_and_its_edits_only() {
        assert!(same_build("1.2.0", "1.2.0"));
        assert!(same_build("1.2.0", "1.2.0+edit.3"));
        assert!(!same_build("1.2.0", "1.2.1"));
        assert!(!same_build("1.2.0", "1.2.0-rc.1"));
        assert!(!same_build("1.2.0", "1.2.0-rc.1+edit.1"));
        assert!(!same_build("1.x", "1.x+edit.1"));
        assert!(same_build("1.x", "1.x"));
    }
}
