//! The hook dispatcher: runs an event through its handlers.
//!
//! Rules (DESIGN section 5):
//! - order: priority (high → low), then plugin id, then registration order;
//! - each handler sees the payload as the previous handlers left it;
//! - a handler gets `min(own timeout, what is left of the event's chain budget)`;
//! - outcomes: `ok`, `blocked`, `error` (including a contained panic), `timeout`, `skipped_budget`,
//!   `denied` (a change outside the event's mutation policy, or a block of an event that cannot be
//!   blocked; nothing of that answer is applied);
//! - `fail_open` continues past a failed handler; `fail_closed` blocks the event, including when the
//!   handler could not run at all because the budget was spent. Events that cannot be blocked
//!   (`*.post_*`) are never blocked;
//! - every outcome is a receipt.
//!
//! Inline handlers run on the caller's thread; a run of consecutive offloaded handlers is sent to the
//! blocking pool in one hop, and the caller waits for each handler no longer than its deadline.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_sdk::hooks::{HandlerFn, HookContext, HookEvent, HookOptions, HookRegistration};
use nitejar_sdk::{FailPolicy, HookName, HookResult};
use serde_json::{json, Value};

use crate::host::{panic_message, CallHost, Cancellation, ExecPolicy, HostServices};
use crate::receipts::{now_ms, ExecutionMode, Receipt, ReceiptKind, ReceiptStatus};
use crate::registry::PluginMeta;

/// The default budget of one event's whole chain.
pub const DEFAULT_CHAIN_BUDGET: Duration = Duration::from_millis(8000);

/// A hook handler that speaks JSON: the form in which handlers of plugins loaded from a library are
/// called. It receives the payload as JSON and answers a [`HookResult`] as JSON
/// (`{"action":"continue","changes":{…}}`); the changes are checked against the event's mutation
/// policy before anything is applied.
pub trait JsonHookHandler: Send + Sync + 'static {
    /// Calls the handler. An `Err` is the plugin's error message.
    fn call(&self, ctx: &HookContext<'_>, payload_json: &str) -> Result<String, String>;
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
        use nitejar_sdk::hooks::*;
        macro_rules! route {
            ($hook:expr, $call:ident $(, $arg:expr)*) => {
                match $hook {
                    HookName::WorkItemPreCreate => self.$call::<WorkItemPreCreate>($($arg),*),
                    HookName::WorkItemPostCreate => self.$call::<WorkItemPostCreate>($($arg),*),
                    HookName::RunPrePrompt => self.$call::<RunPrePrompt>($($arg),*),
                    HookName::ModelPreCall => self.$call::<ModelPreCall>($($arg),*),
                    HookName::ModelPostCall => self.$call::<ModelPostCall>($($arg),*),
                    HookName::ToolPreExec => self.$call::<ToolPreExec>($($arg),*),
                    HookName::ToolPostExec => self.$call::<ToolPostExec>($($arg),*),
                    HookName::ResponsePreDeliver => self.$call::<ResponsePreDeliver>($($arg),*),
                    HookName::ResponsePostDeliver => self.$call::<ResponsePostDeliver>($($arg),*),
                }
            };
        }
        match contribution {
            HookContribution::Typed(reg) => route!(reg.hook(), add_typed, plugin, policy, reg),
            HookContribution::Json {
                hook,
                options,
                handler,
            } => route!(*hook, add_json, plugin, policy, *options, handler),
        }
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

/// What a handler answered, before the dispatcher judged it.
enum Answer<P> {
    Result(HookResult<P>),
    Error(String),
    Denied(String),
}

/// The dispatcher's judgement of one handler call.
struct Judged<P> {
    status: ReceiptStatus,
    detail: Option<Value>,
    change: Option<P>,
    /// Set when this call blocks the event.
    block: Option<String>,
}

impl<P> Judged<P> {
    fn stops_chain(&self) -> bool {
        self.block.is_some()
    }
}

fn judge<E: HookEvent>(
    options: &HookOptions,
    answer: Answer<E::Patch>,
    timed_out: Option<Duration>,
) -> Judged<E::Patch> {
    let fail = |status: ReceiptStatus, detail: Value, reason: String| Judged {
        status,
        detail: Some(detail),
        change: None,
        block: (options.fail_policy == FailPolicy::FailClosed && E::CAN_BLOCK).then_some(reason),
    };
    if let Some(timeout) = timed_out {
        let ms = (timeout.as_micros() as u64).div_ceil(1000);
        return fail(
            ReceiptStatus::Timeout,
            json!({ "timeout_ms": ms }),
            format!("handler did not answer within {ms} ms"),
        );
    }
    match answer {
        Answer::Result(HookResult::Continue) => Judged {
            status: ReceiptStatus::Ok,
            detail: None,
            change: None,
            block: None,
        },
        Answer::Result(HookResult::Change(p)) => Judged {
            status: ReceiptStatus::Ok,
            detail: None,
            change: Some(p),
            block: None,
        },
        Answer::Result(HookResult::Block(reason)) if E::CAN_BLOCK => Judged {
            status: ReceiptStatus::Blocked,
            detail: Some(json!({ "reason": reason })),
            change: None,
            block: Some(reason),
        },
        Answer::Result(HookResult::Block(reason)) => {
            let msg = format!("`{}` cannot be blocked", E::NAME);
            fail(
                ReceiptStatus::Denied,
                json!({ "reason": msg, "requested_block": reason }),
                msg.clone(),
            )
        }
        Answer::Error(e) => fail(
            ReceiptStatus::Error,
            json!({ "error": e }),
            format!("handler failed: {e}"),
        ),
        Answer::Denied(reason) => fail(
            ReceiptStatus::Denied,
            json!({ "reason": reason, "mutable_fields": E::MUTABLE_FIELDS }),
            format!("handler's change was refused: {reason}"),
        ),
    }
}

fn call_handler<E: HookEvent>(
    handler: &HandlerImpl<E>,
    ctx: &HookContext<'_>,
    payload: &E,
    json_cache: &mut Option<String>,
) -> Answer<E::Patch> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match handler {
        HandlerImpl::Typed(f) => Answer::Result(f(ctx, payload)),
        HandlerImpl::Json(h) => {
            if json_cache.is_none() {
                match serde_json::to_string(payload) {
                    Ok(s) => *json_cache = Some(s),
                    Err(e) => return Answer::Error(format!("could not encode the payload: {e}")),
                }
            }
            let payload_json = json_cache.as_deref().unwrap_or("null");
            match h.call(ctx, payload_json) {
                Err(e) => Answer::Error(e),
                Ok(text) => read_json_answer::<E>(&text),
            }
        }
    }));
    match run {
        Ok(answer) => answer,
        Err(p) => Answer::Error(format!("panicked: {}", panic_message(p))),
    }
}

fn read_json_answer<E: HookEvent>(text: &str) -> Answer<E::Patch> {
    let raw: HookResult<Value> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return Answer::Error(format!("answered with an unreadable hook result: {e}")),
    };
    match raw {
        HookResult::Continue => Answer::Result(HookResult::Continue),
        HookResult::Block(r) => Answer::Result(HookResult::Block(r)),
        HookResult::Change(changes) => match serde_json::from_value::<E::Patch>(changes) {
            Ok(p) => Answer::Result(HookResult::Change(p)),
            Err(e) => Answer::Denied(format!(
                "{e}; `{}` allows changes to: {}",
                E::NAME,
                if E::MUTABLE_FIELDS.is_empty() {
                    "nothing".to_string()
                } else {
                    E::MUTABLE_FIELDS.join(", ")
                }
            )),
        },
    }
}

/// Runs one event through a chain. Owns everything a dispatch needs so that a run of offloaded
/// handlers can be moved to the blocking pool.
pub(crate) struct ChainRun<E: HookEvent> {
    pub(crate) chain: Arc<dyn ChainSource<E>>,
    pub(crate) ctx: DispatchContext,
    pub(crate) services: Arc<dyn HostServices>,
    pub(crate) budget: Duration,
}

/// Gives access to a sorted chain behind an `Arc` (the registry snapshot).
pub(crate) trait ChainSource<E: HookEvent>: Send + Sync + 'static {
    fn entries(&self) -> &[HandlerEntry<E>];
}

/// One message from an offloaded run to the waiting caller.
struct Progress<P> {
    index: usize,
    judged: Judged<P>,
    duration: Duration,
}

/// The state of one dispatch as it goes down the chain.
struct Tally<E> {
    payload: E,
    /// The payload as JSON, kept until a change invalidates it so that consecutive JSON handlers
    /// share one encoding.
    json_cache: Option<String>,
    receipts: Vec<Receipt>,
    blocked: Option<BlockedBy>,
    started: Instant,
    budget_end: Instant,
    /// Wall-clock time of `started`, so receipts need no second clock read.
    base_ms: i64,
}

impl<E: HookEvent> ChainRun<E> {
    pub(crate) async fn run(self, payload: E) -> (Dispatched<E>, Vec<Receipt>) {
        let entries = self.chain.entries();
        let started = Instant::now();
        let mut t = Tally {
            payload,
            json_cache: None,
            receipts: Vec::with_capacity(entries.len()),
            blocked: None,
            started,
            budget_end: started + self.budget,
            base_ms: now_ms(),
        };
        let mut i = 0;
        // One clock read per inline handler: the end of one call is the start of the next.
        let mut now = started;
        while i < entries.len() {
            if now >= t.budget_end {
                self.skip_rest(i, &mut t);
                break;
            }
            let entry = &entries[i];
            match entry.policy {
                ExecPolicy::Inline => {
                    let timeout = Duration::from_millis(entry.options.timeout_ms as u64)
                        .min(t.budget_end - now);
                    let cancellation = Cancellation::default();
                    let host = CallHost::new(
                        &entry.plugin,
                        Some(now + timeout),
                        &cancellation,
                        &*self.services,
                    );
                    let hctx = self.hook_ctx(entry, &host);
                    let answer = call_handler(&entry.handler, &hctx, &t.payload, &mut t.json_cache);
                    let end = Instant::now();
                    let elapsed = end - now;
                    now = end;
                    let judged = judge::<E>(
                        &entry.options,
                        answer,
                        (elapsed > timeout).then_some(timeout),
                    );
                    if self.settle(i, judged, elapsed, end, &mut t) {
                        break;
                    }
                    i += 1;
                }
                ExecPolicy::Offload => {
                    let end = entries[i..]
                        .iter()
                        .position(|e| e.policy != ExecPolicy::Offload)
                        .map_or(entries.len(), |p| i + p);
                    match self.run_offloaded(i, end, &mut t).await {
                        Some(next) => {
                            i = next;
                            now = Instant::now();
                        }
                        None => break,
                    }
                }
            }
        }
        let dispatched = Dispatched {
            payload: t.payload,
            blocked: t.blocked,
        };
        (dispatched, t.receipts)
    }

    fn hook_ctx<'a>(
        &'a self,
        entry: &'a HandlerEntry<E>,
        host: &'a CallHost<'a>,
    ) -> HookContext<'a> {
        HookContext {
            hook: E::NAME,
            plugin_id: &entry.plugin.id,
            work_item_id: self.ctx.work_item_id.as_deref(),
            job_id: self.ctx.job_id.as_deref(),
            agent_id: self.ctx.agent_id.as_deref(),
            host,
        }
    }

    fn record(
        &self,
        entry: &HandlerEntry<E>,
        status: ReceiptStatus,
        detail: Option<Value>,
        duration: Duration,
        at: Instant,
        t: &mut Tally<E>,
    ) {
        t.receipts.push(Receipt {
            plugin_id: entry.plugin.id.clone(),
            plugin_version: Some(entry.plugin.version.clone()),
            kind: ReceiptKind::Hook,
            status,
            hook: Some(E::NAME),
            work_item_id: self.ctx.work_item_id.clone(),
            job_id: self.ctx.job_id.clone(),
            duration_us: duration.as_micros() as u64,
            execution_mode: ExecutionMode::InProcess,
            detail,
            created_at_ms: t.base_ms + at.saturating_duration_since(t.started).as_millis() as i64,
        });
    }

    /// Records a judged call and applies its change; returns whether the chain stops here.
    fn settle(
        &self,
        index: usize,
        judged: Judged<E::Patch>,
        duration: Duration,
        at: Instant,
        t: &mut Tally<E>,
    ) -> bool {
        let entry = &self.chain.entries()[index];
        let stop = judged.stops_chain();
        if let Some(change) = judged.change {
            t.payload.apply(change);
            t.json_cache = None;
        }
        if let Some(reason) = judged.block {
            t.blocked = Some(BlockedBy {
                plugin_id: entry.plugin.id.clone(),
                status: judged.status,
                reason,
            });
        }
        self.record(entry, judged.status, judged.detail, duration, at, t);
        stop
    }

    /// Records every handler from `from` on as `skipped_budget`; the first `fail_closed` one among
    /// them blocks the event.
    fn skip_rest(&self, from: usize, t: &mut Tally<E>) {
        let budget_ms = self.budget.as_millis() as u64;
        let now = Instant::now();
        for entry in &self.chain.entries()[from..] {
            let detail = json!({
                "reason": format!("the event's chain budget of {budget_ms} ms was spent")
            });
            self.record(
                entry,
                ReceiptStatus::SkippedBudget,
                Some(detail),
                Duration::ZERO,
                now,
                t,
            );
            if t.blocked.is_none()
                && entry.options.fail_policy == FailPolicy::FailClosed
                && E::CAN_BLOCK
            {
                t.blocked = Some(BlockedBy {
                    plugin_id: entry.plugin.id.clone(),
                    status: ReceiptStatus::SkippedBudget,
                    reason: format!(
                        "fail_closed handler could not run: the chain budget of {budget_ms} ms was spent"
                    ),
                });
            }
        }
    }

    /// Runs handlers `from..end` (all offloaded) on the blocking pool, one hop for the whole run
    /// unless a handler times out (then the rest continue on a fresh hop). Returns the index to go on
    /// from, or `None` when the chain stops.
    async fn run_offloaded(&self, from: usize, end: usize, t: &mut Tally<E>) -> Option<usize> {
        let mut next = from;
        while next < end {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress<E::Patch>>();
            let cancellation = Cancellation::new();
            let job = OffloadJob {
                chain: self.chain.clone(),
                ctx: self.ctx.clone(),
                services: self.services.clone(),
                from: next,
                end,
                budget_end: t.budget_end,
                payload: t.payload.clone(),
                json: t.json_cache.clone(),
                cancellation: cancellation.clone(),
                tx,
            };
            let mut handler_start = Instant::now();
            tokio::task::spawn_blocking(move || job.run());
            let mut k = next;
            loop {
                if k >= end {
                    return Some(end);
                }
                if handler_start >= t.budget_end {
                    cancellation.cancel();
                    self.skip_rest(k, t);
                    return None;
                }
                let entry = &self.chain.entries()[k];
                let timeout = Duration::from_millis(entry.options.timeout_ms as u64)
                    .min(t.budget_end - handler_start);
                let deadline = handler_start + timeout;
                let (judged, duration) = match tokio::time::timeout_at(deadline.into(), rx.recv())
                    .await
                {
                    Ok(Some(progress)) => {
                        debug_assert_eq!(progress.index, k);
                        handler_start = Instant::now();
                        if self.settle(k, progress.judged, progress.duration, handler_start, t) {
                            return None;
                        }
                        k += 1;
                        continue;
                    }
                    Ok(None) if Instant::now() >= t.budget_end => {
                        // The job stopped because the budget was spent before `k` could start.
                        self.skip_rest(k, t);
                        return None;
                    }
                    // The job ended without answering for `k`; it cannot have been cancelled (only
                    // this loop cancels), so it died. An error for this handler.
                    Ok(None) => (
                        judge::<E>(
                            &entry.options,
                            Answer::Error("the execution host lost this call".into()),
                            None,
                        ),
                        handler_start.elapsed(),
                    ),
                    // Give up on this call; the stuck thread keeps running until the plugin
                    // returns, and sees the cancellation at its next host call.
                    Err(_) => {
                        cancellation.cancel();
                        (
                            judge::<E>(&entry.options, Answer::Error(String::new()), Some(timeout)),
                            handler_start.elapsed(),
                        )
                    }
                };
                if self.settle(k, judged, duration, Instant::now(), t) {
                    return None;
                }
                // Go on after `k` on a fresh hop: the current thread is lost to `k`.
                next = k + 1;
                break;
            }
        }
        Some(end)
    }
}

/// A run of consecutive offloaded handlers, executed on one blocking-pool thread.
struct OffloadJob<E: HookEvent> {
    chain: Arc<dyn ChainSource<E>>,
    ctx: DispatchContext,
    services: Arc<dyn HostServices>,
    from: usize,
    end: usize,
    budget_end: Instant,
    payload: E,
    json: Option<String>,
    cancellation: Arc<Cancellation>,
    tx: tokio::sync::mpsc::UnboundedSender<Progress<E::Patch>>,
}

impl<E: HookEvent> OffloadJob<E> {
    fn run(mut self) {
        let chain = self.chain.clone();
        for (index, entry) in chain
            .entries()
            .iter()
            .enumerate()
            .take(self.end)
            .skip(self.from)
        {
            let now = Instant::now();
            if self.cancellation.is_cancelled() || now >= self.budget_end {
                return;
            }
            let timeout =
                Duration::from_millis(entry.options.timeout_ms as u64).min(self.budget_end - now);
            let host = CallHost::new(
                &entry.plugin,
                Some(now + timeout),
                &self.cancellation,
                &*self.services,
            );
            let hctx = HookContext {
                hook: E::NAME,
                plugin_id: &entry.plugin.id,
                work_item_id: self.ctx.work_item_id.as_deref(),
                job_id: self.ctx.job_id.as_deref(),
                agent_id: self.ctx.agent_id.as_deref(),
                host: &host,
            };
            let answer = call_handler(&entry.handler, &hctx, &self.payload, &mut self.json);
            let duration = now.elapsed();
            if self.cancellation.is_cancelled() {
                // The caller already recorded a timeout and moved on without us.
                return;
            }
            let judged = judge::<E>(
                &entry.options,
                answer,
                (duration > timeout).then_some(timeout),
            );
            let stop = judged.stops_chain();
            if let Some(change) = &judged.change {
                self.payload.apply(change.clone());
                self.json = None;
            }
            if self
                .tx
                .send(Progress {
                    index,
                    judged,
                    duration,
                })
                .is_err()
                || stop
            {
                return;
            }
        }
    }
}
