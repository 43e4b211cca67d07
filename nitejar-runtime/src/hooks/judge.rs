//! Judging one handler call: what it answered (or failed to), against its event's rules.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nitejar_sdk::abi::{HookBatchCall, HookCall};
use nitejar_sdk::hooks::{HookContext, HookEvent, HookOptions};
use nitejar_sdk::{FailPolicy, HookResult};
use serde_json::{json, Value};

use super::{HandlerImpl, JsonHookHandler};
use crate::host::panic_message;
use nitejar_store::receipts::ReceiptStatus;

/// What a handler answered, before the dispatcher judged it.
pub(super) enum Answer<P> {
    Result(HookResult<P>),
    Error(String),
    Denied(String),
}

/// The dispatcher's judgement of one handler call.
pub(super) struct Judged<P> {
    pub(super) status: ReceiptStatus,
    pub(super) detail: Option<Value>,
    pub(super) change: Option<P>,
    /// Set when this call blocks the event.
    pub(super) block: Option<String>,
}

impl<P> Judged<P> {
    pub(super) fn stops_chain(&self) -> bool {
        self.block.is_some()
    }
}

/// Judges an answer; `timed_out` (the handler's timeout) overrides it: a late answer is discarded.
pub(super) fn judge<E: HookEvent>(
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

/// The names of the fields a change sets (never their values, which may be secret), for the
/// receipt of the handler that made it: `{"changed_fields": [...]}`.
pub(super) fn change_detail<P: serde::Serialize>(change: &P) -> Value {
    json!({ "changed_fields": super::fields::changed_fields(change) })
}

/// The payload as JSON, encoded on first use and kept until a change invalidates it, so that the
/// JSON handlers and batches of one chain share one encoding. It is kept as the start of a
/// `hooks.<event>` payload (`{"event":<payload>`): a batch call appends the rest of its request and
/// takes it off again, and the payload is never copied.
pub(super) struct EventJson {
    text: String,
}

impl EventJson {
    fn encode<E: HookEvent>(payload: &E) -> Result<Self, String> {
        // Sized like the last payload of this event, with room for the rest of a request: growing
        // the buffer would copy the payload, maybe twice.
        let last = LAST_LEN[E::NAME.index()].load(Ordering::Relaxed);
        let mut text = String::with_capacity(last.max(256) + REQUEST_ROOM);
        text.push_str(HookBatchCall::EVENT_PREFIX);
        nitejar_sdk::abi::json::append(&mut text, payload)
            .map_err(|e| format!("could not encode the payload: {e}"))?;
        LAST_LEN[E::NAME.index()].store(text.len(), Ordering::Relaxed);
        text.reserve(REQUEST_ROOM);
        Ok(EventJson { text })
    }

    /// The payload's JSON.
    pub(super) fn event(&self) -> &str {
        &self.text[HookBatchCall::EVENT_PREFIX.len()..]
    }

    /// The payload of a `hooks.<event>` call: this JSON with `finish` appended, until dropped.
    pub(super) fn request(&mut self, finish: impl FnOnce(&mut String)) -> Request<'_> {
        let len = self.text.len();
        finish(&mut self.text);
        Request { json: self, len }
    }
}

/// What a request adds after the payload, usually: handler indices, budget and run context.
const REQUEST_ROOM: usize = 512;

/// The length of the last payload encoded, per event: the size of the next buffer.
static LAST_LEN: [AtomicUsize; 9] = [const { AtomicUsize::new(0) }; 9];

/// A `hooks.<event>` payload written after an [`EventJson`]; dropping it leaves the payload's JSON.
pub(super) struct Request<'a> {
    json: &'a mut EventJson,
    len: usize,
}

impl std::ops::Deref for Request<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.json.text
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        self.json.text.truncate(self.len);
    }
}

/// The payload's JSON from `cache`, encoding it there first if needed.
pub(super) fn payload_json<'c, E: HookEvent>(
    payload: &E,
    cache: &'c mut Option<EventJson>,
) -> Result<&'c mut EventJson, String> {
    if cache.is_none() {
        *cache = Some(EventJson::encode(payload)?);
    }
    cache
        .as_mut()
        .ok_or_else(|| "the payload has no JSON".into())
}

/// Calls one handler on its own (typed, or JSON through `hook.<event>`).
pub(super) fn call_handler<E: HookEvent>(
    handler: &HandlerImpl<E>,
    ctx: &HookContext<'_>,
    payload: &E,
    json_cache: &mut Option<EventJson>,
) -> Answer<E::Patch> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match handler {
        HandlerImpl::Typed(f) => Answer::Result(f(ctx, payload)),
        HandlerImpl::Json(h) => {
            let json = match payload_json(payload, json_cache) {
                Ok(json) => json,
                Err(e) => return Answer::Error(e),
            };
            match call_json::<E>(h.as_ref(), ctx, json) {
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

/// Calls a JSON handler on its own with the payload's JSON. A library plugin's handler is sent
/// `json` itself with the call's fields appended (and taken off again): the payload is not copied.
// Kept out of `call_handler`, which every built-in handler goes through.
#[inline(never)]
fn call_json<E: HookEvent>(
    handler: &dyn JsonHookHandler,
    ctx: &HookContext<'_>,
    json: &mut EventJson,
) -> Result<String, String> {
    if let Some((calls, index)) = handler.batch() {
        let request = json.request(|out| {
            HookCall::finish(out, index, ctx.work_item_id, ctx.job_id, ctx.agent_id)
        });
        if let Some(answer) = calls.call_one(E::NAME, &request, ctx.host) {
            return answer;
        }
    }
    handler.call(ctx, json.event())
}

/// Calls a JSON handler on its own with the payload's JSON.
pub(super) fn call_json_handler<E: HookEvent>(
    handler: &dyn JsonHookHandler,
    ctx: &HookContext<'_>,
    json: &mut EventJson,
) -> Answer<E::Patch> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        call_json::<E>(handler, ctx, json)
    }));
    match run {
        Ok(Ok(text)) => read_json_answer::<E>(&text),
        Ok(Err(e)) => Answer::Error(e),
        Err(p) => Answer::Error(format!("panicked: {}", panic_message(p))),
    }
}

/// Reads a JSON hook result; changes outside the event's mutation policy are `Denied`.
pub(super) fn read_json_answer<E: HookEvent>(text: &str) -> Answer<E::Patch> {
    // The answer of most calls, exactly as the SDK writes it.
    if text == r#"{"action":"continue"}"# {
        return Answer::Result(HookResult::Continue);
    }
    let raw: HookResult<Value> = match nitejar_sdk::abi::json::from_str(text) {
        Ok(r) => r,
        Err(e) => return Answer::Error(format!("answered with an unreadable hook result: {e}")),
    };
    match raw {
        HookResult::Continue => Answer::Result(HookResult::Continue),
        HookResult::Block(r) => Answer::Result(HookResult::Block(r)),
        HookResult::Change(changes) => match serde_json::from_value::<E::Patch>(changes) {
            Ok(p) => Answer::Result(HookResult::Change(p)),
            Err(e) => Answer::Denied(refused::<E>(e)),
        },
    }
}

/// Why a change was refused: serde's error (it names the field) and what the event allows.
pub(super) fn refused<E: HookEvent>(error: impl std::fmt::Display) -> String {
    format!(
        "{error}; `{}` allows changes to: {}",
        E::NAME,
        if E::MUTABLE_FIELDS.is_empty() {
            "nothing".to_string()
        } else {
            E::MUTABLE_FIELDS.join(", ")
        }
    )
}
