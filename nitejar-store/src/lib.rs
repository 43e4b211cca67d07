//! # nitejar-store
//!
//! What Nitejar keeps, below the engine (`nitejar-core` re-exports these modules under the same
//! names, so `nitejar_core::store::…` and `nitejar_store::store::…` are one thing):
//!
//! - [`store`]: the database (SQLite or Postgres, one logical schema in `migrations/`), its
//!   migrations, adoption of an earlier release's file, the durable receipt sink, and the change
//!   counters every server follows ([`store::Topic`]);
//! - [`crypto`]: encrypted integration config and plugin secrets, byte-compatible with earlier
//!   releases;
//! - [`receipts`]: what a receipt is, and where receipts go;
//! - [`changes`]: the change feed a server follows the database by (the counters as last read,
//!   and caches kept under them).
//!
//! It depends on the SDK and nothing else of Nitejar: the engine's code (plugins, hooks, runs)
//! builds on top of it, and a change there does not rebuild it.

pub mod changes;
pub mod crypto;
pub mod receipts;
pub mod store;
