//! One event through its chain: the walk, inline calls and batches, receipts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nitejar_sdk::hooks::{HookContext, HookEvent};
use nitejar_sdk::{FailPolicy, Host};
use serde_json::{json, Value};

use super::batch;
use super::judge::{call_handler, judge, payload_json, Answer, EventJson, Judged};
use super::offload;
use super::{BlockedBy, DispatchContext, Dispatched, HandlerEntry, HandlerImpl, HookBatchCalls};
use crate::host::{CallHost, CallScope, Cancellation, ExecPolicy, ExecutionHost};
use nitejar_store::receipts::{now_ms, Receipt, ReceiptKind, ReceiptStatus};

/// Runs one event through a chain. Owns everything a dispatch needs so that a run of offloaded
/// handlers can be moved to another thread.
pub(crate) struct ChainRun<'a, E: HookEvent> {
    pub(crate) chain: Arc<dyn ChainSource<E>>,
    // Borrowed from the dispatch: cloned only by what outlives it (an offloaded job).
    pub(crate) ctx: &'a DispatchContext,
    pub(crate) exec: &'a ExecutionHost,
    pub(crate) budget: Duration,
}

/// Gives access to a sorted chain behind an `Arc` (the registry snapshot).
pub(crate) trait ChainSource<E: HookEvent>: Send + Sync + 'static {
    fn entries(&self) -> &[HandlerEntry<E>];
}

/// The state of one dispatch as it goes down the chain.
pub(super) struct Tally<E> {
    pub(super) payload: E,
    /// The payload as JSON, kept until a change invalidates it so that the JSON handlers and
    /// batches of one chain share one encoding.
    pub(super) json_cache: Option<EventJson>,
    pub(super) receipts: Vec<Receipt>,
    pub(super) blocked: Option<BlockedBy>,
    pub(super) started: Instant,
    pub(super) budget_end: Instant,
    /// Wall-clock time of `started`, so receipts need no second clock read.
    pub(super) base_ms: i64,
}

impl<E: HookEvent> ChainRun<'_, E> {
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
            let next = match entries[i].policy {
                ExecPolicy::Inline => match batch::segment(entries, i, ExecPolicy::Inline) {
                    Some((calls, end)) => {
                        let next = self.run_batch_inline(i, end, &calls, &mut t);
                        // The clock only when there is a handler left to check the budget for.
                        if next.is_some_and(|next| next < entries.len()) {
                            now = Instant::now();
                        }
                        next
                    }
                    None => {
                        let (next, end) = self.run_inline(i, now, &mut t);
                        now = end;
                        next
                    }
                },
                ExecPolicy::Offload => {
                    let end = entries[i..]
                        .iter()
                        .position(|e| e.policy != ExecPolicy::Offload)
                        .map_or(entries.len(), |p| i + p);
                    let next = offload::run(&self, i, end, &mut t).await;
                    if next.is_some_and(|next| next < entries.len()) {
                        now = Instant::now();
                    }
                    next
                }
            };
            match next {
                Some(next) => i = next,
                None => break,
            }
        }
        let dispatched = Dispatched {
            payload: t.payload,
            blocked: t.blocked,
        };
        (dispatched, t.receipts)
    }

    /// Calls handler `i` on the caller's thread; returns where to go on and when it ended.
    fn run_inline(&self, i: usize, now: Instant, t: &mut Tally<E>) -> (Option<usize>, Instant) {
        let entry = &self.chain.entries()[i];
        let timeout = entry.timeout().min(t.budget_end - now);
        let deadline = Some(now + timeout);
        let answer = match &entry.handler {
            HandlerImpl::Typed(_) => {
                let cancellation = Cancellation::default();
                let services = &**self.exec.services();
                let host = CallHost::new(&entry.plugin, deadline, &cancellation, services);
                let hctx = self.hook_ctx(entry, &host);
                call_handler(&entry.handler, &hctx, &t.payload, &mut t.json_cache)
            }
            HandlerImpl::Json(_) => {
                // A library plugin routes its host calls through the call's scope.
                let scope = scope_for(entry, deadline, Cancellation::new(), self.exec, self.ctx);
                let hctx = self.hook_ctx(entry, &scope);
                let (payload, json) = (&t.payload, &mut t.json_cache);
                scope.enter(|| call_handler(&entry.handler, &hctx, payload, json))
            }
        };
        let end = Instant::now();
        let elapsed = end - now;
        let judged = judge::<E>(
            &entry.options,
            answer,
            (elapsed > timeout).then_some(timeout),
        );
        let stop = self.settle(i, judged, elapsed, end, t);
        ((!stop).then_some(i + 1), end)
    }

    /// Calls handlers `from..end` of one library plugin in one call on the caller's thread.
    fn run_batch_inline(
        &self,
        from: usize,
        end: usize,
        calls: &Arc<dyn HookBatchCalls>,
        t: &mut Tally<E>,
    ) -> Option<usize> {
        let entries = self.chain.entries();
        let json = match payload_json(&t.payload, &mut t.json_cache) {
            Ok(json) => json,
            Err(e) => return self.fail_one(from, e, t),
        };
        let start = Instant::now();
        let budget = t.budget_end.saturating_duration_since(start);
        let request = batch::request(entries, from, end, budget, self.ctx, json);
        let scope = scope_for(
            &entries[from],
            Some(t.budget_end),
            Cancellation::new(),
            self.exec,
            self.ctx,
        );
        let call_id = calls.call_id();
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            calls.call(E::NAME, call_id, scope, &request)
        }));
        drop(request);
        match answer {
            Ok(Ok(Some(text))) => {
                self.settle_answer(from, end, batch::budget_us(budget), &text, start, t)
            }
            // The plugin does not take batches (it remembers): its handlers go one by one.
            Ok(Ok(None)) => Some(from),
            Ok(Err(e)) => self.fail_one(from, e, t),
            Err(p) => self.fail_one(
                from,
                format!("panicked: {}", crate::host::panic_message(p)),
                t,
            ),
        }
    }

    /// Reads, judges and settles the answer `text` of the batch of handlers `from..end` that was
    /// sent `budget_us` and started at `start`; returns where to go on.
    pub(super) fn settle_answer(
        &self,
        from: usize,
        end: usize,
        budget_us: u64,
        text: &str,
        start: Instant,
        t: &mut Tally<E>,
    ) -> Option<usize> {
        let entries = self.chain.entries();
        // Most batches: every handler went on in time and changed nothing.
        if let Some(ns) = batch::all_continued(entries, from, end, budget_us, text) {
            let mut ended = Duration::ZERO;
            for (entry, &ns) in entries[from..end].iter().zip(&ns) {
                let took = Duration::from_nanos(ns);
                ended += took;
                self.record(entry, ReceiptStatus::Ok, None, took, start + ended, t);
            }
            return Some(end);
        }
        match batch::read(entries, from, end, budget_us, text) {
            Ok(report) => self.settle_batch(from, report.settled, start, t),
            Err(e) => self.fail_one(from, e, t),
        }
    }

    /// Settles the judged handlers of a batch that started at `start`; returns where to go on.
    pub(super) fn settle_batch(
        &self,
        from: usize,
        settled: Vec<batch::Settled<E::Patch>>,
        start: Instant,
        t: &mut Tally<E>,
    ) -> Option<usize> {
        if settled.is_empty() {
            // Only a spent budget stops a batch before its first handler.
            if Instant::now() >= t.budget_end {
                self.skip_rest(from, t);
                return None;
            }
            return self.fail_one(
                from,
                "the plugin answered its batch without any outcome".into(),
                t,
            );
        }
        let mut next = from;
        for s in settled {
            if self.settle(s.index, s.judged, s.duration, start + s.ended, t) {
                return None;
            }
            next = s.index + 1;
        }
        Some(next)
    }

    /// Records handler `index` as failed with `error`; returns where to go on.
    pub(super) fn fail_one(&self, index: usize, error: String, t: &mut Tally<E>) -> Option<usize> {
        let entry = &self.chain.entries()[index];
        let judged = judge::<E>(&entry.options, Answer::Error(error), None);
        let stop = self.settle(index, judged, Duration::ZERO, Instant::now(), t);
        (!stop).then_some(index + 1)
    }

    fn hook_ctx<'a>(&'a self, entry: &'a HandlerEntry<E>, host: &'a dyn Host) -> HookContext<'a> {
        HookContext::new(E::NAME, &entry.plugin.id, host)
            .with_work_item_id(self.ctx.work_item_id.as_deref())
            .with_job_id(self.ctx.job_id.as_deref())
            .with_agent_id(self.ctx.agent_id.as_deref())
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
            execution_mode: entry.plugin.execution,
            detail,
            created_at_ms: t.base_ms + at.saturating_duration_since(t.started).as_millis() as i64,
        });
    }

    /// Records a judged call and applies its change; returns whether the chain stops here.
    pub(super) fn settle(
        &self,
        index: usize,
        judged: Judged<E::Patch>,
        duration: Duration,
        at: Instant,
        t: &mut Tally<E>,
    ) -> bool {
        let entry = &self.chain.entries()[index];
        let stop = judged.stops_chain();
        let mut detail = judged.detail;
        if let Some(change) = judged.change {
            if detail.is_none() {
                detail = Some(super::judge::change_detail(&change));
            }
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
        self.record(entry, judged.status, detail, duration, at, t);
        stop
    }

    /// Records every handler from `from` on as `skipped_budget`; the first `fail_closed` one among
    /// them blocks the event.
    pub(super) fn skip_rest(&self, from: usize, t: &mut Tally<E>) {
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
}

/// The scope of a call of `entry`'s plugin within a dispatch.
pub(super) fn scope_for<E: HookEvent>(
    entry: &HandlerEntry<E>,
    deadline: Option<Instant>,
    cancellation: Arc<Cancellation>,
    exec: &ExecutionHost,
    ctx: &DispatchContext,
) -> CallScope {
    CallScope::new(
        entry.plugin.clone(),
        deadline,
        cancellation,
        exec.services().clone(),
    )
    .with_run(ctx.work_item_id.clone(), ctx.job_id.clone())
    .with_hook(E::NAME)
}
