//! Judging one handler call: what it answered (or failed to), against its event's rules.

use std::sync::Arc;
use std::time::Duration;

use nitejar_sdk::hooks::{HookContext, HookEvent, HookOptions};
use nitejar_sdk::{FailPolicy, HookResult};
use serde_json::{json, Value};

use super::HandlerImpl;
use crate::host::panic_message;
use crate::receipts::ReceiptStatus;

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

/// The payload as JSON, encoded on first use and kept until a change invalidates it, so that the
/// JSON handlers of one chain share one encoding.
pub(super) fn payload_json<E: HookEvent>(
    payload: &E,
    cache: &mut Option<Arc<String>>,
) -> Result<Arc<String>, String> {
    if let Some(json) = cache {
        return Ok(json.clone());
    }
    let json = Arc::new(
        nitejar_sdk::abi::json::to_string(payload)
            .map_err(|e| format!("could not encode the payload: {e}"))?,
    );
    *cache = Some(json.clone());
    Ok(json)
}

/// Calls one handler on its own (typed, or JSON through `hook.<event>`).
pub(super) fn call_handler<E: HookEvent>(
    handler: &HandlerImpl<E>,
    ctx: &HookContext<'_>,
    payload: &E,
    json_cache: &mut Option<Arc<String>>,
) -> Answer<E::Patch> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match handler {
        HandlerImpl::Typed(f) => Answer::Result(f(ctx, payload)),
        HandlerImpl::Json(h) => {
            let json = match payload_json(payload, json_cache) {
                Ok(json) => json,
                Err(e) => return Answer::Error(e),
            };
            match h.call(ctx, &json) {
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

/// Reads a JSON hook result; changes outside the event's mutation policy are `Denied`.
pub(super) fn read_json_answer<E: HookEvent>(text: &str) -> Answer<E::Patch> {
    let raw: HookResult<Value> = match serde_json::from_str(text) {
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
