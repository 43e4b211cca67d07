//! The hook dispatcher: runs an event through its handlers.
//!
//! Rules (`docs/design.md`, *Hooks*):
//! - order: priority (high → low), then plugin id, then registration order;
//! - each handler sees the payload as the previous handlers left it;
//! - a handler gets `min(own timeout, what is left of the event's chain budget)`;
//! - outcomes: `ok`, `blocked`, `error` (including a contained panic), `timeout`, `skipped_budget`,
//!   `denied` (a change outside the event's mutation policy, or a block of an event that cannot be
//!   blocked; nothing of that answer is applied);
//! - `fail_open` continues past a failed handler; `fail_closed` blocks the event, including when the
//!   handler could not run at all because the budget was spent. Events that cannot be blocked
//!   (`*.post_*`) are never blocked;
//! - every outcome is a receipt, one per handler, with its own status and duration.
//!
//! # Where handlers run
//!
//! Inline handlers run on the caller's thread. A run of consecutive offloaded handlers is handed
//! to the execution host's executor in one hand-off (no blocking-pool round trip), and the caller
//! waits for each handler no longer than its deadline (the `offload` module says how it knows).
//! Offloaded handlers take one of their plugin's call slots; a handler the caller gave up on while
//! it was still running counts as stuck, and a plugin with too many stuck calls is quarantined (its
//! handlers answer `error` at once, and an `auto_disable` receipt records it; see
//! [`crate::host::ExecutionLimits`]). Handlers of plugins loaded from a library run inside their
//! [`CallScope`], through which the library's host calls find their call.
//!
//! # Library handlers cross the boundary once per plugin per chain
//!
//! Consecutive handlers of one library plugin (same execution policy) go in one `hooks.<event>`
//! call (the `batch` module): the payload is encoded once per chain — again only after a change —
//! and never copied into a request; the plugin reads it once, runs the handlers one after the
//! other on its copy, and answers one duration per handler and the changed fields once, never the
//! whole payload. Every handler is then judged here by the rules above, one receipt each. A
//! library handler alone in its run is one call either way and goes as `hook.<event>` (its
//! deadline is the call's: no progress to ask for). A library built with an SDK that does not
//! know `hooks.<event>` answers `unknown_method`; the plugin instance remembers it, and its
//! handlers are called one by one (`hook.<event>`) as before.
//!
//! ## Timeouts inside a batch
//!
//! The batch keeps each handler's clock: handler `k` gets `min(its timeout, what is left of the
//! budget)` from when it starts, on the batch's clock, and the batch stops after a handler that
//! answered late (its change is not applied; it is judged `timeout`), a block or a panic. A panic
//! is caught around that one handler: the outcomes before it stand and nothing runs again.
//!
//! - Inline, as for any inline handler, a late handler is judged when the batch returns, and the
//!   handlers after it go on in a new call (if the chain goes on).
//! - Offloaded, the caller cannot see handlers start, so it looks when the shortest timeout of the
//!   batch's handlers could have run out, and asks the plugin how far the batch got
//!   (`hooks.progress`, from another thread). The plugin answers from the same clock: the handler
//!   running, for how long, and the outcomes before it. If that handler is late, the caller judges
//!   it `timeout` on time, marks the call cancelled and stuck (call slots and quarantine as for any
//!   call), settles the outcomes before it and goes on after it in a fresh call — and the batch,
//!   which counts the same handler late, stops after it by itself: no handler runs twice. If not,
//!   the caller looks again when it could be. A plugin that cannot say within 50 ms has the first
//!   handler of the batch without an outcome judged `timeout`; however the plugin answers, the
//!   caller waits no longer than all the batch's handlers' timeouts together, or the budget.
//!
//! Batches move where the clock starts, not the rules: a batch is told the budget left when it is
//! sent (in whole microseconds, rounded down) and counts it from when it starts; a call slot
//! must come free within the first handler's time (else that handler is `timeout`, as before),
//! and the handlers are then timed from when the batch starts.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use nitejar_sdk::hooks::{
    HandlerFn, HookContext, HookEvent, HookOptions, HookRegistration, HookVisitor,
};
use nitejar_sdk::{FailPolicy, HookName};

use crate::host::{CallScope, ExecPolicy};
use crate::plugin_meta::PluginMeta;
use nitejar_store::receipts::ReceiptStatus;

mod batch;
mod chain;
mod fields;
mod judge;
mod offload;

pub(crate) use chain::{ChainRun, ChainSource};

/// The default budget of one event's whole chain.
pub const DEFAULT_CHAIN_BUDGET: Duration = Duration::from_millis(8000);

/// A hook handler that speaks JSON: the form in which handlers of plugins loaded from a library are
/// called. It receives the payload as JSON and answers a [`HookResult`](nitejar_sdk::HookResult)
/// as JSON (`{"action":"continue","changes":{…}}`); the changes are checked against the event's
/// mutation policy before anything is applied.
pub trait JsonHookHandler: Send + Sync + 'static {
    /// Calls the handler. An `Err` is the plugin's error message.
    fn call(&self, ctx: &HookContext<'_>, payload_json: &str) -> Result<String, String>;

    /// Where this handler can be called together with the other handlers of its plugin instance:
    /// the instance's batch calls and the handler's index among the instance's handlers. `None`
    /// (the default): only on its own.
    fn batch(&self) -> Option<(&Arc<dyn HookBatchCalls>, usize)> {
        None
    }
}

/// Several handlers of one plugin instance in one call: the `hooks.<event>` and `hooks.progress`
/// methods of the plugin ABI (see [`nitejar_sdk::abi`]). Implemented by the loader's proxies; the
/// dispatcher writes the payloads and judges the answers.
pub trait HookBatchCalls: Send + Sync + 'static {
    /// Whether batches are worth sending: `true` until the plugin answered that it does not know
    /// the method.
    fn batches(&self) -> bool;

    /// A fresh call id, under which a batch call can be asked about while it runs.
    fn call_id(&self) -> u64;

    /// Sends `hooks.<hook>` as call `call_id` in `scope` (its deadline is the chain budget's end;
    /// the plugin's host calls are checked against it and its cancellation). `Ok(None)` when the
    /// plugin does not offer the method; from then on [`HookBatchCalls::batches`] is `false`. An
    /// `Err` is the failure of the call itself (a panic outside any handler, an unreadable
    /// payload).
    fn call(
        &self,
        hook: HookName,
        call_id: u64,
        scope: CallScope,
        payload_json: &str,
    ) -> Result<Option<String>, String>;

    /// Asks how far the batch call `call_id` got (`hooks.progress`). Called from another thread
    /// while that call runs.
    fn progress(&self, call_id: u64) -> Result<String, String>;

    /// Sends `hook.<hook>`: one handler, with `payload_json` the whole payload of the call
    /// ([`nitejar_sdk::abi::HookCall`], framed like a batch's so that the chain's encoding of the
    /// event is not copied), in the current call scope or one with `host`'s deadline. `None`
    /// (the default): not offered; the handler's own [`JsonHookHandler::call`] is used.
    fn call_one(
        &self,
        hook: HookName,
        payload_json: &str,
        host: &dyn nitejar_sdk::Host,
    ) -> Option<Result<String, String>> {
        let _ = (hook, payload_json, host);
        None
    }
}

/// A handler as the dispatcher holds it.
#[derive(Clone)]
pub enum HandlerImpl<E: HookEvent> {
    /// A typed handler (built-ins, and plugins described with the SDK in this process).
    Typed(HandlerFn<E>),
    /// A JSON handler (plugins loaded from a library).
    Json(Arc<dyn JsonHookHandler>),
}

/// One registered handler of event `E`.
#[derive(Clone)]
pub struct HandlerEntry<E: HookEvent> {
    pub(crate) plugin: Arc<PluginMeta>,
    pub(crate) options: HookOptions,
    pub(crate) policy: ExecPolicy,
    pub(crate) handler: HandlerImpl<E>,
}

impl<E: HookEvent> HandlerEntry<E> {
    /// The plugin the handler belongs to.
    pub fn plugin(&self) -> &Arc<PluginMeta> {
        &self.plugin
    }
    /// Priority, timeout and fail policy.
    pub fn options(&self) -> HookOptions {
        self.options
    }
    /// Where it runs.
    pub fn policy(&self) -> ExecPolicy {
        self.policy
    }

    /// Its own timeout (before the budget caps it).
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.options.timeout_ms))
    }
}

/// A hook handler contributed by an active plugin, in either form.
#[derive(Clone)]
pub enum HookContribution {
    /// A typed handler from the SDK.
    Typed(HookRegistration),
    /// A JSON handler.
    Json {
        hook: HookName,
        options: HookOptions,
        handler: Arc<dyn JsonHookHandler>,
    },
}

impl HookContribution {
    /// The event it handles.
    pub fn hook(&self) -> HookName {
        match self {
            HookContribution::Typed(r) => r.hook(),
            HookContribution::Json { hook, .. } => *hook,
        }
    }
    /// Its options.
    pub fn options(&self) -> HookOptions {
        match self {
            HookContribution::Typed(r) => r.options(),
            HookContribution::Json { options, .. } => *options,
        }
    }
}

/// A summary of one registered handler, for listings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HookSummary {
    pub hook: HookName,
    pub plugin_id: String,
    pub plugin_version: String,
    pub priority: i32,
    pub timeout_ms: u32,
    pub fail_policy: FailPolicy,
    pub policy: ExecPolicy,
}

/// Every event's handler chain, sorted for dispatch. Immutable once built.
pub struct HookTable {
    // One `Vec<HandlerEntry<E>>` per event, indexed by `HookName::index`. `Any` keeps the public
    // dispatch bound down to `E: HookEvent`; the downcast is a type-id comparison.
    chains: [Box<dyn Any + Send + Sync>; 9],
    summaries: Vec<HookSummary>,
}

impl HookTable {
    /// The sorted chain of event `E`.
    pub fn chain<E: HookEvent>(&self) -> &[HandlerEntry<E>] {
        self.chains[E::NAME.index()]
            .downcast_ref::<Vec<HandlerEntry<E>>>()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every handler, event by event in lifecycle order and in dispatch order within an event.
    pub fn summaries(&self) -> &[HookSummary] {
        &self.summaries
    }

    /// How many handlers the event has.
    pub fn len(&self, hook: HookName) -> usize {
        self.summaries.iter().filter(|s| s.hook == hook).count()
    }
}

/// Collects handlers, then sorts them into a [`HookTable`].
pub(crate) struct HookTableBuilder {
    chains: [Box<dyn Any + Send + Sync>; 9],
}

macro_rules! per_event {
    ($mac:ident $(, $arg:expr)*) => {{
        use nitejar_sdk::hooks::*;
        [
            $mac!(WorkItemPreCreate $(, $arg)*),
            $mac!(WorkItemPostCreate $(, $arg)*),
            $mac!(RunPrePrompt $(, $arg)*),
            $mac!(ModelPreCall $(, $arg)*),
            $mac!(ModelPostCall $(, $arg)*),
            $mac!(ToolPreExec $(, $arg)*),
            $mac!(ToolPostExec $(, $arg)*),
            $mac!(ResponsePreDeliver $(, $arg)*),
            $mac!(ResponsePostDeliver $(, $arg)*),
        ]
    }};
}

macro_rules! empty_chain {
    ($ty:ident) => {
        Box::new(Vec::<HandlerEntry<$ty>>::new()) as Box<dyn Any + Send + Sync>
    };
}

impl HookTableBuilder {
    pub(crate) fn new() -> Self {
        HookTableBuilder {
            chains: per_event!(empty_chain),
        }
    }

    fn push<E: HookEvent>(&mut self, entry: HandlerEntry<E>) {
        if let Some(chain) = self.chains[E::NAME.index()].downcast_mut::<Vec<HandlerEntry<E>>>() {
            chain.push(entry);
        }
    }

    fn add_typed<E: HookEvent>(
        &mut self,
        plugin: &Arc<PluginMeta>,
        policy: ExecPolicy,
        reg: &HookRegistration,
    ) {
        if let Some(handler) = reg.handler::<E>() {
            self.push(HandlerEntry::<E> {
                plugin: plugin.clone(),
                options: reg.options(),
                policy,
                handler: HandlerImpl::Typed(handler),
            });
        }
    }

    fn add_json<E: HookEvent>(
        &mut self,
        plugin: &Arc<PluginMeta>,
        policy: ExecPolicy,
        options: HookOptions,
        handler: &Arc<dyn JsonHookHandler>,
    ) {
        self.push(HandlerEntry::<E> {
            plugin: plugin.clone(),
            options,
            policy,
            handler: HandlerImpl::Json(handler.clone()),
        });
    }

    /// Adds one contribution of `plugin`. Contributions of one plugin must be added in their
    /// registration order: that order breaks the last ties.
    pub(crate) fn add(
        &mut self,
        plugin: &Arc<PluginMeta>,
        policy: ExecPolicy,
        contribution: &HookContribution,
    ) {
        // The SDK's visitor picks the payload type, so an event a later SDK adds is routed
        // without a list of events here.
        struct Add<'a> {
            table: &'a mut HookTableBuilder,
            plugin: &'a Arc<PluginMeta>,
            policy: ExecPolicy,
            contribution: &'a HookContribution,
        }
        impl HookVisitor for Add<'_> {
            type Output = ();
            fn visit<E: HookEvent>(self) {
                match self.contribution {
                    HookContribution::Typed(reg) => {
                        self.table.add_typed::<E>(self.plugin, self.policy, reg)
                    }
                    HookContribution::Json {
                        options, handler, ..
                    } => self
                        .table
                        .add_json::<E>(self.plugin, self.policy, *options, handler),
                }
            }
        }
        contribution.hook().visit(Add {
            table: self,
            plugin,
            policy,
            contribution,
        });
    }

    pub(crate) fn build(mut self) -> HookTable {
        fn sort<E: HookEvent>(chains: &mut [Box<dyn Any + Send + Sync>; 9]) -> Vec<HookSummary> {
            let Some(chain) = chains[E::NAME.index()].downcast_mut::<Vec<HandlerEntry<E>>>() else {
                return Vec::new();
            };
            // Stable: entries of one plugin keep their registration order.
            chain.sort_by(|a, b| {
                b.options
                    .priority
                    .cmp(&a.options.priority)
                    .then_with(|| a.plugin.id.cmp(&b.plugin.id))
            });
            chain
                .iter()
                .map(|e| HookSummary {
                    hook: E::NAME,
                    plugin_id: e.plugin.id.to_string(),
                    plugin_version: e.plugin.version.to_string(),
                    priority: e.options.priority,
                    timeout_ms: e.options.timeout_ms,
                    fail_policy: e.options.fail_policy,
                    policy: e.policy,
                })
                .collect()
        }
        macro_rules! sort_one {
            ($ty:ident, $chains:expr) => {
                sort::<$ty>($chains)
            };
        }
        let summaries = per_event!(sort_one, &mut self.chains)
            .into_iter()
            .flatten()
            .collect();
        HookTable {
            chains: self.chains,
            summaries,
        }
    }
}

/// The run context of a dispatch: which work item, job and agent the event belongs to.
#[derive(Clone, Debug, Default)]
pub struct DispatchContext {
    pub work_item_id: Option<Arc<str>>,
    pub job_id: Option<Arc<str>>,
    pub agent_id: Option<Arc<str>>,
}

impl DispatchContext {
    /// A context for this work item.
    pub fn for_work_item(work_item_id: impl Into<Arc<str>>) -> Self {
        DispatchContext {
            work_item_id: Some(work_item_id.into()),
            ..Default::default()
        }
    }

    /// Adds the job and agent.
    pub fn with_job(mut self, job_id: impl Into<Arc<str>>, agent_id: impl Into<Arc<str>>) -> Self {
        self.job_id = Some(job_id.into());
        self.agent_id = Some(agent_id.into());
        self
    }
}

/// Which handler blocked an event, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedBy {
    pub plugin_id: Arc<str>,
    /// `blocked` when the handler chose to block; `error`, `timeout`, `denied` or `skipped_budget`
    /// when a `fail_closed` handler could not decide.
    pub status: ReceiptStatus,
    pub reason: String,
}

/// The result of dispatching an event.
#[derive(Clone, Debug)]
pub struct Dispatched<E> {
    /// The payload with every accepted change applied.
    pub payload: E,
    /// Set when the event was blocked.
    pub blocked: Option<BlockedBy>,
}

impl<E> Dispatched<E> {
    /// Whether the event was blocked.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }
}
