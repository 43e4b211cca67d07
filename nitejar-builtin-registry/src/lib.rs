//! Where built-in plugins register: the [`BUILTIN_PLUGINS`] slice, filled at link time by
//! `linkme`.
//!
//! A crate of built-ins depends on this crate and the SDK only — not on the engine — and adds a
//! [`BuiltinPlugin`] per plugin:
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
//! The engine (`nitejar_core::builtin`) reads the slice, validates each manifest and registers the
//! plugins.

use nitejar_sdk::Plugin;

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
