//! GitHub end to end: a signed `issue_comment` delivery through the real route becomes a comment
//! reply through a local server speaking the GitHub REST API; a bad signature is 401.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::*;

const WEBHOOK_SECRET: &str = "whsec-e2e";
const INSTALLATION: u64 = 51234567;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../nitejar-builtins/tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The REST API a GitHub App talks to: installation tokens and issue comments.
fn fake_github() -> LocalHttp {
    LocalHttp::start(|r| {
        let auth = r.header("authorization").unwrap_or_default().to_string();
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", p) if p == format!("/app/installations/{INSTALLATION}/access_tokens") => {
                if !auth.starts_with("Bearer ey") {
                    return json_reply(
                        401,
                        &json!({"message": "A JSON web token could not be decoded"}),
                    );
                }
                json_reply(
                    201,
                    &json!({"token": "ghs_e2etoken", "expires_at": "2099-01-01T00:00:00Z"}),
                )
            }
            ("POST", "/repos/octo-org/hello-world/issues/42/comments") => {
                if auth != "token ghs_e2etoken" && auth != "Bearer ghs_e2etoken" {
                    return json_reply(401, &json!({"message": "Bad credentials"}));
                }
                json_reply(
                    201,
                    &json!({"id": 987654321, "html_url": "https://github.test/c/987654321"}),
                )
            }
            _ => json_reply(404, &json!({"message": "Not Found"})),
        }
    })
}

async fn deliver(
    server: &Server,
    id: &str,
    body: &str,
    signature: &str,
    delivery: &str,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.url(&format!("/api/webhooks/plugins/github/{id}")))
        .header("content-type", "application/json")
        .header("x-github-event", "issue_comment")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body.to_string())
        .send()
        .await
        .expect("webhook request");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_signed_issue_comment_becomes_a_comment_reply_and_a_bad_signature_is_401() {
    let data = DataDir::new();
    let github = fake_github();
    let server = Server::start(&data, &[("NITEJAR_GITHUB_API_BASE", github.url(""))]);
    let store = data.store().await;
    let id = create_integration(
        &store,
        "github",
        json!({
            "appId": "123456",
            "privateKey": fixture("app-key.pem"),
            "webhookSecret": WEBHOOK_SECRET,
            "commentPolicy": "mentions",
            "mentionHandle": "nitejar",
        }),
        &["privateKey", "clientSecret", "webhookSecret"],
    )
    .await;
    let body = fixture("issue_comment_created.json");

    let (status, answer) = deliver(
        &server,
        &id,
        &body,
        &sign(body.as_bytes(), "wrong-secret"),
        "d-1",
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["code"], "bad_signature");

    let (status, answer) = deliver(
        &server,
        &id,
        &body,
        &sign(body.as_bytes(), WEBHOOK_SECRET),
        "d-2",
    )
    .await;
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    assert_eq!(answer["code"], "accepted");
    let work_item_id = answer["workItemId"].as_str().unwrap().to_string();

    let comment = eventually(15, || {
        github
            .received()
            .into_iter()
            .find(|r| r.path.ends_with("/issues/42/comments"))
    })
    .await
    .unwrap_or_else(|| panic!("no comment posted; log:\n{}", server.log()));
    let posted = body_json(&comment);
    assert!(
        posted["body"]
            .as_str()
            .unwrap()
            .contains("@nitejar can you review the cache key?"),
        "{posted}"
    );
    let item = store.get_work_item(&work_item_id).await.unwrap().unwrap();
    assert_eq!(item.session_key, "octo-org/hello-world#issue:42");

    // The same delivery again is a duplicate.
    let (_, again) = deliver(
        &server,
        &id,
        &body,
        &sign(body.as_bytes(), WEBHOOK_SECRET),
        "d-2",
    )
    .await;
    assert_eq!(again["code"], "duplicate");
}
