//! The few Telegram Bot API methods the integration calls, through the host's HTTP service.
//!
//! Every method is `POST <base>/bot<token>/<method>` with a JSON body; Telegram answers
//! `{"ok": true, "result": …}` or `{"ok": false, "error_code": 400, "description": "…"}`.
//! The token is part of the URL, so nothing here ever puts a URL in an error or a log line, and
//! errors coming back from the host are scrubbed of the token.

use nitejar_sdk::{Host, HostError, HttpRequest};
use serde::Deserialize;
use serde_json::Value;

/// The public Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// Why a Bot API call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The host refused or could not make the request, or brought back no answer.
    #[error("Telegram {method}: the request could not be made: {detail}")]
    Host {
        method: String,
        detail: String,
        /// What kind of failure it was: whether Telegram may have acted on the request.
        cause: Unanswered,
    },
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

/// Why the host brought back no answer from Telegram, as far as it matters for trying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// The host would not make the request (a permission, a service it does not offer): it never
    /// left, and trying again meets the same refusal.
    Refused,
    /// No answer in time: Telegram may have received the request and acted on it.
    TimedOut,
    /// A network failure: name resolution, a refused or reset connection, TLS. Usually the request
    /// never reached Telegram; the host cannot tell a connection lost after Telegram read it.
    Network,
}

impl Unanswered {
    fn of(error: &HostError) -> Self {
        match error {
            HostError::Denied { .. } | HostError::Unavailable(_) => Unanswered::Refused,
            HostError::Timeout | HostError::Cancelled => Unanswered::TimedOut,
            HostError::Failed(_) => Unanswered::Network,
            // A kind of refusal this build does not know: not retried, as a refusal is not.
            _ => Unanswered::Refused,
        }
    }
}

impl ApiError {
    /// Whether trying the same request again may succeed without Telegram acting on it twice: a
    /// rate limit (429), a server error (5xx), a network failure. Not a timeout (the message may
    /// have gone out), not a refusal by the host, not another 4xx (the same request meets the same
    /// answer). A 5xx may still come after Telegram posted the message; that is rare, and Telegram
    /// gives no way to tell.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Host { cause, .. } => *cause == Unanswered::Network,
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
                cause: Unanswered::of(&e),
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

#[cfg(test)]
mod tests {
    use nitejar_sdk::testing::TestHost;
    use serde_json::json;

    use super::*;

    /// The error of a call whose request the host failed with `error`.
    fn unanswered(error: HostError) -> ApiError {
        let host = TestHost::new().with_http_handler(move |_| Err(error.clone()));
        BotApi::new("https://telegram.test", "1:token", &host)
            .call("sendMessage", &json!({ "chat_id": 1, "text": "hi" }))
            .unwrap_err()
    }

    #[test]
    fn only_a_network_failure_of_the_host_is_worth_another_attempt() {
        assert!(unanswered(HostError::Failed("connection refused".into())).retryable());
        for error in [
            // Telegram may have posted the message before the answer was given up on.
            HostError::Timeout,
            HostError::Cancelled,
            // The request never left, and would not the next time either.
            HostError::Denied {
                permission: "network".into(),
                reason: "api.telegram.org is not declared".into(),
            },
            HostError::Unavailable("no HTTP service".into()),
        ] {
            let failure = unanswered(error.clone());
            assert!(!failure.retryable(), "{error:?}: {failure}");
        }
    }
}
