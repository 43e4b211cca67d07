//! Isolated execution: a plugin library in a process of its own.
//!
//! The same library (same frozen ABI, no rebuild) runs in `nitejar __plugin-host`, a child
//! process serving one plugin version over its standard streams (`frame`). The server's side
//! (`parent`) turns every call of the plugin — `describe`, integration calls, `hook.<event>`,
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
    /// The limits its process runs under.
    pub(crate) limits: ProcessLimits,
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

/// The resource limits of a plugin's own process, applied by the kernel (`RLIMIT_AS`,
/// `RLIMIT_CPU`). A process that passes one dies (the allocation that fails aborts it, or the
/// kernel sends `SIGXCPU`), leaves a `crashed` receipt naming it, and is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessLimits {
    /// Address space, in MiB (not resident memory: threads' stacks and allocator arenas count
    /// whole).
    pub memory_mib: u64,
    /// Processor time over the process's whole life, in seconds; a single call is bounded by its
    /// deadline long before.
    pub cpu_seconds: u64,
}

impl ProcessLimits {
    /// The allowed values of `memory_mib`: below 128 MiB the host process itself does not start
    /// reliably; the top is 1 TiB.
    pub const MEMORY_MIB: std::ops::RangeInclusive<u64> = 128..=1_048_576;
    /// The allowed values of `cpu_seconds`: ten seconds to a year.
    pub const CPU_SECONDS: std::ops::RangeInclusive<u64> = 10..=31_536_000;
}

impl Default for ProcessLimits {
    /// 1 GiB of address space, an hour of processor time.
    fn default() -> Self {
        ProcessLimits {
            memory_mib: 1024,
            cpu_seconds: 3600,
        }
    }
}

/// How a package is to be run isolated.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// The plugin host to start.
    pub command: PluginHostCommand,
    /// How long starting it and loading the library in it may take.
    pub load_timeout: Duration,
    /// The plugin's data directory (created if missing).
    pub data_dir: PathBuf,
    /// The limits its process runs under.
    pub limits: ProcessLimits,
}

/// Runs this process as a plugin host (the `__plugin-host` command); returns its exit code.
pub fn run_plugin_host() -> i32 {
    child::run()
}
