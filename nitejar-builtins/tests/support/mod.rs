//! Shared test support: fixtures, webhook requests, and doubles of the Telegram Bot API and the
//! GitHub REST API that answer like the real services (status codes, envelopes, auth checks), so
//! the integrations' real request code is what the tests run.
//!
//! Each test binary uses part of this module.
#![allow(dead_code)]

pub mod github_api;
pub mod telegram_api;

use std::path::PathBuf;

use nitejar_sdk::integration::IntegrationInstance;
use nitejar_sdk::WebhookRequest;
use serde_json::Value;

/// A file under `tests/fixtures/`.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("fixture {}: {e}", full.display()))
}

/// A fixture as text.
pub fn fixture_text(path: &str) -> String {
    String::from_utf8(fixture(path)).expect("fixture is UTF-8")
}

/// A fixture as JSON.
pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).expect("fixture is JSON")
}

/// A webhook POST with these headers (names lower-cased as the host hands them over).
pub fn webhook(kind: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> WebhookRequest {
    headers.iter().fold(
        WebhookRequest::new("POST", format!("/api/webhooks/plugins/{kind}/int-1")).with_body(body),
        |request, (k, v)| request.with_header(k.to_ascii_lowercase(), *v),
    )
}

/// An integration row with id `int-1`.
pub fn instance(kind: &str, config: Value) -> IntegrationInstance {
    IntegrationInstance::new("int-1", kind)
        .with_name(format!("Test {kind}"))
        .with_config(config)
}

/// The JSON body of a recorded request.
pub fn body_json(request: &nitejar_sdk::HttpRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}
