//! Built-in plugins: compiled into the binary and registered at link time.
//!
//! A crate contributes a built-in by adding a [`BuiltinPlugin`] to [`BUILTIN_PLUGINS`]:
//!
//! ```ignore
//! use nitejar_core::builtin::{BuiltinPlugin, BUILTIN_PLUGINS};
//!
//! #[linkme::distributed_slice(BUILTIN_PLUGINS)]
//! static ECHO: BuiltinPlugin = BuiltinPlugin {
//!     manifest: include_str!("echo/nitejar.plugin.json"),
//!     build: echo::plugin,
//! };
//! ```
//!
//! Built-ins are written against `nitejar-sdk` exactly like third-party plugins; they differ only in
//! how they reach the host and in running inline (they are our own reviewed code).

use std::sync::Arc;

use nitejar_sdk::Plugin;
use serde::Deserialize;

use crate::registry::{ActivePlugin, PluginMeta, PluginOrigin};

/// A built-in plugin: its manifest (JSON text) and the function that describes it.
#[derive(Debug)]
pub struct BuiltinPlugin {
    /// The `nitejar.plugin.json` of the built-in; its id starts with `builtin.`.
    pub manifest: &'static str,
    /// Describes the plugin's contributions.
    pub build: fn() -> Plugin,
}

/// Every built-in linked into this binary.
#[linkme::distributed_slice]
pub static BUILTIN_PLUGINS: [BuiltinPlugin];

/// Why a built-in could not be registered. Always a defect of the binary, never of an operator's
/// data, but it is reported rather than panicking so that the other built-ins still load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("built-in plugin manifest is invalid: {0}")]
pub struct BuiltinError(pub String);

#[derive(Deserialize)]
struct Identity {
    id: String,
    version: String,
}

impl BuiltinPlugin {
    /// The built-in's id and version, read from its manifest.
    pub fn meta(&self) -> Result<Arc<PluginMeta>, BuiltinError> {
        let identity: Identity =
            serde_json::from_str(self.manifest).map_err(|e| BuiltinError(e.to_string()))?;
        if !identity.id.starts_with("builtin.") {
            return Err(BuiltinError(format!(
                "built-in id `{}` must start with `builtin.`",
                identity.id
            )));
        }
        Ok(PluginMeta::new(
            &identity.id,
            &identity.version,
            PluginOrigin::Builtin,
        ))
    }

    /// The built-in, ready to activate.
    pub fn activate(&self) -> Result<ActivePlugin, BuiltinError> {
        let meta = self.meta()?;
        Ok(ActivePlugin::from_plugin(meta, &(self.build)()))
    }
}

/// Every built-in linked into this binary, sorted by id.
pub fn builtins() -> Vec<&'static BuiltinPlugin> {
    let mut all: Vec<&'static BuiltinPlugin> = BUILTIN_PLUGINS.iter().collect();
    all.sort_by_key(|b| b.meta().map(|m| m.id.to_string()).unwrap_or_default());
    all
}
