//! `builtin.echo`: a local test channel.
//!
//! Webhook body: `{"text": "…", "session": "optional session name", "id": "optional delivery id"}`.
//! Responses are written to the plugin log. Useful to try an agent end to end without a Telegram or
//! GitHub account, and as the smallest complete example of an integration.

use nitejar_sdk::host::LogLevel;
use nitejar_sdk::integration::{
    IntegrationCategory, NewWorkItem, PostResponseOptions, PostResponseResult, ResponseMode,
};
use nitejar_sdk::{
    Host, Integration, IntegrationDescriptor, IntegrationError, IntegrationInstance, Plugin,
    WebhookParseResult, WebhookRequest,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// The echo channel.
pub struct Echo;

#[derive(Deserialize)]
struct EchoMessage {
    text: String,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

impl Integration for Echo {
    fn descriptor(&self) -> IntegrationDescriptor {
        IntegrationDescriptor::new(
            "echo",
            "Echo (test channel)",
            "Send a JSON message to the webhook; the answer is written to the server log.",
        )
        .icon("message-circle")
        .category(IntegrationCategory::Messaging)
        .response_mode(ResponseMode::Final)
        .config_schema(json!({
            "type": "object",
            "properties": {
                "label": { "type": "string", "title": "Label", "maxLength": 100 }
            },
            "additionalProperties": false
        }))
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        instance: &IntegrationInstance,
        _host: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        let message: EchoMessage = request.json().map_err(|e| {
            IntegrationError::BadRequest(format!(
                "expected a JSON body like {{\"text\": \"hello\"}}: {e}"
            ))
        })?;
        if message.text.trim().is_empty() {
            return Ok(WebhookParseResult::ignore("empty text"));
        }
        let session = message.session.unwrap_or_else(|| "default".into());
        let title: String = message.text.chars().take(80).collect();
        let mut result = WebhookParseResult::process(
            NewWorkItem::new(format!("echo:{}:{session}", instance.id), title)
                .source("echo")
                .source_ref(message.id.clone().unwrap_or_default())
                .payload(json!({ "text": message.text })),
        )
        .with_response_context(json!({ "session": session }));
        if let Some(id) = message.id {
            result = result.with_idempotency_key(format!("echo:{}:{id}", instance.id));
        }
        Ok(result)
    }

    fn post_response(
        &self,
        instance: &IntegrationInstance,
        work_item_id: &str,
        content: &str,
        _response_context: Option<&Value>,
        _options: &PostResponseOptions,
        host: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        host.log(
            LogLevel::Info,
            &format!(
                "echo integration {} answered work item {work_item_id}: {content}",
                instance.id
            ),
        );
        Ok(PostResponseResult::sent(None))
    }
}

/// The plugin description.
pub fn plugin() -> Plugin {
    Plugin::builder().integration(Echo).build()
}
