//! The runtime: the set of active plugins, the registry snapshot built from it, and hook dispatch.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use nitejar_runtime::hooks::DispatchContext;
//! use nitejar_store::receipts::MemorySink;
//! use nitejar_runtime::registry::{ActivePlugin, PluginMeta, PluginOrigin};
//! use nitejar_runtime::runtime::Runtime;
//! use nitejar_sdk::hooks::{ResponsePreDeliver, ResponsePreDeliverPatch};
//! use nitejar_sdk::{HookResult, Plugin};
//!
//! let sink = MemorySink::new();
//! let runtime = Runtime::builder().sink(sink.clone()).build();
//! let shout = Plugin::builder()
//!     .on(|_ctx, r: &ResponsePreDeliver| {
//!         HookResult::change(ResponsePreDeliverPatch::new().content(r.content.to_uppercase()))
//!     })
//!     .build();
//! let meta = PluginMeta::new("com.example.shout", "1.0.0", PluginOrigin::Builtin);
//! runtime.activate(ActivePlugin::from_plugin(meta, &shout)).unwrap();
//!
//! let mut reply = ResponsePreDeliver::default();
//! reply.content = "hi".into();
//! let out = runtime.dispatch(&DispatchContext::default(), reply).await;
//! assert_eq!(out.payload.content, "HI");
//! assert_eq!(sink.len(), 1);
//! # });
//! ```

use crate::builtin::BuiltinExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use nitejar_sdk::hooks::HookEvent;
use nitejar_sdk::{Host, Integration, IntegrationError};
use serde_json::{json, Map, Value};

use crate::builtin::{builtins, BuiltinError};
use crate::hooks::{ChainRun, DispatchContext, Dispatched, DEFAULT_CHAIN_BUDGET};
use crate::host::{
    CallOutcome, ExecPolicy, ExecutionHost, ExecutionLimits, HostServices, NoServices,
};
use crate::registry::{ActivePlugin, Registry, RegistryError};
use nitejar_store::receipts::{MemorySink, Receipt, ReceiptKind, ReceiptSink, ReceiptStatus};

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    sink: Arc<dyn ReceiptSink>,
    services: Arc<dyn HostServices>,
    chain_budget: Duration,
    limits: ExecutionLimits,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            sink: MemorySink::new(),
            services: Arc::new(NoServices),
            chain_budget: DEFAULT_CHAIN_BUDGET,
            limits: ExecutionLimits::default(),
        }
    }
}

impl RuntimeBuilder {
    /// Where receipts go (default: memory).
    pub fn sink(mut self, sink: Arc<dyn ReceiptSink>) -> Self {
        self.sink = sink;
        self
    }

    /// The host services behind every plugin call (default: none but logging).
    pub fn services(mut self, services: Arc<dyn HostServices>) -> Self {
        self.services = services;
        self
    }

    /// The budget of one event's whole handler chain (default 8000 ms).
    pub fn chain_budget(mut self, budget: Duration) -> Self {
        self.chain_budget = budget;
        self
    }

    /// Per-plugin limits of offloaded calls: concurrency bound and quarantine threshold (default 4
    /// and 3).
    pub fn limits(mut self, limits: ExecutionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Builds a runtime with no active plugin. Integration types of the linked built-ins are
    /// reserved from the start, whether or not the built-ins are activated.
    pub fn build(self) -> Runtime {
        let mut reserved = HashMap::new();
        for builtin in builtins() {
            if let (Ok(meta), plugin) = (builtin.meta(), (builtin.build)()) {
                for integration in plugin.integrations() {
                    reserved.insert(integration.descriptor().kind, meta.id.to_string());
                }
            }
        }
        let sink = self.sink;
        Runtime {
            registry: ArcSwap::from_pointee(Registry::empty()),
            active: Mutex::new(BTreeMap::new()),
            reserved_types: reserved,
            sink: sink.clone(),
            exec: ExecutionHost::new(self.services)
                .with_limits(self.limits)
                .with_sink(sink),
            chain_budget: self.chain_budget,
            changes: tokio::sync::watch::channel(0).0,
        }
    }
}

/// The plugin runtime: active plugins, their registry, hook dispatch and receipts.
pub struct Runtime {
    registry: ArcSwap<Registry>,
    // Held only by writers (activate/deactivate) while they build the next snapshot; dispatch never
    // touches it.
    active: Mutex<BTreeMap<Arc<str>, ActivePlugin>>,
    reserved_types: HashMap<String, String>,
    sink: Arc<dyn ReceiptSink>,
    exec: ExecutionHost,
    chain_budget: Duration,
    // Bumped after every registry swap; see `subscribe`.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Runtime {
    /// Starts building a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Activates every built-in linked into the binary. Returns the built-ins that could not be
    /// activated (the others are active).
    pub fn activate_builtins(&self) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        let mut plugins = Vec::new();
        for builtin in builtins() {
            match builtin.activate() {
                Ok(p) => plugins.push(p),
                Err(BuiltinError { id, problem }) => failed.push((id, problem)),
            }
        }
        for plugin in plugins {
            let id = plugin.meta().id.to_string();
            if let Err(e) = self.activate(plugin) {
                failed.push((id, e.to_string()));
            }
        }
        failed
    }

    /// Activates a plugin (or replaces the active version of it) and swaps in the new registry.
    /// On a conflict nothing changes.
    pub fn activate(&self, plugin: ActivePlugin) -> Result<(), RegistryError> {
        let mut active = self.lock_active();
        let id = plugin.meta().id.clone();
        let previous = active.insert(id.clone(), plugin);
        match Registry::build(active.values(), &self.reserved_types) {
            Ok(registry) => {
                self.registry.store(Arc::new(registry));
                self.changes.send_modify(|n| *n += 1);
                Ok(())
            }
            Err(e) => {
                match previous {
                    Some(p) => active.insert(id, p),
                    None => active.remove(&id),
                };
                Err(e)
            }
        }
    }

    /// Deactivates a plugin: its handlers, integrations and skills leave the registry at once.
    /// Returns whether it was active.
    pub fn deactivate(&self, id: &str) -> bool {
        let mut active = self.lock_active();
        if active.remove(id).is_none() {
            return false;
        }
        // Removing contributions cannot create a conflict.
        match Registry::build(active.values(), &self.reserved_types) {
            Ok(registry) => self.registry.store(Arc::new(registry)),
            Err(e) => tracing::error!("registry rebuild after deactivating `{id}` failed: {e}"),
        }
        self.changes.send_modify(|n| *n += 1);
        true
    }

    /// A receiver that sees a new value after every registry swap (activation or deactivation), for
    /// work that follows the set of active plugins (the skill service keeps its database rows in
    /// step this way). The value counts swaps; only its changes matter.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The current registry snapshot.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// Integration types owned by built-ins, with the owning built-in's id.
    pub fn reserved_types(&self) -> &HashMap<String, String> {
        &self.reserved_types
    }

    /// The receipt sink.
    pub fn sink(&self) -> &Arc<dyn ReceiptSink> {
        &self.sink
    }

    /// The execution host (for integration calls).
    pub fn exec(&self) -> &ExecutionHost {
        &self.exec
    }

    /// Calls an operation of the integration of type `kind` through the execution host (the
    /// plugin's policy, `timeout`, its call slots and quarantine) and records an `integration`
    /// receipt: `ok`, `error` (the integration's error, a panic, a quarantine) or `timeout`, with
    /// `{"type", "operation", "error"?}` as detail. Every answer the integration returns counts as
    /// `ok`; [`call_integration_judged`](Self::call_integration_judged) is the variant for answers
    /// that can report a failure themselves.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use nitejar_runtime::hooks::DispatchContext;
    /// use nitejar_runtime::runtime::{IntegrationCallError, Runtime};
    ///
    /// let runtime = Runtime::builder().build();
    /// let answer = runtime
    ///     .call_integration("nope", "test_connection", &DispatchContext::default(), Duration::from_secs(1),
    ///         |integration, host| integration.test_connection(&serde_json::json!({}), host))
    ///     .await;
    /// assert!(matches!(answer, Err(IntegrationCallError::UnknownType(_))));
    /// # });
    /// ```
    pub async fn call_integration<T, F>(
        &self,
        kind: &str,
        operation: &str,
        ctx: &DispatchContext,
        timeout: Duration,
        f: F,
    ) -> Result<T, IntegrationCallError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Integration, &dyn Host) -> Result<T, IntegrationError> + Send + 'static,
    {
        self.call_integration_judged(kind, operation, ctx, timeout, CallReceipt::new(), f)
            .await
    }

    /// [`call_integration`](Self::call_integration) for an operation whose answer can itself say
    /// that it failed, such as `post_response` answering
    /// `PostResponseResult { success: false, .. }`: the receipt's judge reads the answer, and an
    /// answer it finds wanting is recorded as `error`, with the judge's reason as `error` and its
    /// detail beside it. The answer is still returned as `Ok`: the caller decides what a failure
    /// means. The receipt's own detail (an attempt number, a key) is added to every outcome.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use nitejar_runtime::hooks::DispatchContext;
    /// use nitejar_runtime::runtime::{AnswerFailure, CallReceipt, Runtime};
    /// use nitejar_sdk::integration::ConnectionTest;
    ///
    /// // A connection test that answers `ok: false` did not pass, whatever the call itself did.
    /// fn judge(test: &ConnectionTest) -> Option<AnswerFailure> {
    ///     (!test.ok).then(|| AnswerFailure::new(test.error.clone().unwrap_or_default()))
    /// }
    /// let runtime = Runtime::builder().build();
    /// let receipt = CallReceipt::judged_by(judge).with_detail("requested_by", "admin");
    /// let answer = runtime
    ///     .call_integration_judged("nope", "test_connection", &DispatchContext::default(),
    ///         Duration::from_secs(1), receipt,
    ///         |integration, host| integration.test_connection(&serde_json::json!({}), host))
    ///     .await;
    /// assert!(answer.is_err(), "no plugin contributes the type `nope`");
    /// # });
    /// ```
    pub async fn call_integration_judged<T, F>(
        &self,
        kind: &str,
        operation: &str,
        ctx: &DispatchContext,
        timeout: Duration,
        receipt: CallReceipt<T>,
        f: F,
    ) -> Result<T, IntegrationCallError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Integration, &dyn Host) -> Result<T, IntegrationError> + Send + 'static,
    {
        self.call_with(None, kind, operation, ctx, timeout, receipt, false, f)
            .await
    }

    /// [`call_integration_judged`](Self::call_integration_judged) for an integration row that
    /// belongs to plugin `owner` (see [`crate::builtin::integration_owner`]): refused with
    /// [`IntegrationCallError::NotServed`] unless `owner` is the plugin that provides the type in the
    /// same registry snapshot the call uses.
    #[allow(clippy::too_many_arguments)]
    pub async fn call_owned_integration<T, F>(
        &self,
        owner: Option<&str>,
        kind: &str,
        operation: &str,
        ctx: &DispatchContext,
        timeout: Duration,
        receipt: CallReceipt<T>,
        f: F,
    ) -> Result<T, IntegrationCallError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Integration, &dyn Host) -> Result<T, IntegrationError> + Send + 'static,
    {
        self.call_with(
            Some(owner),
            kind,
            operation,
            ctx,
            timeout,
            receipt,
            false,
            f,
        )
        .await
    }

    /// `parse_webhook` of a delivery. A built-in's parse runs on the caller's thread: it reads the
    /// request and checks a signature, and never reaches the network or the disk through its host
    /// (which would block the thread); a third-party plugin's runs off the async workers like every
    /// other integration call. The hop saved is a large part of a delivery's cost under load.
    pub async fn parse_webhook(
        &self,
        owner: Option<&str>,
        kind: &str,
        ctx: &DispatchContext,
        timeout: Duration,
        request: nitejar_sdk::WebhookRequest,
        instance: nitejar_sdk::IntegrationInstance,
    ) -> Result<nitejar_sdk::WebhookParseResult, IntegrationCallError> {
        self.call_with(
            Some(owner),
            kind,
            "parse_webhook",
            ctx,
            timeout,
            CallReceipt::new(),
            true,
            move |i, host| i.parse_webhook(&request, &instance, host),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_with<T, F>(
        &self,
        owner: Option<Option<&str>>,
        kind: &str,
        operation: &str,
        ctx: &DispatchContext,
        timeout: Duration,
        receipt: CallReceipt<T>,
        builtin_inline: bool,
        f: F,
    ) -> Result<T, IntegrationCallError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Integration, &dyn Host) -> Result<T, IntegrationError> + Send + 'static,
    {
        let registry = self.registry.load_full();
        let entry = registry.integration(kind);
        if let Some(owner) = owner {
            let active = entry.map(|e| e.plugin.id.to_string());
            if owner.is_none() || active.as_deref() != owner {
                return Err(IntegrationCallError::NotServed {
                    kind: kind.to_string(),
                    owner: owner.map(str::to_string),
                    active,
                });
            }
        }
        let Some(entry) = entry else {
            return Err(IntegrationCallError::UnknownType(kind.to_string()));
        };
        let plugin = entry.plugin.clone();
        let integration = entry.integration.clone();
        let (outcome, waited) = self
            .exec
            .call_for(
                &plugin,
                // Integration calls do network I/O through the host, blocking their thread: they
                // run off the async workers, built-in or not — except the calls a built-in makes
                // without I/O (see `parse_webhook`).
                if builtin_inline && plugin.origin == crate::registry::PluginOrigin::Builtin {
                    ExecPolicy::Inline
                } else {
                    ExecPolicy::Offload
                },
                timeout,
                ctx.work_item_id.clone(),
                ctx.job_id.clone(),
                move |host| f(&*integration, host),
            )
            .await;
        let (status, result) = match outcome {
            CallOutcome::Done(Ok(v)) => (ReceiptStatus::Ok, Ok(v)),
            CallOutcome::Done(Err(e)) => {
                (ReceiptStatus::Error, Err(IntegrationCallError::Failed(e)))
            }
            CallOutcome::Panicked(message) => (
                ReceiptStatus::Error,
                Err(IntegrationCallError::Panicked(message)),
            ),
            CallOutcome::TimedOut => (
                ReceiptStatus::Timeout,
                Err(IntegrationCallError::Timeout(timeout.as_millis() as u64)),
            ),
            CallOutcome::Quarantined(message) => (
                ReceiptStatus::Error,
                Err(IntegrationCallError::Quarantined(message)),
            ),
        };
        let mut detail = receipt.detail;
        let status = match &result {
            Err(e) => {
                detail.insert("error".into(), json!(e.to_string()));
                detail.insert(ERROR_KIND.into(), json!(integration_error_kind(e)));
                status
            }
            Ok(answer) => match (receipt.judge)(answer) {
                None => status,
                Some(failure) => {
                    detail.extend(failure.detail);
                    detail.insert("error".into(), json!(failure.reason));
                    detail.insert(ERROR_KIND.into(), json!(ANSWERED_FAILURE));
                    ReceiptStatus::Error
                }
            },
        };
        // Last, so no caller's or judge's detail can overwrite what every integration receipt says
        // (metrics and the receipts page group by `operation`).
        detail.insert("type".into(), json!(kind));
        detail.insert("operation".into(), json!(operation));
        let mut receipt = Receipt::new(
            plugin.id.clone(),
            Some(plugin.version.clone()),
            ReceiptKind::Integration,
            status,
        )
        .with_execution_mode(plugin.execution)
        .with_detail(Value::Object(detail));
        receipt.work_item_id = ctx.work_item_id.clone();
        receipt.job_id = ctx.job_id.clone();
        receipt.duration_us = waited.as_micros() as u64;
        self.sink.submit(vec![receipt]).await;
        result
    }

    /// Runs event `E` through its handlers and records a receipt per handler.
    pub async fn dispatch<E: HookEvent>(&self, ctx: &DispatchContext, payload: E) -> Dispatched<E> {
        let registry = self.registry.load_full();
        if registry.hooks().chain::<E>().is_empty() {
            return Dispatched {
                payload,
                blocked: None,
            };
        }
        let run = ChainRun::<E> {
            chain: registry,
            ctx,
            exec: &self.exec,
            budget: self.chain_budget,
        };
        let (dispatched, receipts) = run.run(payload).await;
        self.sink.submit(receipts).await;
        dispatched
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, ActivePlugin>> {
        // The map is only replaced whole under this lock; a panic elsewhere cannot corrupt it.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the receipt of an integration call says beyond its outcome: detail of the caller's, and a
/// judge that reads the integration's answer (see [`Runtime::call_integration_judged`]).
pub struct CallReceipt<T> {
    detail: Map<String, Value>,
    judge: fn(&T) -> Option<AnswerFailure>,
}

impl<T> CallReceipt<T> {
    /// No added detail; every answer the integration returns is `ok`.
    pub fn new() -> Self {
        CallReceipt {
            detail: Map::new(),
            judge: |_| None,
        }
    }

    /// Answers for which `judge` gives a failure are recorded as `error`.
    pub fn judged_by(judge: fn(&T) -> Option<AnswerFailure>) -> Self {
        CallReceipt {
            judge,
            ..CallReceipt::new()
        }
    }

    /// Adds a field to the receipt's detail, whatever the outcome. `type` and `operation` are the
    /// runtime's and cannot be overwritten; `error` is replaced by the failure's, if there is one.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }
}

impl<T> Default for CallReceipt<T> {
    fn default() -> Self {
        CallReceipt::new()
    }
}

impl<T> std::fmt::Debug for CallReceipt<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallReceipt")
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

/// The detail key of a failed integration call's receipt that says how it failed (see
/// [`integration_error_kind`]).
pub const ERROR_KIND: &str = "errorKind";

/// `errorKind` of a call whose answer said it failed (see [`AnswerFailure`]).
pub const ANSWERED_FAILURE: &str = "answered_failure";

/// How an integration call failed, as its receipt's `errorKind` says: the kind of error the
/// integration returned (`unauthorized`, `bad_request`, `config`, `upstream`, `unsupported`,
/// `other`), or what happened to the call (`panicked`, `timeout`, `quarantined`, `not_served`).
pub fn integration_error_kind(e: &IntegrationCallError) -> &'static str {
    match e {
        IntegrationCallError::Failed(e) => match e {
            IntegrationError::Unauthorized(_) => "unauthorized",
            IntegrationError::BadRequest(_) => "bad_request",
            IntegrationError::Config(_) => "config",
            IntegrationError::Upstream(_) => "upstream",
            IntegrationError::Unsupported(_) => "unsupported",
            _ => "other",
        },
        IntegrationCallError::Panicked(_) => "panicked",
        IntegrationCallError::Timeout(_) => "timeout",
        IntegrationCallError::Quarantined(_) => "quarantined",
        _ => "not_served",
    }
}

/// Whether an integration call that failed this way (its `errorKind`) failed as working code
/// fails: it refused what it was given (a bad signature, an unreadable request, a config it
/// cannot use, an operation it does not offer) or its provider failed it. Such failures are the
/// sender's or the provider's, not the plugin's: the crash-loop guard does not count them, or
/// anyone able to reach a webhook URL could have a plugin disabled.
pub fn failed_by_design(error_kind: &str) -> bool {
    matches!(
        error_kind,
        "unauthorized" | "bad_request" | "config" | "upstream" | "unsupported" | ANSWERED_FAILURE
    )
}

/// Why a judge (see [`CallReceipt::judged_by`]) finds an answer wanting: the receipt's `error`, and
/// detail that helps an operator read it (whether it is worth retrying, …).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnswerFailure {
    /// What went wrong, in the integration's words.
    pub reason: String,
    /// Added to the receipt's detail; `type` and `operation` cannot be overwritten.
    pub detail: Map<String, Value>,
}

impl AnswerFailure {
    /// A failure with this reason and no further detail.
    pub fn new(reason: impl Into<String>) -> Self {
        AnswerFailure {
            reason: reason.into(),
            detail: Map::new(),
        }
    }

    /// Adds a field to the receipt's detail.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }
}

/// Why [`Runtime::call_integration`] has no answer from the integration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrationCallError {
    /// No active plugin contributes the type.
    #[error("no active plugin contributes integration type `{0}`")]
    UnknownType(String),
    /// The integration answered with an error.
    #[error(transparent)]
    Failed(IntegrationError),
    /// The integration's code panicked; the panic was contained.
    #[error("the integration panicked: {0}")]
    Panicked(String),
    /// It did not answer in time.
    #[error("the integration did not answer within {0} ms")]
    Timeout(u64),
    /// Its plugin is quarantined.
    #[error("{0}")]
    Quarantined(String),
    /// The integration belongs to another plugin than the one that provides its type now (or to
    /// none): its rows and secrets are not handed to whoever declares the same type name.
    #[error("{}", match (owner, active) {
        (Some(owner), Some(active)) => format!(
            "this `{kind}` integration belongs to plugin `{owner}`, which is not active; `{active}` \
             provides the type now but is not given this integration: enable `{owner}`, or move the \
             integration to `{active}` in the admin"
        ),
        (Some(owner), None) => format!(
            "this `{kind}` integration belongs to plugin `{owner}`, which is not active; enable it"
        ),
        (None, Some(active)) => format!(
            "this `{kind}` integration belongs to no plugin; give it to `{active}` in the admin \
             (that hands it the integration's configuration and secrets)"
        ),
        (None, None) => format!("no active plugin contributes integration type `{kind}`"),
    })]
    NotServed {
        /// The integration type.
        kind: String,
        /// The plugin the integration belongs to.
        owner: Option<String>,
        /// The plugin that provides the type now.
        active: Option<String>,
    },
}
