//! The JSON payloads of plugin and host methods (see the table in [`crate::abi`]).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::hooks::HookOptions;
use crate::integration::{
    IntegrationDescriptor, IntegrationError, IntegrationInstance, PostResponseOptions,
    WebhookRequest,
};
use crate::{HookName, SkillContribution};

/// The plugin method of a batch of `hook`'s handlers (`hooks.<event>`, e.g.
/// `hooks.tool.pre_exec`), without an allocation per call.
///
/// ```
/// use nitejar_sdk::abi::batch_method;
/// use nitejar_sdk::HookName;
///
/// assert_eq!(batch_method(HookName::ToolPreExec), "hooks.tool.pre_exec");
/// ```
pub fn batch_method(hook: HookName) -> &'static str {
    match hook {
        HookName::WorkItemPreCreate => "hooks.work_item.pre_create",
        HookName::WorkItemPostCreate => "hooks.work_item.post_create",
        HookName::RunPrePrompt => "hooks.run.pre_prompt",
        HookName::ModelPreCall => "hooks.model.pre_call",
        HookName::ModelPostCall => "hooks.model.post_call",
        HookName::ToolPreExec => "hooks.tool.pre_exec",
        HookName::ToolPostExec => "hooks.tool.post_exec",
        HookName::ResponsePreDeliver => "hooks.response.pre_deliver",
        HookName::ResponsePostDeliver => "hooks.response.post_deliver",
    }
}

/// The method that calls one handler on `hook`: `hook.<event>`.
///
/// ```
/// use nitejar_sdk::abi::hook_method;
/// use nitejar_sdk::HookName;
///
/// assert_eq!(hook_method(HookName::ToolPreExec), "hook.tool.pre_exec");
/// ```
pub fn hook_method(hook: HookName) -> &'static str {
    match hook {
        HookName::WorkItemPreCreate => "hook.work_item.pre_create",
        HookName::WorkItemPostCreate => "hook.work_item.post_create",
        HookName::RunPrePrompt => "hook.run.pre_prompt",
        HookName::ModelPreCall => "hook.model.pre_call",
        HookName::ModelPostCall => "hook.model.post_call",
        HookName::ToolPreExec => "hook.tool.pre_exec",
        HookName::ToolPostExec => "hook.tool.post_exec",
        HookName::ResponsePreDeliver => "hook.response.pre_deliver",
        HookName::ResponsePostDeliver => "hook.response.post_deliver",
    }
}

/// The answer of `describe`: everything the plugin contributes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// Integration types with their descriptors.
    #[serde(default)]
    pub integrations: Vec<IntegrationDescriptor>,
    /// Hook handlers in registration order; a handler is called by its index here.
    #[serde(default)]
    pub hooks: Vec<HookDescription>,
    /// Skills.
    #[serde(default)]
    pub skills: Vec<SkillContribution>,
}

/// One hook handler in a [`Description`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookDescription {
    /// The event.
    pub hook: HookName,
    /// Priority, timeout, fail policy.
    pub options: HookOptions,
}

/// The payload of `hook.<event>` as a plugin reads it: the run context and the event, left as raw
/// JSON so it is parsed once, into the event's own type.
#[derive(Debug, Deserialize)]
pub struct HookCall<'a> {
    /// The handler's index in [`Description::hooks`].
    pub handler: usize,
    /// The work item the event belongs to, if any.
    #[serde(default)]
    pub work_item_id: Option<String>,
    /// The job (run) the event belongs to, if any.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The agent running the job, if any.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The event's payload.
    #[serde(borrow)]
    pub event: &'a RawValue,
}

impl HookCall<'_> {
    /// Writes the payload of a `hook.<event>` call around an event already encoded as JSON.
    pub fn encode(
        handler: usize,
        work_item_id: Option<&str>,
        job_id: Option<&str>,
        agent_id: Option<&str>,
        event_json: &str,
    ) -> String {
        let mut out = String::with_capacity(event_json.len() + 128);
        out.push_str(HookBatchCall::EVENT_PREFIX);
        out.push_str(event_json);
        Self::finish(&mut out, handler, work_item_id, job_id, agent_id);
        out
    }

    /// Appends what follows the event to `out`, which holds [`HookBatchCall::EVENT_PREFIX`] and
    /// the event: the same framing as a batch's ([`HookBatchCall::finish`]), so that a host can
    /// send one handler the payload it keeps for the chain without copying it.
    pub fn finish(
        out: &mut String,
        handler: usize,
        work_item_id: Option<&str>,
        job_id: Option<&str>,
        agent_id: Option<&str>,
    ) {
        out.push_str(r#","handler":"#);
        push_u64(out, handler as u64);
        push_context(out, work_item_id, job_id, agent_id);
    }
}

/// The run context fields and the closing brace of a hook call's payload.
fn push_context(
    out: &mut String,
    work_item_id: Option<&str>,
    job_id: Option<&str>,
    agent_id: Option<&str>,
) {
    for (key, value) in [
        ("work_item_id", work_item_id),
        ("job_id", job_id),
        ("agent_id", agent_id),
    ] {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        let len = out.len();
        if value.is_none() || super::json::append(out, &value).is_err() {
            out.truncate(len);
            out.push_str("null");
        }
    }
    out.push('}');
}

/// The payload of `hooks.<event>` as a plugin reads it: several handlers of the plugin, called one
/// after the other on one payload, in one call. The context and the event are those of
/// [`HookCall`].
#[derive(Debug, Deserialize)]
pub struct HookBatchCall<'a> {
    /// Indices of the handlers in [`Description::hooks`], in the order to call them.
    pub handlers: Vec<usize>,
    /// What was left of the event's chain budget when the host sent the call, in microseconds.
    /// The batch counts it from when it starts.
    pub budget_us: u64,
    /// The work item the event belongs to, if any.
    #[serde(default)]
    pub work_item_id: Option<String>,
    /// The job (run) the event belongs to, if any.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The agent running the job, if any.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The event's payload.
    #[serde(borrow)]
    pub event: &'a RawValue,
}

impl HookBatchCall<'_> {
    /// What the payload of a `hooks.<event>` call starts with. The event comes first, so that a
    /// host can keep one buffer holding this prefix and the encoded event for a whole chain, and
    /// append the rest of each call to it ([`HookBatchCall::finish`]).
    pub const EVENT_PREFIX: &'static str = r#"{"event":"#;

    /// Writes the payload of a `hooks.<event>` call around an event already encoded as JSON.
    pub fn encode(
        handlers: &[usize],
        budget_us: u64,
        work_item_id: Option<&str>,
        job_id: Option<&str>,
        agent_id: Option<&str>,
        event_json: &str,
    ) -> String {
        let mut out = String::with_capacity(event_json.len() + 96 + handlers.len() * 4);
        out.push_str(Self::EVENT_PREFIX);
        out.push_str(event_json);
        Self::finish(
            &mut out,
            handlers,
            budget_us,
            work_item_id,
            job_id,
            agent_id,
        );
        out
    }

    /// Appends what follows the event to `out`, which holds [`HookBatchCall::EVENT_PREFIX`] and
    /// the event.
    pub fn finish(
        out: &mut String,
        handlers: &[usize],
        budget_us: u64,
        work_item_id: Option<&str>,
        job_id: Option<&str>,
        agent_id: Option<&str>,
    ) {
        out.push_str(r#","handlers":["#);
        for (i, h) in handlers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_u64(out, *h as u64);
        }
        out.push_str(r#"],"budget_us":"#);
        push_u64(out, budget_us);
        push_context(out, work_item_id, job_id, agent_id);
    }
}

/// The answer of `hooks.<event>`, and of `hooks.progress` while a batch runs: how far the batch got.
///
/// Handler `k` of the batch (the `k`-th of [`HookBatchCall::handlers`]) started `ns[0] + … +
/// ns[k-1]` nanoseconds after the batch started and ran `ns[k]` nanoseconds. A handler that ran
/// and is not listed in `changed` and is not the last answered `continue`; the last one's ending is
/// `end` when it was not a `continue`.
#[derive(Debug, Default, Deserialize)]
pub struct HookBatchAnswer<'a> {
    /// How long each handler that ran took, in nanoseconds, in order.
    #[serde(default)]
    pub ns: Vec<u64>,
    /// Positions (in `ns`) of the handlers that changed the payload; their changes are in
    /// `changes`.
    #[serde(default)]
    pub changed: Vec<usize>,
    /// How the last handler ended when it did not answer `continue`.
    #[serde(default, borrow)]
    pub end: Option<BatchEnd<'a>>,
    /// The event's mutable fields after the changes of the handlers in `changed` (a patch), when
    /// there are any.
    #[serde(default, borrow)]
    pub changes: Option<&'a RawValue>,
    /// Only in a `hooks.progress` answer: how long the handler at position `ns.len()` has been
    /// running, in nanoseconds; `null` when the batch is not running (any more).
    #[serde(default)]
    pub running_ns: Option<u64>,
}

/// How the last handler of a batch ended, when it did not answer `continue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BatchEnd<'a> {
    /// It blocked the event.
    Block {
        /// Why it blocked.
        #[serde(default, borrow)]
        reason: std::borrow::Cow<'a, str>,
    },
    /// It panicked (the panic was caught in the plugin); `error` carries the message and location.
    Panic {
        /// The panic's message and location.
        #[serde(borrow)]
        error: std::borrow::Cow<'a, str>,
    },
    /// It could not answer (e.g. its result could not be written).
    Error {
        /// What went wrong.
        #[serde(borrow)]
        error: std::borrow::Cow<'a, str>,
    },
}

/// The payload of `hooks.progress`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressCall {
    /// The `call_id` of the `hooks.<event>` call asked about.
    pub call_id: u64,
}

/// Appends `n` in decimal (the lists of a batch are long; `fmt` is slow for them).
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    // Handler indices, mostly.
    if n < 10 {
        out.push(char::from(b'0' + n as u8));
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // A few ASCII digits: pushed one by one rather than copied by a call to `memcpy`.
    out.reserve(digits.len() - i);
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// The answer of an integration method: `{"ok": value}` or `{"error": IntegrationError}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    /// The method's result.
    Ok(T),
    /// The integration's error.
    Error(IntegrationError),
}

impl<T> From<Result<T, IntegrationError>> for Reply<T> {
    fn from(r: Result<T, IntegrationError>) -> Self {
        match r {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(e),
        }
    }
}

impl<T> From<Reply<T>> for Result<T, IntegrationError> {
    fn from(r: Reply<T>) -> Self {
        match r {
            Reply::Ok(v) => Ok(v),
            Reply::Error(e) => Err(e),
        }
    }
}

/// The payload of `integration.<type>.validate_config` and `.test_connection`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigCall {
    /// The integration config to check or to test.
    #[serde(default)]
    pub config: Value,
}

/// The payload of `integration.<type>.parse_webhook`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParseWebhookCall {
    /// The webhook request as received.
    pub request: WebhookRequest,
    /// The integration row it was sent to.
    pub instance: IntegrationInstance,
}

/// The payload of `integration.<type>.post_response`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PostResponseCall {
    /// The integration row to answer through.
    pub instance: IntegrationInstance,
    /// The work item being answered.
    pub work_item_id: String,
    /// The text to post.
    pub content: String,
    /// What `parse_webhook` returned as the response context.
    #[serde(default)]
    pub response_context: Option<Value>,
    /// How to post it.
    #[serde(default)]
    pub options: PostResponseOptions,
}

/// The payload of `integration.<type>.acknowledge_receipt`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AcknowledgeCall {
    /// The integration row the work item came through.
    pub instance: IntegrationInstance,
    /// What `parse_webhook` returned as the response context.
    #[serde(default)]
    pub response_context: Option<Value>,
}

/// The payload of the host's `secret`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretCall {
    /// The secret's name, as declared in `permissions.secrets`.
    pub name: String,
}

/// The answer of the host's `secret`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretValue {
    /// The secret's value.
    pub value: String,
}

/// The payload of the host's `read_file`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCall {
    /// The path to read.
    pub path: String,
}

/// The answer of the host's `read_file`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContents {
    /// The file's bytes.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub contents: Vec<u8>,
}

/// The payload of the host's `write_file`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFileCall {
    /// The path to write.
    pub path: String,
    /// The bytes to write.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub contents: Vec<u8>,
}

/// The answer of the host's `deadline`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remaining {
    /// Milliseconds left, or `null` for a call without a deadline.
    pub remaining_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_call_round_trips_with_the_event_left_raw() {
        let text = HookCall::encode(2, Some("wi\"1"), None, None, r#"{"turn":1}"#);
        let call: HookCall<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(call.handler, 2);
        assert_eq!(call.work_item_id.as_deref(), Some("wi\"1"));
        assert_eq!(call.job_id, None);
        assert_eq!(call.event.get(), r#"{"turn":1}"#);
    }

    #[test]
    fn reply_wire_form() {
        let ok: Reply<u32> = Reply::Ok(3);
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":3}"#);
        let err: Reply<u32> = Reply::Error(IntegrationError::Unauthorized("sig".into()));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":{"kind":"unauthorized","message":"sig"}}"#
        );
    }
}
