//! # nitejar-core
//!
//! The Nitejar engine, embeddable in any Rust program (it has no HTTP framework in it).
//!
//! Its own modules decide which plugins run and put the engine together:
//!
//! - [`engine`]: one way to assemble the engine (database, receipts, gate, runtime, plugin
//!   manager, change feed, agents) for any host;
//! - [`lifecycle`]: the [`lifecycle::PluginManager`] — install, consent, enable, upgrade, rollback,
//!   uninstall, settings, boot and reconcile, what agents may do to plugins;
//! - [`integrations`]: integration rows created, changed and tested through their plugin.
//!
//! The rest is re-exported from the crates below it, under the same names (so
//! `nitejar_core::hooks` and `nitejar_runtime::hooks` are one thing):
//!
//! - from `nitejar-runtime`, how plugin code runs: [`runtime`] (the active set and hook dispatch),
//!   [`plugin_meta`], [`registry`], [`hooks`] (the dispatcher), [`host`] (where plugin calls run,
//!   deadlines, cancellation), [`loader`] (plugin libraries through the frozen ABI, in the server's
//!   process or in one of their own), [`permissions`] (the gate behind host services),
//!   [`plugin_logs`], [`builtin`] (plugins registered through `linkme`), [`sandbox`] (the kernel
//!   controls a plugin host process applies to itself);
//! - from `nitejar-agent`, what answers a message: [`ingress`] (a webhook delivery → a work item),
//!   [`tool`], [`skills`], [`runner`] (the reference run the hooks wrap, and the run queue);
//! - from `nitejar-packages`, what a package is and how it arrives: [`manifest`],
//!   [`plugin_config`], [`install`], [`trust`] (trust modes, signatures, the allowlist, consent);
//! - from `nitejar-store`, what Nitejar keeps: [`store`] (SQLite or Postgres, migrations, the
//!   durable receipt sink, the change counters), [`crypto`] (encrypted config, byte-compatible with
//!   earlier releases), [`receipts`], [`changes`] (the change feed a server follows the database
//!   by).

pub use nitejar_agent::{ingress, runner, skills, tool};
pub use nitejar_packages::{install, manifest, plugin_config, trust};
pub use nitejar_runtime::{
    builtin, hooks, host, loader, permissions, plugin_logs, plugin_meta, registry, runtime, sandbox,
};
pub use nitejar_store::{changes, crypto, receipts, store};

pub mod engine;
pub mod integrations;
pub mod lifecycle;

/// The version of the running Nitejar engine, against which `engine.nitejar` ranges are checked.
pub const NITEJAR_VERSION: &str = env!("CARGO_PKG_VERSION");
