//! # nitejar-runtime
//!
//! How plugin code runs inside Nitejar, below the agent and the lifecycle (`nitejar-core`
//! re-exports these modules under the same names, so `nitejar_runtime::hooks::…` and
//! `nitejar_runtime::hooks::…` are one thing):
//!
//! - [`runtime`]: the set of active plugins and hook dispatch;
//! - [`plugin_meta`]: who a plugin is (id, version, origin, execution);
//! - [`registry`]: integrations, hook chains and skills of the active plugins, swapped atomically;
//! - [`hooks`]: the dispatcher (ordering, timeouts, budget, fail policies, mutation policies);
//! - [`host`]: the execution host (where plugin calls run, deadlines, cancellation);
//! - [`loader`]: third-party plugin libraries, loaded through the frozen ABI, in the server's
//!   process or in one of their own;
//! - [`permissions`]: the permission gate behind the host services;
//! - [`plugin_logs`]: each plugin's capped log file (lifecycle actions, what it logs through the
//!   host);
//! - [`builtin`]: plugins compiled into the binary, registered through `linkme`;
//! - [`sandbox`]: the kernel controls a plugin host process applies to itself (Landlock, seccomp,
//!   rlimits), and a probe of which ones the system offers.
//!
//! It knows nothing of agents, runs or the database's rows beyond receipts: the agent side
//! (`nitejar-agent`) and the lifecycle (`nitejar-core`) build on it.

pub mod builtin;
pub mod hooks;
pub mod host;
pub mod loader;
pub mod permissions;
pub mod plugin_logs;
pub mod plugin_meta;
pub mod registry;
pub mod runtime;
pub mod sandbox;
