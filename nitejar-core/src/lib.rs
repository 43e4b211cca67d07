//! # nitejar-core
//!
//! The Nitejar engine, embeddable in any Rust program (it has no HTTP framework in it).
//!
//! - [`engine`]: one way to assemble the engine (database, receipts, gate, runtime, plugin
//!   manager) for any host;
//! - [`runtime`]: the set of active plugins and hook dispatch;
//! - [`plugin_meta`]: who a plugin is (id, version, origin, execution);
//! - [`registry`]: integrations, hook chains and skills of the active plugins, swapped atomically;
//! - [`hooks`]: the dispatcher (ordering, timeouts, budget, fail policies, mutation policies);
//! - [`host`]: the execution host (where plugin calls run, deadlines, cancellation);
//! - [`loader`]: third-party plugin libraries, loaded through the frozen ABI, in the server's
//!   process or in one of their own;
//! - [`manifest`]: a package's `nitejar.plugin.json`, validated, and its contributions checked
//!   against what the code exports;
//! - [`permissions`]: the permission gate behind the host services;
//! - [`plugin_config`]: the settings a plugin declares, and configs checked against them;
//! - [`plugin_logs`]: each plugin's capped log file (lifecycle actions, what it logs through the
//!   host);
//! - [`receipts`]: a record of every plugin action and where it goes (from `nitejar-store`);
//! - [`builtin`]: plugins compiled into the binary, registered through `linkme`;
//! - [`store`]: the database (SQLite or Postgres), migrations, the durable receipt sink and the
//!   change counters (from `nitejar-store`);
//! - [`crypto`]: encrypted integration config, byte-compatible with earlier releases (from
//!   `nitejar-store`);
//! - [`changes`]: the change feed a server follows the database by;
//! - [`integrations`]: integration rows created, changed and tested through their plugin;
//! - [`ingress`]: a webhook delivery → a work item handed to the runner;
//! - [`skills`]: one index of repo, plugin and admin skills; assignments; the `use_skill` tool;
//! - [`tool`]: what a tool is (spec, call context, output), below the runner and the skills;
//! - [`runner`]: the reference run that the hooks wrap (prompt, model, tools, delivery);
//! - [`install`]: packages from a path, an archive, an upload, npm or git: staged, unpacked under
//!   limits, digested, laid out as versions beside a `current` link;
//! - [`trust`]: trust modes, signatures, the allowlist and the consent text;
//! - [`lifecycle`]: the [`lifecycle::PluginManager`] — install, consent, enable, upgrade, rollback,
//!   uninstall, settings, boot and reconcile, what agents may do to plugins;
//! - [`sandbox`]: the kernel controls a plugin host process applies to itself (Landlock, seccomp,
//!   rlimits), and a probe of which ones the system offers.

pub use nitejar_packages::{install, manifest, plugin_config, trust};
pub use nitejar_store::{crypto, receipts, store};

pub mod builtin;
pub mod changes;
pub mod engine;
pub mod hooks;
pub mod host;
pub mod ingress;
pub mod integrations;
pub mod lifecycle;
pub mod loader;
pub mod permissions;
pub mod plugin_logs;
pub mod plugin_meta;
pub mod registry;
pub mod runner;
pub mod runtime;
pub mod sandbox;
pub mod skills;
pub mod tool;

/// The version of the running Nitejar engine, against which `engine.nitejar` ranges are checked.
pub const NITEJAR_VERSION: &str = env!("CARGO_PKG_VERSION");
