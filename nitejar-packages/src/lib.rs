//! # nitejar-packages
//!
//! What a plugin package is and how it arrives, below the engine (`nitejar-core` re-exports these
//! modules under the same names):
//!
//! - [`manifest`]: a package's `nitejar.plugin.json`, validated against the schema the SDK ships;
//! - [`plugin_config`]: the settings a manifest declares, and configs checked against them;
//! - [`install`]: packages from a path, an archive, an upload, npm or git: staged, unpacked under
//!   limits, digested, laid out as versions beside a `current` link;
//! - [`trust`]: trust modes, signatures, the allowlist and the consent text.
//!
//! Nothing here loads or runs plugin code: the engine does, after the lifecycle has judged a
//! package with these modules.

pub mod install;
pub mod manifest;
pub mod plugin_config;
pub mod trust;

/// The version of Nitejar these modules belong to (a manifest's `nitejar` range is checked
/// against it); the engine's `NITEJAR_VERSION` is the same workspace version.
pub const NITEJAR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The environment variable a secret named `name` falls back to: `NITEJAR_SECRET_` and the name
/// upper case, anything else than a letter or digit replaced by `_`.
pub fn secret_env_var(name: &str) -> String {
    let mut var = String::from("NITEJAR_SECRET_");
    var.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    var
}
