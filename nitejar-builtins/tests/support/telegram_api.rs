//! A double of the Telegram Bot API: `POST <base>/bot<token>/<method>` with JSON bodies, answering
//! `{"ok":true,"result":…}` or `{"ok":false,"error_code":…,"description":…}` like Telegram does,
//! including its HTML parsing rules and the 4096-character limit.

use std::sync::{Arc, Mutex};

use nitejar_sdk::testing::TestHost;
use nitejar_sdk::{HostError, HttpRequest, HttpResponse};
use serde_json::{json, Value};

pub const BASE: &str = "https://telegram.test";
pub const TOKEN: &str = "123456789:AAFakeTokenForTests_abcdefghijklmn";

/// What the double does differently from a healthy Telegram.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Refuse every `parse_mode: HTML` message with "can't parse entities".
    pub refuse_html: bool,
    /// Refuse every `message_thread_id` with "message thread not found".
    pub no_threads: bool,
    /// Answer every `sendMessage` with this HTTP status and description.
    pub send_fails: Option<(u16, String)>,
}

#[derive(Default)]
struct State {
    next_message_id: i64,
    behaviour: Behaviour,
}

/// The fake Bot API.
#[derive(Clone, Default)]
pub struct FakeTelegram {
    state: Arc<Mutex<State>>,
}

fn answer(status: u16, body: Value) -> Result<HttpResponse, HostError> {
    Ok(HttpResponse::new(status)
        .with_header("content-type", "application/json")
        .with_body(serde_json::to_vec(&body).unwrap()))
}

fn ok(result: Value) -> Result<HttpResponse, HostError> {
    answer(200, json!({ "ok": true, "result": result }))
}

fn error(code: u16, description: &str) -> Result<HttpResponse, HostError> {
    answer(
        code,
        json!({ "ok": false, "error_code": code, "description": description }),
    )
}

impl FakeTelegram {
    pub fn new(behaviour: Behaviour) -> Self {
        let fake = FakeTelegram::default();
        {
            let mut state = fake.state.lock().unwrap();
            state.behaviour = behaviour;
            state.next_message_id = 5000;
        }
        fake
    }

    /// A TestHost whose HTTP goes to this double.
    pub fn host(&self) -> TestHost {
        let fake = self.clone();
        TestHost::new().with_http_handler(move |request| fake.handle(request))
    }

    fn handle(&self, request: &HttpRequest) -> Result<HttpResponse, HostError> {
        let Some(path) = request.url.strip_prefix(BASE) else {
            return Err(HostError::Failed(format!("no route to {}", request.url)));
        };
        let Some((token, method)) = path
            .strip_prefix("/bot")
            .and_then(|rest| rest.split_once('/'))
        else {
            return error(404, "Not Found");
        };
        if token != TOKEN {
            return error(401, "Unauthorized");
        }
        if request.method != "POST" {
            return error(405, "Method Not Allowed");
        }
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(body) => body,
            Err(_) => return error(400, "Bad Request: invalid JSON"),
        };
        let mut state = self.state.lock().unwrap();
        match method {
            "getMe" => ok(json!({
                "id": 999000111, "is_bot": true, "first_name": "Nitejar",
                "username": "nitejar_bot", "can_join_groups": true,
                "can_read_all_group_messages": false, "supports_inline_queries": false
            })),
            "sendChatAction" => {
                if body["chat_id"].is_null() || body["action"] != "typing" {
                    return error(400, "Bad Request: chat_id and action are required");
                }
                ok(json!(true))
            }
            "setMessageReaction" => {
                let valid = body["reaction"].as_array().is_some_and(|r| {
                    r.iter()
                        .all(|x| x["type"] == "emoji" && x["emoji"].is_string())
                });
                if !valid || body["message_id"].as_i64().is_none() {
                    return error(400, "Bad Request: REACTION_INVALID");
                }
                ok(json!(true))
            }
            "setWebhook" => {
                let url = body["url"].as_str().unwrap_or("");
                if !url.starts_with("https://") {
                    return error(
                        400,
                        "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
                    );
                }
                let secret_ok = body["secret_token"].as_str().is_none_or(|s| {
                    !s.is_empty()
                        && s.len() <= 256
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
                if !secret_ok {
                    return error(
                        400,
                        "Bad Request: secret token contains unallowed characters",
                    );
                }
                ok(json!(true))
            }
            "sendMessage" => {
                if let Some((code, description)) = &state.behaviour.send_fails {
                    return error(*code, description);
                }
                let text = body["text"].as_str().unwrap_or("");
                let visible = if body["parse_mode"] == "HTML" {
                    if state.behaviour.refuse_html {
                        return error(
                            400,
                            "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0",
                        );
                    }
                    match visible_text(text) {
                        Ok(visible) => visible,
                        Err(e) => {
                            return error(400, &format!("Bad Request: can't parse entities: {e}"))
                        }
                    }
                } else {
                    text.to_string()
                };
                if visible.trim().is_empty() {
                    return error(400, "Bad Request: message text is empty");
                }
                if visible.encode_utf16().count() > 4096 {
                    return error(400, "Bad Request: message is too long");
                }
                if body.get("message_thread_id").is_some() && state.behaviour.no_threads {
                    return error(400, "Bad Request: message thread not found");
                }
                state.next_message_id += 1;
                ok(json!({
                    "message_id": state.next_message_id,
                    "from": { "id": 999000111, "is_bot": true, "first_name": "Nitejar", "username": "nitejar_bot" },
                    "chat": { "id": body["chat_id"], "type": "private" },
                    "date": 1767226400,
                    "message_thread_id": body.get("message_thread_id"),
                    "text": visible
                }))
            }
            _ => error(404, "Not Found"),
        }
    }
}

/// Telegram's HTML rules: the text a message shows, or why Telegram refuses it. Tags must be of
/// its subset and balanced; `pre`/`code` contain no other tag; entities are `&lt;` `&gt;` `&amp;`
/// `&quot;` or numeric.
pub fn visible_text(html: &str) -> Result<String, String> {
    const ALLOWED: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "blockquote",
        "tg-spoiler",
        "span",
    ];
    let mut out = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').ok_or("unclosed start tag")?;
                let inner = &rest[1..end];
                rest = &rest[end + 1..];
                if let Some(name) = inner.strip_prefix('/') {
                    let open = stack.pop().ok_or(format!("unmatched end tag {name}"))?;
                    if open != name.trim() {
                        return Err(format!("end tag {name} does not match {open}"));
                    }
                } else {
                    let name = inner.split_whitespace().next().unwrap_or("").to_string();
                    if !ALLOWED.contains(&name.as_str()) {
                        return Err(format!("Unsupported start tag \"{name}\""));
                    }
                    if stack
                        .last()
                        .is_some_and(|t| t == "code" || (t == "pre" && name != "code"))
                    {
                        return Err(format!("tag {name} inside {}", stack.last().unwrap()));
                    }
                    if name == "a" && !inner.contains("href=\"") {
                        return Err("a without href".into());
                    }
                    stack.push(name);
                }
            }
            '&' => {
                let end = rest.find(';').ok_or("unfinished entity")?;
                let entity = &rest[1..end];
                let decoded = match entity {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    e if e.starts_with('#') => e[1..]
                        .parse::<u32>()
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or("bad numeric entity")?,
                    e => return Err(format!("unknown entity &{e};")),
                };
                out.push(decoded);
                rest = &rest[end + 1..];
            }
            '>' => return Err("unescaped >".into()),
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("unclosed tag {open}"));
    }
    Ok(out)
}
