//! Plugin packages for the server tests, laid out from the example and fixture crates with their
//! built libraries, ready to install from a path, an archive or an upload.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A package directory `into/<name>` for the crate at `crate_dir` (its `nitejar.plugin.json`,
/// changed by `edit`) with the built library `lib` at the manifest's `entry`.
pub fn package_dir(
    into: &Path,
    name: &str,
    crate_dir: &str,
    lib: &str,
    edit: impl FnOnce(&mut Value),
) -> PathBuf {
    let mut manifest = nitejar_suite::plugins::crate_manifest(crate_dir);
    edit(&mut manifest);
    let dir = into.join(name);
    let entry = dir.join(manifest["entry"].as_str().expect("entry"));
    std::fs::create_dir_all(entry.parent().expect("lib dir")).expect("package dir");
    std::fs::copy(nitejar_suite::plugins::library(lib), &entry).expect("copy the library");
    std::fs::write(dir.join("nitejar.plugin.json"), manifest.to_string()).expect("manifest");
    dir
}

/// The `examples/signed-webhook` package, allowed to call `callback_host`.
pub fn signed_webhook(into: &Path, callback_host: &str) -> PathBuf {
    package_dir(
        into,
        "signed-webhook",
        "examples/signed-webhook",
        "signed_webhook",
        |m| m["permissions"]["network"] = serde_json::json!([callback_host]),
    )
}

/// The `.tgz` of a package directory, as `nitejar plugin pack` makes it.
pub fn tgz(dir: &Path) -> Vec<u8> {
    nitejar_core::install::archive::tgz_of_dir(dir).expect("pack the package")
}

/// Signs a package directory as `nitejar plugin pack --sign` does: a minisign signature of its
/// content digest, in `nitejar.plugin.sig`.
pub fn sign(dir: &Path, key: &minisign::KeyPair) {
    let digest = nitejar_core::install::digest_dir(dir).expect("digest");
    let signature = minisign::sign(
        Some(&key.pk),
        &key.sk,
        digest.as_bytes(),
        Some("signed by a test"),
        None,
    )
    .expect("sign");
    std::fs::write(dir.join("nitejar.plugin.sig"), signature.to_string())
        .expect("write the signature");
}
