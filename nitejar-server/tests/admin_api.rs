//! The admin JSON API against a real server process: integrations validated by schema and by the
//! type's own code, secrets encrypted and masked, `setup` called with the public webhook URL and its
//! config changes stored, test connection, errors with stable codes; runtime, integration types,
//! receipts, readiness and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use nitejar_core::crypto::REDACTED;
use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::*;

const TOKEN: &str = "123456789:ABCdefGHIjkl";
const PUBLIC: &str = "https://nitejar.example.com";

/// A Bot API double that records every call.
fn fake_telegram() -> LocalHttp {
    LocalHttp::start(move |r| {
        let Some(method) = r.path.strip_prefix(&format!("/bot{TOKEN}/")) else {
            return json_reply(
                401,
                &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        };
        match method {
            "getMe" => json_reply(
                200,
                &json!({"ok": true, "result": {"id": 1, "is_bot": true, "first_name": "Nj", "username": "nitejar_test_bot"}}),
            ),
            "sendMessage" => json_reply(
                200,
                &json!({"ok": true, "result": {"message_id": 5, "date": 1, "chat": {"id": 1, "type": "private"}}}),
            ),
            _ => json_reply(200, &json!({"ok": true, "result": true})),
        }
    })
}

fn calls(telegram: &LocalHttp, method: &str) -> Vec<Value> {
    telegram
        .received()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/{method}")))
        .map(body_json)
        .collect()
}

fn start(data: &DataDir, telegram: &LocalHttp) -> Server {
    start_admin(
        data,
        &[
            ("NITEJAR_TELEGRAM_API_BASE", telegram.url("")),
            ("NITEJAR_PUBLIC_URL", PUBLIC.into()),
        ],
    )
}

#[tokio::test]
async fn a_telegram_integration_is_validated_set_up_masked_updated_tested_and_deleted() {
    let data = DataDir::new();
    let telegram = fake_telegram();
    let server = start(&data, &telegram);

    // Refused by the type's JSON Schema: the field is named.
    let bad = api(&server, Method::POST, "/api/admin/integrations", Some(&json!({
        "type": "telegram", "name": "Support", "config": {"botToken": "", "useMessageThreads": "yes"}
    }))).await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let error = &bad.json()["error"];
    assert_eq!(error["code"], "invalid_config");
    let paths: Vec<&str> = error["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/botToken") && paths.contains(&"/useMessageThreads"),
        "{error}"
    );
    assert!(
        calls(&telegram, "setWebhook").is_empty(),
        "nothing is set up for a refused config"
    );

    // Created: setup registers the webhook at the public URL and stores the secret it generated.
    let created = api(&server, Method::POST, "/api/admin/integrations", Some(&json!({
        "type": "telegram", "name": "Support", "config": {"botToken": TOKEN, "allowedChatIds": [42]}
    }))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let body = created.json();
    let integration = &body["integration"];
    let id = integration["id"].as_str().expect("id").to_owned();
    let webhook_url = format!("{PUBLIC}/api/webhooks/plugins/telegram/{id}");
    assert_eq!(integration["webhookUrl"], webhook_url);
    assert_eq!(integration["config"]["botToken"], REDACTED);
    assert_eq!(integration["config"]["webhookSecret"], REDACTED);
    assert_eq!(integration["config"]["allowedChatIds"], json!([42]));
    assert_eq!(integration["pluginId"], "builtin.telegram");
    assert_eq!(body["setup"]["ok"], true);
    assert_eq!(body["setup"]["changedFields"], json!(["webhookSecret"]));
    assert!(
        !created.text.contains(TOKEN),
        "the token never leaves the server"
    );
    let registered = calls(&telegram, "setWebhook");
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["url"], webhook_url);
    let secret = registered[0]["secret_token"]
        .as_str()
        .expect("secret")
        .to_owned();

    // Stored encrypted; the secret decrypts to what Telegram was given.
    let store = data.store().await;
    let row = store
        .get_integration(&id)
        .await
        .expect("read")
        .expect("row");
    let stored = row.config_map().expect("config");
    assert!(stored["botToken"]
        .as_str()
        .is_some_and(|v| v.starts_with("enc:")));
    assert!(stored["webhookSecret"]
        .as_str()
        .is_some_and(|v| v.starts_with("enc:")));
    let sensitive = vec!["botToken".to_owned(), "webhookSecret".to_owned()];
    let plain = row
        .decrypted_config(store.cipher(), &sensitive)
        .expect("decrypt");
    assert_eq!(plain["webhookSecret"], secret);

    // A delivery signed with that secret is accepted.
    let delivery = json!({"update_id": 1, "message": {"message_id": 1, "date": 1, "text": "hi",
        "from": {"id": 42, "is_bot": false, "first_name": "A"}, "chat": {"id": 42, "type": "private"}}});
    let answer = client()
        .post(server.url(&format!("/api/webhooks/plugins/telegram/{id}")))
        .header("content-type", "application/json")
        .header("x-telegram-bot-api-secret-token", &secret)
        .body(delivery.to_string())
        .send()
        .await
        .expect("webhook");
    assert_eq!(answer.status().as_u16(), 200);

    // Masks sent back keep the stored secrets byte for byte; the rest changes; setup runs again.
    let patched = api(
        &server,
        Method::PATCH,
        &format!("/api/admin/integrations/{id}"),
        Some(&json!({
            "name": "Support bot",
            "config": {"botToken": REDACTED, "webhookSecret": REDACTED, "allowedChatIds": [42, 43]}
        })),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["integration"]["name"], "Support bot");
    let after = store
        .get_integration(&id)
        .await
        .expect("read")
        .expect("row");
    let after_config = after.config_map().expect("config");
    assert_eq!(after_config["botToken"], stored["botToken"]);
    assert_eq!(after_config["webhookSecret"], stored["webhookSecret"]);
    assert_eq!(after_config["allowedChatIds"], json!([42, 43]));
    let registered = calls(&telegram, "setWebhook");
    assert_eq!(registered.len(), 2);
    assert_eq!(registered[1]["secret_token"], secret.as_str());

    // Reads are masked.
    let one = api(
        &server,
        Method::GET,
        &format!("/api/admin/integrations/{id}"),
        None,
    )
    .await;
    assert_eq!(one.json()["config"]["botToken"], REDACTED);
    let list = api(
        &server,
        Method::GET,
        "/api/admin/integrations?type=telegram",
        None,
    )
    .await;
    assert_eq!(list.json()["items"].as_array().map(Vec::len), Some(1));
    assert!(!list.text.contains(TOKEN) && !list.text.contains(&secret));

    // Test connection asks the provider.
    let test = api(
        &server,
        Method::POST,
        &format!("/api/admin/integrations/{id}/test"),
        None,
    )
    .await;
    assert_eq!(test.status, 200, "{}", test.text);
    assert_eq!(test.json()["ok"], true);
    assert_eq!(test.json()["detail"], "@nitejar_test_bot");

    // Disable, enable (setup again), delete.
    let off = api(
        &server,
        Method::PATCH,
        &format!("/api/admin/integrations/{id}"),
        Some(&json!({"enabled": false})),
    )
    .await;
    assert_eq!(off.json()["integration"]["enabled"], false);
    assert_eq!(off.json()["setup"], Value::Null);
    let on = api(
        &server,
        Method::PATCH,
        &format!("/api/admin/integrations/{id}"),
        Some(&json!({"enabled": true})),
    )
    .await;
    assert_eq!(on.json()["setup"]["ok"], true);
    assert_eq!(calls(&telegram, "setWebhook").len(), 3);
    let deleted = api(
        &server,
        Method::DELETE,
        &format!("/api/admin/integrations/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    let gone = api(
        &server,
        Method::GET,
        &format!("/api/admin/integrations/{id}"),
        None,
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["error"]["code"], "integration_not_found");
}

/// A Telegram integration whose setup failed is enabled but closed: it has no webhook secret, so
/// every update is refused (forged ones claiming an allowed chat included) until a setup succeeds.
#[tokio::test]
async fn a_telegram_integration_whose_setup_failed_accepts_no_update() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let data = DataDir::new();
    let down = Arc::new(AtomicBool::new(true));
    let is_down = down.clone();
    let telegram = LocalHttp::start(move |r| {
        if r.path.ends_with("/setWebhook") && is_down.load(Ordering::SeqCst) {
            return json_reply(
                502,
                &json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
            );
        }
        json_reply(200, &json!({"ok": true, "result": true}))
    });
    let server = start(&data, &telegram);
    let created = api(&server, Method::POST, "/api/admin/integrations", Some(&json!({
        "type": "telegram", "name": "Support", "config": {"botToken": TOKEN, "allowedChatIds": [42]}
    }))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let body = created.json();
    assert_eq!(body["setup"]["ok"], false, "{body}");
    assert_eq!(body["integration"]["enabled"], true);
    assert!(body["integration"]["config"].get("webhookSecret").is_none());
    let id = body["integration"]["id"].as_str().expect("id").to_owned();

    let forged = json!({"update_id": 1, "message": {"message_id": 1, "date": 1,
        "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "A"},
        "text": "transfer everything"}});
    let path = format!("/api/webhooks/plugins/telegram/{id}");
    for secret in [None, Some(""), Some("guess")] {
        let mut req = client()
            .post(server.url(&path))
            .header("content-type", "application/json")
            .body(forged.to_string());
        if let Some(s) = secret {
            req = req.header("x-telegram-bot-api-secret-token", s);
        }
        let answer = read(req.send().await.expect("webhook")).await;
        assert_eq!(answer.status, 401, "{secret:?}: {}", answer.text);
        assert!(answer.text.contains("setup needed"), "{}", answer.text);
    }
    let store = data.store().await;
    assert_eq!(
        store.count_runs().await.expect("runs"),
        0,
        "no forged update became a run"
    );

    // Telegram is back: saving again runs setup, which stores the secret it registered.
    down.store(false, Ordering::SeqCst);
    let saved = api(
        &server,
        Method::PATCH,
        &path.replace(
            "/api/webhooks/plugins/telegram/",
            "/api/admin/integrations/",
        ),
        Some(&json!({"config": {"botToken": REDACTED, "allowedChatIds": [42]}})),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.json()["setup"]["ok"], true, "{}", saved.text);
    let registered = calls(&telegram, "setWebhook");
    let secret = registered.last().expect("setWebhook")["secret_token"]
        .as_str()
        .expect("secret")
        .to_owned();
    let answer = read(
        client()
            .post(server.url(&path))
            .header("content-type", "application/json")
            .header("x-telegram-bot-api-secret-token", &secret)
            .body(forged.to_string())
            .send()
            .await
            .expect("webhook"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["code"], "accepted");
}

#[tokio::test]
async fn the_types_own_validate_config_is_asked_after_the_schema() {
    let data = DataDir::new();
    let telegram = fake_telegram();
    let server = start(&data, &telegram);
    // Valid for GitHub's JSON Schema, refused by its validate_config (not a PEM key).
    let refused = api(&server, Method::POST, "/api/admin/integrations", Some(&json!({
        "type": "github", "name": "Repo", "config": {"appId": 12345, "privateKey": "not a key", "webhookSecret": "s"}
    }))).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    let error = refused.json()["error"].clone();
    assert_eq!(error["code"], "invalid_config");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("privateKey")),
        "{error}"
    );
    // The call left an integration receipt like any plugin call.
    let receipts = api(
        &server,
        Method::GET,
        "/api/admin/receipts?plugin=builtin.github&kind=integration",
        None,
    )
    .await;
    let items = receipts.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        items
            .iter()
            .any(|r| r["detail"]["operation"] == "validate_config"),
        "{}",
        receipts.text
    );
}

#[tokio::test]
async fn errors_have_stable_codes_and_human_messages() {
    let data = DataDir::new();
    let telegram = fake_telegram();
    let server = start(&data, &telegram);
    let cases = [
        (
            json!({"type": "nope", "name": "x"}),
            409,
            "integration_type_unavailable",
        ),
        (json!({"type": "echo", "name": "  "}), 422, "invalid_name"),
        (
            json!({"type": "echo", "name": "x", "surprise": 1}),
            400,
            "invalid_json",
        ),
        (
            json!({"type": "echo", "name": "x", "config": {"label": 5}}),
            422,
            "invalid_config",
        ),
    ];
    for (body, status, code) in cases {
        let answer = api(
            &server,
            Method::POST,
            "/api/admin/integrations",
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert_eq!(
            answer.json()["error"]["code"],
            code,
            "{body}: {}",
            answer.text
        );
        assert!(answer.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() > 10));
    }
    let raw = client()
        .post(server.url("/api/admin/integrations"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(raw.status().as_u16(), 400);
    let cursor = api(
        &server,
        Method::GET,
        "/api/admin/receipts?cursor=garbage",
        None,
    )
    .await;
    assert_eq!(cursor.json()["error"]["code"], "invalid_cursor");
}

#[tokio::test]
async fn runtime_types_receipts_readiness_and_metrics() {
    let data = DataDir::new();
    let telegram = fake_telegram();
    let server = start(&data, &telegram);

    let runtime = api(&server, Method::GET, "/api/admin/runtime", None)
        .await
        .json();
    // The default trust mode (guarded) runs third-party plugins isolated by default.
    assert_eq!(runtime["executionMode"], "isolated");
    assert_eq!(runtime["enforcementScope"], "kernel_and_host_boundary");
    assert_eq!(
        runtime["badge"],
        "Plugins isolated by default (kernel-enforced; each plugin's page says where it runs)"
    );
    assert_eq!(runtime["trustMode"], "self_host_guarded");
    assert_eq!(
        runtime["posture"],
        "Signed or allowlisted plugins; each runs isolated, and the kernel refuses what its process tries around the host."
    );
    let mut shape = runtime.clone();
    shape["activePlugins"] = json!(shape["activePlugins"].as_array().map(|a| a
        .iter()
        .map(|p| &p["id"])
        .cloned()
        .collect::<Vec<_>>()));
    insta::assert_json_snapshot!("runtime", shape);

    let types = api(&server, Method::GET, "/api/admin/integration-types", None)
        .await
        .json();
    let telegram_type = types["items"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|t| t["descriptor"]["type"] == "telegram")
                .cloned()
        })
        .expect("telegram type");
    assert_eq!(telegram_type["pluginId"], "builtin.telegram");
    assert!(telegram_type["descriptor"]["configSchema"]["properties"]["botToken"].is_object());
    assert!(telegram_type["descriptor"]["uiSchema"]["ui:order"].is_array());

    let ready = call(&server, Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");

    // Three deliveries to an echo integration, one with a bad body.
    let created = api(
        &server,
        Method::POST,
        "/api/admin/integrations",
        Some(&json!({"type": "echo", "name": "Echo"})),
    )
    .await;
    let id = created.json()["integration"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for body in [r#"{"text": "one"}"#, r#"{"text": "two"}"#, "not json"] {
        client()
            .post(server.url(&format!("/api/webhooks/plugins/echo/{id}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook");
    }
    let store = data.store().await;
    let filter = nitejar_core::store::EventFilter {
        kind: Some("webhook_ingress".into()),
        ..Default::default()
    };
    let mut seen = 0;
    for _ in 0..100 {
        seen = store
            .list_events(&filter, nitejar_core::store::PageRequest::first(10))
            .await
            .expect("read")
            .items
            .len();
        if seen == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 3, "three webhook receipts");

    // Keyset pages of one.
    let first = api(
        &server,
        Method::GET,
        "/api/admin/receipts?kind=webhook_ingress&limit=1",
        None,
    )
    .await
    .json();
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        first["items"][0]["detail"]["reason"], "bad_request",
        "newest first"
    );
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let second = api(
        &server,
        Method::GET,
        &format!("/api/admin/receipts?kind=webhook_ingress&limit=1&cursor={cursor}"),
        None,
    )
    .await
    .json();
    assert_eq!(second["items"][0]["detail"]["reason"], "accepted");
    let errors = api(
        &server,
        Method::GET,
        "/api/admin/receipts?kind=webhook_ingress&status=blocked",
        None,
    )
    .await
    .json();
    assert_eq!(errors["items"].as_array().map(Vec::len), Some(1));

    let metrics = api(&server, Method::GET, "/metrics", None).await.text;
    for line in [
        r#"nitejar_webhooks_total{plugin="builtin.echo",code="accepted"} 2"#,
        r#"nitejar_webhooks_total{plugin="builtin.echo",code="bad_request"} 1"#,
        "nitejar_active_plugins 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("nitejar_webhook_duration_seconds_count 3"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"nitejar_integration_calls_total{plugin="builtin.echo",operation="validate_config",status="ok"} 1"#), "{metrics}");
}
