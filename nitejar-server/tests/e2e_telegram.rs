//! Telegram end to end: a real server process, the real webhook route, a local server speaking the
//! Bot API, and (in one test) a local server speaking OpenAI chat completions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use support::*;

const TOKEN: &str = "123456789:ABCdefGHIjkl";
const SECRET: &str = "s3cret-token";

/// A Bot API double: `sendMessage` answers a message with an id; everything else answers `true`.
fn fake_telegram() -> LocalHttp {
    let next_id = Arc::new(Mutex::new(900));
    LocalHttp::start(move |r| {
        let Some(method) = r.path.strip_prefix(&format!("/bot{TOKEN}/")) else {
            return json_reply(
                401,
                &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        };
        match method {
            "sendMessage" => {
                let mut id = next_id.lock().unwrap();
                *id += 1;
                let body = body_json(r);
                json_reply(
                    200,
                    &json!({"ok": true, "result": {
                    "message_id": *id, "date": 1767225600,
                    "chat": {"id": body["chat_id"], "type": "supergroup"}, "text": body["text"] }}),
                )
            }
            _ => json_reply(200, &json!({"ok": true, "result": true})),
        }
    })
}

fn update(update_id: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": 55,
            "message_thread_id": 7,
            "is_topic_message": true,
            "date": 1767225600,
            "from": {"id": 4242, "is_bot": false, "first_name": "Ada", "username": "ada"},
            "chat": {"id": -100123, "type": "supergroup", "title": "Team", "is_forum": true},
            "text": text
        }
    })
}

async fn post(
    server: &Server,
    integration: &str,
    body: &Value,
    secret: Option<&str>,
) -> (u16, Value) {
    post_with(&reqwest::Client::new(), server, integration, body, secret).await
}

async fn post_with(
    client: &reqwest::Client,
    server: &Server,
    integration: &str,
    body: &Value,
    secret: Option<&str>,
) -> (u16, Value) {
    let mut req = client
        .post(server.url(&format!("/api/webhooks/plugins/telegram/{integration}")))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = secret {
        req = req.header("x-telegram-bot-api-secret-token", s);
    }
    let resp = req.send().await.expect("webhook request");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

async fn telegram_setup(extra_env: &[(&str, String)]) -> (DataDir, LocalHttp, Server, String) {
    let data = DataDir::new();
    let telegram = fake_telegram();
    let mut env = vec![("NITEJAR_TELEGRAM_API_BASE", telegram.url(""))];
    env.extend(extra_env.iter().cloned());
    let server = Server::start(&data, &env);
    let store = data.store().await;
    let id = create_integration(
        &store,
        "telegram",
        json!({"botToken": TOKEN, "webhookSecret": SECRET, "useMessageThreads": true}),
        &["botToken", "webhookSecret"],
    )
    .await;
    (data, telegram, server, id)
}

fn sent_messages(telegram: &LocalHttp) -> Vec<Value> {
    telegram
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/sendMessage"))
        .map(body_json)
        .collect()
}

#[tokio::test]
async fn a_telegram_update_becomes_a_work_item_a_run_and_a_threaded_reply() {
    let (data, telegram, server, id) = telegram_setup(&[]).await;

    let (status, body) = post(
        &server,
        &id,
        &update(1001, "hello **nitejar**"),
        Some(SECRET),
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["code"], "accepted");
    let work_item_id = body["workItemId"]
        .as_str()
        .expect("work item id")
        .to_string();

    let reply = eventually(15, || sent_messages(&telegram).into_iter().next())
        .await
        .unwrap_or_else(|| panic!("no sendMessage; server log:\n{}", server.log()));
    assert_eq!(reply["chat_id"], json!(-100123));
    assert_eq!(
        reply["message_thread_id"],
        json!(7),
        "reply in the same thread"
    );
    assert_eq!(
        reply["reply_parameters"]["message_id"],
        json!(55),
        "reply to the user's message"
    );
    assert_eq!(reply["parse_mode"], "HTML");
    assert_eq!(
        reply["text"], "Echo: hello <b>nitejar</b>",
        "Markdown became Telegram HTML"
    );

    // Typing, the 👀 reaction on receipt and its removal after the reply.
    let methods: Vec<String> = telegram
        .received()
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert!(
        methods.contains(&"sendChatAction".to_string()),
        "{methods:?}"
    );
    let reactions: Vec<Value> = telegram
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/setMessageReaction"))
        .map(body_json)
        .collect();
    assert!(
        reactions
            .first()
            .is_some_and(|r| r["reaction"][0]["emoji"] == "👀"),
        "{reactions:?}"
    );
    let cleared = eventually(5, || {
        let cleared = telegram
            .received()
            .iter()
            .filter(|r| r.path.ends_with("/setMessageReaction"))
            .map(body_json)
            .any(|r| r["reaction"] == json!([]));
        cleared.then_some(())
    })
    .await;
    assert!(
        cleared.is_some(),
        "the 👀 reaction is removed after the reply"
    );

    // The work item, the job and the receipts are stored.
    let store = data.store().await;
    let item = store
        .get_work_item(&work_item_id)
        .await
        .unwrap()
        .expect("work item");
    assert_eq!(item.session_key, "telegram:-100123:thread:7");
    let events = store
        .list_plugin_events(
            "builtin.telegram",
            nitejar_core::store::PageRequest::first(100),
        )
        .await
        .unwrap();
    let kinds: Vec<(String, String)> = events
        .items
        .iter()
        .map(|e| (e.kind.clone(), e.status.clone()))
        .collect();
    assert!(
        kinds.contains(&("webhook_ingress".into(), "ok".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("integration".into(), "ok".into())),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_bad_or_missing_secret_is_401_and_creates_nothing() {
    let (_data, telegram, server, id) = telegram_setup(&[]).await;
    let (status, body) = post(&server, &id, &update(2001, "hi"), Some("wrong")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "bad_signature");
    let (status, _) = post(&server, &id, &update(2002, "hi"), None).await;
    assert_eq!(status, 401);
    assert!(telegram.received().is_empty(), "nothing reached Telegram");
}

#[tokio::test]
async fn a_delivery_sent_fifty_times_at_once_is_one_work_item() {
    let (data, telegram, server, id) = telegram_setup(&[]).await;
    let server = Arc::new(server);
    let same = update(3001, "only once");
    // One client, as one provider delivering the same update over several connections at once.
    let client = reqwest::Client::new();
    let calls = (0..50).map(|_| {
        let (client, server, id, same) = (client.clone(), server.clone(), id.clone(), same.clone());
        tokio::spawn(async move { post_with(&client, &server, &id, &same, Some(SECRET)).await })
    });
    let results = futures::future::join_all(calls).await;
    let codes: Vec<String> = results
        .into_iter()
        .map(|r| {
            r.expect("task").1["code"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    assert_eq!(
        codes.iter().filter(|c| *c == "accepted").count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| *c == "duplicate").count(),
        49,
        "{codes:?}"
    );

    eventually(15, || (!sent_messages(&telegram).is_empty()).then_some(())).await;
    // Give a wrongly duplicated run time to show up before counting.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(sent_messages(&telegram).len(), 1, "one reply");
    let store = data.store().await;
    let ingress = store
        .list_plugin_events(
            "builtin.telegram",
            nitejar_core::store::PageRequest::first(200),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.kind == "webhook_ingress")
        .count();
    assert_eq!(ingress, 50, "every delivery is receipted");
}

#[tokio::test]
async fn a_run_through_an_openai_compatible_model_calls_a_tool_and_answers() {
    let calls = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = calls.clone();
    let model = LocalHttp::start(move |r| {
        if r.path != "/v1/chat/completions" || r.header("authorization") != Some("Bearer sk-test") {
            return json_reply(404, &json!({"error": "not here"}));
        }
        let body = body_json(r);
        let mut seen = seen.lock().unwrap();
        seen.push(body.clone());
        let last_is_tool = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .is_some_and(|m| m["role"] == "tool");
        if last_is_tool {
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant",
                "content": "It is **later** than you think."}}], "usage": {"total_tokens": 20}}),
            )
        } else {
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "current_time", "arguments": "{}"}}]}}],
                "usage": {"total_tokens": 10}}),
            )
        }
    });
    let (_data, telegram, server, id) = telegram_setup(&[
        ("NITEJAR_MODEL_BASE_URL", model.url("/v1")),
        ("NITEJAR_MODEL", "gpt-test".into()),
        ("NITEJAR_MODEL_API_KEY", "sk-test".into()),
    ])
    .await;
    let (status, _) = post(
        &server,
        &id,
        &update(4001, "what time is it?"),
        Some(SECRET),
    )
    .await;
    assert_eq!(status, 200);
    let reply = eventually(15, || sent_messages(&telegram).into_iter().next())
        .await
        .unwrap_or_else(|| panic!("no reply; log:\n{}", server.log()));
    assert_eq!(reply["text"], "It is <b>later</b> than you think.");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "a tool round trip");
    assert_eq!(calls[0]["model"], "gpt-test");
    assert_eq!(calls[0]["tools"][0]["function"]["name"], "current_time");
    let tool_msg = calls[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(tool_msg["role"], "tool");
    assert_eq!(tool_msg["tool_call_id"], "call_1");
    assert!(
        tool_msg["content"].as_str().unwrap().ends_with('Z'),
        "{tool_msg}"
    );
}

#[tokio::test]
async fn an_integration_row_written_before_an_upgrade_still_verifies_webhooks() {
    let data = DataDir::new();
    // The row as an earlier release wrote it: a legacy `integrations` table, seconds timestamps, and
    // the config's secrets encrypted with the same key in the `enc:` format.
    let c = cipher();
    let config = json!({
        "botToken": c.encrypt(TOKEN).unwrap(),
        "webhookSecret": c.encrypt(SECRET).unwrap(),
        "useMessageThreads": true,
    });
    let db = data.database_url();
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute('CREATE TABLE integrations (id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, \
               config TEXT, scope TEXT NOT NULL DEFAULT \"global\", enabled INTEGER NOT NULL DEFAULT 1, \
               created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)'); \
             c.execute('INSERT INTO integrations VALUES (?,?,?,?,?,?,?,?)', \
               ('legacy-telegram-1','telegram','Support bot',sys.argv[2],'global',1,1735689600,1735689600)); \
             c.commit()",
        )
        .arg(&db)
        .arg(config.to_string())
        .status()
        .expect("python3 writes the legacy database");
    assert!(status.success());
    let row_before = legacy_row(&db);

    let telegram = fake_telegram();
    let server = Server::start(&data, &[("NITEJAR_TELEGRAM_API_BASE", telegram.url(""))]);
    let (status, body) = post(
        &server,
        "legacy-telegram-1",
        &update(5001, "still here?"),
        Some(SECRET),
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["code"], "accepted");
    let (status, _) = post(
        &server,
        "legacy-telegram-1",
        &update(5002, "x"),
        Some("not-the-secret"),
    )
    .await;
    assert_eq!(status, 401);
    eventually(15, || (!sent_messages(&telegram).is_empty()).then_some(())).await;
    server.stop();
    assert_eq!(
        legacy_row(&db),
        row_before,
        "the legacy row is byte for byte unchanged"
    );
}

fn legacy_row(db: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             print(repr(c.execute('SELECT id,type,name,config,scope,enabled,created_at,updated_at \
             FROM integrations WHERE id=?', ('legacy-telegram-1',)).fetchone()))",
        )
        .arg(db)
        .output()
        .expect("python3 reads the database");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
