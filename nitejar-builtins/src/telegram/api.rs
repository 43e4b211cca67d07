//! The few Telegram Bot API methods the integration calls, through the host's HTTP service.
//!
//! Every method is `POST <base>/bot<token>/<method>` with a JSON body; Telegram answers
//! `{"ok": true, "result": …}` or `{"ok": false, "error_code": 400, "description": "…"}`.
//! The token is part of the URL, so nothing here ever puts a URL in an error or a log line, and
//! errors coming back from the host are scrubbed of the token.

use nitejar_sdk::{Host, HttpRequest};
use serde::Deserialize;
use serde_json::Value;

/// The public Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// Why a Bot API call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The host refused or could not make the request.
    #[error("Telegram {method}: the request could not be made: {detail}")]
    Host { method: String, detail: String },
    /// Telegram answered with an error.
    #[error("Telegram {method} failed ({code}): {description}")]
    Telegram {
        method: String,
        code: u16,
        description: String,
        /// Seconds to wait before trying again (HTTP 429).
        retry_after: Option<u64>,
    },
    /// The answer was not the Bot API's JSON.
    #[error("Telegram {method}: unexpected answer (HTTP {status}): {detail}")]
    Decode {
        method: String,
        status: u16,
        detail: String,
    },
}

impl ApiError {
    /// Whether trying again later may succeed (rate limits, server errors, timeouts).
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Host { .. } => true,
            ApiError::Telegram { code, .. } => *code == 429 || *code >= 500,
            ApiError::Decode { status, .. } => *status >= 500,
        }
    }

    /// Whether Telegram refused the message's HTML ("Bad Request: can't parse entities: …").
    pub fn is_parse_error(&self) -> bool {
        matches!(self, ApiError::Telegram { code: 400, description, .. }
            if description.to_ascii_lowercase().contains("can't parse entities"))
    }

    /// Whether Telegram does not know the thread a message was sent to.
    pub fn is_thread_not_found(&self) -> bool {
        matches!(self, ApiError::Telegram { code: 400, description, .. }
            if description.to_ascii_lowercase().contains("thread not found"))
    }

    /// Whether Telegram rejected the bot token.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            ApiError::Telegram {
                code: 401 | 404,
                ..
            }
        )
    }
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// A bot's Bot API endpoint.
pub struct BotApi<'a> {
    base: &'a str,
    token: &'a str,
    host: &'a dyn Host,
}

impl<'a> BotApi<'a> {
    /// The API of the bot with this token, at `base` (no trailing slash needed).
    pub fn new(base: &'a str, token: &'a str, host: &'a dyn Host) -> Self {
        BotApi {
            base: base.trim_end_matches('/'),
            token: token.trim(),
            host,
        }
    }

    /// Calls `method` with a JSON body and returns its `result`.
    pub fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token);
        let response = self
            .host
            .http(&HttpRequest::post_json(url, body))
            .map_err(|e| ApiError::Host {
                method: method.into(),
                detail: self.scrub(&e.to_string()),
            })?;
        let envelope: Envelope = response.json().map_err(|e| ApiError::Decode {
            method: method.into(),
            status: response.status,
            detail: self.scrub(&e.to_string()),
        })?;
        if envelope.ok && response.is_success() {
            return Ok(envelope.result);
        }
        Err(ApiError::Telegram {
            method: method.into(),
            code: envelope.error_code.unwrap_or(response.status),
            description: self.scrub(
                envelope
                    .description
                    .as_deref()
                    .unwrap_or("no description given"),
            ),
            retry_after: envelope.parameters.and_then(|p| p.retry_after),
        })
    }

    /// Removes the token from text that may quote the request URL.
    fn scrub(&self, text: &str) -> String {
        if self.token.is_empty() {
            return text.to_string();
        }
        text.replace(self.token, "<bot token>")
    }
}
