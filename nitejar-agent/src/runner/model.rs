//! Model providers: where a run's chat completions come from.
//!
//! Two providers ship:
//! - [`OpenAiCompatible`]: any server speaking the OpenAI chat-completions protocol, with tool calls
//!   (`NITEJAR_MODEL_BASE_URL`, `NITEJAR_MODEL_API_KEY`, `NITEJAR_MODEL`);
//! - [`OfflineModel`]: deterministic and local, the embedded default, so a fresh install answers
//!   without any account. Its behaviour is documented on the type.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One chat message in the OpenAI chat-completions shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls requested by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with text content.
    pub fn text(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A tool result.
    pub fn tool_result(tool_call_id: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: "tool".into(),
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id.into()),
        }
    }
}

/// A tool call requested by the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments, parsed from the provider's JSON string.
    pub arguments: Value,
}

pub use crate::tool::ToolSpec;

/// One chat-completion request.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    /// Extra top-level parameters passed through to the provider.
    pub provider_metadata: Value,
}

/// What the model answered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatResponse {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// Token usage as the provider reported it.
    pub usage: Value,
}

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model provider unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("model provider answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("model provider answered something that is not a chat completion: {0}")]
    BadResponse(String),
}

/// A boxed future of a model call.
pub type ModelFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ChatResponse, ModelError>> + Send + 'a>>;

/// A source of chat completions.
pub trait ModelProvider: Send + Sync + 'static {
    /// A short name for logs and spans (`offline`, `openai-compatible`).
    fn name(&self) -> &str;
    /// The model used when the agent names none.
    fn default_model(&self) -> &str;
    /// Runs one chat completion.
    fn complete(&self, request: ChatRequest) -> ModelFuture<'_>;
}

/// A deterministic local model, the embedded default.
///
/// - When the last message is a tool result, it answers `Tool <name> returned: <output>` (or, when
///   the tool was refused, `Tool <name> was not run: <output>`).
/// - When the last user message contains a line `/tool <name> <json arguments>` and that tool is
///   offered, it asks for that tool call (arguments default to `{}`).
/// - Otherwise it answers `Echo: <last user message>`.
///
/// Nothing here pretends to be intelligent; it exists so the whole run — hooks, tools, delivery —
/// works on a fresh install and in tests without a network.
#[derive(Clone, Debug, Default)]
pub struct OfflineModel;

impl OfflineModel {
    fn answer(request: &ChatRequest) -> ChatResponse {
        let usage = json!({ "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 });
        if let Some(last) = request.messages.last() {
            if last.role == "tool" {
                let name = request
                    .messages
                    .iter()
                    .rev()
                    .flat_map(|m| m.tool_calls.iter())
                    .find(|c| Some(&c.id) == last.tool_call_id.as_ref())
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "tool".into());
                let output = last.content.clone().unwrap_or_default();
                let content = match output.strip_prefix("[blocked] ") {
                    Some(reason) => format!("Tool {name} was not run: {reason}"),
                    None => format!("Tool {name} returned: {output}"),
                };
                return ChatResponse {
                    content: Some(content),
                    tool_calls: Vec::new(),
                    usage,
                };
            }
        }
        let user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .and_then(|m| m.content.clone())
            .unwrap_or_default();
        for line in user.lines() {
            let Some(rest) = line.trim().strip_prefix("/tool ") else {
                continue;
            };
            let (name, args) = rest.trim().split_once(' ').unwrap_or((rest.trim(), "{}"));
            if request.tools.iter().any(|t| t.name == name) {
                let arguments = serde_json::from_str(args.trim()).unwrap_or_else(|_| json!({}));
                return ChatResponse {
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "call_offline_1".into(),
                        name: name.into(),
                        arguments,
                    }],
                    usage,
                };
            }
        }
        ChatResponse {
            content: Some(format!("Echo: {user}")),
            tool_calls: Vec::new(),
            usage,
        }
    }
}

impl ModelProvider for OfflineModel {
    fn name(&self) -> &str {
        "offline"
    }
    fn default_model(&self) -> &str {
        "offline-echo"
    }
    fn complete(&self, request: ChatRequest) -> ModelFuture<'_> {
        Box::pin(std::future::ready(Ok(Self::answer(&request))))
    }
}

/// A provider speaking the OpenAI chat-completions protocol (`POST {base}/chat/completions`).
pub struct OpenAiCompatible {
    base_url: String,
    api_key: Option<String>,
    model: String,
    client: reqwest::Client,
}

impl OpenAiCompatible {
    /// A provider at `base_url` (e.g. `https://api.openai.com/v1`).
    pub fn new(base_url: &str, api_key: Option<String>, model: &str, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        OpenAiCompatible {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            model: model.to_string(),
            client,
        }
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut body = json!({
            "model": request.model,
            "messages": request.messages.iter().map(wire_message).collect::<Vec<_>>(),
        });
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = request.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters }})
                })
                .collect();
        }
        if let Value::Object(extra) = &request.provider_metadata {
            for (k, v) in extra {
                // Extra parameters never override what the run decided.
                if body.get(k).is_none() {
                    body[k] = v.clone();
                }
            }
        }
        body
    }
}

fn wire_message(m: &ChatMessage) -> Value {
    let mut v = json!({ "role": m.role, "content": m.content });
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function", "function": {
                    "name": c.name, "arguments": c.arguments.to_string() }})
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

fn read_completion(body: &Value) -> Result<ChatResponse, ModelError> {
    let message = body
        .pointer("/choices/0/message")
        .ok_or_else(|| ModelError::BadResponse("no choices[0].message".into()))?;
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut tool_calls = Vec::new();
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::BadResponse("a tool call without a function name".into()))?;
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            Some(other) => other.clone(),
            None => json!({}),
        };
        tool_calls.push(ToolCall {
            id: id.to_string(),
            name: name.to_string(),
            arguments,
        });
    }
    Ok(ChatResponse {
        content,
        tool_calls,
        usage: body.get("usage").cloned().unwrap_or(Value::Null),
    })
}

impl ModelProvider for OpenAiCompatible {
    fn name(&self) -> &str {
        "openai-compatible"
    }
    fn default_model(&self) -> &str {
        &self.model
    }
    fn complete(&self, request: ChatRequest) -> ModelFuture<'_> {
        Box::pin(async move {
            let url = format!("{}/chat/completions", self.base_url);
            let mut req = self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(self.body(&request).to_string());
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let resp = req.send().await.map_err(|e| ModelError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| ModelError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
            if !(200..300).contains(&status) {
                return Err(ModelError::Status {
                    status,
                    body: text.chars().take(500).collect(),
                });
            }
            let body: Value = serde_json::from_str(&text).map_err(|e| {
                ModelError::BadResponse(format!(
                    "{e}: {}",
                    text.chars().take(200).collect::<String>()
                ))
            })?;
            read_completion(&body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(user: &str, tools: &[&str]) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            temperature: None,
            max_tokens: None,
            messages: vec![
                ChatMessage::text("system", "s"),
                ChatMessage::text("user", user),
            ],
            tools: tools
                .iter()
                .map(|n| ToolSpec {
                    name: n.to_string(),
                    description: String::new(),
                    parameters: json!({"type": "object"}),
                })
                .collect(),
            provider_metadata: Value::Null,
        }
    }

    #[test]
    fn offline_model_echoes_and_calls_offered_tools() {
        assert_eq!(
            OfflineModel::answer(&request("hi", &[])).content.as_deref(),
            Some("Echo: hi")
        );
        let r = OfflineModel::answer(&request(
            "please\n/tool current_time {\"tz\":\"UTC\"}",
            &["current_time"],
        ));
        assert_eq!(r.tool_calls[0].name, "current_time");
        assert_eq!(r.tool_calls[0].arguments, json!({"tz": "UTC"}));
        // A tool that is not offered is not called.
        let r = OfflineModel::answer(&request("/tool shell {}", &["current_time"]));
        assert!(r.tool_calls.is_empty());
    }

    #[test]
    fn completions_are_read_with_tool_calls() {
        let body = json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"total_tokens": 3}});
        let r = read_completion(&body).unwrap();
        assert_eq!(r.tool_calls[0].arguments, json!({"a": 1}));
        assert!(read_completion(&json!({})).is_err());
    }
}
