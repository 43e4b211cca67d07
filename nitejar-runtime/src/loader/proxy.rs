//! Both sides of a loaded plugin: the host object the library calls back into, and the proxies that
//! make the plugin object look like any other plugin to the registry.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use nitejar_sdk::abi::{
    level_from_u8, AcknowledgeCall, CallCtx, ConfigCall, Description, FileContents, HookCall,
    HostObject, HostObject_TO, ParseWebhookCall, PathCall, PluginBox, PluginError, PluginModRef,
    PostResponseCall, Remaining, Reply, SecretCall, SecretValue, WriteFileCall,
};
use nitejar_sdk::hooks::HookContext;
use nitejar_sdk::host::{HttpRequest, ProcessRequest};
use nitejar_sdk::integration::{
    ConfigValidation, ConnectionTest, IntegrationInstance, PostResponseOptions, PostResponseResult,
    WebhookParseResult, WebhookRequest,
};
use nitejar_sdk::{HookName, SkillContribution};
use nitejar_sdk::{Host, HostError, Integration, IntegrationDescriptor, IntegrationError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::isolated::parent::{ChildProcess, ServeHostCall};
use super::isolated::{Isolation, LoadRequest};
use super::LoadError;
use crate::hooks::{HookBatchCalls, HookContribution, JsonHookHandler};
use crate::host::inflight::InFlight;
use crate::host::{panic_message, CallScope, Cancellation, HostServices};
use crate::registry::{ActivePlugin, PluginMeta};

/// The calls of one plugin instance that are in progress, by call id. A handful at a time (the
/// plugin's call slots and its stuck calls): a list is faster than a hash map here.
#[derive(Default)]
struct CallTable {
    next: AtomicU64,
    calls: Mutex<Vec<(u64, CallScope)>>,
}

impl CallTable {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, CallScope)>> {
        // Whole entries only; a panic cannot leave the list half-written.
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: u64) -> Option<CallScope> {
        self.lock()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s.clone())
    }

    /// Whether call `id` was cancelled or has ended.
    fn is_cancelled(&self, id: u64) -> bool {
        self.lock()
            .iter()
            .find(|(i, _)| *i == id)
            .is_none_or(|(_, s)| s.is_cancelled())
    }

    fn insert(&self, id: u64, scope: CallScope) {
        self.lock().push((id, scope));
    }

    fn remove(&self, id: u64) {
        let mut calls = self.lock();
        if let Some(at) = calls.iter().position(|(i, _)| *i == id) {
            calls.swap_remove(at);
        }
    }
}

/// Removes a call from the table when the plugin's `call` returns.
struct Registered<'a> {
    table: &'a CallTable,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

/// The host object a library calls back into. A host call is looked up by its call id, so it gets
/// that call's deadline, cancellation and run context even from a thread the plugin started.
struct HostBridge {
    plugin: Arc<PluginMeta>,
    calls: Arc<CallTable>,
    services: Arc<dyn HostServices>,
    /// The plugin's in-flight marks: its call is counted out while the host serves it.
    marks: Option<InFlight>,
}

impl HostObject for HostBridge {
    fn log(&self, level: u8, target: RStr<'_>, message: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let text = if target.is_empty() {
                message.as_str().to_string()
            } else {
                format!("[{target}] {message}")
            };
            self.services.log(&self.plugin, level_from_u8(level), &text);
        }));
    }

    fn is_cancelled(&self, call_id: u64) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.calls.is_cancelled(call_id))).unwrap_or(true)
    }

    fn host_call(
        &self,
        call_id: u64,
        method: RStr<'_>,
        payload_json: RStr<'_>,
    ) -> RResult<RString, RString> {
        let _out = self.marks.as_ref().map(InFlight::step_out);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let scope = self.calls.get(call_id).ok_or(HostError::Cancelled)?;
            scope.enter(|| host_call_json(&scope, method.as_str(), payload_json.as_str()))
        }))
        .unwrap_or_else(|p| {
            Err(HostError::Failed(format!(
                "the host failed: {}",
                panic_message(p)
            )))
        });
        match result {
            Ok(text) => ROk(RString::from(text)),
            Err(e) => RErr(RString::from(
                serde_json::to_string(&e).unwrap_or_else(|_| e.to_string()),
            )),
        }
    }
}

fn read<T: DeserializeOwned>(method: &str, payload: &str) -> Result<T, HostError> {
    serde_json::from_str(payload)
        .map_err(|e| HostError::Failed(format!("could not read the `{method}` request: {e}")))
}

fn write<T: Serialize>(value: &T) -> Result<String, HostError> {
    serde_json::to_string(value)
        .map_err(|e| HostError::Failed(format!("could not write the answer: {e}")))
}

/// Runs one host method (see the table in [`nitejar_sdk::abi`]).
pub(super) fn host_call_json(
    host: &dyn Host,
    method: &str,
    payload: &str,
) -> Result<String, HostError> {
    match method {
        "http" => write(&host.http(&read::<HttpRequest>(method, payload)?)?),
        "secret" => {
            let call: SecretCall = read(method, payload)?;
            write(&SecretValue {
                value: host.secret(&call.name)?,
            })
        }
        "read_file" => {
            let call: PathCall = read(method, payload)?;
            write(&FileContents {
                contents: host.read_file(&call.path)?,
            })
        }
        "write_file" => {
            let call: WriteFileCall = read(method, payload)?;
            host.write_file(&call.path, &call.contents)?;
            Ok("{}".into())
        }
        "spawn_process" => write(&host.spawn_process(&read::<ProcessRequest>(method, payload)?)?),
        "deadline" => write(&Remaining {
            remaining_ms: host
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64),
        }),
        other => Err(HostError::Unavailable(format!(
            "this host offers no `{other}` service"
        ))),
    }
}

/// The host side of one plugin instance.
struct Core {
    meta: Arc<PluginMeta>,
    transport: Transport,
    calls: Arc<CallTable>,
    services: Arc<dyn HostServices>,
}

/// Where the plugin's code runs.
enum Transport {
    /// In this process. Every call into the library is marked in flight (see
    /// [`crate::host::inflight`]).
    Library {
        object: PluginBox,
        marks: Option<InFlight>,
    },
    /// In a process of its own.
    Process(Arc<ChildProcess>),
}

impl Core {
    /// Calls the plugin inside the current call scope (the execution host entered it), or, when
    /// called outside the execution host, in a scope with `host`'s deadline.
    fn call(
        &self,
        method: &str,
        payload: &str,
        host: Option<&dyn Host>,
    ) -> Result<String, PluginError> {
        self.call_as(self.next_id(), method, payload, host)
    }

    fn next_id(&self) -> u64 {
        self.calls.next.fetch_add(1, Ordering::Relaxed)
    }

    /// [`Core::call`] under an id the caller chose (see [`Core::next_id`]).
    fn call_as(
        &self,
        id: u64,
        method: &str,
        payload: &str,
        host: Option<&dyn Host>,
    ) -> Result<String, PluginError> {
        let scope = CallScope::current()
            .filter(|s| **s.plugin() == *self.meta)
            .unwrap_or_else(|| {
                CallScope::new(
                    self.meta.clone(),
                    host.and_then(|h| h.deadline()),
                    Cancellation::new(),
                    self.services.clone(),
                )
            });
        self.call_in(id, scope, method, payload)
    }

    /// Calls the plugin as call `id` in `scope`.
    fn call_in(
        &self,
        id: u64,
        scope: CallScope,
        method: &str,
        payload: &str,
    ) -> Result<String, PluginError> {
        let wait = scope.remaining();
        let remaining_ms = wait
            // Rounded up, so the plugin never believes its time is up before the host does.
            .map_or(CallCtx::NO_DEADLINE, |d| {
                d.as_micros().div_ceil(1000) as u64
            });
        self.calls.insert(id, scope);
        let _registered = Registered {
            table: &self.calls,
            id,
        };
        let ctx = CallCtx {
            call_id: id,
            remaining_ms,
        };
        match &self.transport {
            Transport::Library { object, marks } => {
                let _in = marks.as_ref().map(InFlight::enter);
                object
                    .call(RStr::from(method), RStr::from(payload), ctx)
                    .into_result()
                    .map(RString::into_string)
            }
            Transport::Process(process) => process.call(id, method, payload, remaining_ms, wait),
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        match &self.transport {
            // Tell the instance it is no longer used; the library itself stays loaded.
            Transport::Library { object, marks } => {
                let _in = marks.as_ref().map(InFlight::enter);
                let _ = catch_unwind(AssertUnwindSafe(|| object.shutdown()));
            }
            Transport::Process(process) => process.stop(),
        }
    }
}

/// A plugin instance created from a library, with what it contributes.
pub struct LibraryPlugin {
    core: Arc<Core>,
    description: Description,
}

impl LibraryPlugin {
    pub(super) fn instantiate(
        module: &PluginModRef,
        meta: Arc<PluginMeta>,
        config: &Value,
        services: Arc<dyn HostServices>,
        marks: Option<InFlight>,
    ) -> Result<Self, LoadError> {
        let calls = Arc::new(CallTable::default());
        let bridge = HostBridge {
            plugin: meta.clone(),
            calls: calls.clone(),
            services: services.clone(),
            marks: marks.clone(),
        };
        let host = HostObject_TO::from_value(bridge, TD_Opaque);
        let config_json = serde_json::to_string(config).unwrap_or_else(|_| "null".into());
        let object = (module.instantiate())(host, RStr::from(config_json.as_str()))
            .into_result()
            .map_err(|e| LoadError::Instantiate {
                plugin: meta.to_string(),
                message: e.to_string(),
            })?;
        let core = Arc::new(Core {
            meta: meta.clone(),
            transport: Transport::Library { object, marks },
            calls,
            services,
        });
        Self::describe(core)
    }

    /// Starts the plugin in a process of its own and asks it what it contributes.
    pub(super) fn spawn_isolated(
        meta: Arc<PluginMeta>,
        request: &LoadRequest,
        isolation: &Isolation,
        services: Arc<dyn HostServices>,
    ) -> Result<Self, LoadError> {
        let calls = Arc::new(CallTable::default());
        let table = calls.clone();
        let serve: Arc<ServeHostCall> = Arc::new(move |call_id, method, payload| {
            let scope = table.get(call_id).ok_or(HostError::Cancelled)?;
            scope.enter(|| host_call_json(&scope, method, payload))
        });
        let process = ChildProcess::start(
            meta.clone(),
            isolation.command.clone(),
            request,
            isolation.load_timeout,
            services.clone(),
            serve,
        )
        .map_err(|message| LoadError::Instantiate {
            plugin: meta.to_string(),
            message,
        })?;
        let core = Arc::new(Core {
            meta,
            transport: Transport::Process(process),
            calls,
            services,
        });
        Self::describe(core)
    }

    fn describe(core: Arc<Core>) -> Result<Self, LoadError> {
        let meta = core.meta.clone();
        let text = core
            .call("describe", "{}", None)
            .map_err(|e| LoadError::Describe {
                plugin: meta.to_string(),
                message: e.to_string(),
            })?;
        let description = serde_json::from_str(&text).map_err(|e| LoadError::Describe {
            plugin: meta.to_string(),
            message: format!("unreadable answer: {e}"),
        })?;
        Ok(LibraryPlugin { core, description })
    }

    /// Who the plugin is.
    pub fn meta(&self) -> &Arc<PluginMeta> {
        &self.core.meta
    }

    /// What the plugin said it contributes.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// Calls a plugin method directly (see [`nitejar_sdk::abi`] for the methods and their JSON).
    pub fn call(&self, method: &str, payload_json: &str) -> Result<String, PluginError> {
        self.core.call(method, payload_json, None)
    }

    /// The plugin as the registry takes it: integrations and hooks proxied over `call`, skills as
    /// described plus `file_skills` (skills the package provides as files).
    pub fn into_active(self, file_skills: Vec<SkillContribution>) -> ActivePlugin {
        let integrations: Vec<Arc<dyn Integration>> = self
            .description
            .integrations
            .iter()
            .map(|d| {
                Arc::new(LibraryIntegration {
                    core: self.core.clone(),
                    prefix: format!("integration.{}.", d.kind),
                    descriptor: d.clone(),
                }) as Arc<dyn Integration>
            })
            .collect();
        let batches: Arc<dyn HookBatchCalls> = Arc::new(LibraryBatches {
            core: self.core.clone(),
            refused: AtomicBool::new(false),
        });
        let hooks = self
            .description
            .hooks
            .iter()
            .enumerate()
            .map(|(index, h)| HookContribution::Json {
                hook: h.hook,
                options: h.options,
                handler: Arc::new(LibraryHook {
                    core: self.core.clone(),
                    method: format!("hook.{}", h.hook),
                    index,
                    batches: batches.clone(),
                }),
            })
            .collect();
        let mut skills = self.description.skills.clone();
        skills.extend(file_skills);
        ActivePlugin::from_parts(self.core.meta.clone(), integrations, hooks, skills)
    }
}

/// A hook handler of a library plugin.
struct LibraryHook {
    core: Arc<Core>,
    method: String,
    index: usize,
    batches: Arc<dyn HookBatchCalls>,
}

impl JsonHookHandler for LibraryHook {
    fn call(&self, ctx: &HookContext<'_>, payload_json: &str) -> Result<String, String> {
        let envelope = HookCall::encode(
            self.index,
            ctx.work_item_id,
            ctx.job_id,
            ctx.agent_id,
            payload_json,
        );
        self.core
            .call(&self.method, &envelope, Some(ctx.host))
            .map_err(|e| e.to_string())
    }

    fn batch(&self) -> Option<(&Arc<dyn HookBatchCalls>, usize)> {
        Some((&self.batches, self.index))
    }
}

/// The batch calls of one library plugin instance: `hooks.<event>` and `hooks.progress`.
struct LibraryBatches {
    core: Arc<Core>,
    /// Set once the plugin answered `unknown_method` to a batch: it was built with an SDK that
    /// came before them, and its handlers are called one by one.
    refused: AtomicBool,
}

impl HookBatchCalls for LibraryBatches {
    fn batches(&self) -> bool {
        !self.refused.load(Ordering::Relaxed)
    }

    fn call_id(&self) -> u64 {
        self.core.next_id()
    }

    fn call(
        &self,
        hook: HookName,
        call_id: u64,
        scope: CallScope,
        payload_json: &str,
    ) -> Result<Option<String>, String> {
        match self.core.call_in(
            call_id,
            scope,
            nitejar_sdk::abi::batch_method(hook),
            payload_json,
        ) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind.as_str() == PluginError::UNKNOWN_METHOD => {
                if !self.refused.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        plugin.id = %self.core.meta.id,
                        plugin.version = %self.core.meta.version,
                        "the plugin does not take batches of hook handlers (built with an earlier SDK); calling its handlers one by one"
                    );
                }
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn call_one(
        &self,
        hook: HookName,
        payload_json: &str,
        host: &dyn Host,
    ) -> Option<Result<String, String>> {
        Some(
            self.core
                .call(
                    nitejar_sdk::abi::hook_method(hook),
                    payload_json,
                    Some(host),
                )
                .map_err(|e| e.to_string()),
        )
    }

    fn progress(&self, call_id: u64) -> Result<String, String> {
        let payload = format!(r#"{{"call_id":{call_id}}}"#);
        self.core
            .call("hooks.progress", &payload, None)
            .map_err(|e| e.to_string())
    }
}

/// An integration of a library plugin.
struct LibraryIntegration {
    core: Arc<Core>,
    prefix: String,
    descriptor: IntegrationDescriptor,
}

impl LibraryIntegration {
    fn invoke<T: DeserializeOwned>(
        &self,
        op: &str,
        payload: &impl Serialize,
        host: Option<&dyn Host>,
    ) -> Result<T, IntegrationError> {
        let json = serde_json::to_string(payload)
            .map_err(|e| IntegrationError::Other(format!("could not encode `{op}`: {e}")))?;
        let method = format!("{}{op}", self.prefix);
        let text = self
            .core
            .call(&method, &json, host)
            .map_err(|e| IntegrationError::Other(format!("plugin `{}`: {e}", self.core.meta)))?;
        let reply: Reply<T> = serde_json::from_str(&text).map_err(|e| {
            IntegrationError::Other(format!(
                "plugin `{}` answered `{method}` unreadably: {e}",
                self.core.meta
            ))
        })?;
        reply.into()
    }
}

impl Integration for LibraryIntegration {
    fn descriptor(&self) -> IntegrationDescriptor {
        self.descriptor.clone()
    }

    fn validate_config(&self, config: &Value) -> ConfigValidation {
        let call = ConfigCall {
            config: config.clone(),
        };
        self.invoke("validate_config", &call, None)
            .unwrap_or_else(|e| ConfigValidation::invalid(vec![e.to_string()]))
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        instance: &IntegrationInstance,
        host: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        let call = ParseWebhookCall {
            request: request.clone(),
            instance: instance.clone(),
        };
        self.invoke("parse_webhook", &call, Some(host))
    }

    fn post_response(
        &self,
        instance: &IntegrationInstance,
        work_item_id: &str,
        content: &str,
        response_context: Option<&Value>,
        options: &PostResponseOptions,
        host: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        let call = PostResponseCall {
            instance: instance.clone(),
            work_item_id: work_item_id.into(),
            content: content.into(),
            response_context: response_context.cloned(),
            options: options.clone(),
        };
        self.invoke("post_response", &call, Some(host))
    }

    fn acknowledge_receipt(
        &self,
        instance: &IntegrationInstance,
        response_context: Option<&Value>,
        host: &dyn Host,
    ) -> Result<(), IntegrationError> {
        let call = AcknowledgeCall {
            instance: instance.clone(),
            response_context: response_context.cloned(),
        };
        self.invoke::<Option<Value>>("acknowledge_receipt", &call, Some(host))
            .map(|_| ())
    }

    fn test_connection(
        &self,
        config: &Value,
        host: &dyn Host,
    ) -> Result<ConnectionTest, IntegrationError> {
        let call = ConfigCall {
            config: config.clone(),
        };
        self.invoke("test_connection", &call, Some(host))
    }
}
