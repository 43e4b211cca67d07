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
use serde_json::Value;

use crate::host::Host;
use crate::integration::PostResponseResult;

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
}

/// The changes of an event that allows none. It reads only from `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoChanges {}

macro_rules! observe_only {
    ($ty:ident, $name:expr) => {
        impl HookEvent for $ty {
            const NAME: HookName = $name;
            const CAN_BLOCK: bool = false;
            const MUTABLE_FIELDS: &'static [&'static str] = &[];
            type Patch = NoChanges;
            fn apply(&mut self, _patch: NoChanges) {}
            fn mutable_state(&self) -> NoChanges {
                NoChanges {}
            }
        }
    };
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// `work_item.pre_create`: a webhook was parsed into a work item that is about to be created.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkItemPreCreate {
    /// The integration row the webhook arrived on.
    pub integration_id: String,
    /// The integration type (`telegram`, `github`, or a plugin's type).
    pub integration_type: String,
    /// The conversation the work item belongs to, e.g. `telegram:42:thread:7`.
    pub session_key: String,
    /// Where it came from (usually the integration type).
    pub source: String,
    /// The provider's reference (message id, comment URL, …).
    pub source_ref: String,
    /// A one-line title.
    pub title: String,
    /// The message and its attachments as the integration parsed them.
    #[serde(default)]
    pub payload: Value,
}

/// Changes allowed on `work_item.pre_create`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkItemPreCreatePatch {
    /// A new session key (which conversation the work item joins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// A new title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A new payload (the message text, sender and attachments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

impl WorkItemPreCreatePatch {
    /// No changes yet; add them with the setters below. Patches are `#[non_exhaustive]` (a
    /// later SDK may let this event change more fields), so they are built this way rather
    /// than with a struct literal.
    ///
    /// ```
    /// use nitejar_sdk::hooks::{HookResult, WorkItemPreCreatePatch};
    ///
    /// let changes: HookResult<WorkItemPreCreatePatch> = HookResult::change(WorkItemPreCreatePatch::new().title("[vip] Refund request"));
    /// # let _ = changes;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A new session key.
    pub fn session_key(mut self, session_key: impl Into<String>) -> Self {
        self.session_key = Some(session_key.into());
        self
    }

    /// A new title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// A new payload.
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }
}

impl HookEvent for WorkItemPreCreate {
    const NAME: HookName = HookName::WorkItemPreCreate;
    const CAN_BLOCK: bool = true;
    const MUTABLE_FIELDS: &'static [&'static str] = &["session_key", "title", "payload"];
    type Patch = WorkItemPreCreatePatch;
    fn apply(&mut self, p: Self::Patch) {
        set(&mut self.session_key, p.session_key);
        set(&mut self.title, p.title);
        set(&mut self.payload, p.payload);
    }
    fn mutable_state(&self) -> Self::Patch {
        WorkItemPreCreatePatch {
            session_key: Some(self.session_key.clone()),
            title: Some(self.title.clone()),
            payload: Some(self.payload.clone()),
        }
    }
}

/// `work_item.post_create`: a work item was created and is about to be handed to the runner.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkItemPostCreate {
    /// The work item's id.
    pub work_item_id: String,
    /// The integration row it came through.
    pub integration_id: String,
    /// That integration's type (`telegram`, `github`, …).
    pub integration_type: String,
    /// The conversation it belongs to.
    pub session_key: String,
    /// Where it came from (usually the integration type).
    pub source: String,
    /// The provider's reference (message id, comment URL, …).
    pub source_ref: String,
    /// Its title.
    pub title: String,
}
observe_only!(WorkItemPostCreate, HookName::WorkItemPostCreate);

/// A skill resolved for a run, as `run.pre_prompt` sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptSkill {
    /// The skill's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

impl PromptSkill {
    /// A resolved skill (hosts build them; the type is `#[non_exhaustive]`).
    ///
    /// ```
    /// use nitejar_sdk::hooks::PromptSkill;
    ///
    /// let skill = PromptSkill::new("acme.tone", "Tone", Some("Answer briefly.".into()));
    /// assert_eq!(skill.name, "Tone");
    /// ```
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        description: Option<String>,
    ) -> Self {
        PromptSkill {
            id: id.into(),
            name: name.into(),
            description,
        }
    }
}

/// `run.pre_prompt`: the prompt of a run is built and about to go to the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunPrePrompt {
    /// The system prompt.
    pub system_prompt: String,
    /// The user's message the run answers.
    pub user_message: String,
    /// The skills resolved for this run (agent, team and integration-type assignments).
    #[serde(default)]
    pub skills: Vec<PromptSkill>,
}

/// Changes allowed on `run.pre_prompt`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RunPrePromptPatch {
    /// A new system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// A new user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_message: Option<String>,
}

impl RunPrePromptPatch {
    /// No changes yet; add them with the setters below. Patches are `#[non_exhaustive]` (a
    /// later SDK may let this event change more fields), so they are built this way rather
    /// than with a struct literal.
    ///
    /// ```
    /// use nitejar_sdk::hooks::{HookResult, RunPrePromptPatch};
    ///
    /// let changes: HookResult<RunPrePromptPatch> = HookResult::change(RunPrePromptPatch::new().system_prompt("Answer in French."));
    /// # let _ = changes;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A new system prompt.
    pub fn system_prompt(mut self, system_prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(system_prompt.into());
        self
    }

    /// A new user message.
    pub fn user_message(mut self, user_message: impl Into<String>) -> Self {
        self.user_message = Some(user_message.into());
        self
    }
}

impl HookEvent for RunPrePrompt {
    const NAME: HookName = HookName::RunPrePrompt;
    const CAN_BLOCK: bool = true;
    const MUTABLE_FIELDS: &'static [&'static str] = &["system_prompt", "user_message"];
    type Patch = RunPrePromptPatch;
    fn apply(&mut self, p: Self::Patch) {
        set(&mut self.system_prompt, p.system_prompt);
        set(&mut self.user_message, p.user_message);
    }
    fn mutable_state(&self) -> Self::Patch {
        RunPrePromptPatch {
            system_prompt: Some(self.system_prompt.clone()),
            user_message: Some(self.user_message.clone()),
        }
    }
}

/// `model.pre_call`: a model call is about to be made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelPreCall {
    /// The turn of the run (1 for the first call).
    pub turn: u32,
    /// The model to call.
    pub model: String,
    /// The sampling temperature, when set.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// The most tokens the answer may have, when set.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The chat messages about to be sent, in the OpenAI chat-completions shape.
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Extra parameters passed through to the provider.
    #[serde(default)]
    pub provider_metadata: Value,
}

/// Changes allowed on `model.pre_call`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelPreCallPatch {
    /// Another model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Another temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Another token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Other provider metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

impl ModelPreCallPatch {
    /// No changes yet; add them with the setters below. Patches are `#[non_exhaustive]` (a
    /// later SDK may let this event change more fields), so they are built this way rather
    /// than with a struct literal.
    ///
    /// ```
    /// use nitejar_sdk::hooks::{HookResult, ModelPreCallPatch};
    ///
    /// let changes: HookResult<ModelPreCallPatch> = HookResult::change(ModelPreCallPatch::new().temperature(0.2).max_tokens(512));
    /// # let _ = changes;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Another model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Another temperature.
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Another token limit.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Other provider metadata.
    pub fn provider_metadata(mut self, provider_metadata: Value) -> Self {
        self.provider_metadata = Some(provider_metadata);
        self
    }
}

impl HookEvent for ModelPreCall {
    const NAME: HookName = HookName::ModelPreCall;
    const CAN_BLOCK: bool = true;
    const MUTABLE_FIELDS: &'static [&'static str] =
        &["model", "temperature", "max_tokens", "provider_metadata"];
    type Patch = ModelPreCallPatch;
    fn apply(&mut self, p: Self::Patch) {
        set(&mut self.model, p.model);
        if p.temperature.is_some() {
            self.temperature = p.temperature;
        }
        if p.max_tokens.is_some() {
            self.max_tokens = p.max_tokens;
        }
        set(&mut self.provider_metadata, p.provider_metadata);
    }
    fn mutable_state(&self) -> Self::Patch {
        ModelPreCallPatch {
            model: Some(self.model.clone()),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            provider_metadata: Some(self.provider_metadata.clone()),
        }
    }
}

/// A tool call the model asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelToolCall {
    /// The call's id (tool results refer to it).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments the model gave, as JSON.
    #[serde(default)]
    pub arguments: Value,
}

impl ModelToolCall {
    /// A tool call the model asked for (hosts build them; the type is `#[non_exhaustive]`).
    ///
    /// ```
    /// use nitejar_sdk::hooks::ModelToolCall;
    /// use nitejar_sdk::serde_json::json;
    ///
    /// let call = ModelToolCall::new("call-1", "search", json!({ "q": "refund policy" }));
    /// assert_eq!(call.arguments["q"], "refund policy");
    /// ```
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        ModelToolCall {
            id: id.into(),
            name: name.into(),
            arguments,
        }
    }
}

/// `model.post_call`: a model call returned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelPostCall {
    /// The model turn of the run, from 1.
    pub turn: u32,
    /// The model that answered.
    pub model: String,
    /// The assistant's text, if any.
    #[serde(default)]
    pub content: Option<String>,
    /// The tools the model asked to call.
    #[serde(default)]
    pub tool_calls: Vec<ModelToolCall>,
    /// Token usage as the provider reported it.
    #[serde(default)]
    pub usage: Value,
    /// How long the call took.
    pub duration_ms: u64,
}
observe_only!(ModelPostCall, HookName::ModelPostCall);

/// `tool.pre_exec`: a tool is about to run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolPreExec {
    /// The model turn that asked for the tool.
    pub turn: u32,
    /// The tool's name.
    pub tool_name: String,
    /// The id of the model's tool call.
    pub tool_call_id: String,
    /// The tool's input, as JSON.
    #[serde(default)]
    pub tool_input: Value,
}

/// Changes allowed on `tool.pre_exec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ToolPreExecPatch {
    /// Another input for the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_input: Option<Value>,
}

impl ToolPreExecPatch {
    /// No changes yet; add them with the setters below. Patches are `#[non_exhaustive]` (a
    /// later SDK may let this event change more fields), so they are built this way rather
    /// than with a struct literal.
    ///
    /// ```
    /// use nitejar_sdk::hooks::{HookResult, ToolPreExecPatch};
    /// use nitejar_sdk::serde_json;
    ///
    /// let changes: HookResult<ToolPreExecPatch> = HookResult::change(ToolPreExecPatch::new().tool_input(serde_json::json!({"path": "/tmp/x"})));
    /// # let _ = changes;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Another input for the tool.
    pub fn tool_input(mut self, tool_input: Value) -> Self {
        self.tool_input = Some(tool_input);
        self
    }
}

impl HookEvent for ToolPreExec {
    const NAME: HookName = HookName::ToolPreExec;
    const CAN_BLOCK: bool = true;
    const MUTABLE_FIELDS: &'static [&'static str] = &["tool_input"];
    type Patch = ToolPreExecPatch;
    fn apply(&mut self, p: Self::Patch) {
        set(&mut self.tool_input, p.tool_input);
    }
    fn mutable_state(&self) -> Self::Patch {
        ToolPreExecPatch {
            tool_input: Some(self.tool_input.clone()),
        }
    }
}

/// `tool.post_exec`: a tool ran (or was refused).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolPostExec {
    /// The model turn that asked for the tool.
    pub turn: u32,
    /// The tool's name.
    pub tool_name: String,
    /// The id of the model's tool call.
    pub tool_call_id: String,
    /// The tool's input, as JSON.
    #[serde(default)]
    pub tool_input: Value,
    /// What the model will see as the tool's result.
    pub output: String,
    /// Whether the tool succeeded.
    pub success: bool,
}

/// Changes allowed on `tool.post_exec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ToolPostExecPatch {
    /// Another result for the model to see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl ToolPostExecPatch {
    /// No changes yet; add them with the setters below. Patches are `#[non_exhaustive]` (a
    /// later SDK may let this event change more fields), so they are built this way rather
    /// than with a struct literal.
    ///
    /// ```
    /// use nitejar_sdk::hooks::{HookResult, ToolPostExecPatch};
    ///
    /// let changes: HookResult<ToolPostExecPatch> = HookResult::change(ToolPostExecPatch::new().output("[redacted]"));
    /// # let _ = changes;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Another result for the model to see.
    pub fn output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }
}

impl HookEvent for ToolPostExec {
    const NAME: HookName = HookName::ToolPostExec;
    const CAN_BLOCK: bool = false;
    const MUTABLE_FIELDS: &'static [&'static str] = &["output"];
    type Patch = ToolPostExecPatch;
    fn apply(&mut self, p: Self::Patch) {
        set(&mut self.output, p.output);
    }
    fn mutable_state(&self) -> Self::Patch {
        ToolPostExecPatch {
            output: Some(self.output.clone()),
        }
    }
}

/// `response.pre_deliver`: a response is about to be posted to the channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponsePreDeliver {
    /// The integration row the response goes to.
    pub integration_id: String,
    /// That integration's type.
    pub integration_type: String,
    /// The text to post.
    pub content: String,
    /// `streaming` (an intermediate message) or `final`.
    pub response_mode: String,
    /// The run stopped at a limit (turns, tokens) before it finished.
    #[serde(default)]
    pub hit_limit: bool,
}

/// Changes allowed on `response.pre_deliver`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResponsePreDeliverPatch {
    /// Another text to post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl ResponsePreDeliverPatch {
    /// No changes yet; add them with the setters below. Patches are `#[non_exhaustive]` (a
    /// later SDK may let this event change more fields), so they are built this way rather
    /// than with a struct literal.
    ///
    /// ```
    /// use nitejar_sdk::hooks::{HookResult, ResponsePreDeliverPatch};
    ///
    /// let changes: HookResult<ResponsePreDeliverPatch> = HookResult::change(ResponsePreDeliverPatch::new().content("Hello!"));
    /// # let _ = changes;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Another text to post.
    pub fn content(mut self, content: impl Into<String>) -> Self {
        self.content = Some(content.into());
        self
    }
}

impl HookEvent for ResponsePreDeliver {
    const NAME: HookName = HookName::ResponsePreDeliver;
    const CAN_BLOCK: bool = true;
    const MUTABLE_FIELDS: &'static [&'static str] = &["content"];
    type Patch = ResponsePreDeliverPatch;
    fn apply(&mut self, p: Self::Patch) {
        set(&mut self.content, p.content);
    }
    fn mutable_state(&self) -> Self::Patch {
        ResponsePreDeliverPatch {
            content: Some(self.content.clone()),
        }
    }
}

/// `response.post_deliver`: a response was posted (or the attempt failed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponsePostDeliver {
    /// The integration row the response went to.
    pub integration_id: String,
    /// That integration's type.
    pub integration_type: String,
    /// The text posted.
    pub content: String,
    /// What the integration reported.
    pub result: PostResponseResult,
}
observe_only!(ResponsePostDeliver, HookName::ResponsePostDeliver);

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
