//! Runs through the admin API against a real server process: a Telegram update (a local server
//! speaking the Bot API) is answered by the offline model, and `/api/admin/runs` shows the work
//! item, its COMPLETED job and its delivery; a delivery Telegram refuses shows the failure and its
//! reason; filters narrow the list; a bad cursor is a 400 that says what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::admin::*;
use support::*;

const TOKEN: &str = "123456789:ABCdefGHIjkl";
const SECRET: &str = "s3cret-token";
/// The chat Telegram refuses to post to.
const GONE_CHAT: i64 = -100999;

/// A Bot API double: `sendMessage` to [`GONE_CHAT`] is a 400 ("chat not found"), any other a
/// message; every other method answers `true`.
fn fake_telegram() -> LocalHttp {
    LocalHttp::start(move |r| {
        let Some(method) = r.path.strip_prefix(&format!("/bot{TOKEN}/")) else {
            return json_reply(
                401,
                &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            );
        };
        match method {
            "sendMessage" => {
                let body = body_json(r);
                if body["chat_id"] == json!(GONE_CHAT) {
                    return json_reply(
                        400,
                        &json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
                    );
                }
                json_reply(
                    200,
                    &json!({"ok": true, "result": {
                    "message_id": 901, "date": 1767225600,
                    "chat": {"id": body["chat_id"], "type": "private"}, "text": body["text"] }}),
                )
            }
            _ => json_reply(200, &json!({"ok": true, "result": true})),
        }
    })
}

fn update(update_id: i64, chat: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": 55,
            "date": 1767225600,
            "from": {"id": 4242, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": chat, "type": "private"},
            "text": text
        }
    })
}

async fn deliver(server: &Server, integration: &str, body: &Value) -> String {
    let resp = reqwest::Client::new()
        .post(server.url(&format!("/api/webhooks/plugins/telegram/{integration}")))
        .header("content-type", "application/json")
        .header("x-telegram-bot-api-secret-token", SECRET)
        .body(body.to_string())
        .send()
        .await
        .expect("webhook");
    let answer: Value =
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(answer["code"], "accepted", "{answer}\n{}", server.log());
    answer["workItemId"]
        .as_str()
        .expect("work item id")
        .to_owned()
}

async fn setup() -> (DataDir, LocalHttp, Server, String) {
    let data = DataDir::new();
    let telegram = fake_telegram();
    let server = start_admin(&data, &[("NITEJAR_TELEGRAM_API_BASE", telegram.url(""))]);
    let store = data.store().await;
    let id = create_integration(
        &store,
        "telegram",
        json!({"botToken": TOKEN, "webhookSecret": SECRET}),
        &["botToken", "webhookSecret"],
    )
    .await;
    (data, telegram, server, id)
}

/// The runs list (with a query string), once every run in it has finished.
async fn finished_runs(server: &Server, query: &str) -> Value {
    for _ in 0..150 {
        let page = api(
            server,
            Method::GET,
            &format!("/api/admin/runs{query}"),
            None,
        )
        .await;
        assert_eq!(page.status, 200, "{}", page.text);
        let body = page.json();
        let done = body["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .all(|r| r["queue"].is_null() && !r["jobs"].as_array().is_some_and(Vec::is_empty))
        });
        if done {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("runs did not finish; server log:\n{}", server.log());
}

fn item<'a>(page: &'a Value, id: &str) -> &'a Value {
    page["items"]
        .as_array()
        .and_then(|items| items.iter().find(|r| r["id"] == id))
        .unwrap_or_else(|| panic!("{id} not in {page}"))
}

#[tokio::test]
async fn runs_show_the_answer_or_the_failure_and_filter_and_page() {
    let (_data, _telegram, server, integration) = setup().await;
    let answered = deliver(&server, &integration, &update(1, 4242, "hello runs")).await;
    let refused = deliver(
        &server,
        &integration,
        &update(2, GONE_CHAT, "nobody hears this"),
    )
    .await;

    let page = finished_runs(&server, "").await;
    // Newest first.
    assert_eq!(page["items"][0]["id"], refused, "{page}");
    assert_eq!(page["items"][1]["id"], answered, "{page}");

    let ok = item(&page, &answered);
    assert_eq!(ok["integrationId"], integration);
    assert_eq!(ok["integrationType"], "telegram");
    assert_eq!(ok["sessionKey"], "telegram:4242");
    assert_eq!(ok["preview"], "hello runs");
    assert_eq!(ok["status"], "completed");
    assert_eq!(ok["jobs"][0]["status"], "COMPLETED", "{ok}");
    assert!(ok["jobs"][0]["agentId"].is_string());
    assert!(ok["jobs"][0]["finishedAt"].as_i64() >= ok["jobs"][0]["startedAt"].as_i64());
    assert_eq!(ok["delivery"]["status"], "delivered", "{ok}");
    assert_eq!(ok["delivery"]["attempts"], 1);
    assert!(ok["failure"].is_null());

    let failed = item(&page, &refused);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["jobs"][0]["status"], "FAILED");
    let reason = failed["failure"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("delivery failed") && reason.contains("chat not found"),
        "{failed}"
    );
    assert_eq!(failed["jobs"][0]["error"], reason);
    assert_eq!(failed["delivery"]["status"], "failed");
    assert!(failed["delivery"]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("chat not found"));

    // The shape an operator's script reads, ids and times masked.
    insta::assert_json_snapshot!("failed_run", masked(failed.clone()));

    // Filters narrow the list.
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        ids(&finished_runs(&server, "?status=failed").await),
        [refused.as_str()]
    );
    assert_eq!(
        ids(&finished_runs(&server, "?status=completed").await),
        [answered.as_str()]
    );
    assert_eq!(
        ids(&finished_runs(&server, &format!("?integration={integration}")).await).len(),
        2
    );
    assert!(ids(&finished_runs(&server, "?integration=no-such-integration").await).is_empty());
    assert_eq!(
        ids(&finished_runs(&server, "?plugin=builtin.telegram").await).len(),
        2
    );
    assert!(ids(&finished_runs(&server, "?plugin=acme.nobody").await).is_empty());
    let created = ok["createdAt"].as_i64().expect("createdAt");
    assert_eq!(
        ids(&finished_runs(&server, &format!("?until={}", created + 1)).await),
        [answered.as_str()]
    );
    assert!(ids(&finished_runs(&server, "?since=2999-01-01T00:00").await).is_empty());
    let bad_time = api(
        &server,
        Method::GET,
        "/api/admin/runs?since=yesterday",
        None,
    )
    .await;
    assert_eq!(bad_time.status, 400, "{}", bad_time.text);
    assert_eq!(bad_time.json()["error"]["code"], "invalid_time");

    // Keyset pages: one run a page, newest first, then the end.
    let first = finished_runs(&server, "?limit=1").await;
    assert_eq!(ids(&first), [refused.as_str()]);
    let cursor = first["nextCursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = finished_runs(&server, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&second), [answered.as_str()]);
    assert!(second["nextCursor"].is_null());

    // A cursor this server did not hand out.
    let bad = api(
        &server,
        Method::GET,
        "/api/admin/runs?cursor=bm90LWEtY3Vyc29y!",
        None,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let error = &bad.json()["error"];
    assert_eq!(error["code"], "invalid_cursor");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nextCursor"),
        "{error}"
    );

    // One run in full: its job's spans and its receipts.
    let detail = api(
        &server,
        Method::GET,
        &format!("/api/admin/runs/{refused}"),
        None,
    )
    .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    let detail = detail.json();
    assert_eq!(detail["failure"]["reason"], reason);
    let spans = detail["jobs"][0]["spans"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        names.contains(&"run") && names.contains(&"model.call"),
        "{names:?}"
    );
    assert!(
        names.contains(&"plugin.integration"),
        "delivery is on the timeline: {names:?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s["start"].is_i64() && s["durationMs"].is_i64()),
        "{spans:?}"
    );
    let receipts = detail["receipts"].as_array().cloned().unwrap_or_default();
    assert!(
        receipts.iter().all(|r| r["workItemId"] == refused),
        "{receipts:?}"
    );
    assert!(
        receipts.iter().any(|r| r["kind"] == "webhook_ingress"),
        "{receipts:?}"
    );
    assert!(
        receipts.iter().any(|r| r["kind"] == "integration"
            && r["status"] == "error"
            && r["detail"]["operation"] == "post_response"),
        "{receipts:?}"
    );
    let missing = api(&server, Method::GET, "/api/admin/runs/no-such-item", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "run_not_found");

    // The receipts page: an integration column, filtered by it, each receipt linking to its run.
    let session = Session::sign_in(&server).await;
    let page = session
        .get(
            &server,
            &format!("/admin/receipts?integration={integration}&kind=webhook_ingress"),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let html = page.text;
    assert!(html.contains("<th>Integration</th>"), "{html}");
    assert!(
        html.contains(&format!(
            "<td class=\"integration\"><a href=\"/admin/integrations/{integration}\" title=\"{integration}\">"
        )),
        "{html}"
    );
    for run in [&answered, &refused] {
        assert!(
            html.contains(&format!("href=\"/admin/runs/{run}\"")),
            "{run} in {html}"
        );
    }
    let other = session
        .get(&server, "/admin/receipts?integration=no-such-integration")
        .await;
    assert!(other.text.contains("No receipts match."), "{}", other.text);
    assert!(!other.text.contains("/admin/runs/"), "{}", other.text);
}

/// `value` with the ids and times of one run replaced by placeholders.
fn masked(mut value: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match k.as_str() {
                        "id" | "integrationId" | "agentId" | "jobId" if v.is_string() => {
                            *v = json!("[id]")
                        }
                        "createdAt" | "startedAt" | "finishedAt" | "at" | "durationMs"
                            if v.is_i64() =>
                        {
                            *v = json!("[ms]")
                        }
                        _ => walk(v),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}
