//! Third-party plugins end to end, through exactly the path the built-ins take: the example
//! `signed-webhook` integration and the `policy-guard` hooks are installed and enabled with the CLI,
//! the server boots them, a signed delivery becomes a run whose model asks for a tool the guard
//! refuses (fail_closed `tool.pre_exec`), and the answer is POSTed to the integration's callback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use std::process::Command;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::*;

const SECRET: &str = "e2e-signing-secret";

fn nitejar(data: &DataDir, execution: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nitejar"))
        .args(args)
        .env_clear()
        .env("NITEJAR_PLUGIN_EXECUTION", execution)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NITEJAR_DATA_DIR", &data.path)
        .env("DATABASE_URL", data.database_url())
        .env("ENCRYPTION_KEY", KEY_HEX)
        .env("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open")
        .output()
        .expect("run nitejar");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_third_party_integration_and_a_fail_closed_guard_take_the_same_path() {
    third_party_path("in_process").await;
}

/// The same path with each plugin in a process of its own: integration calls, hook batches and
/// host calls cross the process boundary, and the receipts say where the code ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_path_with_isolated_plugins() {
    third_party_path("isolated").await;
}

async fn third_party_path(execution: &str) {
    let data = DataDir::new();
    let callback = LocalHttp::start(|_| json_reply(200, &json!({"ok": true})));
    // A model that asks for the `shell` tool first, then answers with what it was told.
    let model = LocalHttp::start(|r| {
        let body = body_json(r);
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        if last["role"] == "tool" {
            let told = last["content"].as_str().unwrap_or_default().to_string();
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant",
                "content": format!("Could not run it: {told}")}}]}),
            )
        } else {
            json_reply(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "shell", "arguments": "{\"cmd\":\"rm -rf /\"}"}}]}}]}),
            )
        }
    });

    let packages = data.path.join("packages");
    let callback_host = format!("127.0.0.1:{}", callback.port());
    let webhook_pkg = packages::signed_webhook(&packages, &callback_host)
        .to_string_lossy()
        .into_owned();
    let guard_pkg = packages::package_dir(
        &packages,
        "policy-guard",
        "examples/policy-guard",
        "policy_guard",
        |_| {},
    )
    .to_string_lossy()
    .into_owned();
    for (pkg, id) in [
        (&webhook_pkg, "dev.nitejar.examples.signed-webhook"),
        (&guard_pkg, "dev.nitejar.examples.policy-guard"),
    ] {
        let (ok, out) = nitejar(&data, execution, &["plugin", "install", pkg]);
        assert!(ok, "install {id}: {out}");
        let (ok, out) = nitejar(&data, execution, &["plugin", "enable", id]);
        assert!(!ok, "enable without consent must be refused: {out}");
        let (ok, out) = nitejar(
            &data,
            execution,
            &["plugin", "enable", id, "--accept-consent", "--ack-all"],
        );
        assert!(ok, "enable {id}: {out}");
    }

    let server = Server::start(
        &data,
        &[
            ("NITEJAR_PLUGIN_TRUST_MODE", "self_host_open".into()),
            ("NITEJAR_MODEL_BASE_URL", model.url("")),
            ("NITEJAR_MODEL", "gpt-test".into()),
            ("NITEJAR_PLUGIN_EXECUTION", execution.into()),
        ],
    );
    let store = data.store().await;
    let id = create_plugin_integration(
        &store,
        "dev.nitejar.examples.signed-webhook",
        "signed-webhook",
        json!({"secret": SECRET, "callbackUrl": callback.url("/hook")}),
        &["secret"],
    )
    .await;

    let body = json!({"text": "please clean up", "id": "delivery-1"}).to_string();
    let client = reqwest::Client::new();
    let post = |signature: String| {
        client
            .post(server.url(&format!("/api/webhooks/plugins/signed-webhook/{id}")))
            .header("content-type", "application/json")
            .header("x-signature-256", signature)
            .body(body.clone())
            .send()
    };
    // Forged deliveries are refused each alone: more of them than the crash-loop guard's
    // threshold (5) do not take the plugin out — they are the sender's failures, not its code's.
    for _ in 0..7 {
        let bad = post("sha256=00".into()).await.expect("request");
        assert_eq!(bad.status().as_u16(), 401);
    }
    let good = post(sign(body.as_bytes())).await.expect("request");
    let status = good.status().as_u16();
    let answer: Value =
        serde_json::from_str(&good.text().await.unwrap_or_default()).unwrap_or_default();
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    assert_eq!(answer["code"], "accepted");

    let delivered = eventually(20, || callback.received().into_iter().next())
        .await
        .unwrap_or_else(|| panic!("no callback; log:\n{}", server.log()));
    let delivered = body_json(&delivered).to_string();
    assert!(
        delivered.contains("Could not run it: [blocked]") && delivered.contains("shell"),
        "the model was told the guard refused the tool: {delivered}"
    );

    let guard_events = store
        .list_plugin_events(
            "dev.nitejar.examples.policy-guard",
            nitejar_core::store::PageRequest::first(50),
        )
        .await
        .expect("events");
    assert!(
        guard_events.items.iter().any(|e| e.kind == "hook"
            && e.status == "blocked"
            && e.hook_name.as_deref() == Some("tool.pre_exec")),
        "{:?}",
        guard_events.items
    );
    let webhook_events = store
        .list_plugin_events(
            "dev.nitejar.examples.signed-webhook",
            nitejar_core::store::PageRequest::first(50),
        )
        .await
        .expect("events");
    let kinds: Vec<(&str, &str)> = webhook_events
        .items
        .iter()
        .map(|e| (e.kind.as_str(), e.status.as_str()))
        .collect();
    assert!(kinds.contains(&("webhook_ingress", "ok")), "{kinds:?}");
    assert!(kinds.contains(&("integration", "ok")), "{kinds:?}");
    let refused: Vec<_> = webhook_events
        .items
        .iter()
        .filter(|e| e.kind == "integration" && e.status == "error")
        .map(|e| e.detail_json.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(refused.len(), 7, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|d| d.contains(r#""errorKind":"unauthorized""#)),
        "{refused:?}"
    );
    for e in guard_events
        .items
        .iter()
        .chain(&webhook_events.items)
        .filter(|e| e.kind == "hook" || e.kind == "integration")
    {
        assert_eq!(e.execution_mode, execution, "{e:?}");
    }
}
