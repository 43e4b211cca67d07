//! # nitejar-sdk
//!
//! What a Nitejar plugin author depends on.
//!
//! A plugin contributes **integrations** (channel types: webhook in, response out), **hook handlers**
//! on the nine events of a run, and **skills**. It is described with [`Plugin::builder`] — the Rust
//! counterpart of `definePlugin({ integrations, hooks, skills })` — and ships with a
//! `nitejar.plugin.json` manifest whose shape is [`manifest::Manifest`] and whose JSON Schema is
//! [`manifest::SCHEMA`].
//!
//! Two helpers most plugins reach for: [`config::Config`] reads the settings an operator gave the
//! plugin into a type of its own (unset settings take the defaults the manifest declares), and
//! [`webhook::HmacSignature`] checks a webhook's signature in constant time.
//!
//! Plugins run **in-process**. The [`Host`] services (HTTP, secrets, files, processes) are the
//! boundary at which the server enforces what a plugin declared; code that bypasses them is not
//! enforced. There is no hard sandbox.

pub mod abi;
pub mod config;
pub mod hooks;
pub mod host;
pub mod integration;
pub mod manifest;
pub mod plugin;
pub mod skill;
pub mod testing;
pub mod webhook;
mod wire;

pub use hooks::{FailPolicy, HookContext, HookEvent, HookName, HookOptions, HookResult};
pub use host::{Host, HostError, HttpRequest, HttpResponse, LogLevel};
pub use integration::{
    Integration, IntegrationDescriptor, IntegrationError, IntegrationInstance, WebhookParseResult,
    WebhookRequest,
};
pub use plugin::{Contributions, Plugin, PluginBuilder};
pub use skill::{SkillContribution, SkillSource};

/// The `serde_json` this SDK speaks, so a plugin needs no version of its own.
pub use serde_json;

/// The version of this SDK.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
