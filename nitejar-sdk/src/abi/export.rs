//! The plugin side of the ABI: what [`export_plugin!`](crate::export_plugin) generates code for.
//!
//! Every entry point runs inside `catch_unwind`: a panic in plugin code becomes a
//! [`PluginError`] of kind `panic` carrying the message and its source location, never an unwind
//! across the boundary (which would end the server). The library's panic hook (each `cdylib` has its
//! own copy of `std`) is replaced by one that only remembers the message, so a panicking plugin does
//! not write to the server's stderr. A plugin built with `panic = "abort"` cannot be protected: it
//! takes the process down with it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

pub use abi_stable::library::LibHeader;
use abi_stable::library::{CheckTypeLayout, RootModuleResult};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use serde::de::DeserializeOwned;
use serde::Serialize;
pub use serde_json::Value;

use super::batch::{self, BatchHost, RunningBatches};
use super::wire::{
    AcknowledgeCall, ConfigCall, Description, FileContents, HookDescription, ParseWebhookCall,
    PathCall, PostResponseCall, Reply, SecretCall, SecretValue, WriteFileCall,
};
use super::{
    level_to_u8, CallCtx, HostBox, PluginBox, PluginError, PluginMod, PluginModRef, PluginObject,
    PluginObject_TO, SDK_ABI_MAJOR,
};
use crate::config::Config;
use crate::host::{ProcessOutput, ProcessRequest};
use crate::integration::Integration;
use crate::{HookName, Host, HostError, HttpRequest, HttpResponse, LogLevel, Plugin};

/// The symbol under which `abi_stable` looks for a library's root module. The macro spells it out
/// (a `macro_rules!` macro cannot compute an identifier); a test keeps it equal to abi_stable's.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Turns a typed plugin into a root module: a shared library calls
/// [`export_plugin!`](crate::export_plugin), which implements this for a hidden type.
pub trait PluginExport: 'static {
    /// The `nitejar.plugin.json` the library is built with.
    const MANIFEST: &'static str;
    /// Describes the plugin for this config.
    fn build(config: &Value) -> Result<Plugin, String>;
}

/// The forms of build function [`export_plugin!`](crate::export_plugin) accepts:
/// `fn() -> Plugin`, `fn(&Value) -> Plugin`, `fn(&Value) -> Result<Plugin, E>`,
/// `fn(&Config) -> Plugin` and `fn(&Config) -> Result<Plugin, E>` with `E: Display`.
/// `Marker` only tells the forms apart.
pub trait BuildFn<Marker> {
    /// Builds the plugin.
    fn build_plugin(&self, config: &Config) -> Result<Plugin, String>;
}

impl<F: Fn() -> Plugin> BuildFn<fn() -> Plugin> for F {
    fn build_plugin(&self, _config: &Config) -> Result<Plugin, String> {
        Ok(self())
    }
}

impl<F: Fn(&Value) -> Plugin> BuildFn<fn(&Value) -> Plugin> for F {
    fn build_plugin(&self, config: &Config) -> Result<Plugin, String> {
        Ok(self(config.raw()))
    }
}

impl<F, E> BuildFn<fn(&Value) -> Result<Plugin, E>> for F
where
    F: Fn(&Value) -> Result<Plugin, E>,
    E: Display,
{
    fn build_plugin(&self, config: &Config) -> Result<Plugin, String> {
        self(config.raw()).map_err(|e| e.to_string())
    }
}

impl<F: Fn(&Config) -> Plugin> BuildFn<fn(&Config) -> Plugin> for F {
    fn build_plugin(&self, config: &Config) -> Result<Plugin, String> {
        Ok(self(config))
    }
}

impl<F, E> BuildFn<fn(&Config) -> Result<Plugin, E>> for F
where
    F: Fn(&Config) -> Result<Plugin, E>,
    E: Display,
{
    fn build_plugin(&self, config: &Config) -> Result<Plugin, String> {
        self(config).map_err(|e| e.to_string())
    }
}

/// The settings `value` of the plugin whose manifest is `manifest`, with the defaults it
/// declares (used by [`export_plugin!`](crate::export_plugin)). A manifest that cannot be read
/// declares no defaults here; the host refuses to load such a library anyway.
pub fn config_for(manifest: &str, value: &Value) -> Config {
    Config::declared_in(manifest, value.clone()).unwrap_or_else(|_| Config::new(value.clone()))
}

/// The library header of a plugin whose root module is built by `P`.
pub const fn lib_header<P: PluginExport>() -> LibHeader {
    // SAFETY: `from_constructor::<M>` requires the constructor to return a type-erased
    // `PrefixRef` made from an `M`. `erased_root::<P>` is abi_stable's own
    // `__call_root_module_loader` over `root_module::<P>`, which returns a `PluginModRef` — the `M`
    // given here. This is what `#[export_root_module]` expands to; it is spelled out so that plugin
    // crates need no direct dependency on abi_stable.
    unsafe { LibHeader::from_constructor::<PluginModRef>(erased_root::<P>, CheckTypeLayout::Yes) }
}

extern "C" fn erased_root<P: PluginExport>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(root_module::<P>)
}

fn root_module<P: PluginExport>() -> PluginModRef {
    PluginMod {
        abi_major,
        manifest: manifest::<P>,
        instantiate: instantiate::<P>,
    }
    .leak_into_prefix()
}

extern "C" fn abi_major() -> u32 {
    SDK_ABI_MAJOR
}

extern "C" fn manifest<P: PluginExport>() -> RString {
    RString::from(P::MANIFEST)
}

extern "C" fn instantiate<P: PluginExport>(
    host: HostBox,
    config_json: RStr<'_>,
) -> RResult<PluginBox, PluginError> {
    install_panic_hook();
    let result = guard(|| {
        let text = config_json.as_str().trim();
        let config: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).map_err(|e| {
                PluginError::new(
                    PluginError::BAD_PAYLOAD,
                    format!("the plugin config is not JSON: {e}"),
                )
            })?
        };
        let plugin = P::build(&config).map_err(|e| {
            PluginError::new(
                PluginError::FAILED,
                format!("the plugin refused its config: {e}"),
            )
        })?;
        let instance = Instance::new(plugin, host, plugin_id_of(P::MANIFEST))?;
        Ok(PluginObject_TO::from_value(instance, TD_Opaque))
    });
    match result {
        Ok(b) => ROk(b),
        Err(e) => RErr(e),
    }
}

fn plugin_id_of(manifest: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(default)]
        id: String,
    }
    serde_json::from_str::<Id>(manifest)
        .map(|m| m.id)
        .unwrap_or_default()
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static PANIC_HOOK: Once = Once::new();

/// Replaces this library's panic hook with one that remembers the message and location for the
/// [`PluginError`] instead of printing it.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = payload_text(info.payload());
            let text = match info.location() {
                Some(l) => format!("{message} (at {}:{})", l.file(), l.line()),
                None => message,
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked with a non-string payload".to_string()
    }
}

/// The message and location of a panic just caught on this thread. The panic hook records them
/// at each panic, so what it recorded is this panic's.
pub(super) fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_else(|| payload_text(&*payload))
}

/// Runs `f`, turning a panic into a [`PluginError`] of kind `panic`.
fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
    // A panic resumed without the hook would otherwise find an older message.
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(PluginError::new(PluginError::PANIC, panic_text(payload))),
    }
}

/// One instance of a plugin behind the ABI.
struct Instance {
    plugin: Plugin,
    host: HostBox,
    plugin_id: String,
    description: String,
    integrations: HashMap<String, usize>,
    batches: RunningBatches,
    shut_down: AtomicBool,
}

impl Instance {
    fn new(plugin: Plugin, host: HostBox, plugin_id: String) -> Result<Self, PluginError> {
        let description = describe(&plugin);
        let integrations = description
            .integrations
            .iter()
            .enumerate()
            .map(|(i, d)| (d.kind.clone(), i))
            .collect();
        let description = serde_json::to_string(&description).map_err(|e| {
            PluginError::new(
                PluginError::FAILED,
                format!("could not describe the plugin: {e}"),
            )
        })?;
        Ok(Instance {
            plugin,
            host,
            plugin_id,
            description,
            integrations,
            batches: RunningBatches::default(),
            shut_down: AtomicBool::new(false),
        })
    }

    fn dispatch(&self, method: &str, payload: &str, ctx: CallCtx) -> Result<String, PluginError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(PluginError::new(
                PluginError::FAILED,
                "this plugin instance was shut down",
            ));
        }
        if method == "describe" {
            return Ok(self.description.clone());
        }
        if let Some(event) = method.strip_prefix("hooks.") {
            if event == "progress" {
                return self.batches.progress(payload);
            }
            let name: HookName = event.parse().map_err(|_| unknown(method))?;
            let host = BatchHost {
                plugin: &self.plugin,
                host: &self.host,
                plugin_id: &self.plugin_id,
                running: &self.batches,
            };
            return batch::run(&host, method, name, payload, ctx);
        }
        if let Some(event) = method.strip_prefix("hook.") {
            return self.hook(method, event, payload, ctx);
        }
        if let Some(rest) = method.strip_prefix("integration.") {
            return self.integration(method, rest, payload, ctx);
        }
        Err(unknown(method))
    }

    fn hook(
        &self,
        method: &str,
        event: &str,
        payload: &str,
        ctx: CallCtx,
    ) -> Result<String, PluginError> {
        let name: HookName = event.parse().map_err(|_| unknown(method))?;
        let host = BatchHost {
            plugin: &self.plugin,
            host: &self.host,
            plugin_id: &self.plugin_id,
            running: &self.batches,
        };
        batch::run_one(&host, method, name, payload, ctx)
    }

    fn integration(
        &self,
        method: &str,
        rest: &str,
        payload: &str,
        ctx: CallCtx,
    ) -> Result<String, PluginError> {
        let (kind, op) = rest.rsplit_once('.').ok_or_else(|| unknown(method))?;
        let integration: &dyn Integration = self
            .integrations
            .get(kind)
            .and_then(|&i| self.plugin.integrations().get(i))
            .map(|i| &**i)
            .ok_or_else(|| {
                PluginError::new(
                    PluginError::UNKNOWN_METHOD,
                    format!("this plugin has no integration of type `{kind}`"),
                )
            })?;
        let host = AbiHost::new(&self.host, ctx, method);
        match op {
            "validate_config" => {
                let call: ConfigCall = read(method, payload)?;
                answer(Reply::Ok(integration.validate_config(&call.config)))
            }
            "parse_webhook" => {
                let call: ParseWebhookCall = read(method, payload)?;
                answer(Reply::from(integration.parse_webhook(
                    &call.request,
                    &call.instance,
                    &host,
                )))
            }
            "post_response" => {
                let call: PostResponseCall = read(method, payload)?;
                answer(Reply::from(integration.post_response(
                    &call.instance,
                    &call.work_item_id,
                    &call.content,
                    call.response_context.as_ref(),
                    &call.options,
                    &host,
                )))
            }
            "acknowledge_receipt" => {
                let call: AcknowledgeCall = read(method, payload)?;
                answer(Reply::from(integration.acknowledge_receipt(
                    &call.instance,
                    call.response_context.as_ref(),
                    &host,
                )))
            }
            "test_connection" => {
                let call: ConfigCall = read(method, payload)?;
                answer(Reply::from(
                    integration.test_connection(&call.config, &host),
                ))
            }
            _ => Err(unknown(method)),
        }
    }
}

impl PluginObject for Instance {
    fn call(
        &self,
        method: RStr<'_>,
        payload_json: RStr<'_>,
        ctx: CallCtx,
    ) -> RResult<RString, PluginError> {
        match guard(|| self.dispatch(method.as_str(), payload_json.as_str(), ctx)) {
            Ok(text) => ROk(RString::from(text)),
            Err(e) => RErr(e),
        }
    }

    fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
    }
}

/// What a plugin contributes, in the form `describe` answers.
pub fn describe(plugin: &Plugin) -> Description {
    Description {
        integrations: plugin
            .integrations()
            .iter()
            .map(|i| i.descriptor())
            .collect(),
        hooks: plugin
            .hooks()
            .iter()
            .map(|h| HookDescription {
                hook: h.hook(),
                options: h.options(),
            })
            .collect(),
        skills: plugin.skills().to_vec(),
    }
}

fn unknown(method: &str) -> PluginError {
    PluginError::new(
        PluginError::UNKNOWN_METHOD,
        format!("this plugin does not offer `{method}`"),
    )
}

fn read<'a, T: serde::Deserialize<'a>>(method: &str, payload: &'a str) -> Result<T, PluginError> {
    serde_json::from_str(payload).map_err(|e| {
        PluginError::new(
            PluginError::BAD_PAYLOAD,
            format!("could not read the payload of `{method}`: {e}"),
        )
    })
}

fn answer<T: Serialize>(reply: Reply<T>) -> Result<String, PluginError> {
    serde_json::to_string(&reply).map_err(|e| {
        PluginError::new(
            PluginError::FAILED,
            format!("could not write the answer: {e}"),
        )
    })
}

/// The [`Host`] a plugin's code sees inside a library: every service is a `host_call` on the host
/// object, tagged with the call's id.
pub struct AbiHost<'a> {
    host: &'a HostBox,
    call_id: u64,
    deadline: Option<Instant>,
    target: &'a str,
}

impl<'a> AbiHost<'a> {
    pub(super) fn new(host: &'a HostBox, ctx: CallCtx, target: &'a str) -> Self {
        let deadline = (ctx.remaining_ms != CallCtx::NO_DEADLINE)
            .then(|| Instant::now().checked_add(Duration::from_millis(ctx.remaining_ms)))
            .flatten();
        Self::with_deadline(host, ctx.call_id, deadline, target)
    }

    /// The host of one handler of a batch: the call is the batch's, the deadline the handler's.
    pub(super) fn with_deadline(
        host: &'a HostBox,
        call_id: u64,
        deadline: Option<Instant>,
        target: &'a str,
    ) -> Self {
        AbiHost {
            host,
            call_id,
            deadline,
            target,
        }
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        payload: &impl Serialize,
    ) -> Result<T, HostError> {
        // The host checks the call's deadline too, but within a batch that is the batch's: each
        // handler's own is only known here.
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(HostError::Timeout);
        }
        let json = serde_json::to_string(payload)
            .map_err(|e| HostError::Failed(format!("could not encode `{method}`: {e}")))?;
        match self
            .host
            .host_call(self.call_id, RStr::from(method), RStr::from(json.as_str()))
        {
            ROk(text) => serde_json::from_str(&text).map_err(|e| {
                HostError::Failed(format!("unreadable answer from host `{method}`: {e}"))
            }),
            RErr(text) => Err(serde_json::from_str::<HostError>(&text)
                .unwrap_or_else(|_| HostError::Failed(text.into_string()))),
        }
    }
}

impl Host for AbiHost<'_> {
    fn http(&self, request: &HttpRequest) -> Result<HttpResponse, HostError> {
        self.call("http", request)
    }

    fn secret(&self, name: &str) -> Result<String, HostError> {
        let value: SecretValue = self.call("secret", &SecretCall { name: name.into() })?;
        Ok(value.value)
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, HostError> {
        let file: FileContents = self.call("read_file", &PathCall { path: path.into() })?;
        Ok(file.contents)
    }

    fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), HostError> {
        let _: Value = self.call(
            "write_file",
            &WriteFileCall {
                path: path.into(),
                contents: contents.to_vec(),
            },
        )?;
        Ok(())
    }

    fn spawn_process(&self, request: &ProcessRequest) -> Result<ProcessOutput, HostError> {
        self.call("spawn_process", request)
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.host.log(
            level_to_u8(level),
            RStr::from(self.target),
            RStr::from(message),
        );
    }

    fn is_cancelled(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d) || self.host.is_cancelled(self.call_id)
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// Exports a typed plugin from a `cdylib` as a Nitejar plugin library.
///
/// The argument is the function that describes the plugin, in one of these forms:
/// `fn() -> Plugin`; `fn(&Config) -> Plugin` or `fn(&Config) -> Result<Plugin, E>` with
/// `E: Display` (the plugin's settings, read into a type of its own with
/// [`Config::get`](crate::config::Config::get), unset keys taking the defaults the manifest
/// declares); or `fn(&serde_json::Value) -> Plugin` / `-> Result<Plugin, E>` (the settings as the
/// operator stored them; `null` when there are none). The library embeds the crate's
/// `nitejar.plugin.json` (next to its `Cargo.toml`); name another file with
/// `export_plugin!(plugin, manifest = include_str!("…"))`.
///
/// ```ignore
/// use nitejar_sdk::hooks::{HookOptions, HookResult, ToolPreExec};
/// use nitejar_sdk::Plugin;
///
/// fn plugin() -> Plugin {
///     Plugin::builder()
///         .hook(HookOptions::new().fail_closed(), |_ctx, call: &ToolPreExec| {
///             if call.tool_name == "shell" { HookResult::block("no shell") } else { HookResult::proceed() }
///         })
///         .build()
/// }
///
/// nitejar_sdk::export_plugin!(plugin);
/// ```
///
/// Call it once per library, at the crate root, in a crate with `crate-type = ["cdylib"]`.
#[macro_export]
macro_rules! export_plugin {
    ($build:expr $(,)?) => {
        $crate::export_plugin!(
            $build,
            manifest = ::core::include_str!(::core::concat!(
                ::core::env!("CARGO_MANIFEST_DIR"),
                "/nitejar.plugin.json"
            ))
        );
    };
    ($build:expr, manifest = $manifest:expr $(,)?) => {
        #[doc(hidden)]
        pub struct __NitejarPluginExport;

        impl $crate::abi::export::PluginExport for __NitejarPluginExport {
            const MANIFEST: &'static str = $manifest;
            fn build(
                config: &$crate::abi::export::Value,
            ) -> ::core::result::Result<$crate::Plugin, ::std::string::String> {
                $crate::abi::export::BuildFn::build_plugin(
                    &$build,
                    &$crate::abi::export::config_for(Self::MANIFEST, config),
                )
            }
        }

        /// The root module of this Nitejar plugin library (read by the host's loader).
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi::export::LibHeader =
            $crate::abi::export::lib_header::<__NitejarPluginExport>();
    };
}
