//! The nine events' payloads and their patches (what a handler may change).
//!
//! Payloads are filled in by the host; patches are built by handlers with their setters. Both are
//! `#[non_exhaustive]` (see the [module docs](super#types-that-grow)).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{HookEvent, HookName};
use crate::integration::PostResponseResult;

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
    fn into_mutable_state(self) -> Self::Patch {
        WorkItemPreCreatePatch {
            session_key: Some(self.session_key),
            title: Some(self.title),
            payload: Some(self.payload),
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
    fn into_mutable_state(self) -> Self::Patch {
        RunPrePromptPatch {
            system_prompt: Some(self.system_prompt),
            user_message: Some(self.user_message),
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
    fn into_mutable_state(self) -> Self::Patch {
        ModelPreCallPatch {
            model: Some(self.model),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            provider_metadata: Some(self.provider_metadata),
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
    fn into_mutable_state(self) -> Self::Patch {
        ToolPreExecPatch {
            tool_input: Some(self.tool_input),
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
    fn into_mutable_state(self) -> Self::Patch {
        ToolPostExecPatch {
            output: Some(self.output),
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
    fn into_mutable_state(self) -> Self::Patch {
        ResponsePreDeliverPatch {
            content: Some(self.content),
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
