//! `builtin.telegram` against real-shaped updates and a Bot API double.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use nitejar_builtins::telegram::Telegram;
use nitejar_sdk::integration::{PostResponseOptions, WebhookParseResult};
use nitejar_sdk::testing::{HostCall, TestHost};
use nitejar_sdk::{Integration, IntegrationError, LogLevel};
use serde_json::{json, Value};
use support::telegram_api::{Behaviour, FakeTelegram, BASE, TOKEN};
use support::{body_json, fixture, instance, webhook};

const SECRET: &str = "s3cret-Token_for-tests";

fn telegram() -> Telegram {
    Telegram::with_api_base(BASE)
}

fn config() -> Value {
    json!({ "botToken": TOKEN, "webhookSecret": SECRET })
}

fn update(name: &str) -> nitejar_sdk::WebhookRequest {
    webhook(
        "telegram",
        fixture(&format!("telegram/{name}.json")),
        &[
            ("content-type", "application/json"),
            ("x-telegram-bot-api-secret-token", SECRET),
        ],
    )
}

fn parse_with(name: &str, config: Value) -> Result<WebhookParseResult, IntegrationError> {
    telegram().parse_webhook(
        &update(name),
        &instance("telegram", config),
        &TestHost::new(),
    )
}

fn parse(name: &str) -> WebhookParseResult {
    parse_with(name, config()).expect("parses")
}

fn ignored(name: &str, config: Value) -> String {
    let result = parse_with(name, config).expect("parses");
    assert!(!result.should_process, "{name} should be ignored");
    assert!(result.work_item.is_none());
    result.ignored_reason.expect("a reason")
}

// ---- the webhook secret -------------------------------------------------------------------------

#[test]
fn a_matching_secret_is_accepted_and_a_wrong_or_missing_one_is_unauthorized() {
    assert!(parse("private_text").should_process);

    let body = fixture("telegram/private_text.json");
    let wrong = webhook(
        "telegram",
        body.clone(),
        &[("x-telegram-bot-api-secret-token", "s3cret-Token_for-testz")],
    );
    let missing = webhook("telegram", body.clone(), &[]);
    for request in [wrong, missing] {
        let err = telegram()
            .parse_webhook(&request, &instance("telegram", config()), &TestHost::new())
            .unwrap_err();
        assert!(matches!(err, IntegrationError::Unauthorized(_)), "{err:?}");
    }

    // Without a configured secret nothing is accepted (the earlier TypeScript version accepted
    // everything): the integration waits for a setup that registers and stores one.
    let open = json!({ "botToken": TOKEN });
    for headers in [
        vec![],
        vec![("x-telegram-bot-api-secret-token", "s3cret-Token_for-tests")],
    ] {
        let err = telegram()
            .parse_webhook(
                &webhook("telegram", body.clone(), &headers),
                &instance("telegram", open.clone()),
                &TestHost::new(),
            )
            .unwrap_err();
        assert!(
            matches!(&err, IntegrationError::Unauthorized(m) if m.contains("setup needed")),
            "{err:?}"
        );
    }
}

#[test]
fn the_secret_is_checked_before_the_body_is_read() {
    let garbage = webhook("telegram", b"not json".to_vec(), &[]);
    let err = telegram()
        .parse_webhook(&garbage, &instance("telegram", config()), &TestHost::new())
        .unwrap_err();
    assert!(matches!(err, IntegrationError::Unauthorized(_)));

    let signed_garbage = webhook(
        "telegram",
        b"not json".to_vec(),
        &[("x-telegram-bot-api-secret-token", SECRET)],
    );
    let err = telegram()
        .parse_webhook(
            &signed_garbage,
            &instance("telegram", config()),
            &TestHost::new(),
        )
        .unwrap_err();
    assert!(matches!(err, IntegrationError::BadRequest(_)), "{err:?}");
}

#[test]
fn a_config_without_a_bot_token_is_a_config_error() {
    let err = parse_with("private_text", json!({ "webhookSecret": SECRET })).unwrap_err();
    assert!(matches!(err, IntegrationError::Config(m) if m.contains("botToken")));
}

// ---- what becomes a work item ---------------------------------------------------------------------

#[test]
fn a_private_text_message_becomes_a_work_item() {
    let result = parse("private_text");
    assert!(result.should_process);
    assert_eq!(result.idempotency_keys, vec!["telegram:734811001"]);
    assert_eq!(result.command, None);
    assert_eq!(
        result.response_context,
        Some(json!({ "chatId": 111222333, "messageId": 52, "threadId": null }))
    );
    let item = result.work_item.unwrap();
    assert_eq!(item.session_key, "telegram:111222333");
    assert_eq!(item.source, "telegram");
    assert_eq!(item.source_ref, "telegram:111222333:52");
    assert_eq!(item.title, "What does the build script do?");
    assert_eq!(
        item.payload,
        json!({
            "text": "What does the build script do?",
            "sender": { "id": 111222333, "name": "Ada Lovelace", "username": "ada", "isBot": false },
            "chat": { "id": 111222333, "type": "private", "title": "Ada Lovelace" },
            "attachments": [],
            "messageId": 52,
            "threadId": null,
            "edited": false,
            "date": 1767225600,
            "replyTo": null,
            "updateId": 734811001
        })
    );
}

#[test]
fn a_caption_is_the_text_and_the_largest_photo_is_the_attachment() {
    let item = parse("group_photo_caption").work_item.unwrap();
    let p = &item.payload;
    assert_eq!(p["text"], "Is this dashboard red because of the deploy?");
    assert_eq!(item.session_key, "telegram:-1001234567890");
    assert_eq!(
        p["chat"],
        json!({ "id": -1001234567890i64, "type": "supergroup", "title": "Nitejar ops" })
    );
    assert_eq!(
        p["attachments"],
        json!([{
            "kind": "photo", "fileId": "AgACAgQAAxkBAAIBs-large", "fileUniqueId": "AQADlarge",
            "mime": "image/jpeg", "size": 78211, "name": null, "width": 1280, "height": 960
        }])
    );
    assert_eq!(
        p["replyTo"],
        json!({ "messageId": 1200, "text": "Deploy 42 finished." })
    );
}

#[test]
fn every_attachment_kind_is_described() {
    let cases = [
        ("document", "document", "text/plain", Some("build.log")),
        ("voice", "voice", "audio/ogg", None),
        ("audio", "audio", "audio/mpeg", Some("song.mp3")),
        ("video", "video", "video/mp4", Some("clip.mp4")),
        ("video_note", "video_note", "video/mp4", None),
        ("animation", "animation", "video/mp4", Some("loop.gif.mp4")),
        ("sticker", "sticker", "application/x-tgsticker", None),
    ];
    for (fixture_name, kind, mime, name) in cases {
        let result = parse(fixture_name);
        assert!(
            result.should_process,
            "{fixture_name}: an attachment alone is a message"
        );
        let item = result.work_item.unwrap();
        let attachments = item.payload["attachments"].as_array().unwrap().clone();
        // An animation also arrives as `document`; it is described once.
        assert_eq!(attachments.len(), 1, "{fixture_name}: {attachments:?}");
        let a = &attachments[0];
        assert_eq!(a["kind"], kind, "{fixture_name}");
        assert_eq!(a["mime"], mime, "{fixture_name}");
        assert_eq!(a["name"].as_str(), name, "{fixture_name}");
        assert!(a["fileId"].as_str().is_some_and(|f| !f.is_empty()));
        assert!(a["size"].as_u64().is_some(), "{fixture_name}");
        if item.payload["text"] == "" {
            assert!(
                item.title.starts_with(&format!("{kind} from ")),
                "{}",
                item.title
            );
        }
    }
    let note = parse("video_note").work_item.unwrap();
    assert_eq!(note.payload["attachments"][0]["width"], 384);
    let sticker = parse("sticker").work_item.unwrap();
    assert_eq!(sticker.payload["attachments"][0]["emoji"], "👍");
}

#[test]
fn a_forum_topic_gets_its_own_session_and_replies_go_to_it() {
    let result = parse("forum_topic_command");
    assert_eq!(result.command.as_deref(), Some("reset"));
    assert_eq!(
        result.response_context,
        Some(json!({ "chatId": -1009876543210i64, "messageId": 3301, "threadId": 3290 }))
    );
    let item = result.work_item.unwrap();
    assert_eq!(item.session_key, "telegram:-1009876543210:thread:3290");
    assert_eq!(item.source_ref, "telegram:-1009876543210:3290:3301");
    assert_eq!(item.payload["threadId"], 3290);
    assert_eq!(item.payload["text"], "/reset@nitejar_bot start over");

    // With useMessageThreads off, the whole chat is one conversation.
    let flat = parse_with(
        "forum_topic_command",
        json!({ "botToken": TOKEN, "webhookSecret": SECRET, "useMessageThreads": false }),
    )
    .unwrap();
    assert_eq!(
        flat.work_item.unwrap().session_key,
        "telegram:-1009876543210"
    );
    assert_eq!(flat.response_context.unwrap()["threadId"], Value::Null);
}

#[test]
fn an_edited_message_is_processed_and_marked_edited() {
    let result = parse("edited_message");
    assert!(result.should_process);
    assert_eq!(result.idempotency_keys, vec!["telegram:734811004"]);
    let item = result.work_item.unwrap();
    assert_eq!(item.payload["edited"], true);
    assert_eq!(
        item.payload["text"],
        "What does the build script do, exactly?"
    );
    assert_eq!(item.session_key, "telegram:111222333");
}

// ---- what is ignored ---------------------------------------------------------------------------------

#[test]
fn bots_empty_messages_and_other_update_types_are_ignored_with_a_reason() {
    assert_eq!(ignored("from_bot", config()), "message from a bot");
    assert!(ignored("service_message", config()).contains("empty message"));
    assert!(ignored("callback_query", config()).contains("callback_query"));
}

#[test]
fn chats_outside_allowed_chat_ids_are_ignored() {
    // Numbers, as the TypeScript version stored them, and numeric strings, as a form may send them.
    for allowed in [json!([-1001234567890i64]), json!(["-1001234567890"])] {
        let config =
            json!({ "botToken": TOKEN, "webhookSecret": SECRET, "allowedChatIds": allowed });
        assert!(
            parse_with("group_photo_caption", config.clone())
                .unwrap()
                .should_process
        );
        let reason = ignored("private_text", config);
        assert_eq!(reason, "chat 111222333 is not in allowedChatIds");
    }
    // An empty list allows every chat.
    let config = json!({ "botToken": TOKEN, "webhookSecret": SECRET, "allowedChatIds": [] });
    assert!(parse_with("private_text", config).unwrap().should_process);
}

// ---- replies -----------------------------------------------------------------------------------------

fn reply(
    fake: &FakeTelegram,
    content: &str,
    context: Value,
    options: PostResponseOptions,
) -> (nitejar_sdk::integration::PostResponseResult, TestHost) {
    let host = fake.host();
    let result = telegram()
        .post_response(
            &instance("telegram", config()),
            "wi-1",
            content,
            Some(&context),
            &options,
            &host,
        )
        .expect("delivers");
    (result, host)
}

fn methods(host: &TestHost) -> Vec<String> {
    host.http_requests()
        .iter()
        .map(|r| r.url.rsplit('/').next().unwrap().to_string())
        .collect()
}

#[test]
fn a_reply_is_typing_then_html_in_the_thread_as_a_reply_then_the_reaction_goes() {
    let fake = FakeTelegram::new(Behaviour::default());
    let context = json!({ "chatId": -1009876543210i64, "messageId": 3301, "threadId": 3290 });
    let (result, host) = reply(
        &fake,
        "**Done.** See `build.rs` & the [docs](https://docs.rs/x).",
        context,
        PostResponseOptions::default(),
    );
    assert!(result.success, "{result:?}");
    assert_eq!(result.provider_ref.as_deref(), Some("5001"));
    assert_eq!(
        methods(&host),
        ["sendChatAction", "sendMessage", "setMessageReaction"]
    );
    let requests = host.http_requests();
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert!(r.url.starts_with(&format!("{BASE}/bot{TOKEN}/")));
    }
    assert_eq!(
        body_json(&requests[0]),
        json!({ "chat_id": -1009876543210i64, "action": "typing", "message_thread_id": 3290 })
    );
    assert_eq!(
        body_json(&requests[1]),
        json!({
            "chat_id": -1009876543210i64,
            "text": "<b>Done.</b> See <code>build.rs</code> &amp; the <a href=\"https://docs.rs/x\">docs</a>.",
            "parse_mode": "HTML",
            "message_thread_id": 3290,
            "reply_parameters": { "message_id": 3301, "allow_sending_without_reply": true }
        })
    );
    assert_eq!(
        body_json(&requests[2]),
        json!({ "chat_id": -1009876543210i64, "message_id": 3301, "reaction": [] })
    );
}

#[test]
fn a_long_answer_is_split_into_messages_telegram_accepts() {
    let fake = FakeTelegram::new(Behaviour::default());
    let paragraph = "Quite a long sentence with **bold words**, `inline code` and a [link](https://example.com/a?b=1&c=2) in it. ".repeat(12);
    let content = format!("# Report\n\n{}", vec![paragraph; 20].join("\n\n"));
    let (result, host) = reply(
        &fake,
        &content,
        json!({ "chatId": 111222333, "messageId": 52 }),
        PostResponseOptions::default(),
    );
    assert!(result.success, "{result:?}");
    let sends: Vec<Value> = host
        .http_requests()
        .iter()
        .filter(|r| r.url.ends_with("/sendMessage"))
        .map(body_json)
        .collect();
    assert!(sends.len() >= 4, "{} messages", sends.len());
    // Only the first quotes the user's message; the result names the last one.
    assert!(sends[0].get("reply_parameters").is_some());
    assert!(sends[1..]
        .iter()
        .all(|s| s.get("reply_parameters").is_none()));
    assert_eq!(result.provider_ref, Some((5000 + sends.len()).to_string()));
    assert!(sends.iter().all(|s| s["parse_mode"] == "HTML"));
}

#[test]
fn refused_html_falls_back_to_plain_text() {
    let fake = FakeTelegram::new(Behaviour {
        refuse_html: true,
        ..Behaviour::default()
    });
    let (result, host) = reply(
        &fake,
        "**Bold** answer: a < b & more",
        json!({ "chatId": 111222333, "messageId": 52 }),
        PostResponseOptions::default(),
    );
    assert!(result.success, "{result:?}");
    assert_eq!(result.provider_ref.as_deref(), Some("5001"));
    let sends: Vec<Value> = host
        .http_requests()
        .iter()
        .filter(|r| r.url.ends_with("/sendMessage"))
        .map(body_json)
        .collect();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0]["parse_mode"], "HTML");
    assert_eq!(sends[1].get("parse_mode"), None);
    assert_eq!(sends[1]["text"], "Bold answer: a < b & more");
    assert_eq!(sends[1]["reply_parameters"]["message_id"], 52);
    assert!(host
        .logs()
        .iter()
        .any(|(level, line)| *level == LogLevel::Warn && line.contains("plain text")));
}

#[test]
fn an_unknown_thread_falls_back_to_the_chat() {
    let fake = FakeTelegram::new(Behaviour {
        no_threads: true,
        ..Behaviour::default()
    });
    let (result, host) = reply(
        &fake,
        "hello",
        json!({ "chatId": -1001234567890i64, "messageId": 9, "threadId": 7 }),
        PostResponseOptions::default(),
    );
    assert!(result.success, "{result:?}");
    let last_send = host
        .http_requests()
        .iter()
        .rfind(|r| r.url.ends_with("/sendMessage"))
        .map(body_json)
        .unwrap();
    assert_eq!(last_send.get("message_thread_id"), None);
}

#[test]
fn a_failed_send_is_reported_with_whether_to_retry() {
    for (code, description, retryable) in [
        (403, "Forbidden: bot was blocked by the user", false),
        (429, "Too Many Requests: retry after 5", true),
        (502, "Bad Gateway", true),
    ] {
        let fake = FakeTelegram::new(Behaviour {
            send_fails: Some((code, description.into())),
            ..Behaviour::default()
        });
        let (result, host) = reply(
            &fake,
            "hello",
            json!({ "chatId": 111222333, "messageId": 52 }),
            PostResponseOptions::default(),
        );
        assert!(!result.success);
        assert_eq!(result.retryable, retryable, "{code}");
        let error = result.error.unwrap();
        assert!(error.contains(description), "{error}");
        assert!(!error.contains(TOKEN));
        // The 👀 stays: nothing was answered.
        assert!(!methods(&host).contains(&"setMessageReaction".to_string()));
    }
}

#[test]
fn a_run_that_hit_its_limit_leaves_a_shrug() {
    let fake = FakeTelegram::new(Behaviour::default());
    let (result, host) = reply(
        &fake,
        "partial answer",
        json!({ "chatId": 111222333, "messageId": 52 }),
        PostResponseOptions::new().with_hit_limit(true),
    );
    assert!(result.success);
    let reaction = host.http_requests().last().map(body_json).unwrap();
    assert_eq!(
        reaction["reaction"],
        json!([{ "type": "emoji", "emoji": "🤷" }])
    );
}

#[test]
fn a_context_from_the_typescript_version_still_routes_to_its_thread() {
    let fake = FakeTelegram::new(Behaviour::default());
    let (result, host) = reply(
        &fake,
        "hi",
        json!({ "chatId": -1009876543210i64, "messageId": 3301, "replyToMessageId": 3301, "messageThreadId": 3290 }),
        PostResponseOptions::default(),
    );
    assert!(result.success);
    let send = body_json(&host.http_requests()[1]);
    assert_eq!(send["message_thread_id"], 3290);
}

#[test]
fn an_empty_answer_or_a_missing_context_sends_nothing() {
    let fake = FakeTelegram::new(Behaviour::default());
    let (result, host) = reply(
        &fake,
        "  \n ",
        json!({ "chatId": 1, "messageId": 2 }),
        PostResponseOptions::default(),
    );
    assert!(!result.success);
    assert!(host.http_requests().is_empty());

    let err = telegram()
        .post_response(
            &instance("telegram", config()),
            "wi-1",
            "hi",
            None,
            &PostResponseOptions::default(),
            &fake.host(),
        )
        .unwrap_err();
    assert!(matches!(err, IntegrationError::BadRequest(_)));
}

// ---- receipt, setup, connection test -----------------------------------------------------------------

#[test]
fn receipt_is_acknowledged_with_eyes() {
    let fake = FakeTelegram::new(Behaviour::default());
    let host = fake.host();
    telegram()
        .acknowledge_receipt(
            &instance("telegram", config()),
            Some(&json!({ "chatId": 111222333, "messageId": 52, "threadId": null })),
            &host,
        )
        .unwrap();
    let requests = host.http_requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].url.ends_with("/setMessageReaction"));
    assert_eq!(
        body_json(&requests[0]),
        json!({ "chat_id": 111222333, "message_id": 52, "reaction": [{ "type": "emoji", "emoji": "👀" }] })
    );
}

#[test]
fn setup_registers_the_webhook_with_a_generated_secret() {
    let fake = FakeTelegram::new(Behaviour::default());
    let host = fake.host();
    let url = "https://nitejar.example/api/webhooks/plugins/telegram/int-1";
    let result = telegram()
        .setup(
            &instance("telegram", json!({ "botToken": TOKEN })),
            url,
            &host,
        )
        .unwrap();
    let secret = result.config_changes["webhookSecret"]
        .as_str()
        .expect("a generated secret to store")
        .to_string();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    let requests = host.http_requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].url.ends_with("/setWebhook"));
    assert_eq!(
        body_json(&requests[0]),
        json!({ "url": url, "secret_token": secret, "allowed_updates": ["message", "edited_message"] })
    );
    assert!(result.detail.unwrap().contains(url));

    // A second integration gets a different secret.
    let again = telegram()
        .setup(
            &instance("telegram", json!({ "botToken": TOKEN })),
            url,
            &fake.host(),
        )
        .unwrap();
    assert_ne!(again.config_changes["webhookSecret"], json!(secret));

    // The generated secret is then what updates must carry.
    let stored = json!({ "botToken": TOKEN, "webhookSecret": secret });
    let request = webhook(
        "telegram",
        fixture("telegram/private_text.json"),
        &[("x-telegram-bot-api-secret-token", secret.as_str())],
    );
    assert!(
        telegram()
            .parse_webhook(&request, &instance("telegram", stored), &TestHost::new())
            .unwrap()
            .should_process
    );
}

#[test]
fn setup_keeps_a_configured_secret_and_reports_telegram_refusals() {
    let fake = FakeTelegram::new(Behaviour::default());
    let host = fake.host();
    let result = telegram()
        .setup(
            &instance("telegram", config()),
            "https://nitejar.example/hook",
            &host,
        )
        .unwrap();
    assert!(result.config_changes.is_empty());
    assert_eq!(body_json(&host.http_requests()[0])["secret_token"], SECRET);

    let err = telegram()
        .setup(
            &instance("telegram", config()),
            "http://insecure.example/hook",
            &fake.host(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, IntegrationError::Upstream(m) if m.contains("HTTPS URL")),
        "{err:?}"
    );
}

#[test]
fn connection_test_names_the_bot_or_says_the_token_is_wrong() {
    let fake = FakeTelegram::new(Behaviour::default());
    let ok = telegram()
        .test_connection(&json!({ "botToken": TOKEN }), &fake.host())
        .unwrap();
    assert!(ok.ok);
    assert_eq!(ok.detail.as_deref(), Some("@nitejar_bot"));

    let bad_token = "123456789:WRONG";
    let host = fake.host();
    let bad = telegram()
        .test_connection(&json!({ "botToken": bad_token }), &host)
        .unwrap();
    assert!(!bad.ok);
    let error = bad.error.unwrap();
    assert!(
        error.contains("botToken") && error.contains("401"),
        "{error}"
    );
    assert!(!error.contains(bad_token));
}

#[test]
fn the_bot_token_never_reaches_logs_or_errors() {
    // The host fails with a message quoting the URL, as a real HTTP client error may.
    let host = TestHost::new().with_http_handler(|request| {
        Err(nitejar_sdk::HostError::Failed(format!(
            "error sending request for url ({})",
            request.url
        )))
    });
    let result = telegram()
        .post_response(
            &instance("telegram", config()),
            "wi-1",
            "hello",
            Some(&json!({ "chatId": 1, "messageId": 2 })),
            &PostResponseOptions::default(),
            &host,
        )
        .unwrap();
    assert!(!result.success);
    assert!(result.retryable);
    let error = result.error.unwrap();
    assert!(error.contains("<bot token>"), "{error}");
    assert!(!error.contains(TOKEN));
    for call in host.calls() {
        if let HostCall::Log { message, .. } = call {
            assert!(!message.contains(TOKEN), "{message}");
        }
    }
}

#[test]
fn the_api_base_comes_from_the_environment() {
    // Read when the plugin is built; the variable is set only inside this test binary.
    std::env::set_var("NITEJAR_TELEGRAM_API_BASE", "http://127.0.0.1:8081/");
    assert_eq!(Telegram::from_env().api_base(), "http://127.0.0.1:8081");
    std::env::remove_var("NITEJAR_TELEGRAM_API_BASE");
    assert_eq!(Telegram::from_env().api_base(), "https://api.telegram.org");
}
