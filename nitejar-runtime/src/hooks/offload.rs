//! Offloaded handlers: a run of consecutive handlers that must not run on the async workers is
//! handed to the execution host's executor at once; the caller waits for the whole run and looks
//! again only at the deadline of what the run is doing.
//!
//! The job reads and judges the answers of its batches itself when later handlers of the run need
//! their changes; the answer of its last batch, if short, it leaves to the caller, which reads it
//! as an inline batch's: what the caller keeps (changes, receipts) is then allocated on the
//! caller's thread.
//!
//! The job on the executor keeps a shared record of where it is — between handlers, in one
//! handler (or waiting for its call slot) since a given instant, or in a batch call — and of the
//! handlers it has judged. The caller spins briefly for the job to finish (most runs take a few
//! microseconds), then sleeps until the deadline of what the job is doing: a handler's start plus
//! its timeout (capped by the budget). If the job is still there:
//!
//! - in one handler: that handler timed out. The caller takes the job over (what the job reports
//!   later is dropped), marks its call cancelled and stuck, records the `timeout` and goes on after
//!   it on a fresh job: the stuck thread is lost to the handler until it returns.
//! - in a batch: the caller asks the plugin how far the batch got (`hooks.progress`, from another
//!   thread). The plugin answers from its own clock which handler runs, for how long, and the
//!   outcomes before it. If that handler is late, it is judged `timeout` exactly as above — and the
//!   batch, which counts it late on the same clock, stops after it by itself, so no handler runs
//!   twice; the outcomes before it are settled, not lost. If not, the caller sleeps until its
//!   deadline and asks again. A plugin that cannot say within [`PROGRESS_WAIT`] (or at all) has
//!   the first handler of the batch without an outcome judged `timeout`; the caller never waits for
//!   a batch longer than all its handlers' timeouts together (or the budget).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nitejar_sdk::hooks::{HookContext, HookEvent};

use super::batch::{self, Report, Settled};
use super::chain::{scope_for, ChainRun, ChainSource, Tally};
use super::judge::{
    call_handler, call_json_handler, judge, payload_json, Answer, EventJson, Judged,
};
use super::{DispatchContext, HandlerEntry, HandlerImpl, HookBatchCalls};
use crate::host::{executor, Cancellation, ExecPolicy, ExecutionHost, Quarantine, TicketSlot};

/// How long the caller spins for a job before it sleeps.
const CALLER_SPIN: Duration = executor::SPIN;

/// How long the caller waits for a plugin to say how far its batch got.
const PROGRESS_WAIT: Duration = Duration::from_millis(50);

/// Added to the deadline the plugin gave, so that the caller does not ask again a hair too soon.
const PROGRESS_MARGIN: Duration = Duration::from_micros(100);

/// The longest answer of a job's last batch that the caller reads itself. A longer one (a plugin
/// may answer anything) is read by the job, off the async workers, as before.
const CALLER_READS_UP_TO: usize = 64 * 1024;

/// What a job shares with its caller.
struct Shared<P> {
    /// Apart from what the job writes as it goes: the caller polls it.
    finished: Apart<AtomicBool>,
    progress: Mutex<Progress<P>>,
    notify: tokio::sync::Notify,
    cancellation: Arc<Cancellation>,
    ticket: TicketSlot,
}

/// A value on a cache line of its own, so that reading it does not take the line the other
/// thread is writing.
#[repr(align(64))]
struct Apart<T>(T);

impl<T> std::ops::Deref for Apart<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<P> Shared<P> {
    fn lock(&self) -> MutexGuard<'_, Progress<P>> {
        // Whole updates only; the job runs plugin code outside this lock.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Progress<P> {
    /// Handlers the job judged that the caller has not taken yet.
    settled: Vec<Done<P>>,
    /// The answer of the job's last batch, after `settled`: the caller reads and judges it, so
    /// that the changes and receipt details it makes are made and dropped on one thread.
    unread: Option<Unread>,
    /// The payload's JSON as the caller sent it, when the job applied no change: the caller keeps
    /// it for the handlers after the job.
    json: Option<EventJson>,
    /// The first handler the job has not judged.
    next: usize,
    /// The end of the job's handlers.
    end: usize,
    /// What the job is doing.
    current: Current,
    /// The caller took the job over: what the job still reports is dropped.
    abandoned: bool,
}

struct Done<P> {
    index: usize,
    judged: Judged<P>,
    duration: Duration,
    at: Instant,
}

enum Current {
    /// Between handlers, or not started yet: handler `next` is due since `since`.
    Between { since: Instant },
    /// In handler `index` (or waiting for its call slot) since `started`.
    Handler {
        index: usize,
        started: Instant,
        timeout: Duration,
    },
    /// In a batch call for handlers `from..end`.
    Batch(BatchCall),
    /// The job ended.
    Finished,
}

#[derive(Clone)]
struct BatchCall {
    calls: Arc<dyn HookBatchCalls>,
    call_id: u64,
    from: usize,
    end: usize,
    budget_us: u64,
    started: Instant,
}

/// Runs the offloaded handlers `from..end`; returns where to go on (`None`: the chain stops).
pub(super) async fn run<E: HookEvent>(
    run: &ChainRun<'_, E>,
    from: usize,
    end: usize,
    t: &mut Tally<E>,
) -> Option<usize> {
    let mut next = from;
    while next < end {
        if Instant::now() >= t.budget_end {
            run.skip_rest(next, t);
            return None;
        }
        next = wait_for(run, next, end, t).await?;
    }
    Some(end)
}

/// Hands handlers `from..end` to a job and waits for it; returns where to go on.
async fn wait_for<E: HookEvent>(
    run: &ChainRun<'_, E>,
    from: usize,
    end: usize,
    t: &mut Tally<E>,
) -> Option<usize> {
    // A run of library handlers needs only the payload's JSON: encode it here (it is kept for
    // the chain) rather than copy the payload for the job. Typed handlers need the payload.
    let json_only = run.chain.entries()[from..end]
        .iter()
        .all(|e| matches!(e.handler, HandlerImpl::Json(_)));
    let payload = if json_only {
        if let Err(e) = payload_json(&t.payload, &mut t.json_cache) {
            return run.fail_one(from, e, t);
        }
        None
    } else {
        Some(t.payload.clone())
    };
    let handoff = Instant::now();
    let shared = Arc::new(Shared {
        progress: Mutex::new(Progress {
            settled: Vec::new(),
            unread: None,
            json: None,
            next: from,
            end,
            current: Current::Between { since: handoff },
            abandoned: false,
        }),
        finished: Apart(AtomicBool::new(false)),
        notify: tokio::sync::Notify::new(),
        cancellation: Cancellation::new(),
        ticket: TicketSlot::default(),
    });
    let job = Job {
        chain: run.chain.clone(),
        ctx: run.ctx.clone(),
        exec: run.exec.clone(),
        shared: shared.clone(),
        end,
        budget_end: t.budget_end,
        payload,
        // The job goes on from the chain's encoding (and may append to it); it hands it back if
        // it applied no change.
        json: t.json_cache.take(),
        changed: false,
    };
    run.exec.executor().spawn(move || job.run(from));

    // Most runs are done within microseconds: catch them without a wake-up or a timer.
    executor::poll_until(handoff + CALLER_SPIN, || {
        shared.finished.load(Ordering::Acquire)
    });
    // When to ask a batch again, as the plugin said.
    let mut batch_wake: Option<(u64, Instant)> = None;
    loop {
        if shared.finished.load(Ordering::Acquire) {
            return settle_finished(run, &shared, end, t);
        }
        let wake = next_look(run, &shared.lock(), batch_wake, t);
        let _ = tokio::time::timeout_at(wake.into(), shared.notify.notified()).await;
        if shared.finished.load(Ordering::Acquire) || Instant::now() < wake {
            continue;
        }
        match expire(run, &shared, t).await {
            Expired::Wait(Some(again)) => batch_wake = Some(again),
            Expired::Wait(None) => {}
            Expired::GoOn(next) => return next,
        }
    }
}

/// A handler's timeout if it starts at `at`: its own, capped by what is left of the budget.
fn timeout_of<E: HookEvent>(
    run: &ChainRun<'_, E>,
    index: usize,
    at: Instant,
    t: &Tally<E>,
) -> Duration {
    let entries = run.chain.entries();
    match entries.get(index) {
        Some(entry) => entry
            .timeout()
            .min(t.budget_end.saturating_duration_since(at)),
        None => Duration::ZERO,
    }
}

/// When the caller looks at the job next: the deadline of the handler it is in, or the soonest
/// a later handler could be late — the job does not wake the caller when it moves on, so a short
/// timeout after a long one is still noticed on time. In a batch, the handler running is not known
/// until the plugin is asked (then `batch_wake` is when it said to ask again).
fn next_look<E: HookEvent>(
    run: &ChainRun<'_, E>,
    progress: &Progress<E::Patch>,
    batch_wake: Option<(u64, Instant)>,
    t: &Tally<E>,
) -> Instant {
    let now = Instant::now();
    match &progress.current {
        Current::Between { since } => {
            let next = progress.next;
            let due = *since + timeout_of(run, next, *since, t);
            due.min(first_due(run, next + 1, progress.end, now, t))
        }
        Current::Handler {
            index,
            started,
            timeout,
        } => (*started + *timeout).min(first_due(run, index + 1, progress.end, now, t)),
        Current::Batch(call) => {
            let asked = match batch_wake {
                Some((id, at)) if id == call.call_id => at,
                _ => first_due(run, call.from, call.end, call.started, t),
            };
            asked.min(first_due(run, call.end, progress.end, now, t))
        }
        Current::Finished => now,
    }
}

/// The soonest any of handlers `from..end` can be late if none starts before `at`: a batch does
/// not say when each handler starts, so the caller looks when the shortest timeout could run out.
fn first_due<E: HookEvent>(
    run: &ChainRun<'_, E>,
    from: usize,
    end: usize,
    at: Instant,
    t: &Tally<E>,
) -> Instant {
    match (from..end).map(|k| timeout_of(run, k, at, t)).min() {
        Some(soonest) => at + soonest,
        // No handler: nothing can be late.
        None => t.budget_end.max(at),
    }
}

/// The job ended: settles what it judged; returns where to go on.
fn settle_finished<E: HookEvent>(
    run: &ChainRun<'_, E>,
    shared: &Shared<E::Patch>,
    end: usize,
    t: &mut Tally<E>,
) -> Option<usize> {
    let (done, unread, next) = {
        let mut progress = shared.lock();
        if let Some(json) = progress.json.take() {
            t.json_cache = Some(json);
        }
        (
            std::mem::take(&mut progress.settled),
            progress.unread.take(),
            progress.next,
        )
    };
    for d in done {
        if run.settle(d.index, d.judged, d.duration, d.at, t) {
            return None;
        }
    }
    if let Some(u) = unread {
        // A batch that stopped early (a late handler) leaves the rest to a fresh job.
        return run.settle_answer(u.from, u.end, u.budget_us, &u.text, u.started, t);
    }
    if next >= end {
        return Some(end);
    }
    if Instant::now() >= t.budget_end {
        // The job stopped because the budget was spent before `next` could start.
        run.skip_rest(next, t);
        return None;
    }
    // The job ended without answering for `next`; it was not cancelled (only the caller cancels,
    // and then it does not come here), so it died.
    run.fail_one(next, "the execution host lost this call".into(), t)
}

enum Expired {
    /// Nothing to judge yet; for a batch, when to ask again.
    Wait(Option<(u64, Instant)>),
    /// The caller took the job over; where to go on.
    GoOn(Option<usize>),
}

/// The deadline of what the job was doing passed: judges it, or learns it is not due yet.
async fn expire<E: HookEvent>(
    run: &ChainRun<'_, E>,
    shared: &Arc<Shared<E::Patch>>,
    t: &mut Tally<E>,
) -> Expired {
    let now = Instant::now();
    let batch = match &shared.lock().current {
        Current::Batch(call) => Some(call.clone()),
        _ => None,
    };
    if let Some(call) = batch {
        return expire_batch(run, shared, call, t).await;
    }
    let taken = {
        let mut progress = shared.lock();
        let (index, started, timeout) = match &progress.current {
            // Past its last handler: about to finish.
            Current::Between { .. } if progress.next >= progress.end => return Expired::Wait(None),
            // The budget ran out between two handlers: the next one does not start (the job
            // checks the budget too); it and the rest are skipped, as when the caller runs them.
            Current::Between { .. } if now >= t.budget_end => {
                let next = progress.next;
                let taken = take_over(shared, &mut progress);
                drop(progress);
                for d in taken {
                    if run.settle(d.index, d.judged, d.duration, d.at, t) {
                        return Expired::GoOn(None);
                    }
                }
                run.skip_rest(next, t);
                return Expired::GoOn(None);
            }
            Current::Between { since } => (
                progress.next,
                *since,
                timeout_of(run, progress.next, *since, t),
            ),
            Current::Handler {
                index,
                started,
                timeout,
            } => (*index, *started, *timeout),
            // Finished, or into a batch since we looked: look again.
            Current::Finished | Current::Batch(_) => return Expired::Wait(None),
        };
        if now < started + timeout {
            return Expired::Wait(None);
        }
        (take_over(shared, &mut progress), index, started, timeout)
    };
    let (taken, index, started, timeout) = taken;
    let quarantine = shared.ticket.abandon();
    let judged = judge::<E>(
        &run.chain.entries()[index].options,
        Answer::Error(String::new()),
        Some(timeout),
    );
    Expired::GoOn(settle_taken(
        run,
        taken,
        None,
        (index, judged, now - started),
        quarantine,
        t,
    ))
}

/// Marks the job abandoned and cancelled; returns what it had judged.
fn take_over<P>(shared: &Shared<P>, progress: &mut Progress<P>) -> Vec<Done<P>> {
    progress.abandoned = true;
    // Seen by the plugin at its next host call or `is_cancelled`, and by the job before its next
    // handler.
    shared.cancellation.cancel();
    std::mem::take(&mut progress.settled)
}

/// Settles, in order, what the job had judged, the outcomes of the batch it was in (from the
/// plugin), then the handler that timed out and the quarantine this caused.
fn settle_taken<E: HookEvent>(
    run: &ChainRun<'_, E>,
    taken: Vec<Done<E::Patch>>,
    in_batch: Option<(Vec<Settled<E::Patch>>, Instant)>,
    (index, judged, waited): (usize, Judged<E::Patch>, Duration),
    quarantine: Option<Quarantine>,
    t: &mut Tally<E>,
) -> Option<usize> {
    let mut stop = false;
    for d in taken {
        if run.settle(d.index, d.judged, d.duration, d.at, t) {
            stop = true;
            break;
        }
    }
    if let (false, Some((settled, started))) = (stop, in_batch) {
        for s in settled {
            if run.settle(s.index, s.judged, s.duration, started + s.ended, t) {
                stop = true;
                break;
            }
        }
    }
    if !stop {
        stop = run.settle(index, judged, waited, Instant::now(), t);
    }
    if let Some(q) = quarantine {
        let mut receipt = q.receipt();
        receipt.work_item_id = run.ctx.work_item_id.clone();
        receipt.job_id = run.ctx.job_id.clone();
        t.receipts.push(receipt);
    }
    // Go on after the handler that timed out, on a fresh job: this one's thread is lost to it.
    (!stop).then_some(index + 1)
}

/// A batch call ran past the deadline the caller knew of: asks the plugin how far it got.
async fn expire_batch<E: HookEvent>(
    run: &ChainRun<'_, E>,
    shared: &Arc<Shared<E::Patch>>,
    call: BatchCall,
    t: &mut Tally<E>,
) -> Expired {
    let report = ask_progress::<E>(run, &call).await;
    let now = Instant::now();
    // However the plugin answers, the caller waits no longer than all the batch's handlers may
    // take together.
    let entries = run.chain.entries();
    let most: Duration = entries[call.from..call.end]
        .iter()
        .map(HandlerEntry::timeout)
        .sum();
    let cap = (call.started + most).min(t.budget_end);
    let mut progress = shared.lock();
    match &progress.current {
        Current::Batch(c) if c.call_id == call.call_id => {}
        // The call returned meanwhile: the job settles it.
        _ => return Expired::Wait(None),
    }
    let (settled, index, elapsed, timeout) = match report {
        Some(Report {
            settled,
            running: Some(running),
        }) => {
            if !running.overdue() && now < cap {
                // When the running handler runs out, or the soonest a later one could.
                let left = running.timeout.saturating_sub(running.elapsed);
                let later = first_due(run, running.index + 1, call.end, now, t);
                let again = (now + left + PROGRESS_MARGIN).min(later).min(cap);
                return Expired::Wait(Some((call.call_id, again)));
            }
            (settled, running.index, running.elapsed, running.timeout)
        }
        // Between handlers, or done and about to answer: the answer is on its way.
        Some(Report { running: None, .. }) if now < cap => {
            return Expired::Wait(Some((call.call_id, now + PROGRESS_MARGIN * 10)));
        }
        // The plugin cannot say: the first handler without an outcome timed out.
        _ => {
            let timeout = timeout_of(run, call.from, call.started, t);
            (Vec::new(), call.from, now - call.started, timeout)
        }
    };
    let taken = take_over(shared, &mut progress);
    drop(progress);
    let quarantine = shared.ticket.abandon();
    let judged = judge::<E>(
        &entries[index].options,
        Answer::Error(String::new()),
        Some(timeout),
    );
    Expired::GoOn(settle_taken(
        run,
        taken,
        Some((settled, call.started)),
        (index, judged, elapsed),
        quarantine,
        t,
    ))
}

/// Asks `hooks.progress` from an executor thread; `None` when the plugin cannot say in time.
async fn ask_progress<E: HookEvent>(
    run: &ChainRun<'_, E>,
    call: &BatchCall,
) -> Option<Report<E::Patch>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let calls = call.calls.clone();
    let call_id = call.call_id;
    run.exec.executor().spawn(move || {
        let _ = tx.send(calls.progress(call_id));
    });
    let text = tokio::time::timeout(PROGRESS_WAIT, rx)
        .await
        .ok()?
        .ok()?
        .ok()?;
    batch::read(
        run.chain.entries(),
        call.from,
        call.end,
        call.budget_us,
        &text,
    )
    .ok()
}

/// A batch answer the caller reads.
struct Unread {
    text: String,
    from: usize,
    end: usize,
    budget_us: u64,
    started: Instant,
}

/// A run of offloaded handlers, executed on one executor thread.
struct Job<E: HookEvent> {
    chain: Arc<dyn ChainSource<E>>,
    ctx: DispatchContext,
    exec: ExecutionHost,
    shared: Arc<Shared<E::Patch>>,
    end: usize,
    budget_end: Instant,
    /// The payload as the job's handlers leave it; `None` until needed when the caller sent only
    /// its JSON (a run that is one batch).
    payload: Option<E>,
    json: Option<EventJson>,
    /// Whether the job applied a change: its JSON is then not the caller's payload's.
    changed: bool,
}

/// What the job does after a step.
enum Step {
    Next(usize),
    Stop,
}

impl<E: HookEvent> Job<E> {
    fn run(mut self, from: usize) {
        let chain = self.chain.clone();
        let entries = chain.entries();
        let mut k = from;
        while k < self.end {
            if self.shared.cancellation.is_cancelled() || Instant::now() >= self.budget_end {
                break;
            }
            let step = match batch::segment(&entries[..self.end], k, ExecPolicy::Offload) {
                Some((calls, end)) => self.batch(entries, k, end, &calls),
                None => self.single(entries, k),
            };
            match step {
                Step::Next(next) => k = next,
                Step::Stop => break,
            }
        }
        let json = if self.changed { None } else { self.json.take() };
        let mut progress = self.shared.lock();
        progress.current = Current::Finished;
        if !progress.abandoned {
            progress.json = json;
        }
        drop(progress);
        self.shared.finished.store(true, Ordering::Release);
        self.shared.notify.notify_one();
    }

    /// Reports judged handlers; `false` when the caller took the job over (they are dropped).
    fn report(&mut self, done: Vec<Done<E::Patch>>, next: usize) -> bool {
        let mut progress = self.shared.lock();
        if progress.abandoned {
            return false;
        }
        progress.settled.extend(done);
        progress.next = next;
        progress.current = Current::Between {
            since: Instant::now(),
        };
        true
    }

    /// Leaves the answer of the job's last batch to the caller (dropped if the caller took the
    /// job over).
    fn leave_unread(&self, unread: Unread) {
        let mut progress = self.shared.lock();
        if progress.abandoned {
            return;
        }
        // Past its last handler: the caller waits for the job to finish.
        progress.next = unread.end;
        progress.unread = Some(unread);
        progress.current = Current::Between {
            since: Instant::now(),
        };
    }

    /// Records what the job does now; `false` when the caller took the job over.
    fn set_current(&self, current: Current) -> bool {
        let mut progress = self.shared.lock();
        progress.current = current;
        !progress.abandoned
    }

    /// Keeps this job's payload up to date for the handlers it still runs.
    fn apply(&mut self, change: &E::Patch, more: bool) {
        if !more {
            return;
        }
        if let Ok(payload) = self.payload() {
            payload.apply(change.clone());
            self.json = None;
            self.changed = true;
        }
    }

    /// The payload, read back from its JSON if the caller sent only that (a batch refused by a
    /// plugin built with an earlier SDK: its handlers then go one by one).
    fn payload(&mut self) -> Result<&mut E, String> {
        if self.payload.is_none() {
            let json = self.json.as_ref().ok_or("the job has no payload")?;
            let payload: E = nitejar_sdk::abi::json::from_str(json.event())
                .map_err(|e| format!("could not read the payload back: {e}"))?;
            self.payload = Some(payload);
        }
        self.payload
            .as_mut()
            .ok_or_else(|| "the job has no payload".into())
    }

    /// Makes sure what `handler` is called with is there: the payload's JSON for a library
    /// handler, the payload itself for a typed one.
    fn ready_for(&mut self, handler: &HandlerImpl<E>) -> Result<(), String> {
        match handler {
            HandlerImpl::Json(_) if self.json.is_some() => Ok(()),
            _ => self.payload().map(|_| ()),
        }
    }

    /// The payload's JSON, encoded on first use, taken out of the job while a call uses it.
    fn take_json(&mut self) -> Result<EventJson, String> {
        if self.json.is_none() {
            let payload = self.payload()?;
            let mut json = None;
            payload_json(&*payload, &mut json)?;
            self.json = json;
        }
        self.json
            .take()
            .ok_or_else(|| "the payload has no JSON".into())
    }

    fn single(&mut self, entries: &[HandlerEntry<E>], index: usize) -> Step {
        let entry = &entries[index];
        let now = Instant::now();
        let timeout = entry
            .timeout()
            .min(self.budget_end.saturating_duration_since(now));
        let deadline = now + timeout;
        if !self.set_current(Current::Handler {
            index,
            started: now,
            timeout,
        }) {
            return Step::Stop;
        }
        let health = self.exec.health(&entry.plugin);
        let mut no_slot = false;
        let answer = if let Some(message) = health.quarantine_message() {
            Answer::Error(message)
        } else if let Err(e) = self.ready_for(&entry.handler) {
            Answer::Error(e)
        } else if let Some(permit) = health.acquire(deadline, &self.shared.cancellation) {
            self.shared.ticket.set(permit.ticket());
            let scope = scope_for(
                entry,
                Some(deadline),
                self.shared.cancellation.clone(),
                &self.exec,
                &self.ctx,
            );
            let hctx = HookContext::new(E::NAME, &entry.plugin.id, &scope)
                .with_work_item_id(self.ctx.work_item_id.as_deref())
                .with_job_id(self.ctx.job_id.as_deref())
                .with_agent_id(self.ctx.agent_id.as_deref());
            let answer = match (self.payload.as_ref(), &mut self.json, &entry.handler) {
                (Some(payload), json, handler) => {
                    scope.enter(|| call_handler(handler, &hctx, payload, json))
                }
                (None, Some(json), HandlerImpl::Json(h)) => {
                    scope.enter(|| call_json_handler::<E>(h.as_ref(), &hctx, json))
                }
                (None, _, _) => Answer::Error("the job has no payload".into()),
            };
            self.shared.ticket.clear();
            drop(permit);
            answer
        } else if self.shared.cancellation.is_cancelled() {
            return Step::Stop;
        } else {
            // No call slot came free before the deadline: a timeout.
            no_slot = true;
            Answer::Error(String::new())
        };
        let duration = now.elapsed();
        if self.shared.cancellation.is_cancelled() {
            // The caller already recorded a timeout and moved on without us.
            return Step::Stop;
        }
        let judged = judge::<E>(
            &entry.options,
            answer,
            (no_slot || duration > timeout).then_some(timeout),
        );
        let stop = judged.stops_chain();
        if let Some(change) = &judged.change {
            self.apply(change, index + 1 < self.end);
        }
        let done = Done {
            index,
            judged,
            duration,
            at: Instant::now(),
        };
        if !self.report(vec![done], index + 1) || stop {
            return Step::Stop;
        }
        Step::Next(index + 1)
    }

    /// Judges handler `index` alone (a failure before or around its batch) and goes on after it.
    fn fail(
        &mut self,
        index: usize,
        answer: Answer<E::Patch>,
        timed_out: Option<Duration>,
        started: Instant,
    ) -> Step {
        let entries = self.chain.clone();
        let entry = &entries.entries()[index];
        let judged = judge::<E>(&entry.options, answer, timed_out);
        let stop = judged.stops_chain();
        let done = Done {
            index,
            judged,
            duration: started.elapsed(),
            at: Instant::now(),
        };
        if !self.report(vec![done], index + 1) || stop {
            return Step::Stop;
        }
        Step::Next(index + 1)
    }

    fn batch(
        &mut self,
        entries: &[HandlerEntry<E>],
        from: usize,
        end: usize,
        calls: &Arc<dyn HookBatchCalls>,
    ) -> Step {
        let entry = &entries[from];
        let now = Instant::now();
        let timeout = entry
            .timeout()
            .min(self.budget_end.saturating_duration_since(now));
        let health = self.exec.health(&entry.plugin);
        if let Some(message) = health.quarantine_message() {
            return self.fail(from, Answer::Error(message), None, now);
        }
        // Waiting for a call slot counts against the first handler's time.
        if !self.set_current(Current::Handler {
            index: from,
            started: now,
            timeout,
        }) {
            return Step::Stop;
        }
        let Some(permit) = health.acquire(now + timeout, &self.shared.cancellation) else {
            if self.shared.cancellation.is_cancelled() {
                return Step::Stop;
            }
            // No call slot came free before the deadline: a timeout.
            return self.fail(from, Answer::Error(String::new()), Some(timeout), now);
        };
        let mut json = match self.take_json() {
            Ok(json) => json,
            Err(e) => return self.fail(from, Answer::Error(e), None, now),
        };
        let start = Instant::now();
        let budget = self.budget_end.saturating_duration_since(start);
        if budget.is_zero() {
            self.json = Some(json);
            return Step::Next(from);
        }
        let request = batch::request(entries, from, end, budget, &self.ctx, &mut json);
        let call = BatchCall {
            calls: calls.clone(),
            call_id: calls.call_id(),
            from,
            end,
            budget_us: batch::budget_us(budget),
            started: start,
        };
        self.shared.ticket.set(permit.ticket());
        // From here the caller asks the plugin before it judges a timeout; if it took the job
        // over just before, the batch must not start.
        if !self.set_current(Current::Batch(call.clone())) {
            self.shared.ticket.clear();
            return Step::Stop;
        }
        let scope = scope_for(
            entry,
            Some(self.budget_end),
            self.shared.cancellation.clone(),
            &self.exec,
            &self.ctx,
        );
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            calls.call(E::NAME, call.call_id, scope, &request)
        }));
        drop(request);
        self.json = Some(json);
        self.shared.ticket.clear();
        drop(permit);
        if self.shared.cancellation.is_cancelled() {
            return Step::Stop;
        }
        let text = match answer {
            Ok(Ok(Some(text))) => text,
            // The plugin does not take batches (it remembers): its handlers go one by one.
            Ok(Ok(None)) => return Step::Next(from),
            Ok(Err(e)) => return self.fail(from, Answer::Error(e), None, start),
            Err(p) => {
                let e = format!("panicked: {}", crate::host::panic_message(p));
                return self.fail(from, Answer::Error(e), None, start);
            }
        };
        if end == self.end && text.len() <= CALLER_READS_UP_TO {
            // Nothing after it in this job needs its changes.
            self.leave_unread(Unread {
                text,
                from,
                end,
                budget_us: call.budget_us,
                started: start,
            });
            return Step::Stop;
        }
        let report = match batch::read(entries, from, end, call.budget_us, &text) {
            Ok(report) => report,
            Err(e) => return self.fail(from, Answer::Error(e), None, start),
        };
        if report.settled.is_empty() {
            if Instant::now() >= self.budget_end {
                return Step::Stop;
            }
            let e = "the plugin answered its batch without any outcome".to_string();
            return self.fail(from, Answer::Error(e), None, start);
        }
        let mut next = from;
        let mut stop = false;
        let mut done = Vec::with_capacity(report.settled.len());
        for s in report.settled {
            next = s.index + 1;
            stop = s.judged.stops_chain();
            if let Some(change) = &s.judged.change {
                self.apply(change, next < self.end && !stop);
            }
            done.push(Done {
                index: s.index,
                judged: s.judged,
                duration: s.duration,
                at: start + s.ended,
            });
            if stop {
                break;
            }
        }
        if !self.report(done, next) || stop {
            return Step::Stop;
        }
        Step::Next(next)
    }
}
