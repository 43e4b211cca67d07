//! The Telegram integration's config: its JSON shape, schema and validation.
//!
//! Field names are those of the earlier TypeScript Nitejar (`botToken`, `webhookSecret`,
//! `allowedChatIds`, `useMessageThreads`) so that existing integration rows keep working unchanged.

use nitejar_sdk::integration::{ConfigValidation, IntegrationCategory, ResponseMode};
use nitejar_sdk::{IntegrationDescriptor, IntegrationError};
use serde::Deserialize;
use serde_json::{json, Value};

/// The config of one Telegram integration row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelegramConfig {
    /// The bot token from @BotFather (`123456789:ABC…`).
    #[serde(default)]
    pub bot_token: String,
    /// The `secret_token` given to `setWebhook`; Telegram echoes it in
    /// `X-Telegram-Bot-Api-Secret-Token`. Empty means "not configured".
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Chats allowed to talk to the bot; empty means every chat. Numbers, or numeric strings as a
    /// form may send them.
    #[serde(default)]
    pub allowed_chat_ids: Vec<ChatId>,
    /// Whether forum topics / reply threads get their own session and replies (default true).
    #[serde(default)]
    pub use_message_threads: Option<bool>,
}

/// A chat id as stored in `allowedChatIds`: a number (as the TypeScript Nitejar wrote it) or a
/// numeric string.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Number(i64),
    Text(String),
}

impl ChatId {
    fn value(&self) -> Option<i64> {
        match self {
            ChatId::Number(n) => Some(*n),
            ChatId::Text(s) => s.trim().parse().ok(),
        }
    }
}

impl TelegramConfig {
    /// Reads a config; the bot token is required for every call.
    pub fn from_value(config: &Value) -> Result<Self, IntegrationError> {
        let parsed: TelegramConfig = serde_json::from_value(config.clone()).map_err(|e| {
            IntegrationError::Config(format!("the Telegram config cannot be read: {e}"))
        })?;
        if parsed.bot_token.trim().is_empty() {
            return Err(IntegrationError::Config(
                "botToken is missing: set the token @BotFather gave you".into(),
            ));
        }
        Ok(parsed)
    }

    /// The configured webhook secret, if any.
    pub fn secret(&self) -> Option<&str> {
        self.webhook_secret.as_deref().filter(|s| !s.is_empty())
    }

    /// Whether messages from this chat are processed.
    pub fn allows_chat(&self, chat_id: i64) -> bool {
        self.allowed_chat_ids.is_empty()
            || self
                .allowed_chat_ids
                .iter()
                .any(|c| c.value() == Some(chat_id))
    }

    /// Whether threads get their own sessions and replies.
    pub fn use_message_threads(&self) -> bool {
        self.use_message_threads.unwrap_or(true)
    }
}

/// Characters Telegram accepts in a `secret_token`.
fn valid_secret(secret: &str) -> bool {
    !secret.is_empty()
        && secret.len() <= 256
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks what the JSON Schema cannot say as clearly.
pub fn validate(config: &Value) -> ConfigValidation {
    let mut errors = Vec::new();
    let Some(object) = config.as_object() else {
        return ConfigValidation::invalid(vec!["the config must be a JSON object".into()]);
    };
    match object.get("botToken") {
        Some(Value::String(token)) if !token.trim().is_empty() => {}
        _ => errors.push("botToken: required; get a token from @BotFather".into()),
    }
    match object.get("webhookSecret") {
        None | Some(Value::Null) => {}
        Some(Value::String(secret)) if secret.is_empty() || valid_secret(secret) => {}
        Some(_) => errors.push(
            "webhookSecret: 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule); \
             leave it empty to have one generated"
                .into(),
        ),
    }
    match object.get("allowedChatIds") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ids)) => {
            for (i, id) in ids.iter().enumerate() {
                let ok = match id {
                    Value::Number(n) => n.is_i64(),
                    Value::String(s) => s.trim().parse::<i64>().is_ok(),
                    _ => false,
                };
                if !ok {
                    errors.push(format!(
                        "allowedChatIds[{i}]: {id} is not a chat id (a whole number such as \
                         123456789 or -1001234567890)"
                    ));
                }
            }
        }
        Some(_) => errors.push("allowedChatIds: must be a list of chat ids".into()),
    }
    match object.get("useMessageThreads") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(_) => errors.push("useMessageThreads: must be true or false".into()),
    }
    ConfigValidation::invalid(errors)
}

/// The integration type, names, schema and form hints.
pub fn descriptor() -> IntegrationDescriptor {
    IntegrationDescriptor::new(
        "telegram",
        "Telegram",
        "Receive messages from a Telegram bot and answer in the same chat and thread.",
    )
    .icon("brand-telegram")
    .category(IntegrationCategory::Messaging)
    .response_mode(ResponseMode::Streaming)
    .sensitive_fields(["botToken", "webhookSecret"])
    .config_schema(config_schema())
    .ui_schema(ui_schema())
}

fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Telegram bot",
        "type": "object",
        "required": ["botToken"],
        "properties": {
            "botToken": {
                "type": "string",
                "title": "Bot token",
                "description": "The token @BotFather gave you when you created the bot.",
                "minLength": 1,
                "writeOnly": true
            },
            "webhookSecret": {
                "type": "string",
                "title": "Webhook secret",
                "description": "Telegram sends it with every update so Nitejar can tell real updates \
                                from forged ones. Leave empty: one is generated when the webhook is \
                                registered.",
                "pattern": "^[A-Za-z0-9_-]{0,256}$",
                "writeOnly": true
            },
            "allowedChatIds": {
                "type": "array",
                "title": "Allowed chats",
                "description": "Only these chats may talk to the bot. Empty: every chat.",
                "items": {
                    "anyOf": [
                        { "type": "integer" },
                        { "type": "string", "pattern": "^\\s*-?[0-9]+\\s*$" }
                    ]
                },
                "default": []
            },
            "useMessageThreads": {
                "type": "boolean",
                "title": "Use message threads",
                "description": "Keep one conversation per forum topic or reply thread, and answer \
                                inside it.",
                "default": true
            }
        }
    })
}

/// Form hints, in the react-jsonschema-form convention (`ui:order`, `ui:widget`, `ui:help`).
fn ui_schema() -> Value {
    json!({
        "ui:order": ["botToken", "webhookSecret", "allowedChatIds", "useMessageThreads", "*"],
        "botToken": {
            "ui:widget": "password",
            "ui:placeholder": "123456789:ABCdefGHI…",
            "ui:help": "Create a bot with @BotFather (https://t.me/BotFather) and paste its token."
        },
        "webhookSecret": {
            "ui:widget": "password",
            "ui:help": "Optional. Generated and registered with Telegram when left empty."
        },
        "allowedChatIds": {
            "ui:help": "Chat ids as numbers; group ids are negative (-100…)."
        },
        "useMessageThreads": {
            "ui:help": "On: each forum topic is its own conversation."
        }
    })
}
