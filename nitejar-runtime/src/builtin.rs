//! Built-in plugins: compiled into the binary and registered at link time.
//!
//! A crate contributes a built-in by adding a [`BuiltinPlugin`] to [`BUILTIN_PLUGINS`], which the
//! small `nitejar-builtin-registry` crate declares (so that a crate of built-ins needs the SDK and
//! that crate, not the engine); they are re-exported here:
//!
//! ```ignore
//! use nitejar_builtin_registry::{BuiltinPlugin, BUILTIN_PLUGINS};
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

use std::fmt;
use std::sync::Arc;

use nitejar_sdk::manifest::BUILTIN_ID_PREFIX;
use serde::Deserialize;

use crate::registry::{ActivePlugin, PluginMeta, PluginOrigin};
use nitejar_packages::manifest::{
    check_contributions, validate_manifest_json, ValidateOptions, ValidatedManifest,
};

pub use nitejar_builtin_registry::{BuiltinPlugin, BUILTIN_PLUGINS};

#[derive(Deserialize)]
struct Provides {
    id: String,
    #[serde(default)]
    contributes: ProvidesTypes,
}

#[derive(Default, Deserialize)]
struct ProvidesTypes {
    #[serde(default)]
    integrations: Vec<String>,
}

/// The built-in that provides integration type `kind`, if one does (a third-party plugin never
/// claims a built-in's type).
pub fn provider_of(kind: &str) -> Option<String> {
    builtins().into_iter().find_map(|b| {
        let p: Provides = serde_json::from_str(b.manifest).ok()?;
        p.contributes
            .integrations
            .iter()
            .any(|t| t == kind)
            .then_some(p.id)
    })
}

/// The plugin that serves an integration row: the one recorded on it, or — for a row written by an
/// earlier release, which records none — the built-in that provides its type. `None`: nobody until
/// an operator gives the row to a plugin. Rows follow their plugin, never a type name: another
/// plugin declaring the same type gets none of them (and none of their secrets).
pub fn integration_owner(row: &nitejar_store::store::IntegrationRow) -> Option<String> {
    row.plugin_id
        .clone()
        .filter(|p| !p.is_empty())
        .or_else(|| provider_of(&row.integration_type))
}

/// Why a built-in could not be registered. Always a defect of the binary, never of an operator's
/// data, but it is reported rather than panicking so that the other built-ins still load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("built-in plugin `{id}` is broken: {problem}")]
pub struct BuiltinError {
    /// The id from the manifest, or the start of the manifest text when it has none.
    pub id: String,
    /// What is wrong, one problem per line.
    pub problem: String,
}

#[derive(Deserialize)]
struct Identity {
    id: String,
}

/// What the engine reads from a [`BuiltinPlugin`]: its validated manifest, its id and version, the
/// plugin ready to activate.
pub trait BuiltinExt {
    /// The built-in's manifest, validated as a built-in's (the `builtin.` prefix is required, no
    /// `entry` is needed).
    fn manifest(&self) -> Result<ValidatedManifest, BuiltinError>;
    /// The built-in's id and version.
    fn meta(&self) -> Result<Arc<PluginMeta>, BuiltinError>;
    /// The built-in, ready to activate: its manifest is valid and its `contributes` matches what
    /// the code registers.
    fn activate(&self) -> Result<ActivePlugin, BuiltinError>;
}

fn error_of(builtin: &BuiltinPlugin, problem: impl fmt::Display) -> BuiltinError {
    let id = serde_json::from_str::<Identity>(builtin.manifest)
        .map(|i| i.id)
        .unwrap_or_else(|_| builtin.manifest.chars().take(60).collect());
    BuiltinError {
        id,
        problem: problem.to_string().trim_end().to_string(),
    }
}

impl BuiltinExt for BuiltinPlugin {
    fn manifest(&self) -> Result<ValidatedManifest, BuiltinError> {
        let opts = ValidateOptions::new().builtin(true).target(None);
        let validated =
            validate_manifest_json(self.manifest, &opts).map_err(|e| error_of(self, e))?;
        if !validated.manifest.is_builtin() {
            return Err(error_of(
                self,
                format_args!("its id must start with `{BUILTIN_ID_PREFIX}`"),
            ));
        }
        Ok(validated)
    }

    fn meta(&self) -> Result<Arc<PluginMeta>, BuiltinError> {
        let validated = self.manifest()?;
        Ok(PluginMeta::new(
            &validated.manifest.id,
            &validated.manifest.version,
            PluginOrigin::Builtin,
        ))
    }

    fn activate(&self) -> Result<ActivePlugin, BuiltinError> {
        let validated = self.manifest()?;
        let plugin = (self.build)();
        check_contributions(&validated.manifest, &plugin.contributions())
            .map_err(|e| error_of(self, e))?;
        let meta = PluginMeta::new(
            &validated.manifest.id,
            &validated.manifest.version,
            PluginOrigin::Builtin,
        );
        Ok(ActivePlugin::from_plugin(meta, &plugin))
    }
}

/// Every built-in linked into this binary, sorted by id.
pub fn builtins() -> Vec<&'static BuiltinPlugin> {
    let mut all: Vec<&'static BuiltinPlugin> = BUILTIN_PLUGINS.iter().collect();
    all.sort_by_cached_key(|b| {
        serde_json::from_str::<Identity>(b.manifest)
            .map(|i| i.id)
            .unwrap_or_default()
    });
    all
}
