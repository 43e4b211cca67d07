//! # nitejar-agent
//!
//! What happens to a message, on top of the plugin runtime (`nitejar-core` re-exports these
//! modules under the same names, so `nitejar_agent::runner::…` and `nitejar_agent::runner::…` are
//! one thing):
//!
//! - [`ingress`]: a webhook delivery → a work item handed to the runner;
//! - [`tool`]: what a tool is (spec, call context, output), below the runner and the skills;
//! - [`skills`]: one index of repo, plugin and admin skills; assignments; the `use_skill` tool;
//! - [`runner`]: the reference run that the hooks wrap (prompt, model, tools, delivery), and the
//!   durable run queue.
//!
//! It does not manage plugins: what is active comes from the runtime it is given, and the
//! lifecycle (`nitejar-core`) decides that.

pub mod ingress;
pub mod runner;
pub mod skills;
pub mod tool;
