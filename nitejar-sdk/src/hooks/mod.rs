//! Hooks: the nine run-lifecycle events, their payloads and what a handler may change.
//!
//! Every event is a plain serde type implementing [`HookEvent`]. A handler receives the current payload
//! by reference and answers with a [`HookResult`]: continue, continue with changes, or block. The changes
//! are the event's [`HookEvent::Patch`] type, which lists exactly the fields the event's mutation policy
//! allows; a change outside that list cannot be expressed in Rust, and a JSON answer naming another field
//! is refused by the host with the outcome `denied`.
//!
//! ```
//! use nitejar_sdk::hooks::{HookOptions, HookResult, ToolPreExec};
//! use nitejar_sdk::Plugin;
//!
//! let plugin = Plugin::builder()
//!     .hook(HookOptions::new().priority(100).fail_closed(), |_ctx, call: &ToolPreExec| {
//!         if call.tool_name == "shell" {
//!             HookResult::block("the shell tool is disabled on this server")
//!         } else {
//!             HookResult::proceed()
//!         }
//!     })
//!     .build();
//! assert_eq!(plugin.hooks().len(), 1);
//! ```
//!
//! ## Types that grow
//!
//! Payloads, patches, [`HookName`], [`HookOptions`] and [`HookContext`] are `#[non_exhaustive]`:
//! a later SDK may add an event, a field to a payload or a field a handler may change without
//! breaking a plugin written today. A `match` on [`HookName`] needs a `_` arm; patches are built
//! with their setters (`ResponsePreDeliverPatch::new().content("…")`); a payload for a unit test
//! starts from `Default` (every payload has one) with the fields the handler reads set:
//!
//! ```
//! use nitejar_sdk::hooks::{HookResult, ToolPreExec};
//! use nitejar_sdk::testing::{run_hook, TestHost};
//! use nitejar_sdk::Plugin;
//!
//! let plugin = Plugin::builder()
//!     .on(|_ctx, call: &ToolPreExec| match call.tool_name.as_str() {
//!         "shell" => HookResult::block("no shell"),
//!         _ => HookResult::proceed(),
//!     })
//!     .build();
//! let mut call = ToolPreExec::default();
//! call.tool_name = "shell".into();
//! let run = run_hook(&plugin, &TestHost::new(), call);
//! assert_eq!(run.blocked.as_deref(), Some("no shell"));
//! ```
//!
//! A struct literal of one of these types does not compile outside the SDK:
//!
//! ```compile_fail,E0639
//! let patch = nitejar_sdk::hooks::ResponsePreDeliverPatch { content: Some("x".into()) };
//! ```

use std::any::Any;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::host::Host;

mod events;

pub use events::*;

/// The nine hook events, in the order a run meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HookName {
    /// Before a work item is created from a parsed webhook. May block or change `title`, `payload`,
    /// `session_key`.
    #[serde(rename = "work_item.pre_create")]
    WorkItemPreCreate,
    /// After a work item was created. Observe only.
    #[serde(rename = "work_item.post_create")]
    WorkItemPostCreate,
    /// Before the prompt is sent to the model. May block or change `system_prompt`, `user_message`.
    #[serde(rename = "run.pre_prompt")]
    RunPrePrompt,
    /// Before each model call. May block or change `model`, `temperature`, `max_tokens`,
    /// `provider_metadata`.
    #[serde(rename = "model.pre_call")]
    ModelPreCall,
    /// After each model call. Observe only.
    #[serde(rename = "model.post_call")]
    ModelPostCall,
    /// Before a tool runs. May block or change `tool_input`.
    #[serde(rename = "tool.pre_exec")]
    ToolPreExec,
    /// After a tool ran. May change `output` (what the model sees).
    #[serde(rename = "tool.post_exec")]
    ToolPostExec,
    /// Before a response is delivered to the channel. May block or change `content`.
    #[serde(rename = "response.pre_deliver")]
    ResponsePreDeliver,
    /// After a response was delivered. Observe only.
    #[serde(rename = "response.post_deliver")]
    ResponsePostDeliver,
}

impl HookName {
    /// All nine events, in lifecycle order.
    pub const ALL: [HookName; 9] = [
        HookName::WorkItemPreCreate,
        HookName::WorkItemPostCreate,
        HookName::RunPrePrompt,
        HookName::ModelPreCall,
        HookName::ModelPostCall,
        HookName::ToolPreExec,
        HookName::ToolPostExec,
        HookName::ResponsePreDeliver,
        HookName::ResponsePostDeliver,
    ];

    /// The wire name, e.g. `tool.pre_exec`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HookName::WorkItemPreCreate => "work_item.pre_create",
            HookName::WorkItemPostCreate => "work_item.post_create",
            HookName::RunPrePrompt => "run.pre_prompt",
            HookName::ModelPreCall => "model.pre_call",
            HookName::ModelPostCall => "model.post_call",
            HookName::ToolPreExec => "tool.pre_exec",
            HookName::ToolPostExec => "tool.post_exec",
            HookName::ResponsePreDeliver => "response.pre_deliver",
            HookName::ResponsePostDeliver => "response.post_deliver",
        }
    }

    /// A dense index (0..9) in lifecycle order, for per-event tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The fields a handler of this event may change (its mutation policy).
    pub fn mutable_fields(self) -> &'static [&'static str] {
        match self {
            HookName::WorkItemPreCreate => WorkItemPreCreate::MUTABLE_FIELDS,
            HookName::WorkItemPostCreate => WorkItemPostCreate::MUTABLE_FIELDS,
            HookName::RunPrePrompt => RunPrePrompt::MUTABLE_FIELDS,
            HookName::ModelPreCall => ModelPreCall::MUTABLE_FIELDS,
            HookName::ModelPostCall => ModelPostCall::MUTABLE_FIELDS,
            HookName::ToolPreExec => ToolPreExec::MUTABLE_FIELDS,
            HookName::ToolPostExec => ToolPostExec::MUTABLE_FIELDS,
            HookName::ResponsePreDeliver => ResponsePreDeliver::MUTABLE_FIELDS,
            HookName::ResponsePostDeliver => ResponsePostDeliver::MUTABLE_FIELDS,
        }
    }

    /// Whether a handler of this event may block it. Events that report something that already
    /// happened (`*.post_*`) cannot be blocked.
    pub fn can_block(self) -> bool {
        match self {
            HookName::WorkItemPreCreate => WorkItemPreCreate::CAN_BLOCK,
            HookName::WorkItemPostCreate => WorkItemPostCreate::CAN_BLOCK,
            HookName::RunPrePrompt => RunPrePrompt::CAN_BLOCK,
            HookName::ModelPreCall => ModelPreCall::CAN_BLOCK,
            HookName::ModelPostCall => ModelPostCall::CAN_BLOCK,
            HookName::ToolPreExec => ToolPreExec::CAN_BLOCK,
            HookName::ToolPostExec => ToolPostExec::CAN_BLOCK,
            HookName::ResponsePreDeliver => ResponsePreDeliver::CAN_BLOCK,
            HookName::ResponsePostDeliver => ResponsePostDeliver::CAN_BLOCK,
        }
    }
}

/// Code generic over the event type, run for a [`HookName`] known only at run time with
/// [`HookName::visit`].
///
/// [`HookName`] is `#[non_exhaustive]`, so code outside the SDK cannot list every event in a
/// `match`; a visitor instead is called with the event's payload type, and an event a later SDK
/// adds reaches the same generic code.
///
/// ```
/// use nitejar_sdk::hooks::{HookEvent, HookVisitor};
/// use nitejar_sdk::HookName;
///
/// struct CanChange;
/// impl HookVisitor for CanChange {
///     type Output = bool;
///     fn visit<E: HookEvent>(self) -> bool {
///         !E::MUTABLE_FIELDS.is_empty()
///     }
/// }
/// assert!(HookName::ToolPreExec.visit(CanChange));
/// assert!(!HookName::ModelPostCall.visit(CanChange));
/// ```
pub trait HookVisitor {
    /// What the visit answers.
    type Output;
    /// Runs with `E`, the payload type of the visited event.
    fn visit<E: HookEvent>(self) -> Self::Output;
}

impl HookName {
    /// Calls `visitor` with this event's payload type.
    pub fn visit<V: HookVisitor>(self, visitor: V) -> V::Output {
        match self {
            HookName::WorkItemPreCreate => visitor.visit::<WorkItemPreCreate>(),
            HookName::WorkItemPostCreate => visitor.visit::<WorkItemPostCreate>(),
            HookName::RunPrePrompt => visitor.visit::<RunPrePrompt>(),
            HookName::ModelPreCall => visitor.visit::<ModelPreCall>(),
            HookName::ModelPostCall => visitor.visit::<ModelPostCall>(),
            HookName::ToolPreExec => visitor.visit::<ToolPreExec>(),
            HookName::ToolPostExec => visitor.visit::<ToolPostExec>(),
            HookName::ResponsePreDeliver => visitor.visit::<ResponsePreDeliver>(),
            HookName::ResponsePostDeliver => visitor.visit::<ResponsePostDeliver>(),
        }
    }
}

impl fmt::Display for HookName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a hook name that is not one of the nine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a hook event; expected one of: work_item.pre_create, work_item.post_create, run.pre_prompt, model.pre_call, model.post_call, tool.pre_exec, tool.post_exec, response.pre_deliver, response.post_deliver")]
pub struct UnknownHook(pub String);

impl FromStr for HookName {
    type Err = UnknownHook;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HookName::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| UnknownHook(s.to_string()))
    }
}

/// What a handler does when it cannot run to completion (error, timeout, refused change, budget).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// The chain continues past a failed handler. The default: right for observers.
    #[default]
    FailOpen,
    /// A failed handler blocks the event. Use it for security hooks: if the guard could not decide,
    /// nothing passes.
    FailClosed,
}

impl FailPolicy {
    /// The wire name (`fail_open` / `fail_closed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FailPolicy::FailOpen => "fail_open",
            FailPolicy::FailClosed => "fail_closed",
        }
    }
}

/// The default per-handler timeout.
pub const DEFAULT_HANDLER_TIMEOUT_MS: u32 = 1500;

/// How a handler is registered: its priority, timeout and fail policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HookOptions {
    /// Higher runs first. Ties are broken by plugin id, then by registration order.
    pub priority: i32,
    /// Per-handler timeout; the host also caps it by what is left of the event's budget.
    pub timeout_ms: u32,
    /// What happens when this handler fails.
    pub fail_policy: FailPolicy,
}

impl Default for HookOptions {
    fn default() -> Self {
        HookOptions {
            priority: 0,
            timeout_ms: DEFAULT_HANDLER_TIMEOUT_MS,
            fail_policy: FailPolicy::FailOpen,
        }
    }
}

impl HookOptions {
    /// Priority 0, timeout 1500 ms, `fail_open`.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the priority (higher runs first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the per-handler timeout in milliseconds.
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }
    /// Makes a failure of this handler block the event.
    pub fn fail_closed(mut self) -> Self {
        self.fail_policy = FailPolicy::FailClosed;
        self
    }
    /// Lets the chain continue when this handler fails (the default).
    pub fn fail_open(mut self) -> Self {
        self.fail_policy = FailPolicy::FailOpen;
        self
    }
}

/// What a handler answers.
#[derive(Clone, Debug, PartialEq)]
pub enum HookResult<P> {
    /// Let the event go on unchanged.
    Continue,
    /// Let the event go on with these changes applied. Later handlers see them.
    Change(P),
    /// Stop the event. The call site documents what a block means for it (no work item, no model
    /// call, a refused tool, an undelivered response).
    Block(String),
}

impl<P> HookResult<P> {
    /// Continue unchanged.
    pub fn proceed() -> Self {
        HookResult::Continue
    }
    /// Continue with changes.
    pub fn change(changes: P) -> Self {
        HookResult::Change(changes)
    }
    /// Block the event, saying why (the reason is shown in receipts).
    pub fn block(reason: impl Into<String>) -> Self {
        HookResult::Block(reason.into())
    }
}

/// The JSON form of a [`HookResult`] as it crosses the plugin boundary:
/// `{"action":"continue"}`, `{"action":"continue","changes":{…}}` or `{"action":"block","reason":"…"}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum WireResult<P> {
    Continue {
        #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
        changes: Option<P>,
    },
    Block {
        #[serde(default)]
        reason: String,
    },
}

impl<P: Serialize + Clone> Serialize for HookResult<P> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            HookResult::Continue => WireResult::Continue { changes: None },
            HookResult::Change(p) => WireResult::Continue {
                changes: Some(p.clone()),
            },
            HookResult::Block(reason) => WireResult::Block {
                reason: reason.clone(),
            },
        };
        wire.serialize(serializer)
    }
}

impl<'de, P: Deserialize<'de>> Deserialize<'de> for HookResult<P> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match WireResult::<P>::deserialize(deserializer)? {
            WireResult::Continue { changes: None } => HookResult::Continue,
            WireResult::Continue { changes: Some(p) } => HookResult::Change(p),
            WireResult::Block { reason } => HookResult::Block(reason),
        })
    }
}

/// What a handler learns about the call: which event, for which work item and job, and the host
/// services it may use.
#[non_exhaustive]
pub struct HookContext<'a> {
    /// The event being dispatched.
    pub hook: HookName,
    /// The id of the plugin whose handler is running.
    pub plugin_id: &'a str,
    /// The work item the event belongs to, when there is one yet.
    pub work_item_id: Option<&'a str>,
    /// The job (run) the event belongs to, when there is one.
    pub job_id: Option<&'a str>,
    /// The agent running the job, when there is one.
    pub agent_id: Option<&'a str>,
    /// Host services: HTTP, secrets, files, processes, logging, cancellation. Every call is checked
    /// against the plugin's declared permissions at this boundary.
    pub host: &'a dyn Host,
}

impl<'a> HookContext<'a> {
    /// The context of a call of `plugin_id`'s handler of `hook`, outside any work item or job.
    /// Hosts (and tests that call a handler directly) build it this way: the context is
    /// `#[non_exhaustive]`, so a later SDK can tell handlers more without breaking them.
    ///
    /// ```
    /// use nitejar_sdk::hooks::HookContext;
    /// use nitejar_sdk::testing::TestHost;
    /// use nitejar_sdk::HookName;
    ///
    /// let host = TestHost::new();
    /// let ctx = HookContext::new(HookName::ToolPreExec, "dev.example.guard", &host)
    ///     .with_work_item_id(Some("wi-1"));
    /// assert_eq!(ctx.work_item_id, Some("wi-1"));
    /// assert_eq!(ctx.job_id, None);
    /// ```
    pub fn new(hook: HookName, plugin_id: &'a str, host: &'a dyn Host) -> Self {
        HookContext {
            hook,
            plugin_id,
            work_item_id: None,
            job_id: None,
            agent_id: None,
            host,
        }
    }

    /// Sets the work item the event belongs to.
    pub fn with_work_item_id(mut self, work_item_id: Option<&'a str>) -> Self {
        self.work_item_id = work_item_id;
        self
    }

    /// Sets the job (run) the event belongs to.
    pub fn with_job_id(mut self, job_id: Option<&'a str>) -> Self {
        self.job_id = job_id;
        self
    }

    /// Sets the agent running the job.
    pub fn with_agent_id(mut self, agent_id: Option<&'a str>) -> Self {
        self.agent_id = agent_id;
        self
    }
}

/// A typed handler for event `E`.
pub type HandlerFn<E> = Arc<
    dyn Fn(&HookContext<'_>, &E) -> HookResult<<E as HookEvent>::Patch> + Send + Sync + 'static,
>;

/// A hook event: its payload type, its name and its mutation policy.
///
/// Implemented by the nine payload types of this module; not meant to be implemented elsewhere.
pub trait HookEvent:
    Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static
{
    /// The event's name.
    const NAME: HookName;
    /// Whether a handler may block the event.
    const CAN_BLOCK: bool;
    /// The fields of the payload a handler may change, by their JSON names.
    const MUTABLE_FIELDS: &'static [&'static str];
    /// The changes a handler may make: one optional field per mutable field. Unknown fields are
    /// refused when it is read from JSON.
    type Patch: Serialize + DeserializeOwned + Clone + Default + fmt::Debug + Send + Sync + 'static;
    /// Applies a handler's changes to the payload.
    fn apply(&mut self, patch: Self::Patch);
    /// The payload's mutable fields as a patch: applied to the payload a batch of handlers
    /// started from, it gives the payload they left. How a plugin answers the changes of several
    /// handlers at once (see [`crate::abi`]).
    fn mutable_state(&self) -> Self::Patch;
    /// [`HookEvent::mutable_state`] of a payload that is no longer needed: its fields are moved,
    /// not copied.
    fn into_mutable_state(self) -> Self::Patch
    where
        Self: Sized,
    {
        self.mutable_state()
    }
}

/// One hook handler a plugin registers: the event, its options and the typed handler.
#[derive(Clone)]
pub struct HookRegistration {
    hook: HookName,
    options: HookOptions,
    handler: Arc<dyn Any + Send + Sync>,
}

impl HookRegistration {
    /// Wraps a typed handler for event `E`.
    pub fn new<E, F>(options: HookOptions, handler: F) -> Self
    where
        E: HookEvent,
        F: Fn(&HookContext<'_>, &E) -> HookResult<E::Patch> + Send + Sync + 'static,
    {
        let handler: HandlerFn<E> = Arc::new(handler);
        HookRegistration {
            hook: E::NAME,
            options,
            handler: Arc::new(handler),
        }
    }

    /// The event this handler is for.
    pub fn hook(&self) -> HookName {
        self.hook
    }

    /// Priority, timeout and fail policy.
    pub fn options(&self) -> HookOptions {
        self.options
    }

    /// The typed handler, when `E` is this registration's event.
    pub fn handler<E: HookEvent>(&self) -> Option<HandlerFn<E>> {
        self.typed::<E>().cloned()
    }

    /// The typed handler, borrowed (a batch calls many without touching their counts).
    pub(crate) fn typed<E: HookEvent>(&self) -> Option<&HandlerFn<E>> {
        self.handler.downcast_ref::<HandlerFn<E>>()
    }

    /// Calls the handler with a JSON payload and answers JSON: the form in which hook calls cross the
    /// plugin boundary.
    pub fn call_json(&self, ctx: &HookContext<'_>, payload_json: &str) -> Result<String, String> {
        fn run<E: HookEvent>(
            reg: &HookRegistration,
            ctx: &HookContext<'_>,
            payload_json: &str,
        ) -> Result<String, String> {
            let handler = reg
                .handler::<E>()
                .ok_or_else(|| format!("handler is not registered for {}", E::NAME))?;
            let payload: E = serde_json::from_str(payload_json)
                .map_err(|e| format!("could not read the {} payload: {e}", E::NAME))?;
            let result = handler(ctx, &payload);
            serde_json::to_string(&result)
                .map_err(|e| format!("could not write the {} result: {e}", E::NAME))
        }
        match self.hook {
            HookName::WorkItemPreCreate => run::<WorkItemPreCreate>(self, ctx, payload_json),
            HookName::WorkItemPostCreate => run::<WorkItemPostCreate>(self, ctx, payload_json),
            HookName::RunPrePrompt => run::<RunPrePrompt>(self, ctx, payload_json),
            HookName::ModelPreCall => run::<ModelPreCall>(self, ctx, payload_json),
            HookName::ModelPostCall => run::<ModelPostCall>(self, ctx, payload_json),
            HookName::ToolPreExec => run::<ToolPreExec>(self, ctx, payload_json),
            HookName::ToolPostExec => run::<ToolPostExec>(self, ctx, payload_json),
            HookName::ResponsePreDeliver => run::<ResponsePreDeliver>(self, ctx, payload_json),
            HookName::ResponsePostDeliver => run::<ResponsePostDeliver>(self, ctx, payload_json),
        }
    }
}

impl fmt::Debug for HookRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookRegistration")
            .field("hook", &self.hook)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn names_round_trip() {
        for h in HookName::ALL {
            assert_eq!(h.as_str().parse::<HookName>().unwrap(), h);
            assert_eq!(
                serde_json::to_value(h).unwrap(),
                Value::String(h.as_str().into())
            );
        }
        assert!("tool.pre_run".parse::<HookName>().is_err());
    }

    #[test]
    fn a_visit_reaches_the_event_of_its_name() {
        struct Name;
        impl HookVisitor for Name {
            type Output = HookName;
            fn visit<E: HookEvent>(self) -> HookName {
                E::NAME
            }
        }
        for h in HookName::ALL {
            assert_eq!(h.visit(Name), h);
            assert_eq!(crate::abi::batch_method(h), format!("hooks.{h}"));
            assert_eq!(crate::abi::hook_method(h), format!("hook.{h}"));
        }
    }

    #[test]
    fn the_moved_mutable_state_is_the_copied_one() {
        fn check<E: HookEvent + PartialEq>(event: E)
        where
            E::Patch: fmt::Debug + PartialEq,
        {
            let copied = event.mutable_state();
            assert_eq!(event.into_mutable_state(), copied, "{}", E::NAME);
        }
        let text = serde_json::json!({ "k": "x".repeat(64), "n": [1, 2] });
        check(WorkItemPreCreate {
            session_key: "s".into(),
            title: "t".into(),
            payload: text.clone(),
            ..Default::default()
        });
        check(RunPrePrompt {
            system_prompt: "sys".into(),
            user_message: "hi".into(),
            ..Default::default()
        });
        check(ModelPreCall {
            model: "m".into(),
            temperature: Some(0.5),
            max_tokens: Some(7),
            provider_metadata: text.clone(),
            ..Default::default()
        });
        check(ToolPreExec {
            tool_input: text,
            ..Default::default()
        });
        check(ToolPostExec {
            output: "out".into(),
            ..Default::default()
        });
        check(ResponsePreDeliver {
            content: "c".into(),
            ..Default::default()
        });
        check(WorkItemPostCreate::default());
    }

    #[test]
    fn result_wire_form() {
        let r: HookResult<ResponsePreDeliverPatch> = HookResult::change(ResponsePreDeliverPatch {
            content: Some("x".into()),
        });
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"action":"continue","changes":{"content":"x"}}"#
        );
        let b: HookResult<NoChanges> =
            serde_json::from_str(r#"{"action":"block","reason":"no"}"#).unwrap();
        assert_eq!(b, HookResult::Block("no".into()));
        let c: HookResult<NoChanges> = serde_json::from_str(r#"{"action":"continue"}"#).unwrap();
        assert_eq!(c, HookResult::Continue);
    }

    #[test]
    fn patches_refuse_fields_outside_the_policy() {
        let err = serde_json::from_str::<ToolPreExecPatch>(r#"{"tool_name":"rm"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `tool_name`"),
            "{err}"
        );
        assert!(serde_json::from_str::<NoChanges>(r#"{"content":"x"}"#).is_err());
    }
}
