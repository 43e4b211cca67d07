//! Telegram updates → work items.
//!
//! A webhook delivery is one [`Update`](https://core.telegram.org/bots/api#update). `message` and
//! `edited_message` become work items; everything else, messages from bots, empty messages and
//! chats outside `allowedChatIds` are acknowledged and ignored with a reason.

use nitejar_sdk::integration::NewWorkItem;
use nitejar_sdk::{IntegrationError, WebhookParseResult, WebhookRequest};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::config::TelegramConfig;

/// The header Telegram sends the webhook's `secret_token` in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Checks the secret token header. An integration without a secret accepts nothing: its `setup`
/// (which registers the webhook with a generated secret and stores it) has not succeeded yet, and
/// without a secret anyone who knows the URL could post updates claiming to come from any chat.
pub fn verify_secret(
    request: &WebhookRequest,
    config: &TelegramConfig,
) -> Result<(), IntegrationError> {
    let Some(expected) = config.secret() else {
        return Err(IntegrationError::Unauthorized(
            "setup needed: this integration has no webhookSecret yet, so no update can be \
             verified and every update is refused; save the integration in the admin (setup \
             registers the webhook with Telegram and stores a generated secret), or enter the \
             secret_token the webhook was registered with"
                .into(),
        ));
    };
    let Some(given) = request.header(SECRET_HEADER) else {
        return Err(IntegrationError::Unauthorized(
            "the X-Telegram-Bot-Api-Secret-Token header is missing; this integration has a \
             webhookSecret, so every update must carry it"
                .into(),
        ));
    };
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(IntegrationError::Unauthorized(
            "the X-Telegram-Bot-Api-Secret-Token header does not match the integration's \
             webhookSecret"
                .into(),
        ))
    }
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    edited_message: Option<Message>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    #[serde(default)]
    message_thread_id: Option<i64>,
    #[serde(default)]
    from: Option<User>,
    #[serde(default)]
    date: i64,
    chat: Chat,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Vec<File>,
    #[serde(default)]
    document: Option<File>,
    #[serde(default)]
    audio: Option<File>,
    #[serde(default)]
    voice: Option<File>,
    #[serde(default)]
    video: Option<File>,
    #[serde(default)]
    video_note: Option<File>,
    #[serde(default)]
    animation: Option<File>,
    #[serde(default)]
    sticker: Option<File>,
    #[serde(default)]
    reply_to_message: Option<Box<Message>>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
}

/// The fields shared by Telegram's file objects (PhotoSize, Document, Audio, …).
#[derive(Deserialize)]
struct File {
    file_id: String,
    #[serde(default)]
    file_unique_id: Option<String>,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
    #[serde(default)]
    width: Option<u64>,
    #[serde(default)]
    height: Option<u64>,
    /// Video notes are square: `length` is both sides.
    #[serde(default)]
    length: Option<u64>,
    #[serde(default)]
    duration: Option<u64>,
    #[serde(default)]
    emoji: Option<String>,
    #[serde(default)]
    is_animated: bool,
    #[serde(default)]
    is_video: bool,
}

/// Reads an update and decides what it becomes. The secret has been checked already.
pub fn parse_update(
    request: &WebhookRequest,
    config: &TelegramConfig,
) -> Result<WebhookParseResult, IntegrationError> {
    let update: Update = request.json().map_err(|e| {
        IntegrationError::BadRequest(format!("the body is not a Telegram update: {e}"))
    })?;
    let (message, edited) = match (update.message, update.edited_message) {
        (Some(m), _) => (m, false),
        (None, Some(m)) => (m, true),
        (None, None) => {
            let kind = update
                .other
                .keys()
                .next()
                .map_or("empty", String::as_str)
                .to_string();
            return Ok(WebhookParseResult::ignore(format!(
                "update type `{kind}` is not handled (only message and edited_message)"
            )));
        }
    };
    if message.from.as_ref().is_some_and(|u| u.is_bot) {
        return Ok(WebhookParseResult::ignore("message from a bot"));
    }
    if !config.allows_chat(message.chat.id) {
        return Ok(WebhookParseResult::ignore(format!(
            "chat {} is not in allowedChatIds",
            message.chat.id
        )));
    }
    let text = message
        .text
        .as_deref()
        .or(message.caption.as_deref())
        .unwrap_or("")
        .trim()
        .to_string();
    let attachments = attachments(&message);
    if text.is_empty() && attachments.is_empty() {
        return Ok(WebhookParseResult::ignore(
            "empty message (no text, caption or attachment)",
        ));
    }

    let chat_id = message.chat.id;
    let thread_id = message
        .message_thread_id
        .filter(|_| config.use_message_threads());
    let session_key = match thread_id {
        Some(thread) => format!("telegram:{chat_id}:thread:{thread}"),
        None => format!("telegram:{chat_id}"),
    };
    let source_ref = match thread_id {
        Some(thread) => format!("telegram:{chat_id}:{thread}:{}", message.message_id),
        None => format!("telegram:{chat_id}:{}", message.message_id),
    };
    let chat_title = chat_title(&message.chat);
    let title = match (text.lines().next(), attachments.first()) {
        (Some(line), _) if !line.trim().is_empty() => truncate(line.trim(), 100),
        (_, Some(first)) => format!(
            "{} from {}",
            first["kind"].as_str().unwrap_or("attachment"),
            chat_title.as_deref().unwrap_or("Telegram")
        ),
        _ => truncate(&text, 100),
    };
    let command = message.text.as_deref().and_then(command);

    let payload = json!({
        "text": text,
        "sender": message.from.as_ref().map(|u| json!({
            "id": u.id,
            "name": full_name(&u.first_name, u.last_name.as_deref()),
            "username": u.username,
            "isBot": u.is_bot,
        })),
        "chat": {
            "id": chat_id,
            "type": message.chat.kind,
            "title": chat_title,
        },
        "attachments": attachments,
        "messageId": message.message_id,
        "threadId": thread_id,
        "edited": edited,
        "date": message.date,
        "replyTo": message.reply_to_message.as_ref().map(|r| json!({
            "messageId": r.message_id,
            "text": r.text.as_deref().or(r.caption.as_deref()),
        })),
        "updateId": update.update_id,
    });

    let mut result = WebhookParseResult::process(
        NewWorkItem::new(session_key, title)
            .source("telegram")
            .source_ref(source_ref)
            .payload(payload),
    )
    .with_idempotency_key(format!("telegram:{}", update.update_id))
    .with_response_context(json!({
        "chatId": chat_id,
        "messageId": message.message_id,
        "threadId": thread_id,
    }));
    result.command = command;
    Ok(result)
}

/// The bot command a message starts with: `/reset` and `/reset@my_bot` are `reset`.
pub fn command(text: &str) -> Option<String> {
    let word = text
        .trim_start()
        .strip_prefix('/')?
        .split_whitespace()
        .next()?;
    let name = word.split('@').next()?;
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| name.to_ascii_lowercase())
}

fn attachments(message: &Message) -> Vec<Value> {
    let mut out = Vec::new();
    // Telegram sends every size of a photo; the largest is the one worth reading.
    let largest_photo = message.photo.iter().max_by_key(|p| {
        (
            p.width.unwrap_or(0) * p.height.unwrap_or(0),
            p.file_size.unwrap_or(0),
        )
    });
    if let Some(photo) = largest_photo {
        out.push(descriptor("photo", photo, Some("image/jpeg")));
    }
    let sticker_mime = message.sticker.as_ref().map(|s| {
        if s.is_animated {
            "application/x-tgsticker"
        } else if s.is_video {
            "video/webm"
        } else {
            "image/webp"
        }
    });
    // Telegram repeats an animation as `document` for old clients; one attachment is enough.
    let document = message.document.as_ref().filter(|d| {
        message
            .animation
            .as_ref()
            .is_none_or(|a| a.file_id != d.file_id)
    });
    let others = [
        ("document", document, None),
        ("audio", message.audio.as_ref(), None),
        ("voice", message.voice.as_ref(), Some("audio/ogg")),
        ("video", message.video.as_ref(), Some("video/mp4")),
        ("video_note", message.video_note.as_ref(), Some("video/mp4")),
        ("animation", message.animation.as_ref(), Some("video/mp4")),
        ("sticker", message.sticker.as_ref(), sticker_mime),
    ];
    for (kind, file, default_mime) in others {
        if let Some(file) = file {
            out.push(descriptor(kind, file, default_mime));
        }
    }
    out
}

fn descriptor(kind: &str, file: &File, default_mime: Option<&str>) -> Value {
    let mut d = json!({
        "kind": kind,
        "fileId": file.file_id,
        "fileUniqueId": file.file_unique_id,
        "mime": file.mime_type.as_deref().or(default_mime),
        "size": file.file_size,
        "name": file.file_name,
    });
    let extra = [
        ("width", file.width.or(file.length).map(Value::from)),
        ("height", file.height.or(file.length).map(Value::from)),
        ("duration", file.duration.map(Value::from)),
        ("emoji", file.emoji.clone().map(Value::from)),
    ];
    if let Some(object) = d.as_object_mut() {
        for (key, value) in extra {
            if let Some(value) = value {
                object.insert(key.into(), value);
            }
        }
    }
    d
}

fn full_name(first: &str, last: Option<&str>) -> String {
    match last {
        Some(last) if !last.is_empty() => format!("{first} {last}"),
        _ => first.to_string(),
    }
}

/// A group's title, or the other person's name in a private chat.
fn chat_title(chat: &Chat) -> Option<String> {
    chat.title
        .clone()
        .or_else(|| {
            chat.first_name
                .as_deref()
                .map(|first| full_name(first, chat.last_name.as_deref()))
        })
        .or_else(|| chat.username.as_ref().map(|u| format!("@{u}")))
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(command("/reset"), Some("reset".into()));
        assert_eq!(command("/reset@nitejar_bot please"), Some("reset".into()));
        assert_eq!(command("  /Start"), Some("start".into()));
        assert_eq!(command("/"), None);
        assert_eq!(command("hello /reset"), None);
        assert_eq!(command("/re-set"), None);
        assert_eq!(command("/path/to/file"), None);
    }

    fn request(secret: Option<&str>) -> WebhookRequest {
        let request = WebhookRequest::new("POST", "/api/webhooks/plugins/telegram/t1")
            .with_body(br#"{"update_id": 1}"#.to_vec());
        match secret {
            Some(s) => request.with_header(SECRET_HEADER, s),
            None => request,
        }
    }

    #[test]
    fn without_a_secret_every_update_is_refused() {
        let open = TelegramConfig::from_value(&json!({ "botToken": "1:a" })).unwrap();
        for given in [None, Some(""), Some("anything")] {
            let refused = verify_secret(&request(given), &open).unwrap_err();
            assert!(
                matches!(&refused, IntegrationError::Unauthorized(m) if m.starts_with("setup needed")),
                "{refused:?}"
            );
        }
        let empty =
            TelegramConfig::from_value(&json!({ "botToken": "1:a", "webhookSecret": "" })).unwrap();
        assert!(verify_secret(&request(Some("")), &empty).is_err());

        let set = TelegramConfig::from_value(&json!({ "botToken": "1:a", "webhookSecret": "s-1" }))
            .unwrap();
        assert!(verify_secret(&request(Some("s-1")), &set).is_ok());
        assert!(verify_secret(&request(Some("s-2")), &set).is_err());
        assert!(verify_secret(&request(None), &set).is_err());
    }

    #[test]
    fn truncates_on_characters() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
    }
}
