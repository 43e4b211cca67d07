//! Nitejar's built-in plugins.
//!
//! - `builtin.echo` ([`echo`]): a local test channel.
//! - `builtin.telegram` ([`telegram`]): a Telegram bot.
//! - `builtin.github` ([`github`]): a GitHub App.
//!
//! Each is written against `nitejar-sdk` exactly like a third-party plugin and registered in
//! [`nitejar_builtin_registry::BUILTIN_PLUGINS`] at link time (the engine reads them from there). A binary that wants them must link this
//! crate: call [`link`] once (the linker drops a crate nothing refers to, and its registrations with it).

use nitejar_builtin_registry::{BuiltinPlugin, BUILTIN_PLUGINS};

pub mod echo;
pub mod github;
pub mod telegram;

#[linkme::distributed_slice(BUILTIN_PLUGINS)]
static ECHO: BuiltinPlugin = BuiltinPlugin {
    manifest: include_str!("echo/nitejar.plugin.json"),
    build: echo::plugin,
};

#[linkme::distributed_slice(BUILTIN_PLUGINS)]
static TELEGRAM: BuiltinPlugin = BuiltinPlugin {
    manifest: include_str!("telegram/nitejar.plugin.json"),
    build: telegram::plugin,
};

#[linkme::distributed_slice(BUILTIN_PLUGINS)]
static GITHUB: BuiltinPlugin = BuiltinPlugin {
    manifest: include_str!("github/nitejar.plugin.json"),
    build: github::plugin,
};

/// Makes sure this crate, and with it every built-in registration, is linked into the binary.
/// Returns how many built-ins this crate contributes.
pub fn link() -> usize {
    // Referring to a registration keeps the linker from discarding this crate's statics.
    let contributed = [&ECHO, &TELEGRAM, &GITHUB];
    contributed.len()
}
