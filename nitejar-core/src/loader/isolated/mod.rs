//! Isolated execution: a plugin library in a process of its own.
//!
//! The same library (same frozen ABI, no rebuild) runs in `nitejar __plugin-host`, a child
//! process serving one plugin version over its standard streams ([`frame`]). The server's side
//! ([`parent`]) turns every call of the plugin — `describe`, integration calls, `hook.<event>`,
//! `hooks.<event>` batches and `hooks.progress` — into one frame and one answer; the plugin's
//! host calls come back as frames and run in the server through the call's scope, where the
//! permission gate, receipts and metrics live. A crash, a signal or a hang ends the plugin's
//! process, never the server's.

pub(crate) mod child;
pub(crate) mod frame;
pub(crate) mod parent;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use parent::PluginHostCommand;

/// What the plugin's process loads: sent as its first frame.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LoadRequest {
    /// The library, inside the version directory.
    pub(crate) library: PathBuf,
    /// The version directory.
    pub(crate) dir: PathBuf,
    /// The identity the library's embedded manifest must have.
    pub(crate) plugin_id: String,
    pub(crate) version: String,
    /// The plugin's config, as JSON.
    pub(crate) config: String,
    /// The plugin's data directory (read/write for it; created by the server).
    pub(crate) data_dir: PathBuf,
}

/// The kernel controls a plugin's process must hold before it loads the library: without any of
/// them the plugin does not start isolated (the load fails and names what is missing).
pub const REQUIRED_CONTROLS: &[crate::sandbox::Control] = &[
    crate::sandbox::Control::NoNewPrivs,
    crate::sandbox::Control::RlimitAs,
    crate::sandbox::Control::LandlockFs,
    crate::sandbox::Control::LandlockNet,
    crate::sandbox::Control::Seccomp,
];

/// The processor time a plugin's process may use over its whole life before the kernel stops it
/// (it is started again); a single call is bounded by its deadline long before.
pub const PROCESS_CPU_SECONDS: u64 = 3600;

/// How a package is to be run isolated.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// The plugin host to start.
    pub command: PluginHostCommand,
    /// How long starting it and loading the library in it may take.
    pub load_timeout: Duration,
    /// The plugin's data directory (created if missing).
    pub data_dir: PathBuf,
}

/// Runs this process as a plugin host (the `__plugin-host` command); returns its exit code.
pub fn run_plugin_host() -> i32 {
    child::run()
}
