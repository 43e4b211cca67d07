//! Kernel controls for a plugin host process: what an isolated plugin is held to by the kernel
//! rather than by the host boundary.
//!
//! A plugin run in isolated mode lives in a child process of its own. Right after it starts, and
//! **before it loads the plugin library**, that process calls [`Sandbox::apply`] with a
//! [`SandboxPolicy`]; from then on the kernel refuses what the policy does not allow, to the plugin
//! and to the host code in that process alike, and nothing can lift it again. [`Sandbox::probe`]
//! says beforehand which of these controls the running kernel (and container) offers, so the
//! server can refuse to start a plugin isolated, or say exactly which control is absent.
//!
//! # Claims match enforcement
//!
//! Every control is a [`Control`] with a stable machine name. [`Sandbox::apply`] takes the controls
//! the caller cannot do without: when one of them is unavailable it fails before changing anything
//! and names each missing control. Any other unavailable control is left out and listed as
//! [`Enforcement::Absent`] in the [`AppliedReport`], with the reason; a control that is available is
//! either applied, or the call fails (an error part-way leaves the process partly restricted: exit
//! it). The values in the report (limits, Landlock ABI, filter count, capabilities) are read back
//! from the kernel after applying, not copied from the policy.
//!
//! # The controls, in the order they are applied
//!
//! | control | stops | does not stop |
//! | --- | --- | --- |
//! | `no_new_privs` | gaining privileges through `execve` (set-uid binaries, file capabilities); it is also what lets an unprivileged process install Landlock and seccomp | anything else on its own |
//! | `rlimit_as` | growing the address space past the limit: the allocation fails (a Rust allocation failure aborts the process with `SIGABRT`) | using memory up to the limit; address space is not resident memory, so thread stacks and allocator arenas count although they are mostly unused |
//! | `rlimit_cpu` | burning more CPU time than the limit: `SIGXCPU` at the limit, `SIGKILL` one second later for a process that catches it | burning CPU up to the limit. The count is **cumulative over the process's life** (all threads, since the process started), not per call: a plugin host that serves for long is killed when it has used its budget, and is restarted like any crash |
//! | `rlimit_nofile` | holding more open descriptors than the limit | opening descriptors up to it |
//! | `rlimit_core` | core dumps (set to 0), which would hold the plugin's memory, secrets included | — |
//! | `landlock_fs` | opening, listing, creating, writing, truncating, renaming or removing anything outside the roots; writing under a read-only root; executing any file | reading everything under the read-only roots (the plugin's version directory, and the directories of the shared libraries the process has loaded: a plugin can read those libraries); `stat`, `readlink`, `chdir` and the like, which Landlock does not control (a plugin can learn which paths exist); descriptors opened before the sandbox (the socket to the parent) |
//! | `landlock_net` | TCP `bind` and `connect` on any port | UDP and raw sockets, which Landlock does not cover before ABI 10: `seccomp` refuses creating them |
//! | `landlock_scope` | signals to processes outside the sandbox (the server's, for one), connecting to abstract Unix sockets created outside it | signals within the sandbox |
//! | `seccomp` | the system calls below, refused with an error the plugin can report | every other system call; CPU and memory use (see the limits) |
//! | `capabilities` | privileged operations of a host running as root: every capability is dropped (effective, permitted, inheritable, ambient, and the bounding set where the process may change it) | the process's own user and group ids: it keeps the file access of that user, inside the roots |
//!
//! ## The seccomp filter
//!
//! Refused with `EPERM` ([`refused_syscalls`] lists them, with the reason for each):
//!
//! - `socket` for **every** address family. The plugin reaches the outside only through the host
//!   services, forwarded to the server over a descriptor the process was started with, so it needs
//!   no new socket. `AF_UNIX` is refused too: a plugin that could create one could connect to any
//!   Unix socket it can name (a database's, a container engine's), which Landlock does not control
//!   before ABI 9. `socketpair` stays allowed: a connected pair inside the process reaches nothing.
//! - `execve`, `execveat`; `fork`, `vfork`; `clone` without `CLONE_THREAD` (a new process) or with
//!   a namespace flag. Spawning goes through the host's process service.
//! - `ptrace`, `process_vm_readv`, `process_vm_writev`, `pidfd_getfd`: touching another process.
//! - `mount`, `umount2`, `pivot_root`, the new mount API (`open_tree`, `move_mount`, `fsopen`,
//!   `fsconfig`, `fsmount`, `fspick`, `mount_setattr`), `unshare`, `setns`: changing what the
//!   process sees of the system.
//! - `bpf`, `perf_event_open`, `keyctl`, `add_key`, `request_key`: large kernel attack surfaces
//!   no plugin needs.
//! - `io_uring_setup`, `io_uring_enter`, `io_uring_register`: io_uring performs socket, connect
//!   and open operations without the system calls a seccomp filter sees.
//! - `setrlimit`, and `prlimit64` with a new limit: the limits above stay as applied.
//!
//! Refused with `ENOSYS`, as a kernel without them would:
//!
//! - `clone3`: its flags sit in memory a seccomp filter cannot read, so it cannot tell a thread
//!   from a process. glibc (2.34 and later) falls back to `clone` on `ENOSYS`, where threads are
//!   told apart by `CLONE_THREAD`: `std::thread::spawn` keeps working.
//! - on x86-64, every system call of the x32 ABI (numbers with bit 30 set), which would otherwise
//!   reach `socket` or `execve` under numbers the filter does not list.
//!
//! A system call made under another architecture's convention (32-bit `int 0x80` on x86-64) kills
//! the process. Everything else is allowed: this is a list of refusals, not of permissions, so
//! that ordinary Rust code (threads, timers, files inside the roots, `epoll`, `futex`,
//! `getrandom`) runs unchanged.
//!
//! # Using it
//!
//! ```no_run
//! use nitejar_runtime::sandbox::{Control, Sandbox, SandboxPolicy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // First thing in the plugin host process, while it has a single thread.
//! let policy = SandboxPolicy::for_plugin(
//!     "/app/data/plugins/com.example.hello/versions/1.0.0",
//!     "/app/data/plugins/com.example.hello/data",
//! )?;
//! let report = Sandbox::apply(&policy, &Control::ALL)?;
//! println!("{}", serde_json::to_string(&report)?);
//! // ... now load the plugin library and serve calls.
//! # Ok(())
//! # }
//! ```
//!
//! `apply` must run before the process starts a second thread: Landlock, seccomp and capabilities
//! are per thread (inherited by threads created afterwards), so a thread started earlier would
//! escape them. It refuses a process with more than one thread.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

#[cfg(target_os = "linux")]
mod apply;
#[cfg(target_os = "linux")]
mod libraries;
#[cfg(target_os = "linux")]
mod probe;
#[cfg(target_os = "linux")]
mod ruleset;
#[cfg(target_os = "linux")]
mod seccomp;

#[cfg(target_os = "linux")]
pub use libraries::runtime_library_roots;
#[cfg(target_os = "linux")]
pub use seccomp::refused_syscalls;

/// One kernel control, by its stable machine name (`landlock_fs`, `seccomp`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// `PR_SET_NO_NEW_PRIVS`: no privileges gained through `execve`.
    NoNewPrivs,
    /// `RLIMIT_AS`: the address-space (memory) limit.
    RlimitAs,
    /// `RLIMIT_CPU`: the CPU-time limit (cumulative over the process's life).
    RlimitCpu,
    /// `RLIMIT_NOFILE`: the open-descriptor limit.
    RlimitNofile,
    /// `RLIMIT_CORE` = 0: no core dumps.
    RlimitCore,
    /// Landlock filesystem rules (ABI 3 or later: truncation is controlled too).
    LandlockFs,
    /// Landlock TCP rules (ABI 4 or later): no TCP bind or connect.
    LandlockNet,
    /// Landlock scopes (ABI 6 or later): no signals or abstract Unix sockets outside the sandbox.
    LandlockScope,
    /// The seccomp filter of [`refused_syscalls`].
    Seccomp,
    /// Every capability dropped.
    Capabilities,
}

impl Control {
    /// Every control, in the order [`Sandbox::apply`] applies them.
    pub const ALL: [Control; 10] = [
        Control::NoNewPrivs,
        Control::RlimitAs,
        Control::RlimitCpu,
        Control::RlimitNofile,
        Control::RlimitCore,
        Control::LandlockFs,
        Control::LandlockNet,
        Control::LandlockScope,
        Control::Seccomp,
        Control::Capabilities,
    ];

    /// The stable machine name, as serialized.
    pub fn name(self) -> &'static str {
        match self {
            Control::NoNewPrivs => "no_new_privs",
            Control::RlimitAs => "rlimit_as",
            Control::RlimitCpu => "rlimit_cpu",
            Control::RlimitNofile => "rlimit_nofile",
            Control::RlimitCore => "rlimit_core",
            Control::LandlockFs => "landlock_fs",
            Control::LandlockNet => "landlock_net",
            Control::LandlockScope => "landlock_scope",
            Control::Seccomp => "seccomp",
            Control::Capabilities => "capabilities",
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the sandboxed process may reach over the network by itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Nothing: no socket of any family, no TCP bind or connect. The plugin reaches out only
    /// through the host services, over the descriptor its process was started with.
    #[default]
    None,
}

/// What [`Sandbox::apply`] enforces.
///
/// Process creation is always refused (spawning goes through the host's process service), so it
/// has no field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxPolicy {
    /// Readable (files and directory listings), never writable: the plugin's version directory and
    /// the shared libraries the process needs. A root may be a directory or a single file.
    pub read_only: Vec<PathBuf>,
    /// Readable and writable: the plugin's data directory.
    pub read_write: Vec<PathBuf>,
    /// Direct network access.
    pub network: Network,
    /// `RLIMIT_AS`, in bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_CPU` soft limit, in seconds (the hard limit is one second more).
    pub cpu_seconds: u64,
    /// `RLIMIT_NOFILE`.
    pub max_open_files: u64,
}

impl SandboxPolicy {
    /// Default `RLIMIT_AS`: 1 GiB of address space. Address space, not resident memory: a
    /// multi-threaded Rust process reserves much more than it touches (8 MiB per thread stack, up
    /// to 64 MiB per glibc allocator arena).
    pub const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;
    /// Default `RLIMIT_CPU`: ten minutes of CPU time over the process's life.
    pub const DEFAULT_CPU_SECONDS: u64 = 600;
    /// Default `RLIMIT_NOFILE`.
    pub const DEFAULT_MAX_OPEN_FILES: u64 = 256;

    /// The policy of a plugin host: `version_dir` read-only, `data_dir` read-write, the shared
    /// libraries this process has loaded read-only ([`runtime_library_roots`]), no network, the
    /// default limits. Call it in the process that will apply it (or one running the same binary).
    /// Both directories must exist when the policy is applied.
    pub fn for_plugin(
        version_dir: impl Into<PathBuf>,
        data_dir: impl Into<PathBuf>,
    ) -> Result<Self, SandboxError> {
        #[cfg(target_os = "linux")]
        let libraries = runtime_library_roots().map_err(|source| SandboxError::Root {
            path: PathBuf::from("/proc/self/maps"),
            source,
        })?;
        #[cfg(not(target_os = "linux"))]
        let libraries = Vec::new();
        Ok(SandboxPolicy {
            read_only: std::iter::once(version_dir.into())
                .chain(libraries)
                .collect(),
            read_write: vec![data_dir.into()],
            network: Network::None,
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            cpu_seconds: Self::DEFAULT_CPU_SECONDS,
            max_open_files: Self::DEFAULT_MAX_OPEN_FILES,
        })
    }
}

/// Which controls the running kernel and container offer ([`Sandbox::probe`]).
///
/// Serialized as `{"landlock_abi": 7, "controls": {"landlock_fs": {"available": true, "detail":
/// "..."}, ...}}`, every [`Control`] present. For the server's posture copy and its decision to
/// start a plugin isolated or not; [`Sandbox::apply`] probes again itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxSupport {
    /// The Landlock ABI version the kernel offers, when it offers Landlock.
    pub landlock_abi: Option<u32>,
    /// Every control, with whether it is available and why (not).
    pub controls: BTreeMap<Control, Availability>,
}

/// Whether one control is available, and the facts behind the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// The control can be applied here.
    pub available: bool,
    /// What it covers here, or why it is unavailable.
    pub detail: String,
}

impl SandboxSupport {
    /// Every control unavailable, for the same reason.
    pub fn none(reason: &str) -> Self {
        SandboxSupport {
            landlock_abi: None,
            controls: Control::ALL
                .iter()
                .map(|&c| {
                    (
                        c,
                        Availability {
                            available: false,
                            detail: reason.to_string(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Whether `control` is available.
    pub fn is_available(&self, control: Control) -> bool {
        self.controls.get(&control).is_some_and(|a| a.available)
    }

    /// The controls of `required` that are unavailable, each with the reason.
    pub fn missing(&self, required: &[Control]) -> Vec<MissingControl> {
        let mut missing: Vec<MissingControl> = Vec::new();
        for &control in required {
            if self.is_available(control) || missing.iter().any(|m| m.control == control) {
                continue;
            }
            let reason = self
                .controls
                .get(&control)
                .map(|a| a.detail.clone())
                .unwrap_or_else(|| "not probed".into());
            missing.push(MissingControl { control, reason });
        }
        missing
    }
}

/// A required control the kernel does not offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingControl {
    /// The control.
    pub control: Control,
    /// Why it is unavailable.
    pub reason: String,
}

impl fmt::Display for MissingControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.control, self.reason)
    }
}

/// What [`Sandbox::apply`] achieved, read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedReport {
    /// The Landlock ABI the rules were written for (`None` without Landlock).
    pub landlock_abi: Option<u32>,
    /// Every control: enforced, or absent and why.
    pub controls: BTreeMap<Control, ControlState>,
    /// The resource limits in force afterwards, read back with `getrlimit`.
    pub limits: AppliedLimits,
    /// The read-only roots given to Landlock (empty without `landlock_fs`).
    pub read_only: Vec<PathBuf>,
    /// The read-write roots given to Landlock (empty without `landlock_fs`).
    pub read_write: Vec<PathBuf>,
}

/// One control after [`Sandbox::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlState {
    /// Enforced or absent.
    pub state: Enforcement,
    /// What holds (enforced), or why it is absent.
    pub detail: String,
}

/// Whether a control holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// The kernel enforces it from now on.
    Enforced,
    /// Not applied: the kernel does not offer it (and it was not required).
    Absent,
}

/// Resource limits after [`Sandbox::apply`] (`None` = unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedLimits {
    /// `RLIMIT_AS`, bytes.
    pub memory_bytes: Option<u64>,
    /// `RLIMIT_CPU` soft limit (`SIGXCPU`), seconds.
    pub cpu_seconds: Option<u64>,
    /// `RLIMIT_CPU` hard limit (`SIGKILL`), seconds.
    pub cpu_kill_seconds: Option<u64>,
    /// `RLIMIT_NOFILE` soft limit.
    pub open_files: Option<u64>,
    /// `RLIMIT_CORE` soft limit, bytes.
    pub core_bytes: Option<u64>,
}

impl AppliedReport {
    /// Whether `control` is enforced.
    pub fn is_enforced(&self, control: Control) -> bool {
        self.controls
            .get(&control)
            .is_some_and(|s| s.state == Enforcement::Enforced)
    }

    /// The controls not enforced.
    pub fn absent(&self) -> Vec<Control> {
        self.controls
            .iter()
            .filter(|(_, s)| s.state == Enforcement::Absent)
            .map(|(&c, _)| c)
            .collect()
    }
}

/// Why [`Sandbox::apply`] (or [`SandboxPolicy::for_plugin`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A required control is not offered by this kernel or container; nothing was changed.
    #[error(
        "isolated execution needs kernel controls this system does not offer: {}; nothing was \
         applied (run on a kernel and container that offer them, or do not require them)",
        list(.missing)
    )]
    Unavailable {
        /// Each missing control, with the reason.
        missing: Vec<MissingControl>,
    },
    /// The process already runs more than one thread; nothing was changed.
    #[error(
        "the sandbox must be applied while the process has a single thread, and it has {threads}: \
         apply it first thing in the plugin host, before starting any thread or runtime"
    )]
    Threads {
        /// Threads found in `/proc/self/task`.
        threads: usize,
    },
    /// A root of the policy (or a file read to build it) could not be opened; nothing was changed.
    #[error("sandbox root {}: {source}", path.display())]
    Root {
        /// The path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// An available control could not be prepared (its ruleset or filter not built); nothing was
    /// changed.
    #[error("{control} could not be prepared: {message}; nothing was applied")]
    Prepare {
        /// The control.
        control: Control,
        /// What failed.
        message: String,
    },
    /// The policy cannot be expressed (e.g. a limit of zero); nothing was changed.
    #[error("invalid sandbox policy: {0}")]
    Policy(String),
    /// Applying an available control failed: the process may be partly restricted and should exit.
    #[error(
        "{control} could not be applied: {message}; the process is partly restricted and must exit"
    )]
    Apply {
        /// The control.
        control: Control,
        /// What the kernel answered.
        message: String,
    },
    /// Not Linux: no kernel control is available.
    #[error("kernel sandboxing is only available on Linux")]
    Unsupported,
}

fn list(missing: &[MissingControl]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kernel controls of a plugin host process. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox;

impl Sandbox {
    /// Which controls this kernel and container offer. Changes nothing in the process.
    pub fn probe() -> SandboxSupport {
        #[cfg(target_os = "linux")]
        {
            probe::probe()
        }
        #[cfg(not(target_os = "linux"))]
        {
            SandboxSupport::none("kernel sandboxing is only available on Linux")
        }
    }

    /// Applies `policy` to the calling process, for good, in the order of [`Control::ALL`].
    ///
    /// Fails before changing anything when a control of `required` is unavailable (naming each),
    /// when the process has more than one thread, or when a root cannot be opened. Unavailable
    /// controls not in `required` are reported [`Enforcement::Absent`].
    pub fn apply(
        policy: &SandboxPolicy,
        required: &[Control],
    ) -> Result<AppliedReport, SandboxError> {
        #[cfg(target_os = "linux")]
        {
            apply::apply(policy, required)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (policy, required);
            Err(SandboxError::Unsupported)
        }
    }
}

#[cfg(test)]
mod tests;
