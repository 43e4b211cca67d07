//! `builtin.telegram`: a Telegram bot as a channel.
//!
//! Written against `nitejar-sdk` like any third-party plugin: every request to Telegram goes
//! through [`Host::http`], so the host's permission gate and receipts see it.
//!
//! - **In**: `setWebhook` (done by [`Integration::setup`]) points the bot at the integration's
//!   webhook URL with a secret token; each update is checked against it, then `message` and
//!   `edited_message` become work items ([`parse`]). An integration without a secret (its setup
//!   never succeeded, or a row of an earlier release that accepted everything) refuses every
//!   update until a save runs setup again: fail closed, never open.
//! - **Out**: a typing action, then the answer as HTML converted from Markdown ([`format`](mod@format)), split
//!   at Telegram's 4096-character limit, as a reply to the user's message in the same thread, with a
//!   plain-text fallback when Telegram refuses the HTML. A 👀 reaction marks a message as received
//!   and is removed once the answer is out.
//!
//! ## Duplicates
//!
//! The Bot API's `sendMessage` takes no idempotency key, so the
//! [`PostResponseOptions::idempotency_key`] the host passes is not used and Telegram cannot drop a
//! repeated answer. A failure is marked `retryable` only when trying again cannot post twice as far
//! as Telegram lets anyone know: a rate limit (429), a server error (5xx) or a network failure, and
//! only while no message of the answer has gone out (another attempt starts from the first
//! message). A timeout, any other 4xx, and a refusal by the host are final. Two windows remain:
//!
//! - **a crash**: Telegram accepted the message, but the process died before the job recorded the
//!   delivery. The run is retried after the restart and posts the answer again;
//! - **a 5xx or a dropped connection after Telegram posted the message**, which the next attempt
//!   posts again. Rare, and indistinguishable from a message that did not go out.
//!
//! The API base is read from `NITEJAR_TELEGRAM_API_BASE` (default `https://api.telegram.org`) when
//! the plugin is built, i.e. once at startup, so a local Bot API server or a test double can stand in.

pub mod api;
pub mod config;
pub mod format;
pub mod parse;

use nitejar_sdk::host::LogLevel;
use nitejar_sdk::integration::{
    ConfigValidation, ConnectionTest, PostResponseOptions, PostResponseResult, SetupResult,
};
use nitejar_sdk::{
    Host, Integration, IntegrationDescriptor, IntegrationError, IntegrationInstance, Plugin,
    WebhookParseResult, WebhookRequest,
};
use rand_core::{OsRng, RngCore};
use serde::Deserialize;
use serde_json::{json, Value};

use self::api::{ApiError, BotApi, DEFAULT_API_BASE};
use self::config::TelegramConfig;
use self::format::{markdown_to_chunks, Chunk, MESSAGE_LIMIT};

/// The environment variable that overrides the Bot API base URL.
pub const API_BASE_ENV: &str = "NITEJAR_TELEGRAM_API_BASE";

/// The reaction that marks a message as received.
const RECEIVED_REACTION: &str = "👀";
/// The reaction left when a run stopped at a limit before it finished.
const HIT_LIMIT_REACTION: &str = "🤷";

/// The Telegram integration.
#[derive(Clone, Debug)]
pub struct Telegram {
    api_base: String,
}

impl Telegram {
    /// Uses `NITEJAR_TELEGRAM_API_BASE`, or the public Bot API when it is unset or empty.
    pub fn from_env() -> Self {
        match std::env::var(API_BASE_ENV) {
            Ok(base) if !base.trim().is_empty() => Self::with_api_base(base.trim()),
            _ => Self::with_api_base(DEFAULT_API_BASE),
        }
    }

    /// Talks to the Bot API at `base` (e.g. `http://127.0.0.1:8081` for a local server).
    pub fn with_api_base(base: impl Into<String>) -> Self {
        Telegram {
            api_base: base.into().trim_end_matches('/').to_string(),
        }
    }

    /// The Bot API base URL in use.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    fn api<'a>(&'a self, config: &'a TelegramConfig, host: &'a dyn Host) -> BotApi<'a> {
        BotApi::new(&self.api_base, &config.bot_token, host)
    }
}

impl Default for Telegram {
    fn default() -> Self {
        Self::from_env()
    }
}

/// Where an answer goes: the `response_context` that [`parse::parse_update`] produced. Also reads
/// the TypeScript Nitejar's `messageThreadId`, for work items queued before an upgrade.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplyTarget {
    chat_id: Value,
    #[serde(default)]
    message_id: Option<i64>,
    #[serde(default, alias = "messageThreadId")]
    thread_id: Option<i64>,
}

impl ReplyTarget {
    fn from_context(context: Option<&Value>) -> Result<Self, IntegrationError> {
        let context = context.ok_or_else(|| {
            IntegrationError::BadRequest(
                "no response context: the chat to answer is unknown".into(),
            )
        })?;
        let target: ReplyTarget = serde_json::from_value(context.clone()).map_err(|e| {
            IntegrationError::BadRequest(format!("the response context has no usable chatId: {e}"))
        })?;
        if !(target.chat_id.is_i64() || target.chat_id.is_string()) {
            return Err(IntegrationError::BadRequest(
                "the response context's chatId must be a number or an @channel name".into(),
            ));
        }
        Ok(target)
    }
}

impl Integration for Telegram {
    fn descriptor(&self) -> IntegrationDescriptor {
        config::descriptor()
    }

    fn validate_config(&self, config: &Value) -> ConfigValidation {
        config::validate(config)
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        instance: &IntegrationInstance,
        _host: &dyn Host,
    ) -> Result<WebhookParseResult, IntegrationError> {
        let config = TelegramConfig::from_value(&instance.config)?;
        parse::verify_secret(request, &config)?;
        parse::parse_update(request, &config)
    }

    fn post_response(
        &self,
        instance: &IntegrationInstance,
        work_item_id: &str,
        content: &str,
        response_context: Option<&Value>,
        options: &PostResponseOptions,
        host: &dyn Host,
    ) -> Result<PostResponseResult, IntegrationError> {
        let config = TelegramConfig::from_value(&instance.config)?;
        let target = ReplyTarget::from_context(response_context)?;
        let api = self.api(&config, host);
        let chunks = markdown_to_chunks(content, MESSAGE_LIMIT);
        if chunks.is_empty() {
            return Ok(PostResponseResult::failed(
                "the response is empty; Telegram cannot send an empty message",
                false,
            ));
        }

        let mut thread_id = target.thread_id;
        let mut typing = json!({ "chat_id": target.chat_id, "action": "typing" });
        if let Some(thread) = thread_id {
            typing["message_thread_id"] = json!(thread);
        }
        if let Err(e) = api.call("sendChatAction", &typing) {
            host.log(LogLevel::Warn, &format!("typing indicator not shown: {e}"));
        }

        let mut last_message_id = None;
        for (index, chunk) in chunks.iter().enumerate() {
            // Only the first message quotes the user's; the rest follow it.
            let reply_to = if index == 0 { target.message_id } else { None };
            match send_chunk(&api, &target.chat_id, chunk, reply_to, &mut thread_id, host) {
                Ok(id) => last_message_id = Some(id),
                Err(e) => {
                    let sent = if index > 0 {
                        format!(" ({index} of {} messages were sent)", chunks.len())
                    } else {
                        String::new()
                    };
                    // Another attempt starts again from the first message: once one is out,
                    // trying again would post it twice.
                    let retryable = index == 0 && e.retryable();
                    let mut failed = PostResponseResult::failed(format!("{e}{sent}"), retryable);
                    failed.provider_ref = last_message_id.map(|id: i64| id.to_string());
                    return Ok(failed);
                }
            }
        }

        if let Some(message_id) = target.message_id {
            let emoji = options.hit_limit.then_some(HIT_LIMIT_REACTION);
            if let Err(e) = set_reaction(&api, &target.chat_id, message_id, emoji) {
                host.log(
                    LogLevel::Warn,
                    &format!("reaction not updated after answering work item {work_item_id}: {e}"),
                );
            }
        }
        Ok(PostResponseResult::sent(
            last_message_id.map(|id| id.to_string()),
        ))
    }

    fn acknowledge_receipt(
        &self,
        instance: &IntegrationInstance,
        response_context: Option<&Value>,
        host: &dyn Host,
    ) -> Result<(), IntegrationError> {
        let config = TelegramConfig::from_value(&instance.config)?;
        let target = ReplyTarget::from_context(response_context)?;
        let Some(message_id) = target.message_id else {
            return Ok(());
        };
        set_reaction(
            &self.api(&config, host),
            &target.chat_id,
            message_id,
            Some(RECEIVED_REACTION),
        )
        .map_err(|e| IntegrationError::Upstream(e.to_string()))
    }

    fn setup(
        &self,
        instance: &IntegrationInstance,
        webhook_url: &str,
        host: &dyn Host,
    ) -> Result<SetupResult, IntegrationError> {
        let config = TelegramConfig::from_value(&instance.config)?;
        let (secret, generated) = match config.secret() {
            Some(secret) => (secret.to_string(), false),
            None => (generate_secret()?, true),
        };
        let body = json!({
            "url": webhook_url,
            "secret_token": secret,
            "allowed_updates": ["message", "edited_message"],
        });
        self.api(&config, host)
            .call("setWebhook", &body)
            .map_err(|e| IntegrationError::Upstream(e.to_string()))?;
        host.log(
            LogLevel::Info,
            &format!(
                "Telegram webhook of integration {} registered at {webhook_url}",
                instance.id
            ),
        );
        let mut result =
            SetupResult::new().detail(format!("Telegram delivers updates to {webhook_url}"));
        if generated {
            result
                .config_changes
                .insert("webhookSecret".into(), Value::String(secret));
        }
        Ok(result)
    }

    fn test_connection(
        &self,
        config: &Value,
        host: &dyn Host,
    ) -> Result<ConnectionTest, IntegrationError> {
        let config = TelegramConfig::from_value(config)?;
        match self.api(&config, host).call("getMe", &json!({})) {
            Ok(me) => {
                let name = me["username"]
                    .as_str()
                    .map(|u| format!("@{u}"))
                    .or_else(|| me["first_name"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "bot".into());
                Ok(ConnectionTest::ok(Some(name)))
            }
            Err(e) => {
                let error = if e.is_unauthorized() {
                    format!("Telegram rejected the bot token ({e}); check botToken")
                } else {
                    e.to_string()
                };
                Ok(ConnectionTest::failed(error))
            }
        }
    }
}

/// Sends one message of an answer; returns its `message_id`. Falls back to plain text when
/// Telegram refuses the HTML, and to the chat itself when it does not know the thread.
fn send_chunk(
    api: &BotApi<'_>,
    chat_id: &Value,
    chunk: &Chunk,
    reply_to: Option<i64>,
    thread_id: &mut Option<i64>,
    host: &dyn Host,
) -> Result<i64, ApiError> {
    let mut html = true;
    loop {
        let mut body = json!({ "chat_id": chat_id });
        if html {
            body["text"] = json!(chunk.html);
            body["parse_mode"] = json!("HTML");
        } else {
            body["text"] = json!(chunk.text);
        }
        if let Some(thread) = *thread_id {
            body["message_thread_id"] = json!(thread);
        }
        if let Some(message_id) = reply_to {
            body["reply_parameters"] = json!({
                "message_id": message_id,
                "allow_sending_without_reply": true,
            });
        }
        match api.call("sendMessage", &body) {
            Ok(message) => return Ok(message["message_id"].as_i64().unwrap_or_default()),
            Err(e) if html && e.is_parse_error() => {
                host.log(
                    LogLevel::Warn,
                    &format!("Telegram refused the HTML ({e}); sending plain text"),
                );
                html = false;
            }
            Err(e) if thread_id.is_some() && e.is_thread_not_found() => {
                host.log(
                    LogLevel::Warn,
                    &format!("{e}; answering in the chat instead of the thread"),
                );
                *thread_id = None;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sets the bot's reaction on a message; `None` removes it.
fn set_reaction(
    api: &BotApi<'_>,
    chat_id: &Value,
    message_id: i64,
    emoji: Option<&str>,
) -> Result<(), ApiError> {
    let reaction: Vec<Value> = emoji
        .map(|e| json!({ "type": "emoji", "emoji": e }))
        .into_iter()
        .collect();
    api.call(
        "setMessageReaction",
        &json!({ "chat_id": chat_id, "message_id": message_id, "reaction": reaction }),
    )
    .map(|_| ())
}

/// A webhook secret Telegram accepts: 64 hex characters from the OS's random source.
fn generate_secret() -> Result<String, IntegrationError> {
    let mut bytes = [0u8; 32];
    OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        IntegrationError::Other(format!(
            "no random source to generate a webhook secret: {e}"
        ))
    })?;
    Ok(hex::encode(bytes))
}

/// The plugin: the Telegram integration, reading its API base from the environment.
pub fn plugin() -> Plugin {
    Plugin::builder().integration(Telegram::from_env()).build()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use nitejar_sdk::testing::{instance, TestHost};
    use nitejar_sdk::{HostError, HttpResponse};

    use super::*;

    fn answer(status: u16, body: Value) -> Result<HttpResponse, HostError> {
        Ok(HttpResponse::new(status)
            .with_header("content-type", "application/json")
            .with_body(body.to_string()))
    }

    #[test]
    fn a_failure_after_part_of_the_answer_went_out_is_not_retried() {
        let sends = Arc::new(AtomicUsize::new(0));
        let counted = sends.clone();
        let host = TestHost::new().with_http_handler(move |request| {
            if !request.url.ends_with("/sendMessage") {
                return answer(200, json!({ "ok": true, "result": true }));
            }
            match counted.fetch_add(1, Ordering::SeqCst) {
                0 => answer(200, json!({ "ok": true, "result": { "message_id": 7 } })),
                _ => answer(
                    502,
                    json!({ "ok": false, "error_code": 502, "description": "Bad Gateway" }),
                ),
            }
        });
        let long = "word ".repeat(MESSAGE_LIMIT / 4);
        let result = Telegram::with_api_base("https://telegram.test")
            .post_response(
                &instance("telegram", json!({ "botToken": "1:token" })),
                "wi-1",
                &long,
                Some(&json!({ "chatId": 1, "messageId": 2 })),
                &PostResponseOptions::default(),
                &host,
            )
            .unwrap();
        assert_eq!(
            sends.load(Ordering::SeqCst),
            2,
            "the answer is two messages"
        );
        assert!(!result.success);
        // A 502 on the first message is worth another attempt; here it would repeat message 7.
        assert!(!result.retryable, "{result:?}");
        assert_eq!(result.provider_ref.as_deref(), Some("7"));
        let error = result.error.unwrap_or_default();
        assert!(error.contains("1 of 2 messages were sent"), "{error}");
    }
}
