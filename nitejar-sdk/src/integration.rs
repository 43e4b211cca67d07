//! Integrations: channel types that turn webhooks into work items and deliver responses.
//!
//! An integration is identified by its `type` (`telegram`, `github`, `acme-webhook`). Operators create
//! integration rows of that type with a config that the host validates against the integration's
//! [`IntegrationDescriptor::config_schema`] and [`Integration::validate_config`], and whose
//! [`IntegrationDescriptor::sensitive_fields`] the host stores encrypted. The webhook URL of a row is
//! `POST /api/webhooks/plugins/{type}/{integration_id}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::Host;

/// Catalog grouping of an integration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IntegrationCategory {
    /// Chat and messaging channels (Telegram, Slack, …).
    #[default]
    Messaging,
    /// Code hosting and review (GitHub, GitLab, …).
    Code,
    /// Everything else people work in (issue trackers, documents, …).
    Productivity,
}

/// When the run's responses are delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseMode {
    /// Every intermediate assistant message is posted as it arrives (chat-like).
    #[default]
    Streaming,
    /// Only the final answer is posted.
    Final,
}

impl ResponseMode {
    /// The name, as JSON and hook payloads spell it (`streaming`, `final`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Streaming => "streaming",
            ResponseMode::Final => "final",
        }
    }
}

/// What the host and the admin UI know about an integration type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IntegrationDescriptor {
    /// The `type` value of integration rows, e.g. `telegram`. Lower case, `[a-z0-9_-]`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name shown to operators.
    pub display_name: String,
    /// One sentence on what it connects.
    pub description: String,
    /// An icon name (Tabler icon set), e.g. `brand-telegram`.
    #[serde(default)]
    pub icon: String,
    /// Where the admin lists it.
    #[serde(default)]
    pub category: IntegrationCategory,
    /// Whether it posts intermediate messages or only the final answer.
    #[serde(default)]
    pub response_mode: ResponseMode,
    /// Top-level string fields of the config stored encrypted and shown masked.
    #[serde(default)]
    pub sensitive_fields: Vec<String>,
    /// JSON Schema (draft 2020-12) of the config; also drives the admin form.
    #[serde(default = "empty_object_schema")]
    pub config_schema: Value,
    /// Optional presentation hints for the admin form (labels, help, order, widgets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_schema: Option<Value>,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

impl IntegrationDescriptor {
    /// A descriptor with an open config schema, category `messaging` and response mode
    /// `streaming`; the setters fill in the rest. The descriptor is `#[non_exhaustive]`, so a
    /// later SDK can describe integrations with more without breaking a plugin built with this.
    ///
    /// ```
    /// use nitejar_sdk::integration::{IntegrationCategory, ResponseMode};
    /// use nitejar_sdk::{serde_json::json, IntegrationDescriptor};
    ///
    /// let descriptor = IntegrationDescriptor::new("acme-chat", "Acme Chat", "Messages from Acme Chat.")
    ///     .icon("message")
    ///     .category(IntegrationCategory::Messaging)
    ///     .response_mode(ResponseMode::Final)
    ///     .sensitive_fields(["apiToken"])
    ///     .config_schema(json!({
    ///         "type": "object",
    ///         "required": ["apiToken"],
    ///         "properties": { "apiToken": { "type": "string" } }
    ///     }));
    /// assert_eq!(descriptor.sensitive_fields, ["apiToken"]);
    /// ```
    pub fn new(
        kind: impl Into<String>,
        display_name: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        IntegrationDescriptor {
            kind: kind.into(),
            display_name: display_name.into(),
            description: description.into(),
            icon: String::new(),
            category: IntegrationCategory::Messaging,
            response_mode: ResponseMode::Streaming,
            sensitive_fields: Vec::new(),
            config_schema: empty_object_schema(),
            ui_schema: None,
        }
    }

    /// Sets the icon (a Tabler icon name).
    pub fn icon(mut self, icon: impl Into<String>) -> Self {
        self.icon = icon.into();
        self
    }

    /// Sets where the admin lists it.
    pub fn category(mut self, category: IntegrationCategory) -> Self {
        self.category = category;
        self
    }

    /// Sets whether it posts intermediate messages or only the final answer.
    pub fn response_mode(mut self, response_mode: ResponseMode) -> Self {
        self.response_mode = response_mode;
        self
    }

    /// Adds top-level string fields of the config that are stored encrypted and shown masked.
    pub fn sensitive_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sensitive_fields
            .extend(fields.into_iter().map(Into::into));
        self
    }

    /// Sets the JSON Schema of the config.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }

    /// Sets the admin form's presentation hints.
    pub fn ui_schema(mut self, ui_schema: Value) -> Self {
        self.ui_schema = Some(ui_schema);
        self
    }
}

/// One integration row as a plugin sees it: its id, type, name and decrypted config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IntegrationInstance {
    /// The row's id (also in its webhook URL).
    pub id: String,
    /// The integration type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name the operator gave it.
    #[serde(default)]
    pub name: String,
    /// The config with sensitive fields decrypted.
    #[serde(default)]
    pub config: Value,
}

impl IntegrationInstance {
    /// The row `id` of type `kind`, without a name and with an empty config: what a unit test of
    /// an integration starts from (the host fills instances in; the type is `#[non_exhaustive]`).
    ///
    /// ```
    /// use nitejar_sdk::{serde_json::json, IntegrationInstance};
    ///
    /// let instance = IntegrationInstance::new("row-1", "acme-chat")
    ///     .with_name("Support")
    ///     .with_config(json!({ "apiToken": "t0k3n" }));
    /// assert_eq!(instance.config["apiToken"], "t0k3n");
    /// ```
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> Self {
        IntegrationInstance {
            id: id.into(),
            kind: kind.into(),
            name: String::new(),
            config: Value::Object(Default::default()),
        }
    }

    /// Sets the name the operator gave it.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the (decrypted) config.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }
}

/// An incoming webhook request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookRequest {
    /// The HTTP method (`POST` for most senders).
    pub method: String,
    /// The request path, e.g. `/api/webhooks/plugins/telegram/3f…`.
    pub path: String,
    /// The raw query string (without `?`).
    #[serde(default)]
    pub query: String,
    /// Header names are lower case.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The raw body: signatures are computed over these bytes.
    #[serde(default, with = "crate::wire::base64_bytes")]
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// A request with this method and path, no query, headers or body: what a unit test of
    /// `parse_webhook` starts from (the host fills requests in; the type is `#[non_exhaustive]`).
    ///
    /// ```
    /// use nitejar_sdk::WebhookRequest;
    ///
    /// let request = WebhookRequest::new("POST", "/api/webhooks/plugins/acme-chat/row-1")
    ///     .with_header("x-acme-signature", "sha256=…")
    ///     .with_body(r#"{"text":"hi"}"#);
    /// assert_eq!(request.header("X-Acme-Signature"), Some("sha256=…"));
    /// ```
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        WebhookRequest {
            method: method.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    /// Sets the raw query string (without `?`).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }

    /// Adds a header (give its name in lower case, as the host does).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the raw body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body read as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// The work item a webhook should create.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewWorkItem {
    /// The conversation it belongs to; runs of one session are serialised.
    pub session_key: String,
    /// Usually the integration type.
    pub source: String,
    /// The provider's reference (message id, comment URL, …).
    pub source_ref: String,
    /// A short title for lists and logs.
    pub title: String,
    /// The message text, its sender and attachments, as JSON.
    #[serde(default)]
    pub payload: Value,
}

impl NewWorkItem {
    /// A work item of conversation `session_key` titled `title`; the setters add where it came
    /// from and its payload. The type is `#[non_exhaustive]`: build it this way.
    ///
    /// ```
    /// use nitejar_sdk::integration::NewWorkItem;
    /// use nitejar_sdk::{serde_json::json, WebhookParseResult};
    ///
    /// let item = NewWorkItem::new("acme-chat:row-1:room-9", "Where is my order?")
    ///     .source("acme-chat")
    ///     .source_ref("msg-42")
    ///     .payload(json!({ "text": "Where is my order?", "sender": "ana" }));
    /// let result = WebhookParseResult::process(item).with_idempotency_key("acme-chat:msg-42");
    /// assert!(result.should_process);
    /// ```
    pub fn new(session_key: impl Into<String>, title: impl Into<String>) -> Self {
        NewWorkItem {
            session_key: session_key.into(),
            title: title.into(),
            ..Default::default()
        }
    }

    /// Sets where it came from (usually the integration type).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets the provider's reference (message id, comment URL, …).
    pub fn source_ref(mut self, source_ref: impl Into<String>) -> Self {
        self.source_ref = source_ref.into();
        self
    }

    /// Sets the message text, its sender and attachments.
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }
}

/// What [`Integration::parse_webhook`] decided.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookParseResult {
    /// Whether this webhook should create a work item (`false` for pings, bots, ignored events).
    pub should_process: bool,
    /// The work item to create, when [`should_process`](Self::should_process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_item: Option<NewWorkItem>,
    /// Keys that identify this delivery; a delivery whose key was seen before creates nothing.
    #[serde(default)]
    pub idempotency_keys: Vec<String>,
    /// Opaque context handed back to `post_response` (chat id, thread id, reply-to id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_context: Option<Value>,
    /// A bot command such as `reset` for `/reset`, without the slash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Why the webhook was ignored, for the ingress receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_reason: Option<String>,
}

impl WebhookParseResult {
    /// A webhook that creates this work item.
    pub fn process(work_item: NewWorkItem) -> Self {
        WebhookParseResult {
            should_process: true,
            work_item: Some(work_item),
            ..Default::default()
        }
    }

    /// A webhook that is acknowledged and ignored, saying why.
    pub fn ignore(reason: impl Into<String>) -> Self {
        WebhookParseResult {
            should_process: false,
            ignored_reason: Some(reason.into()),
            ..Default::default()
        }
    }

    /// Adds an idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_keys.push(key.into());
        self
    }

    /// Sets the context handed back to `post_response`.
    pub fn with_response_context(mut self, context: Value) -> Self {
        self.response_context = Some(context);
        self
    }
}

/// Options of one response delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostResponseOptions {
    /// The run stopped at a limit before it finished.
    #[serde(default)]
    pub hit_limit: bool,
    /// A key the provider can use to drop a duplicate delivery: pass it on where the provider takes
    /// one (an `Idempotency-Key` header, a client message id).
    ///
    /// The reference runner sends `<work_item_id>:<agent_id>:<n>`, `n` counting the deliveries of
    /// the agent's run from 0. It is the same on every attempt at a delivery (a failure reported
    /// `retryable` is tried again) and on every run of the same work item by the same agent,
    /// including a run retried after a crash: a key the provider has seen means the message already
    /// went out. It names a position in the answer, not its content, which a retried run may word
    /// differently. An integration whose provider takes no key should say so, and that a retried
    /// run can then post twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl PostResponseOptions {
    /// Options of a delivery that did not hit a limit and carries no idempotency key; the host
    /// fills them in (the type is `#[non_exhaustive]`), tests build them this way.
    ///
    /// ```
    /// use nitejar_sdk::integration::PostResponseOptions;
    ///
    /// let options = PostResponseOptions::new().with_idempotency_key("wi-1:agent-1:0");
    /// assert!(!options.hit_limit);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the run as stopped at a limit.
    pub fn with_hit_limit(mut self, hit_limit: bool) -> Self {
        self.hit_limit = hit_limit;
        self
    }

    /// Sets the delivery's idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// How a delivery went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryOutcome {
    /// The provider accepted it.
    #[default]
    Sent,
    /// The provider refused it or could not be reached.
    Failed,
    /// It is not known whether the provider got it (a timeout after the request went out).
    Unknown,
}

/// What [`Integration::post_response`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostResponseResult {
    /// Whether it was delivered.
    pub success: bool,
    /// How the delivery went.
    #[serde(default)]
    pub outcome: DeliveryOutcome,
    /// Whether trying again may succeed without posting twice: the reference runner tries a
    /// delivery again (with the same idempotency key) only when this is set. Leave it unset when
    /// the provider may already have the message (a timeout after the request went out, part of a
    /// split answer sent) and cannot drop a duplicate by its key.
    #[serde(default)]
    pub retryable: bool,
    /// The provider's id of what was posted (message id, comment id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    /// Why it was not delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PostResponseResult {
    /// Delivered; the provider's reference if it gave one.
    pub fn sent(provider_ref: Option<String>) -> Self {
        PostResponseResult {
            success: true,
            outcome: DeliveryOutcome::Sent,
            retryable: false,
            provider_ref,
            error: None,
        }
    }

    /// Not delivered.
    pub fn failed(error: impl Into<String>, retryable: bool) -> Self {
        PostResponseResult {
            success: false,
            outcome: DeliveryOutcome::Failed,
            retryable,
            provider_ref: None,
            error: Some(error.into()),
        }
    }
}

/// The result of [`Integration::validate_config`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigValidation {
    /// Whether the config is usable.
    pub valid: bool,
    /// What is wrong with it, one problem per entry.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl ConnectionTest {
    /// The provider answered as expected; `detail` is what it said about itself.
    pub fn ok(detail: Option<String>) -> Self {
        ConnectionTest {
            ok: true,
            error: None,
            detail,
        }
    }

    /// The provider could not be reached or refused the config.
    pub fn failed(error: impl Into<String>) -> Self {
        ConnectionTest {
            ok: false,
            error: Some(error.into()),
            detail: None,
        }
    }

    /// The same result with `detail`.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl ConfigValidation {
    /// A valid config.
    pub fn ok() -> Self {
        ConfigValidation {
            valid: true,
            errors: Vec::new(),
        }
    }

    /// An invalid config with these problems.
    pub fn invalid(errors: Vec<String>) -> Self {
        ConfigValidation {
            valid: errors.is_empty(),
            errors,
        }
    }
}

/// The result of [`Integration::test_connection`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConnectionTest {
    /// Whether the provider answered as expected.
    pub ok: bool,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the provider said about itself (bot name, app slug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What [`Integration::setup`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SetupResult {
    /// Config fields to store on the integration row (e.g. a generated webhook secret). Sensitive
    /// ones are encrypted like any other write.
    #[serde(default)]
    pub config_changes: serde_json::Map<String, Value>,
    /// A line for the operator: what was registered where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl SetupResult {
    /// Nothing stored, nothing to say; the setters add both. The type is `#[non_exhaustive]`.
    ///
    /// ```
    /// use nitejar_sdk::integration::SetupResult;
    /// use nitejar_sdk::serde_json::json;
    ///
    /// let result = SetupResult::new()
    ///     .config_change("webhookSecret", json!("generated"))
    ///     .detail("Acme delivers messages to https://nitejar.example/api/webhooks/…");
    /// assert_eq!(result.config_changes["webhookSecret"], "generated");
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` in config field `field` of the integration row.
    pub fn config_change(mut self, field: impl Into<String>, value: Value) -> Self {
        self.config_changes.insert(field.into(), value);
        self
    }

    /// Sets the line for the operator.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Why an integration call failed. The host maps these to HTTP answers on the webhook route.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
#[non_exhaustive]
pub enum IntegrationError {
    /// The request is not authentic (bad or missing signature): 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request cannot be read: 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The integration's config is missing something this call needs.
    #[error("configuration: {0}")]
    Config(String),
    /// The provider answered with an error or could not be reached.
    #[error("upstream: {0}")]
    Upstream(String),
    /// This integration does not offer the operation.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl From<crate::host::HostError> for IntegrationError {
    fn from(e: crate::host::HostError) -> Self {
        IntegrationError::Upstream(e.to_string())
    }
}

/// A channel type contributed by a plugin.
///
/// Every method gets the host services; integration calls run on threads the host manages, so
/// blocking on [`Host::http`] is expected.
pub trait Integration: Send + Sync + 'static {
    /// Type, names, category, sensitive fields and config schema.
    fn descriptor(&self) -> IntegrationDescriptor;

    /// Checks a config beyond its JSON Schema (cross-field rules, formats).
    fn validate_config(&self, _config: &Value) -> ConfigValidation {
        ConfigValidation::ok()
    }

    /// Turns an incoming webhook into a work item, or says why it is ignored. Return
    /// [`IntegrationError::Unauthorized`] for a request whose signature does not verify.
    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        instance: &IntegrationInstance,
        host: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError>;

    /// Delivers a response to the channel.
    fn post_response(
        &self,
        instance: &IntegrationInstance,
        work_item_id: &str,
        content: &str,
        response_context: Option<&Value>,
        options: &PostResponseOptions,
        host: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError>;

    /// Tells the sender the message was received (a reaction, a typing indicator). Optional.
    fn acknowledge_receipt(
        &self,
        _instance: &IntegrationInstance,
        _response_context: Option<&Value>,
        _host: &dyn Host,
    ) -> Result<(), IntegrationError> {
        Ok(())
    }

    /// Called when an integration row of this type is created, updated or enabled, with the public
    /// URL of its webhook: register the webhook with the provider here (Telegram's `setWebhook`).
    /// The returned config changes are stored on the row. Optional; the default does nothing.
    fn setup(
        &self,
        _instance: &IntegrationInstance,
        _webhook_url: &str,
        _host: &dyn Host,
    ) -> Result<SetupResult, IntegrationError> {
        Ok(SetupResult::default())
    }

    /// Checks that the config works against the provider (API keys, reachability). Optional.
    fn test_connection(
        &self,
        _config: &Value,
        _host: &dyn Host,
    ) -> Result<ConnectionTest, IntegrationError> {
        Err(IntegrationError::Unsupported(
            "this integration has no connection test".into(),
        ))
    }
}
