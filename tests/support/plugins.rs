//! Real plugin libraries for the tests: the example and fixture crates built as `cdylib`s, and
//! package directories laid out the way the installer lays them out.
//!
//! The crates are built once per test process with `cargo build` into their own target directory
//! (`<target>/plugin-builds`), so the build never waits on the lock of the `cargo test` that runs
//! us; several test binaries building at once are serialised by cargo's own lock on that directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// Every crate that builds a plugin library (or a deliberately broken one).
pub const PLUGIN_CRATES: [&str; 9] = [
    "signed-webhook",
    "policy-guard",
    "probe",
    "greeter-v1",
    "greeter-v2",
    "foreign-abi",
    "skewed-abi",
    "hook-chain",
    "legacy-hooks",
];

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    base.join("plugin-builds")
}

/// Builds the plugin crates (once per process) and returns the directory holding the libraries.
/// Built in release when the caller is (the benches), in debug otherwise.
pub fn built_libraries() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = target_dir();
        let release = !cfg!(debug_assertions);
        let mut command = Command::new(cargo);
        command
            .current_dir(workspace_root())
            .arg("build")
            .arg("--quiet")
            .arg("--target-dir")
            .arg(&target);
        if release {
            command.arg("--release");
        }
        for name in PLUGIN_CRATES {
            command.arg("-p").arg(name);
        }
        let output = command
            .output()
            .map_err(|e| format!("could not run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "building the plugin crates failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(target.join(if release { "release" } else { "debug" }))
    });
    match built {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// The built library of a crate, by its library name (`signed_webhook`, `greeter_v1`, …).
pub fn library(lib_name: &str) -> PathBuf {
    built_libraries().join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// The manifest a plugin crate ships (`examples/…` or `tests/fixtures/plugins/…`).
pub fn crate_manifest(crate_dir: &str) -> Value {
    let path = workspace_root().join(crate_dir).join("nitejar.plugin.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Lays out an installed version of a plugin under `data_dir`, as the installer does:
/// `plugins/<id>/versions/<version>/` with the crate's manifest (after `edit`) and the built
/// library `lib_name` copied to the manifest's `entry`. Returns the version directory.
pub fn install_package(
    data_dir: &Path,
    crate_dir: &str,
    lib_name: &str,
    edit: impl FnOnce(&mut Value),
) -> PathBuf {
    let mut manifest = crate_manifest(crate_dir);
    edit(&mut manifest);
    let text = |key: &str| manifest[key].as_str().unwrap_or_default().to_string();
    let dir = data_dir
        .join("plugins")
        .join(text("id"))
        .join("versions")
        .join(text("version"));
    let entry = dir.join(text("entry"));
    if let Some(parent) = entry.parent() {
        std::fs::create_dir_all(parent).expect("create the package directory");
    }
    std::fs::copy(library(lib_name), &entry).expect("copy the plugin library");
    let json = serde_json::to_string_pretty(&manifest).expect("manifest as JSON");
    std::fs::write(dir.join("nitejar.plugin.json"), json).expect("write the manifest");
    dir
}
