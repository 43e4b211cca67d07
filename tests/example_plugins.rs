//! The example plugins as an operator runs them: built, installed, loaded behind the permission
//! gate, and called the way the server calls them.

use std::sync::Arc;
use std::time::Duration;

use nitejar_core::hooks::DispatchContext;
use nitejar_core::loader::{self, PluginPackage};
use nitejar_core::manifest::{validate_package_dir, ValidateOptions};
use nitejar_core::permissions::{Grant, MapSecrets, PermissionGate, PermissionSet};
use nitejar_core::receipts::{MemorySink, ReceiptKind, ReceiptStatus};
use nitejar_core::runtime::{IntegrationCallError, Runtime};
use nitejar_sdk::hooks::{ResponsePreDeliver, ToolPreExec};
use nitejar_sdk::integration::{PostResponseOptions, WebhookRequest};
use nitejar_sdk::{IntegrationError, IntegrationInstance};
use nitejar_suite::local_http::{LocalHttp, Reply};
use nitejar_suite::plugins::install_package;
use serde_json::{json, Value};

/// Installs and activates a plugin behind a gate that serves `secrets`.
fn run(
    crate_dir: &str,
    lib: &str,
    edit: impl FnOnce(&mut Value),
    config: Value,
    secrets: &[(&str, &str)],
) -> (Runtime, Arc<MemorySink>, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let dir = install_package(data.path(), crate_dir, lib, edit);
    let manifest = validate_package_dir(&dir, &ValidateOptions::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .manifest;
    let sink = MemorySink::new();
    let gate = Arc::new(
        PermissionGate::new(data.path(), sink.clone())
            .with_secrets(Arc::new(MapSecrets::new(secrets.iter().copied()))),
    );
    let permissions = PermissionSet::from(&manifest.permissions);
    let package = PluginPackage::new(&dir, manifest).with_config(config);
    let active = loader::load(&package, gate.clone()).unwrap();
    gate.grant(active.meta(), Grant::new(permissions, &dir));
    let runtime = Runtime::builder().services(gate).sink(sink.clone()).build();
    runtime.activate(active).unwrap();
    (runtime, sink, data)
}

const SECRET: &str = "whsec-test";

fn instance(callback: &str) -> IntegrationInstance {
    IntegrationInstance::new("int-1", "signed-webhook")
        .with_name("Ops hook")
        .with_config(json!({ "secret": SECRET, "callbackUrl": callback }))
}

fn webhook(body: &str, signature: &str) -> WebhookRequest {
    WebhookRequest::new("POST", "/api/webhooks/plugins/signed-webhook/int-1")
        .with_header("x-signature-256", signature)
        .with_body(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhook_in_and_response_out() {
    let callback = LocalHttp::start(|_| Reply::text(200, r#"{"id":"cb-1"}"#));
    let port = callback.port();
    let (runtime, sink, _data) = run(
        "examples/signed-webhook",
        "signed_webhook",
        |m| m["permissions"]["network"] = json!([format!("127.0.0.1:{port}")]),
        Value::Null,
        &[],
    );
    let ctx = DispatchContext::for_work_item("wi-9");
    let inst = instance(&callback.url("/responses"));

    let body = r#"{"id":"evt-1","text":"restart the worker","conversation":"ops"}"#;
    let signature = format!("sha256={}", signed_webhook_hex(SECRET, body));
    let (request, i) = (webhook(body, &signature), inst.clone());
    let parsed = runtime
        .call_integration(
            "signed-webhook",
            "parse_webhook",
            &ctx,
            Duration::from_secs(5),
            move |integration, host| integration.parse_webhook(&request, &i, host),
        )
        .await
        .unwrap();
    let item = parsed.work_item.unwrap();
    assert_eq!(item.title, "restart the worker");
    assert_eq!(parsed.idempotency_keys, ["signed-webhook:int-1:evt-1"]);

    let (request, i) = (webhook(body, "sha256=0000"), inst.clone());
    let refused = runtime
        .call_integration(
            "signed-webhook",
            "parse_webhook",
            &ctx,
            Duration::from_secs(5),
            move |integration, host| integration.parse_webhook(&request, &i, host),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            IntegrationCallError::Failed(IntegrationError::Unauthorized(_))
        ),
        "{refused:?}"
    );

    let (context, i) = (parsed.response_context.clone(), inst.clone());
    let posted = runtime
        .call_integration(
            "signed-webhook",
            "post_response",
            &ctx,
            Duration::from_secs(5),
            move |integration, host| {
                integration.post_response(
                    &i,
                    "wi-9",
                    "restarted",
                    context.as_ref(),
                    &PostResponseOptions::default(),
                    host,
                )
            },
        )
        .await
        .unwrap();
    assert!(posted.success, "{posted:?}");
    assert_eq!(posted.provider_ref.as_deref(), Some("cb-1"));
    let received = callback.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/responses");
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(sent["content"], "restarted");
    assert_eq!(sent["context"]["conversation"], "ops");
    let signature = received[0].header("x-signature-256").unwrap();
    assert_eq!(
        signature,
        format!(
            "sha256={}",
            signed_webhook_hex(SECRET, std::str::from_utf8(&received[0].body).unwrap())
        )
    );

    let statuses: Vec<_> = sink.receipts().iter().map(|r| (r.kind, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (ReceiptKind::Integration, ReceiptStatus::Ok),
            (ReceiptKind::Integration, ReceiptStatus::Error),
            (ReceiptKind::Integration, ReceiptStatus::Ok),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_on_an_undeclared_host_is_denied() {
    let callback = LocalHttp::start(|_| Reply::text(200, "{}"));
    let (runtime, sink, _data) = run(
        "examples/signed-webhook",
        "signed_webhook",
        |_| {},
        Value::Null,
        &[],
    );
    let inst = instance(&callback.url("/responses"));
    let posted = runtime
        .call_integration(
            "signed-webhook",
            "post_response",
            &DispatchContext::default(),
            Duration::from_secs(5),
            move |integration, host| {
                integration.post_response(
                    &inst,
                    "wi-1",
                    "hi",
                    None,
                    &PostResponseOptions::default(),
                    host,
                )
            },
        )
        .await
        .unwrap();
    assert!(!posted.success);
    assert!(posted.error.unwrap().contains("permission denied"));
    assert!(callback.received().is_empty());
    let denial = sink
        .receipts()
        .into_iter()
        .find(|r| r.kind == ReceiptKind::PermissionDenied)
        .expect("a denial receipt");
    assert_eq!(
        denial.detail.unwrap()["permission"],
        format!("network:127.0.0.1:{}", callback.port())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_guard_blocks_tools_and_redacts_responses() {
    let (runtime, sink, _data) = run(
        "examples/policy-guard",
        "policy_guard",
        |_| {},
        json!({ "blockedTools": ["shell", "fs_*"], "redact": ["hunter2"], "redactSecrets": ["OPENAI_API_KEY"] }),
        &[("OPENAI_API_KEY", "sk-live-0123456789abcdefXYZ")],
    );
    let ctx = DispatchContext::for_work_item("wi-3");
    let shell = runtime
        .dispatch(&ctx, {
            let mut call = ToolPreExec::default();
            call.tool_name = "fs_delete".into();
            call
        })
        .await;
    assert!(shell.is_blocked());
    let search = runtime
        .dispatch(&ctx, {
            let mut call = ToolPreExec::default();
            call.tool_name = "search".into();
            call
        })
        .await;
    assert!(!search.is_blocked());

    let out = runtime
        .dispatch(
            &ctx,
            { let mut response = ResponsePreDeliver::default(); response.content = "password hunter2; key sk-live-0123456789abcdefXYZ; gh ghp_abcdefghijklmnopqrstuvwxyz".into(); response },
        )
        .await;
    assert_eq!(
        out.payload.content,
        "password [redacted]; key [redacted]; gh [redacted]"
    );
    let statuses: Vec<_> = sink.receipts().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [ReceiptStatus::Blocked, ReceiptStatus::Ok, ReceiptStatus::Ok]
    );
}

/// HMAC-SHA256 of `body` under `secret`, hex: what the example sends and expects.
fn signed_webhook_hex(secret: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
