//! The frozen ABI between the host and a plugin loaded from a shared library.
//!
//! A third-party plugin is a `cdylib` that calls [`export_plugin!`](crate::export_plugin) once. What
//! crosses the library boundary is deliberately tiny and frozen for the whole of SDK ABI major
//! [`SDK_ABI_MAJOR`]; everything that may evolve travels as JSON, so a host of a later Nitejar
//! version keeps loading plugins built against this SDK major (`abi_stable` rejects a library that is
//! *older* than the host's interface the moment the host adds a field or a method, so nothing is ever
//! added here within a major).
//!
//! ```text
//! root module  PluginMod      abi_major() -> u32
//!                             manifest() -> RString                       the embedded nitejar.plugin.json
//!                             instantiate(host: HostBox, config_json: RStr)
//!                                 -> RResult<PluginBox, PluginError>
//! plugin       PluginObject   call(method: RStr, payload_json: RStr, ctx: CallCtx)
//!                                 -> RResult<RString, PluginError>
//!                             shutdown()
//! host         HostObject     log(level: u8, target: RStr, message: RStr)
//!                             is_cancelled(call_id: u64) -> bool
//!                             host_call(call_id: u64, method: RStr, payload_json: RStr)
//!                                 -> RResult<RString, RString>
//! ```
//!
//! `host_call` carries the id of the plugin call it belongs to, so the host applies that call's
//! deadline and cancellation and writes receipts with its context, also when the plugin calls back
//! from a thread of its own.
//!
//! # Plugin methods (`PluginObject::call`)
//!
//! A [`PluginError`] is reserved for failures of the call itself (unknown method, unreadable
//! payload, a panic); what a method answers, errors included, is JSON. Field names are those of the
//! serde types named here.
//!
//! | method | payload | answer |
//! |---|---|---|
//! | `describe` | `{}` | [`Description`]: `{"integrations":[IntegrationDescriptor…],"hooks":[{"hook":"tool.pre_exec","options":{"priority":0,"timeoutMs":1500,"failPolicy":"fail_open"}}…],"skills":[SkillContribution…]}` |
//! | `hook.<event>` e.g. `hook.tool.pre_exec` | [`HookCall`]: `{"event":{…payload of the event…},"handler":0,"work_item_id":"…"\|null,"job_id":…,"agent_id":…}`; `handler` is the index of the handler in `describe`'s `hooks`; hosts send the event first, as in a batch, but a plugin reads the fields in any order | a hook result: `{"action":"continue"}`, `{"action":"continue","changes":{…}}` or `{"action":"block","reason":"…"}` |
//! | `hooks.<event>` e.g. `hooks.tool.pre_exec` (a batch: consecutive handlers of the plugin in one call) | [`HookBatchCall`]: `{"event":{…},"handlers":[0,3,4],"budget_us":7999000,"work_item_id":…,"job_id":…,"agent_id":…}`; the event comes first; `budget_us` is what is left of the chain budget | [`HookBatchAnswer`]: `{"ns":[812,640],"changed":[1],"end":{"action":"block","reason":"…"},"changes":{…}}`: one duration (ns) per handler that ran, in order; positions of those that changed the payload; how the last one ended when not with `continue` (`block`, `panic` with `error`, `error`); the event's mutable fields after the changes (a patch, only when something changed) |
//! | `hooks.progress` | [`ProgressCall`]: `{"call_id":7}`, the id of a running `hooks.<event>` call | [`HookBatchAnswer`] of what that batch has done so far, with `"running_ns"`: how long the handler after them has been running (`null` when none runs or the call is not running) |
//! | `integration.<type>.validate_config` | [`ConfigCall`]: `{"config":{…}}` | [`Reply`] of `ConfigValidation` |
//! | `integration.<type>.parse_webhook` | [`ParseWebhookCall`]: `{"request":WebhookRequest,"instance":IntegrationInstance}` | [`Reply`] of `WebhookParseResult` |
//! | `integration.<type>.post_response` | [`PostResponseCall`]: `{"instance":…,"work_item_id":"…","content":"…","response_context":…\|null,"options":PostResponseOptions}` | [`Reply`] of `PostResponseResult` |
//! | `integration.<type>.acknowledge_receipt` | [`AcknowledgeCall`]: `{"instance":…,"response_context":…\|null}` | [`Reply`] of `null` |
//! | `integration.<type>.test_connection` | [`ConfigCall`]: `{"config":{…}}` | [`Reply`] of `ConnectionTest` |
//!
//! A [`Reply`] is `{"ok":<value>}` or `{"error":{"kind":"unauthorized","message":"…"}}` (an
//! `IntegrationError`).
//!
//! ## Batches of hook handlers
//!
//! A host calls consecutive handlers of one plugin with `hooks.<event>`: the payload crosses once
//! per plugin per chain, and each handler answers with its changes only — the plugin applies them
//! to its copy for the next handler and answers the changed fields once. Each handler keeps its
//! own rules, counted on the batch's clock from when the batch starts: its deadline is
//! `min(its timeout, budget_us left when it starts)` (what `Host::deadline` says, and host calls
//! after it fail with `timeout`); the batch stops after the first handler that blocks, panics (the
//! panic is caught around that handler; the outcomes before it stand) or answers after its
//! deadline (its change is not applied; the host judges it `timeout`), before a handler once the
//! budget is spent, and before a handler once the host cancelled the call. While a batch runs,
//! `hooks.progress` answers from the same clock, so a host that asks it gives up on a handler
//! exactly when the batch counts it late. A library built with an SDK from before batches answers
//! `unknown_method`; hosts then call its handlers one by one with `hook.<event>`.
//!
//! [`json`] writes the JSON that crosses the boundary (the same text as `serde_json`, faster on
//! long strings).
//!
//! # Host methods (`HostObject::host_call`)
//!
//! The error side is a `HostError` as JSON, e.g. `{"kind":"denied","permission":"network:evil.example:443","reason":"…"}`.
//!
//! | method | payload | answer |
//! |---|---|---|
//! | `http` | `HttpRequest` (`{"method","url","headers":[[k,v]…],"body":"<base64>","timeout_ms"}`) | `HttpResponse` (`{"status","headers","body":"<base64>"}`) |
//! | `secret` | [`SecretCall`]: `{"name":"…"}` | [`SecretValue`]: `{"value":"…"}` |
//! | `read_file` | [`PathCall`]: `{"path":"…"}` | [`FileContents`]: `{"contents":"<base64>"}` |
//! | `write_file` | [`WriteFileCall`]: `{"path":"…","contents":"<base64>"}` | `{}` |
//! | `spawn_process` | `ProcessRequest` | `ProcessOutput` |
//! | `deadline` | `{}` | [`Remaining`]: `{"remaining_ms":123\|null}` |
//!
//! Log levels are `0` trace, `1` debug, `2` info, `3` warn, `4` error.

// `#[sabi_trait]` expands to impls inside a `const _` block, which this newer lint flags.
#![allow(non_local_definitions)]

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, RResult, RStr, RString};
use abi_stable::{declare_root_module_statics, sabi_trait, StableAbi};

mod batch;
pub mod export;
pub mod json;
mod wire;

pub use wire::{
    batch_method, hook_method, AcknowledgeCall, BatchEnd, ConfigCall, Description, FileContents,
    HookBatchAnswer, HookBatchCall, HookCall, HookDescription, ParseWebhookCall, PathCall,
    PostResponseCall, ProgressCall, Remaining, Reply, SecretCall, SecretValue, WriteFileCall,
};

/// The major version of the plugin ABI this SDK speaks. A host loads only libraries built against
/// the same major; within a major nothing in this module changes.
pub const SDK_ABI_MAJOR: u32 = 1;

/// The version string the root module is exported under (`"<major>.0.0"`): `abi_stable` and the
/// loader both read the major from it before anything else in the library is touched.
pub const ABI_VERSION: &str = "1.0.0";

/// Why a plugin call failed as a call (rather than answering an error as JSON).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    /// One of [`PluginError::PANIC`], [`PluginError::UNKNOWN_METHOD`], [`PluginError::BAD_PAYLOAD`],
    /// [`PluginError::FAILED`]; a string so that a later SDK can add kinds without an ABI change.
    pub kind: RString,
    /// What happened, for the operator.
    pub message: RString,
}

impl PluginError {
    /// Plugin code panicked; the panic was caught at the boundary.
    pub const PANIC: &'static str = "panic";
    /// The plugin does not offer this method.
    pub const UNKNOWN_METHOD: &'static str = "unknown_method";
    /// The payload could not be read.
    pub const BAD_PAYLOAD: &'static str = "bad_payload";
    /// Anything else (a handler's error, a failed instantiation).
    pub const FAILED: &'static str = "failed";

    /// An error of this kind.
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        PluginError {
            kind: kind.into(),
            message: RString::from(message.into()),
        }
    }

    /// Whether this reports a caught panic.
    pub fn is_panic(&self) -> bool {
        self.kind.as_str() == Self::PANIC
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind.as_str() {
            Self::PANIC => write!(f, "panicked: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PluginError {}

/// What the host tells a plugin about one call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallCtx {
    /// Identifies the call in [`HostObject::host_call`] and [`HostObject::is_cancelled`].
    pub call_id: u64,
    /// Milliseconds left before the host gives up on the call; [`CallCtx::NO_DEADLINE`] for none.
    pub remaining_ms: u64,
}

impl CallCtx {
    /// The `remaining_ms` of a call without a deadline.
    pub const NO_DEADLINE: u64 = u64::MAX;
}

/// A plugin instance, as the host sees it. Implemented by the code [`export_plugin!`]
/// generates; calls may come from several host threads at once.
///
/// [`export_plugin!`]: crate::export_plugin
#[sabi_trait]
pub trait PluginObject: Send + Sync {
    /// Runs one method (see the module docs) and answers JSON.
    fn call(
        &self,
        method: RStr<'_>,
        payload_json: RStr<'_>,
        ctx: CallCtx,
    ) -> RResult<RString, PluginError>;

    /// The host stops calling this instance (disable, upgrade, shutdown). The library stays loaded.
    #[sabi(last_prefix_field)]
    fn shutdown(&self);
}

/// The host's services, as a plugin sees them. Implemented by the host.
#[sabi_trait]
pub trait HostObject: Send + Sync {
    /// Writes a line to the plugin's log.
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>);

    /// Whether the host has given up on the call (or it ended).
    fn is_cancelled(&self, call_id: u64) -> bool;

    /// Runs a host service for the call `call_id` (see the module docs). The error side is a
    /// `HostError` as JSON.
    #[sabi(last_prefix_field)]
    fn host_call(
        &self,
        call_id: u64,
        method: RStr<'_>,
        payload_json: RStr<'_>,
    ) -> RResult<RString, RString>;
}

/// An owned plugin instance behind the ABI.
pub type PluginBox = PluginObject_TO<'static, RBox<()>>;

/// An owned host object behind the ABI.
pub type HostBox = HostObject_TO<'static, RBox<()>>;

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// [`SDK_ABI_MAJOR`] of the SDK the library was built with.
    pub abi_major: extern "C" fn() -> u32,
    /// The `nitejar.plugin.json` the library was built with.
    pub manifest: extern "C" fn() -> RString,
    /// Creates an instance with the plugin's config (JSON; `null` or empty for none).
    #[sabi(last_prefix_field)]
    pub instantiate:
        extern "C" fn(host: HostBox, config_json: RStr<'_>) -> RResult<PluginBox, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "nitejar_plugin";
    const NAME: &'static str = "nitejar_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ABI_VERSION);
}

/// Log levels as numbers on the ABI.
pub fn level_to_u8(level: crate::LogLevel) -> u8 {
    match level {
        crate::LogLevel::Trace => 0,
        crate::LogLevel::Debug => 1,
        crate::LogLevel::Info => 2,
        crate::LogLevel::Warn => 3,
        crate::LogLevel::Error => 4,
    }
}

/// The log level of an ABI number (unknown numbers read as `info`).
pub fn level_from_u8(level: u8) -> crate::LogLevel {
    match level {
        0 => crate::LogLevel::Trace,
        1 => crate::LogLevel::Debug,
        3 => crate::LogLevel::Warn,
        4 => crate::LogLevel::Error,
        _ => crate::LogLevel::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_version_carries_the_major() {
        assert_eq!(
            ABI_VERSION.split('.').next(),
            Some(SDK_ABI_MAJOR.to_string().as_str())
        );
    }

    #[test]
    fn the_export_macro_names_the_symbol_abi_stable_looks_for() {
        assert_eq!(
            export::ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
