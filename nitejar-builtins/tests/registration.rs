//! The built-ins register through linkme, pass manifest validation like any plugin, and describe
//! themselves with schemas that accept the integration rows existing deployments have.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use nitejar_core::builtin::builtins;
use nitejar_core::builtin::BuiltinExt;
use nitejar_sdk::IntegrationDescriptor;
use serde_json::{json, Value};
use support::fixture_text;

fn descriptor(kind: &str) -> IntegrationDescriptor {
    let builtin = builtins()
        .into_iter()
        .find(|b| {
            (b.build)()
                .integrations()
                .iter()
                .any(|i| i.descriptor().kind == kind)
        })
        .unwrap_or_else(|| panic!("a built-in contributes `{kind}`"));
    (builtin.build)()
        .integration(kind)
        .map(|i| i.descriptor())
        .unwrap()
}

fn validator(kind: &str) -> jsonschema::Validator {
    let schema = descriptor(kind).config_schema;
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    jsonschema::draft202012::new(&schema).expect("compiles")
}

#[test]
fn telegram_and_github_are_built_ins_that_activate() {
    assert_eq!(nitejar_builtins::link(), 3);
    let mut found = Vec::new();
    for builtin in builtins() {
        let manifest = builtin.manifest().expect("the manifest validates").manifest;
        builtin.activate().expect("activates");
        found.push(manifest.id.clone());
        let network = &manifest.permissions.network;
        match manifest.id.as_str() {
            "builtin.telegram" => assert_eq!(network, &["api.telegram.org".to_string()]),
            "builtin.github" => assert_eq!(network, &["api.github.com".to_string()]),
            _ => {}
        }
    }
    for id in ["builtin.echo", "builtin.github", "builtin.telegram"] {
        assert!(found.iter().any(|f| f == id), "{id} in {found:?}");
    }
}

#[test]
fn descriptors_say_what_the_catalog_shows() {
    insta::assert_json_snapshot!("telegram_descriptor", descriptor("telegram"));
    insta::assert_json_snapshot!("github_descriptor", descriptor("github"));
}

#[test]
fn rows_written_by_the_typescript_version_fit_the_schemas() {
    let telegram = validator("telegram");
    let rows = [
        json!({ "botToken": "123:abc" }),
        json!({ "botToken": "123:abc", "webhookSecret": "a-B_9", "allowedChatIds": [-1001234567890i64, 42], "useMessageThreads": false }),
        json!({ "botToken": "123:abc", "allowedChatIds": ["-1001234567890"] }),
    ];
    for row in &rows {
        assert!(telegram.is_valid(row), "{row}");
    }
    for bad in [
        json!({}),
        json!({ "botToken": "" }),
        json!({ "botToken": "1:a", "useMessageThreads": "yes" }),
        json!({ "botToken": "1:a", "allowedChatIds": ["general"] }),
        json!({ "botToken": "1:a", "webhookSecret": "has spaces" }),
    ] {
        assert!(!telegram.is_valid(&bad), "{bad}");
    }

    let github = validator("github");
    let key = fixture_text("github/app-key.pem");
    let legacy = json!({
        "appId": "123456", "appSlug": "nitejar-acme", "clientId": "Iv1.0123456789abcdef",
        "clientSecret": "s", "privateKey": key, "webhookSecret": "w",
        "allowedRepos": ["octo-org/hello-world"], "permissions": { "preset": "robust" },
        "tokenTTL": 3600, "commentPolicy": "mentions", "mentionHandle": "@nitejar",
        "trackIssueOpen": true, "trackCheckRun": false
    });
    assert!(github.is_valid(&legacy));
    assert!(github.is_valid(&json!({ "appId": 123456, "privateKey": key, "webhookSecret": "w" })));
    for bad in [
        json!({ "appId": "123456", "privateKey": key }),
        json!({ "appId": "12x", "privateKey": key, "webhookSecret": "w" }),
        json!({ "appId": 1, "privateKey": key, "webhookSecret": "w", "commentPolicy": "some" }),
        json!({ "appId": 1, "privateKey": key, "webhookSecret": "w", "allowedRepos": ["nope"] }),
    ] {
        assert!(!github.is_valid(&bad), "{bad}");
    }
}

#[test]
fn secrets_are_the_sensitive_fields() {
    assert_eq!(
        descriptor("telegram").sensitive_fields,
        ["botToken", "webhookSecret"]
    );
    assert_eq!(
        descriptor("github").sensitive_fields,
        ["privateKey", "clientSecret", "webhookSecret"]
    );
    // Every sensitive field is a string property of the schema (the host encrypts top-level strings).
    for kind in ["telegram", "github"] {
        let d = descriptor(kind);
        for field in &d.sensitive_fields {
            let property: &Value = &d.config_schema["properties"][field];
            assert_eq!(property["type"], "string", "{kind}.{field}");
        }
    }
}
