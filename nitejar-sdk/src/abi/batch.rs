//! The plugin side of `hooks.<event>`: consecutive handlers of one plugin, called on one payload in
//! one call, and `hooks.progress`, which says how far a running batch got.
//!
//! The payload is read once per batch; each handler sees it as the previous ones left it; the
//! answer carries one duration per handler and the changed fields once (see
//! [`HookBatchAnswer`](super::HookBatchAnswer)). The batch keeps each handler's clock itself: a
//! handler gets `min(its timeout, what is left of the budget)` from when it starts, and the batch
//! stops after the first handler that did not answer `continue` in time — a block, a panic, or a
//! late answer (whose change is not applied: the host judges it `timeout`). The host needs no
//! message from the plugin while the handlers are on time; when it has waited as long as a handler
//! may take, it asks `hooks.progress`, which answers from the same clock, so that the host gives up
//! on a handler exactly when the batch itself will count it late.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::export::{panic_text, AbiHost};
use super::json;
use super::wire::{push_u64, BatchEnd, ProgressCall};
use super::{CallCtx, HostBox, PluginError};
use crate::hooks::{HookContext, HookEvent, HookName, HookResult};
use crate::Plugin;

/// A batch that has run this long asks the host whether it gave up before starting another
/// handler. Sooner it cannot have: the host gives up on a handler only once `hooks.progress` says
/// it is late — and then the batch stops after it by itself — or when the plugin cannot say, which
/// the host waits well beyond this for.
const CHECK_CANCELLED_AFTER: Duration = Duration::from_millis(1);

/// The batches of one plugin instance that are running, by the id of their call. A handful at a
/// time (the host bounds the calls of a plugin): a list is faster than a hash map here.
#[derive(Default)]
pub(super) struct RunningBatches(Mutex<Vec<(u64, Arc<dyn Progress>)>>);

impl RunningBatches {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Arc<dyn Progress>)>> {
        // Whole entries only; a panic cannot leave the list half-written.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, call_id: u64, batch: Arc<dyn Progress>) -> Registered<'_> {
        self.lock().push((call_id, batch));
        Registered {
            batches: self,
            call_id,
        }
    }

    /// The answer of `hooks.progress`.
    pub(super) fn progress(&self, payload: &str) -> Result<String, PluginError> {
        let call: ProgressCall = serde_json::from_str(payload).map_err(|e| {
            PluginError::new(
                PluginError::BAD_PAYLOAD,
                format!("could not read the payload of `hooks.progress`: {e}"),
            )
        })?;
        let batch = self
            .lock()
            .iter()
            .find(|(id, _)| *id == call.call_id)
            .map(|(_, b)| b.clone());
        Ok(match batch {
            Some(batch) => batch.answer(true),
            None => r#"{"running_ns":null}"#.to_string(),
        })
    }
}

struct Registered<'a> {
    batches: &'a RunningBatches,
    call_id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut running = self.batches.lock();
        if let Some(at) = running.iter().position(|(id, _)| *id == self.call_id) {
            running.swap_remove(at);
        }
    }
}

/// A running batch, as `hooks.progress` sees it.
trait Progress: Send + Sync {
    /// The batch's answer so far; with `running_ns` when `progress`.
    fn answer(&self, progress: bool) -> String;
}

/// What one instance hands a batch.
pub(super) struct BatchHost<'a> {
    pub(super) plugin: &'a Plugin,
    pub(super) host: &'a HostBox,
    pub(super) plugin_id: &'a str,
    pub(super) running: &'a RunningBatches,
}

/// Runs `hooks.<event>`.
pub(super) fn run(
    b: &BatchHost<'_>,
    method: &str,
    name: HookName,
    payload: &str,
    ctx: CallCtx,
) -> Result<String, PluginError> {
    use crate::hooks::*;
    match name {
        HookName::WorkItemPreCreate => run_event::<WorkItemPreCreate>(b, method, payload, ctx),
        HookName::WorkItemPostCreate => run_event::<WorkItemPostCreate>(b, method, payload, ctx),
        HookName::RunPrePrompt => run_event::<RunPrePrompt>(b, method, payload, ctx),
        HookName::ModelPreCall => run_event::<ModelPreCall>(b, method, payload, ctx),
        HookName::ModelPostCall => run_event::<ModelPostCall>(b, method, payload, ctx),
        HookName::ToolPreExec => run_event::<ToolPreExec>(b, method, payload, ctx),
        HookName::ToolPostExec => run_event::<ToolPostExec>(b, method, payload, ctx),
        HookName::ResponsePreDeliver => run_event::<ResponsePreDeliver>(b, method, payload, ctx),
        HookName::ResponsePostDeliver => run_event::<ResponsePostDeliver>(b, method, payload, ctx),
    }
}

/// Runs `hook.<event>`: one handler.
pub(super) fn run_one(
    b: &BatchHost<'_>,
    method: &str,
    name: HookName,
    payload: &str,
    ctx: CallCtx,
) -> Result<String, PluginError> {
    use crate::hooks::*;
    match name {
        HookName::WorkItemPreCreate => one::<WorkItemPreCreate>(b, method, payload, ctx),
        HookName::WorkItemPostCreate => one::<WorkItemPostCreate>(b, method, payload, ctx),
        HookName::RunPrePrompt => one::<RunPrePrompt>(b, method, payload, ctx),
        HookName::ModelPreCall => one::<ModelPreCall>(b, method, payload, ctx),
        HookName::ModelPostCall => one::<ModelPostCall>(b, method, payload, ctx),
        HookName::ToolPreExec => one::<ToolPreExec>(b, method, payload, ctx),
        HookName::ToolPostExec => one::<ToolPostExec>(b, method, payload, ctx),
        HookName::ResponsePreDeliver => one::<ResponsePreDeliver>(b, method, payload, ctx),
        HookName::ResponsePostDeliver => one::<ResponsePostDeliver>(b, method, payload, ctx),
    }
}

/// An optional string borrowed from the payload unless it has escapes. (`serde` reads an
/// `Option<Cow<str>>` as an owned copy whatever the text.)
fn borrowed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(s)))
        }
        fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(s.to_owned())))
        }
        fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(s)))
        }
    }
    d.deserialize_option(Text)
}

/// [`HookCall`](super::HookCall) with the event read straight into its type: one pass over the
/// payload.
#[derive(Deserialize)]
#[serde(bound(deserialize = "E: HookEvent"))]
struct Single<'a, E> {
    handler: usize,
    // Borrowed from the payload unless escaped (`borrowed`): no allocation per call for the run
    // context.
    #[serde(default, borrow, deserialize_with = "borrowed")]
    work_item_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    job_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    agent_id: Option<Cow<'a, str>>,
    event: E,
}

fn one<E: HookEvent>(
    b: &BatchHost<'_>,
    method: &str,
    payload: &str,
    ctx: CallCtx,
) -> Result<String, PluginError> {
    let call: Single<'_, E> = json::from_str(payload).map_err(|e| {
        PluginError::new(
            PluginError::BAD_PAYLOAD,
            format!("could not read the payload of `{method}`: {e}"),
        )
    })?;
    let handler = b
        .plugin
        .hooks()
        .get(call.handler)
        .filter(|r| r.hook() == E::NAME)
        .and_then(|r| r.typed::<E>())
        .ok_or_else(|| {
            PluginError::new(
                PluginError::UNKNOWN_METHOD,
                format!(
                    "this plugin has no handler #{} for `{}`",
                    call.handler,
                    E::NAME
                ),
            )
        })?;
    let host = AbiHost::new(b.host, ctx, method);
    let hook_ctx = HookContext {
        hook: E::NAME,
        plugin_id: b.plugin_id,
        work_item_id: call.work_item_id.as_deref(),
        job_id: call.job_id.as_deref(),
        agent_id: call.agent_id.as_deref(),
        host: &host,
    };
    // A panic unwinds to the call's guard, which answers it as the call's `panic`.
    let result = handler(&hook_ctx, &call.event);
    let mut out = String::new();
    let written = match &result {
        HookResult::Continue => {
            out.push_str(r#"{"action":"continue"}"#);
            Ok(())
        }
        HookResult::Change(patch) => {
            out.reserve(256);
            out.push_str(r#"{"action":"continue","changes":"#);
            let written = json::append(&mut out, patch);
            out.push('}');
            written
        }
        HookResult::Block(reason) => {
            out.push_str(r#"{"action":"block","reason":"#);
            let written = json::append(&mut out, reason);
            out.push('}');
            written
        }
    };
    written.map(|()| out).map_err(|e| {
        PluginError::new(
            PluginError::FAILED,
            format!("could not write the {} result: {e}", E::NAME),
        )
    })
}

/// [`HookBatchCall`](super::HookBatchCall) with the event read straight into its type: one pass
/// over the payload.
#[derive(Deserialize)]
#[serde(bound(deserialize = "E: HookEvent"))]
struct Envelope<'a, E> {
    handlers: Vec<usize>,
    budget_us: u64,
    // Borrowed from the payload unless escaped (`borrowed`): no allocation per call for the run
    // context.
    #[serde(default, borrow, deserialize_with = "borrowed")]
    work_item_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    job_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    agent_id: Option<Cow<'a, str>>,
    event: E,
}

/// The state of one batch, shared with `hooks.progress` from its start: a handler that turns out
/// slow may be the first one, and the host must be able to learn where the batch is while it runs.
/// Only the batch's thread writes it; the counters are published with release stores after what
/// they count, and a change is applied under the payload's write lock together with the count that
/// includes it, so a reader holding the read lock sees a payload and a count that belong together.
struct BatchState<E> {
    started: Instant,
    /// The length of the call's payload: room enough for changes written back.
    payload_len: usize,
    payload: RwLock<E>,
    /// Per handler (the first `done`): how long it took in nanoseconds, with [`CHANGED`] set when
    /// it changed the payload.
    outcomes: Vec<AtomicU64>,
    /// How many handlers are done.
    done: AtomicUsize,
    /// When the handler at position `done` started, in nanoseconds after `started`;
    /// [`NOT_RUNNING`] when none runs.
    running_since: AtomicU64,
    /// How the last handler ended, when not with `continue` (written before the last `done`).
    end: Mutex<Option<BatchEnd<'static>>>,
}

const NOT_RUNNING: u64 = u64::MAX;
const CHANGED: u64 = 1 << 63;

fn read<E>(payload: &RwLock<E>) -> RwLockReadGuard<'_, E> {
    // Only `apply` writes; a panic in it leaves a payload that was applied or not, which the
    // answer says either way.
    payload.read().unwrap_or_else(|p| p.into_inner())
}

fn write<E>(payload: &RwLock<E>) -> RwLockWriteGuard<'_, E> {
    payload.write().unwrap_or_else(|p| p.into_inner())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos())
        .unwrap_or(u64::MAX)
        .min(CHANGED - 1)
}

impl<E: HookEvent> Progress for BatchState<E> {
    fn answer(&self, progress: bool) -> String {
        // The read lock keeps the payload and `done` together (see the type's docs).
        let payload = read(&self.payload);
        let done = self.done.load(Ordering::Acquire);
        let running = self.running_since.load(Ordering::Acquire);
        let changed = self.changed(done);
        let mut out = self.head(done, changed);
        if changed {
            push_changes(&mut out, &payload.mutable_state());
        }
        drop(payload);
        if progress {
            out.push_str(r#","running_ns":"#);
            if running == NOT_RUNNING {
                out.push_str("null");
            } else {
                let since = self.started + Duration::from_nanos(running);
                push_u64(&mut out, nanos(since.elapsed()));
            }
        }
        out.push('}');
        out
    }
}

impl<E: HookEvent> BatchState<E> {
    /// Whether a handler among the first `done` changed the payload.
    fn changed(&self, done: usize) -> bool {
        self.outcomes[..done]
            .iter()
            .any(|o| o.load(Ordering::Relaxed) & CHANGED != 0)
    }

    /// The answer up to its changes: durations, changed positions and how the last one ended;
    /// with room for the changes when there are some (`changed`).
    fn head(&self, done: usize, changed: bool) -> String {
        let outcomes = &self.outcomes[..done];
        // Changes are written in place: a buffer grown for them would copy them several times.
        let room = if changed { self.payload_len } else { 0 };
        let mut out = String::with_capacity(64 + 24 * done + room);
        out.push_str(r#"{"ns":["#);
        for (i, outcome) in outcomes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_u64(&mut out, outcome.load(Ordering::Relaxed) & !CHANGED);
        }
        out.push_str(r#"],"changed":["#);
        let mut first = true;
        for (i, outcome) in outcomes.iter().enumerate() {
            if outcome.load(Ordering::Relaxed) & CHANGED != 0 {
                if !first {
                    out.push(',');
                }
                first = false;
                push_u64(&mut out, i as u64);
            }
        }
        out.push(']');
        if let Some(end) = &*self.end.lock().unwrap_or_else(|p| p.into_inner()) {
            out.push_str(r#","end":"#);
            out.push_str(&serde_json::to_string(end).unwrap_or_else(|_| "null".into()));
        }
        out
    }

    /// The final answer of a batch nobody else can ask about any more: the changes are moved out
    /// of the payload, not copied.
    fn into_answer(self) -> String {
        let done = self.done.load(Ordering::Acquire);
        let changed = self.changed(done);
        let mut out = self.head(done, changed);
        if changed {
            let payload = self.payload.into_inner().unwrap_or_else(|p| p.into_inner());
            push_changes(&mut out, &payload.into_mutable_state());
        }
        out.push('}');
        out
    }
}

/// Appends `,"changes":` and the patch (`null` if it cannot be written: the host refuses the
/// changes of a batch that sends none).
fn push_changes<P: serde::Serialize>(out: &mut String, patch: &P) {
    out.push_str(r#","changes":"#);
    let at = out.len();
    if json::append(out, patch).is_err() {
        out.truncate(at);
        out.push_str("null");
    }
}

fn run_event<E: HookEvent>(
    b: &BatchHost<'_>,
    method: &str,
    payload: &str,
    ctx: CallCtx,
) -> Result<String, PluginError> {
    let call: Envelope<'_, E> = json::from_str(payload).map_err(|e| {
        PluginError::new(
            PluginError::BAD_PAYLOAD,
            format!("could not read the payload of `{method}`: {e}"),
        )
    })?;
    // Every handler is looked up before the first runs: a batch naming one this plugin does not
    // have runs none of them.
    let mut handlers = Vec::with_capacity(call.handlers.len());
    for &i in &call.handlers {
        let handler = b
            .plugin
            .hooks()
            .get(i)
            .filter(|r| r.hook() == E::NAME)
            .and_then(|r| {
                let own = Duration::from_millis(u64::from(r.options().timeout_ms));
                Some((r.typed::<E>()?, own))
            })
            .ok_or_else(|| {
                PluginError::new(
                    PluginError::UNKNOWN_METHOD,
                    format!("this plugin has no handler #{i} for `{}`", E::NAME),
                )
            })?;
        handlers.push(handler);
    }
    let budget = Duration::from_micros(call.budget_us);
    let started = Instant::now();
    let state = Arc::new(BatchState {
        started,
        payload_len: payload.len(),
        payload: RwLock::new(call.event),
        outcomes: (0..handlers.len()).map(|_| AtomicU64::new(0)).collect(),
        done: AtomicUsize::new(0),
        running_since: AtomicU64::new(0),
        end: Mutex::new(None),
    });
    let registered = b.running.register(ctx.call_id, state.clone());
    let mut payload = read(&state.payload);
    // When the handler at `pos` starts, and how long after `started` that is.
    let mut at = started;
    let mut elapsed = Duration::ZERO;
    for (pos, &(handler, own)) in handlers.iter().enumerate() {
        if elapsed >= budget
            || (pos > 0 && elapsed >= CHECK_CANCELLED_AFTER && b.host.is_cancelled(ctx.call_id))
        {
            break;
        }
        if pos > 0 {
            state.running_since.store(nanos(elapsed), Ordering::Release);
        }
        let timeout = own.min(budget - elapsed);
        let host = AbiHost::with_deadline(b.host, ctx.call_id, at.checked_add(timeout), method);
        let hook_ctx = HookContext {
            hook: E::NAME,
            plugin_id: b.plugin_id,
            work_item_id: call.work_item_id.as_deref(),
            job_id: call.job_id.as_deref(),
            agent_id: call.agent_id.as_deref(),
            host: &host,
        };
        let result = catch_unwind(AssertUnwindSafe(|| handler(&hook_ctx, &*payload)));
        let end = Instant::now();
        let took = end - at;
        // A late answer is judged `timeout` by the host and its change discarded; the handlers
        // after it go on in another call, if the chain goes on at all.
        let late = took > timeout;
        let (change, ending) = match result {
            Ok(HookResult::Continue) => (None, None),
            Ok(HookResult::Change(patch)) => ((!late).then_some(patch), None),
            Ok(HookResult::Block(reason)) => (
                None,
                Some(BatchEnd::Block {
                    reason: reason.into(),
                }),
            ),
            Err(panic) => (
                None,
                Some(BatchEnd::Panic {
                    error: panic_text(panic).into(),
                }),
            ),
        };
        let stop = late || ending.is_some();
        if stop || pos + 1 == handlers.len() {
            state.running_since.store(NOT_RUNNING, Ordering::Release);
        }
        if let Some(ending) = ending {
            *state.end.lock().unwrap_or_else(|p| p.into_inner()) = Some(ending);
        }
        match change {
            None => {
                state.outcomes[pos].store(nanos(took), Ordering::Relaxed);
                state.done.store(pos + 1, Ordering::Release);
            }
            // A change and the count that includes it go together, under the write lock.
            Some(patch) => {
                drop(payload);
                let mut writable = write(&state.payload);
                writable.apply(patch);
                state.outcomes[pos].store(nanos(took) | CHANGED, Ordering::Relaxed);
                state.done.store(pos + 1, Ordering::Release);
                drop(writable);
                payload = read(&state.payload);
            }
        }
        if stop {
            break;
        }
        at = end;
        elapsed += took;
    }
    drop(payload);
    state.running_since.store(NOT_RUNNING, Ordering::Release);
    drop(registered);
    // Unregistered, the batch is ours alone unless a `hooks.progress` answer is being written.
    Ok(match Arc::try_unwrap(state) {
        Ok(state) => state.into_answer(),
        Err(state) => state.answer(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::ToolPreExec;

    #[test]
    fn the_run_context_is_borrowed_from_the_payload_unless_escaped() {
        let event = r#"{"turn":1,"tool_name":"t","tool_call_id":"c"}"#;
        let text = format!(
            r#"{{"event":{event},"handlers":[0],"budget_us":1,"work_item_id":"wi-1","job_id":"j\"1","agent_id":null}}"#
        );
        let call: Envelope<'_, ToolPreExec> = json::from_str(&text).unwrap();
        assert!(matches!(call.work_item_id, Some(Cow::Borrowed("wi-1"))));
        assert!(matches!(&call.job_id, Some(Cow::Owned(s)) if s == "j\"1"));
        assert_eq!(call.agent_id, None);
        // Read by `serde_json` (what the reader hands over), the same values.
        let call: Envelope<'_, ToolPreExec> = serde_json::from_str(&text).unwrap();
        assert_eq!(call.work_item_id.as_deref(), Some("wi-1"));
        assert_eq!(call.job_id.as_deref(), Some("j\"1"));
        assert_eq!(call.agent_id, None);
        // Absent is none, and anything but a string or null is refused.
        let text = format!(r#"{{"event":{event},"handler":0}}"#);
        let call: Single<'_, ToolPreExec> = json::from_str(&text).unwrap();
        assert_eq!(
            (call.work_item_id, call.job_id, call.agent_id),
            (None, None, None)
        );
        let text = format!(r#"{{"event":{event},"handler":0,"job_id":7}}"#);
        let err = json::from_str::<Single<'_, ToolPreExec>>(&text)
            .err()
            .unwrap();
        assert!(err.to_string().contains("a string or null"), "{err}");
    }
}
